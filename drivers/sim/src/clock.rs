//! The simulator's time base: every waveform is a function of the time since [`Clock::epoch`].

use std::time::{Duration, Instant, SystemTime};

/// A fixed starting point; waveforms are evaluated at the time elapsed since it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    epoch: SystemTime,
}

impl Clock {
    /// A clock whose time zero is now.
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
            epoch: SystemTime::now(),
        }
    }

    /// Time elapsed since time zero, monotonic.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The wall-clock time of time zero.
    pub fn epoch(&self) -> SystemTime {
        self.epoch
    }

    /// The wall-clock time at `elapsed` after time zero.
    pub fn wall_time(&self, elapsed: Duration) -> SystemTime {
        self.epoch + elapsed
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
