//! Failed authentications, throttled per client address and logged without flooding the log.
//!
//! Each address (an IPv6 /64 counts as one: a host is handed a whole /64) has a bucket of
//! `per_sec` failures that refills at `per_sec` a second. A failed authentication takes one;
//! while the bucket is empty, every request from the address that needs a token gets 429 with
//! `Retry-After` before its token is looked up, so guessing costs the database nothing.
//! Successful requests take nothing, so an honest client never meets the limit.
//!
//! Bounded: at most [`MAX_ADDRESSES`] addresses are tracked; a bucket that has refilled is
//! forgotten first, and when every tracked address is still throttled a new one goes
//! untracked (and is logged) rather than growing the table.
//!
//! Every failure is counted; a log line (WARN, the client's address and the reason) is written
//! at most once a second and says how many failures it stands for.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::log_limit::LogLimit;

/// Most client addresses tracked at once.
pub const MAX_ADDRESSES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct State {
    buckets: HashMap<IpAddr, Bucket>,
    log: LogLimit,
    untracked_log: LogLimit,
}

/// The per-address throttle of failed authentications.
#[derive(Debug)]
pub struct AuthThrottle {
    per_sec: f64,
    state: Mutex<State>,
    counters: crate::http::HttpCounters,
}

/// The address an IP is throttled under: itself for IPv4, its /64 for IPv6.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AuthThrottle {
    /// Counting failures and refusals in `counters`.
    pub fn new(per_sec: NonZeroU32, counters: crate::http::HttpCounters) -> AuthThrottle {
        AuthThrottle {
            counters,
            per_sec: f64::from(per_sec.get()),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                log: LogLimit::per_second(),
                untracked_log: LogLimit::per_second(),
            }),
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.per_sec)
    }

    /// `Err(retry_after)` while `client` has used up its failures.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(state) = self.state.lock() else {
            return Ok(());
        };
        match state.buckets.get(&key(client)) {
            Some(b) => {
                let tokens = self.refilled(*b, now);
                if tokens >= 1.0 {
                    Ok(())
                } else {
                    self.counters.auth_throttled.inc();
                    Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
                }
            }
            None => Ok(()),
        }
    }

    /// Records a failed authentication from `client` (and logs it, rate-limited).
    pub fn failed(&self, client: IpAddr, reason: &str) {
        self.counters.auth_failures.inc();
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let k = key(client);
        if !state.buckets.contains_key(&k) && state.buckets.len() >= MAX_ADDRESSES {
            let full = self.per_sec;
            state
                .buckets
                .retain(|_, b| (b.tokens + now.duration_since(b.at).as_secs_f64() * full) < full);
        }
        let tracked = if let Some(b) = state.buckets.get(&k).copied() {
            let tokens = (self.refilled(b, now) - 1.0).max(0.0);
            state.buckets.insert(k, Bucket { tokens, at: now });
            true
        } else if state.buckets.len() < MAX_ADDRESSES {
            state.buckets.insert(
                k,
                Bucket {
                    tokens: self.per_sec - 1.0,
                    at: now,
                },
            );
            true
        } else {
            false
        };
        if !tracked {
            if let Some(n) = state.untracked_log.allow() {
                tracing::warn!(
                    client = %client,
                    also_untracked = n,
                    "authentication failures from more addresses than are tracked; this one is not throttled"
                );
            }
        }
        if let Some(suppressed) = state.log.allow() {
            tracing::warn!(
                client = %client,
                reason = ?reason,
                also_failed = suppressed,
                "authentication failed"
            );
        }
    }

    /// Addresses tracked now (for tests).
    pub fn tracked(&self) -> usize {
        self.state.lock().map_or(0, |s| s.buckets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_is_admitted_again_once_it_slowed_down() {
        let t = AuthThrottle::new(NonZeroU32::new(10).unwrap(), Default::default());
        let a = ip("192.0.2.1");
        for _ in 0..10 {
            assert!(t.check(a).is_ok());
            t.failed(a, "unknown token");
        }
        let wait = t.check(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another address is not affected.
        assert!(t.check(ip("192.0.2.2")).is_ok());
        tokio::time::advance(wait).await;
        assert!(t.check(a).is_ok());
        t.failed(a, "unknown token");
        assert!(t.check(a).is_err());
        // A whole second refills the bucket.
        tokio::time::advance(Duration::from_secs(1)).await;
        for _ in 0..10 {
            assert!(t.check(a).is_ok());
            t.failed(a, "unknown token");
        }
        assert!(t.check(a).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_counts_per_64_and_the_table_is_bounded() {
        let t = AuthThrottle::new(NonZeroU32::new(1).unwrap(), Default::default());
        t.failed(ip("2001:db8:1:2::1"), "x");
        assert!(t.check(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(t.check(ip("2001:db8:1:3::1")).is_ok());
        assert!(t.check(ip("::ffff:192.0.2.7")).is_ok());
        t.failed(ip("192.0.2.7"), "x");
        assert!(t.check(ip("::ffff:192.0.2.7")).is_err());

        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            t.failed(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)), "x");
        }
        assert_eq!(t.tracked(), MAX_ADDRESSES);
        // Once they have refilled, they make room for new ones.
        tokio::time::advance(Duration::from_secs(2)).await;
        t.failed(ip("198.51.100.1"), "x");
        assert_eq!(t.tracked(), 1);
    }
}
