//! The pace the cloud asked for: at most so many telemetry points and messages per second,
//! for a while (the protocol's `Control::SlowDown`).
//!
//! Holding back costs nothing durable: what is not sent stays in the journal and goes out
//! later, so obeying a slow-down loses no reading. Two token buckets of one second's worth
//! each start empty when a request arrives (the cloud asks because we were already over) and
//! may go into debt by one batch, so a batch is never split; sending resumes when both are out
//! of debt. A newer request replaces the older one; when the last one lapses, the pace ends.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Pace {
    points_per_s: f64,
    messages_per_s: f64,
    until: Instant,
    points: f64,
    messages: f64,
    at: Instant,
}

impl Pace {
    pub fn new(points_per_s: u32, messages_per_s: u32, lasts: Duration, now: Instant) -> Pace {
        Pace {
            points_per_s: f64::from(points_per_s.max(1)),
            messages_per_s: f64::from(messages_per_s.max(1)),
            until: now + lasts,
            points: 0.0,
            messages: 0.0,
            at: now,
        }
    }

    /// Whether the request still holds at `now`.
    pub fn active(&self, now: Instant) -> bool {
        now < self.until
    }

    /// Most points one batch may carry under this pace: one second's worth.
    pub fn max_batch_points(&self) -> usize {
        self.points_per_s as usize
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.points = (self.points + dt * self.points_per_s).min(self.points_per_s);
        self.messages = (self.messages + dt * self.messages_per_s).min(self.messages_per_s);
    }

    /// When the next batch may go: `now` if it may go at once.
    pub fn next_send(&mut self, now: Instant) -> Instant {
        self.refill(now);
        let wait = |tokens: f64, rate: f64| {
            if tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-tokens / rate)
            }
        };
        now + wait(self.points, self.points_per_s).max(wait(self.messages, self.messages_per_s))
    }

    /// Accounts for a message of `points` points sent at `now`.
    pub fn spend(&mut self, points: u64, now: Instant) {
        self.refill(now);
        self.points -= points as f64;
        self.messages -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sending_as_fast_as_allowed_keeps_to_the_rate() {
        let t0 = Instant::now();
        let mut p = Pace::new(1_000, 100, Duration::from_secs(60), t0);
        let mut now = t0;
        let mut sent = 0u64;
        // Batches of 300 points, each sent as soon as the pace allows, for 20 s.
        while now < t0 + Duration::from_secs(20) {
            now = p.next_send(now);
            p.spend(300, now);
            sent += 300;
        }
        // The rate's worth, plus the batch in debt and the one sent at the very end.
        assert!(sent <= 20 * 1_000 + 2 * 300, "{sent}");
        assert!(sent >= 19 * 1_000, "{sent}");
    }

    #[test]
    fn the_message_rate_binds_small_batches() {
        let t0 = Instant::now();
        let mut p = Pace::new(1_000_000, 10, Duration::from_secs(60), t0);
        let mut now = t0;
        let mut messages = 0;
        while now < t0 + Duration::from_secs(10) {
            now = p.next_send(now);
            p.spend(1, now);
            messages += 1;
        }
        assert!((100..=102).contains(&messages), "{messages}");
    }

    #[test]
    fn a_request_lapses() {
        let t0 = Instant::now();
        let p = Pace::new(10, 10, Duration::from_secs(5), t0);
        assert!(p.active(t0 + Duration::from_secs(4)));
        assert!(!p.active(t0 + Duration::from_secs(5)));
        assert_eq!(p.max_batch_points(), 10);
    }
}
