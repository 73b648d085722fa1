//! Waits between retries: capped exponential growth, with full jitter or exact.
//!
//! A [`Schedule`] is the shape, checked once when it is made: the first wait is at least a
//! millisecond and the cap is not below it. After `n` consecutive failures the ceiling is
//! `min(first × 2^(n-1), cap)`. A [`Backoff`] counts the failures and answers each with a wait:
//!
//! - [`Backoff::jittered`] draws the wait uniformly between `first` and the ceiling, so a fleet
//!   (or a cloud's instances) that lost the same broker or database does not return in
//!   lockstep. For every loop that reconnects over a network.
//! - [`Backoff::exact`] waits the ceiling itself, for a local schedule that must be predictable:
//!   a Modbus station deciding when a silent unit on a shared bus gets its next turn.

use std::fmt;
use std::time::Duration;

/// Why a schedule was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleError {
    /// The first wait is under a millisecond: retries would spin.
    FirstTooShort(Duration),
    /// The cap is below the first wait.
    CapBelowFirst { first: Duration, cap: Duration },
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::FirstTooShort(d) => {
                write!(f, "the first wait ({d:?}) must be at least 1 ms")
            }
            ScheduleError::CapBelowFirst { first, cap } => write!(
                f,
                "the longest wait ({cap:?}) must not be less than the first ({first:?})"
            ),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// The shape of a backoff: its first wait and its cap, valid by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    first: Duration,
    cap: Duration,
}

impl Schedule {
    pub const fn new(first: Duration, cap: Duration) -> Result<Schedule, ScheduleError> {
        if first.as_nanos() < 1_000_000 {
            return Err(ScheduleError::FirstTooShort(first));
        }
        if cap.as_nanos() < first.as_nanos() {
            return Err(ScheduleError::CapBelowFirst { first, cap });
        }
        Ok(Schedule { first, cap })
    }

    /// A schedule fixed in the program, in milliseconds: in a `const` item an invalid one
    /// stops the build.
    pub const fn fixed(first_ms: u64, cap_ms: u64) -> Schedule {
        match Schedule::new(
            Duration::from_millis(first_ms),
            Duration::from_millis(cap_ms),
        ) {
            Ok(s) => s,
            Err(_) => panic!("a backoff schedule needs 1 ms <= first <= cap"),
        }
    }

    pub fn first(&self) -> Duration {
        self.first
    }

    /// The longest wait after `failures` consecutive failures (`first` for none or one).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first
            .checked_mul(1u32 << doublings)
            .map_or(self.cap, |d| d.min(self.cap))
    }
}

/// Consecutive failures and the wait each one earns; see the module docs.
#[derive(Debug, Clone)]
pub struct Backoff {
    schedule: Schedule,
    failures: u32,
    /// The jitter's xorshift state; `None` for exact waits.
    rng: Option<u64>,
}

impl Backoff {
    /// Waits drawn between `first` and the ceiling, seeded from the clock and the process id.
    pub fn jittered(schedule: Schedule) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
        Backoff::seeded(schedule, seed)
    }

    /// Jittered waits from a given seed, so a test can replay them.
    pub fn seeded(schedule: Schedule, seed: u64) -> Backoff {
        Backoff {
            schedule,
            failures: 0,
            rng: Some(seed | 1),
        }
    }

    /// Waits of exactly the ceiling.
    pub fn exact(schedule: Schedule) -> Backoff {
        Backoff {
            schedule,
            failures: 0,
            rng: None,
        }
    }

    /// Counts a failure and returns the wait before the next attempt.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.schedule.ceiling(self.failures);
        let Some(state) = self.rng.as_mut() else {
            return ceiling;
        };
        // xorshift64*: jitter needs no more.
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let first = self.schedule.first;
        let span = ceiling.saturating_sub(first).as_millis() as u64;
        first + Duration::from_millis(if span == 0 { 0 } else { r % (span + 1) })
    }

    /// The attempt worked: the next failure waits `first` again.
    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_schedule_refuses_a_zero_first_wait_and_a_cap_below_it() {
        assert_eq!(
            Schedule::new(Duration::ZERO, MS),
            Err(ScheduleError::FirstTooShort(Duration::ZERO))
        );
        let e = Schedule::new(MS * 500, MS * 100).unwrap_err();
        assert_eq!(
            e,
            ScheduleError::CapBelowFirst {
                first: MS * 500,
                cap: MS * 100
            }
        );
        assert_eq!(
            e.to_string(),
            "the longest wait (100ms) must not be less than the first (500ms)"
        );
        assert!(Schedule::new(MS, MS).is_ok());
    }

    #[test]
    fn exact_waits_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::exact(Schedule::fixed(100, 700));
        let delays: Vec<_> = (0..6).map(|_| b.fail().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 700, 700, 700]);
        for _ in 0..100 {
            b.fail();
        }
        assert_eq!(b.fail(), MS * 700, "no overflow after many failures");
        b.succeed();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.fail(), MS * 100);
    }

    #[test]
    fn jittered_waits_stay_between_first_and_the_ceiling_and_vary() {
        let schedule = Schedule::fixed(100, 5_000);
        for seed in [1, 7, 0xdead_beef, u64::MAX] {
            let mut b = Backoff::seeded(schedule, seed);
            let mut waits = Vec::new();
            for n in 1..=40u32 {
                let w = b.fail();
                assert!(
                    w >= schedule.first() && w <= schedule.ceiling(n),
                    "seed {seed}, failure {n}: {w:?} outside [100ms, {:?}]",
                    schedule.ceiling(n)
                );
                waits.push(w);
            }
            waits.sort();
            waits.dedup();
            assert!(
                waits.len() > 10,
                "seed {seed}: only {} distinct waits",
                waits.len()
            );
            b.succeed();
            assert_eq!(
                b.fail(),
                schedule.first(),
                "the first failure after a success"
            );
        }
    }

    #[test]
    fn the_same_seed_replays_the_same_waits() {
        let schedule = Schedule::fixed(10, 10_000);
        let run = |seed| {
            let mut b = Backoff::seeded(schedule, seed);
            (0..20).map(|_| b.fail()).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(1_000));
    }
}
