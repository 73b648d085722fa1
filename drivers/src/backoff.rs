//! Capped exponential backoff, for silent slaves and vanished serial adapters.
//!
//! A dead unit on a shared RS-485 bus costs a full timeout per attempt; retrying it every cycle
//! would steal the bus from the live ones. After `n` consecutive failures the next attempt waits
//! `min(base × 2^(n-1), cap)`.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let delays: Vec<_> = (0..6).map(|_| b.fail().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 700, 700, 700]);
        for _ in 0..100 {
            b.fail();
        }
        assert_eq!(b.fail(), Duration::from_millis(700));
        b.succeed();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.fail(), Duration::from_millis(100));
    }
}
