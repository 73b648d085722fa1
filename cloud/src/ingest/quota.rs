//! Per-gateway quotas: what one gateway may send, so that a flood from one never crowds out
//! the others and never grows the cloud without bound.
//!
//! Each gateway has two token buckets, points per second and messages per second, each holding
//! `burst` seconds' worth. A message that finds its bucket short is *over quota*:
//!
//! 1. The first time (and again every [`SLOW_DOWN_EVERY`] while it stays over) the cloud asks
//!    the gateway to slow down, on its control topic. An agent that obeys keeps the readings in
//!    its journal and sends them later: an honest gateway loses nothing.
//! 2. For `grace` after it first went over, its messages are still stored in full, so an agent
//!    has time to hear the request and act on it.
//! 3. After that, while it stays over, its messages are acknowledged and dropped: counted per
//!    gateway (in the gateways table, flagged in the API) and in metrics, with one dead letter
//!    per [`SAMPLE_EVERY`] as a sample of what was dropped. Storing every such message as a dead
//!    letter would let the flood do the damage the quota exists to prevent.
//!
//! What fits the buckets is always stored, so a gateway over quota still gets its rate's worth
//! through. The over-quota state ends once the buckets have refilled to half the burst: a
//! gateway must stay under its rate for a while, not just leave one gap in its flood. Statuses (births,
//! deaths) are never charged or dropped: a gateway's session state must always get through.
//! The table of buckets is bounded: buckets that are full again carry no information and are
//! swept once the table holds [`MAX_TRACKED`] gateways.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fieldlink_protocol::Ident;

/// How often an over-quota gateway is asked again to slow down.
pub const SLOW_DOWN_EVERY: Duration = Duration::from_secs(5);
/// How often a dropped message is kept as a dead letter, per gateway.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Gateways tracked before full buckets are swept.
const MAX_TRACKED: usize = 100_000;

/// What a gateway may send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaSettings {
    pub points_per_s: u32,
    pub messages_per_s: u32,
    /// How many seconds' worth each bucket holds: what a gateway may send at once.
    pub burst: Duration,
    /// How long a gateway over quota is still stored in full after it was asked to slow down.
    pub grace: Duration,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings {
            points_per_s: 100_000,
            messages_per_s: 1_000,
            burst: Duration::from_secs(10),
            grace: Duration::from_secs(30),
        }
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The gateway is over its quota.
    pub over: bool,
    /// Store it (within quota, or over it within the grace period).
    pub store: bool,
    /// Ask the gateway to slow down now.
    pub slow_down: bool,
    /// Keep this dropped message as a dead letter (a sample).
    pub sample: bool,
}

const STORE: Verdict = Verdict {
    over: false,
    store: true,
    slow_down: false,
    sample: false,
};

#[derive(Debug)]
struct Bucket {
    points: f64,
    messages: f64,
    at: Instant,
    over_since: Option<Instant>,
    asked_at: Option<Instant>,
    sampled_at: Option<Instant>,
}

pub struct Quotas {
    settings: QuotaSettings,
    buckets: HashMap<Ident, Bucket>,
}

impl Quotas {
    pub fn new(settings: QuotaSettings) -> Quotas {
        Quotas {
            settings,
            buckets: HashMap::new(),
        }
    }

    pub fn settings(&self) -> &QuotaSettings {
        &self.settings
    }

    fn capacity(&self) -> (f64, f64) {
        let burst = self.settings.burst.as_secs_f64();
        (
            f64::from(self.settings.points_per_s) * burst,
            f64::from(self.settings.messages_per_s) * burst,
        )
    }

    /// Charges one message of `points` points from `gateway` at `now`.
    pub fn charge(&mut self, gateway: &Ident, points: usize, now: Instant) -> Verdict {
        let (cap_points, cap_messages) = self.capacity();
        if !self.buckets.contains_key(gateway) && self.buckets.len() >= MAX_TRACKED {
            self.sweep(now);
        }
        let s = self.settings;
        let b = self.buckets.entry(gateway.clone()).or_insert(Bucket {
            points: cap_points,
            messages: cap_messages,
            at: now,
            over_since: None,
            asked_at: None,
            sampled_at: None,
        });
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.at = now;
        b.points = (b.points + dt * f64::from(s.points_per_s)).min(cap_points);
        b.messages = (b.messages + dt * f64::from(s.messages_per_s)).min(cap_messages);
        let cost = points as f64;
        if b.points - cost >= cap_points / 2.0 && b.messages - 1.0 >= cap_messages / 2.0 {
            // Under its rate long enough that this message leaves half the burst: no longer
            // over.
            b.over_since = None;
        }
        if b.points >= cost && b.messages >= 1.0 {
            // Within the rate: stored, over quota or not.
            b.points -= cost;
            b.messages -= 1.0;
            return STORE;
        }
        let since = *b.over_since.get_or_insert(now);
        let slow_down = b
            .asked_at
            .is_none_or(|at| now.duration_since(at) >= SLOW_DOWN_EVERY);
        if slow_down {
            b.asked_at = Some(now);
        }
        if now.duration_since(since) < s.grace {
            return Verdict {
                over: true,
                store: true,
                slow_down,
                sample: false,
            };
        }
        let sample = b
            .sampled_at
            .is_none_or(|at| now.duration_since(at) >= SAMPLE_EVERY);
        if sample {
            b.sampled_at = Some(now);
        }
        Verdict {
            over: true,
            store: false,
            slow_down,
            sample,
        }
    }

    /// Forgets gateways whose buckets have refilled: charging them again starts from full.
    fn sweep(&mut self, now: Instant) {
        let s = self.settings;
        let (cap_points, cap_messages) = self.capacity();
        self.buckets.retain(|_, b| {
            let dt = now.saturating_duration_since(b.at).as_secs_f64();
            let full = b.points + dt * f64::from(s.points_per_s) >= cap_points
                && b.messages + dt * f64::from(s.messages_per_s) >= cap_messages;
            !full
        });
    }

    /// Gateways tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas() -> Quotas {
        Quotas::new(QuotaSettings {
            points_per_s: 100,
            messages_per_s: 10,
            burst: Duration::from_secs(2),
            grace: Duration::from_secs(5),
        })
    }

    #[test]
    fn a_steady_gateway_within_its_rate_is_never_over() {
        let mut q = quotas();
        let gw = Ident::new("gw").unwrap();
        let t0 = Instant::now();
        for i in 0..1_000u64 {
            // 9 messages of 10 points per second: under both rates.
            let v = q.charge(&gw, 10, t0 + Duration::from_millis(i * 1_000 / 9));
            assert_eq!(v, STORE, "message {i}");
        }
    }

    #[test]
    fn over_quota_asks_to_slow_down_stores_through_the_grace_then_drops_with_samples() {
        let mut q = quotas();
        let (gw, other) = (Ident::new("gw").unwrap(), Ident::new("other").unwrap());
        let t0 = Instant::now();
        // The burst: 200 points.
        for _ in 0..20 {
            assert_eq!(q.charge(&gw, 10, t0), STORE);
        }
        let first = q.charge(&gw, 10, t0);
        assert_eq!(
            first,
            Verdict {
                over: true,
                store: true,
                slow_down: true,
                sample: false
            }
        );
        let again = q.charge(&gw, 10, t0 + Duration::from_millis(500));
        assert!(
            again.store && !again.slow_down,
            "asked once per {SLOW_DOWN_EVERY:?}"
        );
        // Keep flooding at 1,000 points/s: within the grace still stored, asked every 5 s;
        // after it only what the rate refills (100 points/s) is stored.
        let (mut asked, mut sampled, mut in_grace, mut after_grace) = (0, 0, 0, 0);
        for ms in (510..20_000u64).step_by(10) {
            let v = q.charge(&gw, 10, t0 + Duration::from_millis(ms));
            asked += v.slow_down as u32;
            sampled += v.sample as u32;
            match (v.store, ms < 5_000) {
                (true, true) => in_grace += 1,
                (true, false) => after_grace += 1,
                (false, in_grace_period) => assert!(!in_grace_period, "dropped at {ms} ms"),
            }
        }
        assert_eq!(asked, 3, "at 5, 10 and 15 s");
        assert_eq!(
            sampled, 2,
            "one sample per 10 s after the grace: at 5 and 15 s"
        );
        assert_eq!(in_grace, 449);
        assert!((148..=152).contains(&after_grace), "{after_grace}");
        // Another gateway is unaffected.
        assert_eq!(q.charge(&other, 10, t0 + Duration::from_secs(20)), STORE);
        // Within its rate again, the state ends: the grace starts over next time.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(q.charge(&gw, 10, later), STORE);
        let v = (0..30)
            .map(|_| q.charge(&gw, 10, later))
            .find(|v| !v.store || v.slow_down);
        assert_eq!(
            v,
            Some(Verdict {
                over: true,
                store: true,
                slow_down: true,
                sample: false
            })
        );
    }

    #[test]
    fn full_buckets_are_swept_so_the_table_stays_bounded() {
        let mut q = quotas();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            q.charge(&Ident::new(&format!("gw-{i}")).unwrap(), 1, t0);
        }
        assert_eq!(q.tracked(), MAX_TRACKED);
        // Ten seconds later they have refilled: a new gateway sweeps them.
        q.charge(&Ident::new("new").unwrap(), 1, t0 + Duration::from_secs(10));
        assert_eq!(q.tracked(), 1);
    }
}
