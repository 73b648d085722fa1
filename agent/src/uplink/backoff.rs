//! Reconnect delays: exponential with full jitter, so a fleet that lost its broker does not
//! come back in lockstep.

use std::time::Duration;

/// Exponential backoff with jitter between `min` and the current ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
        Backoff {
            min,
            max,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The connection worked: the next failure waits the minimum again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64*: jitter needs no more.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let span = ceiling.saturating_sub(self.min).as_millis() as u64;
        let jitter = if span == 0 { 0 } else { r % (span + 1) };
        self.min + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_bounds() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut b = Backoff::new(min, max);
        let mut ceilings = Vec::new();
        for i in 0..12u32 {
            let d = b.next_delay();
            let ceiling = (min * 2u32.pow(i)).min(max);
            assert!(d >= min && d <= ceiling, "{d:?} attempt {i}");
            ceilings.push(ceiling);
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
