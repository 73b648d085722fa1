//! Log lines about what a client can cause as often as it likes (failed authentications,
//! refused connections) are rate-limited, so a flood cannot flood the log too: at most one
//! line per interval, which says how many it stands for.

use std::time::Duration;

use tokio::time::Instant;

/// At most one line per interval; the line reports how many were not written since the last.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub fn new(every: Duration) -> LogLimit {
        LogLimit {
            every,
            last: None,
            suppressed: 0,
        }
    }

    pub fn per_second() -> LogLimit {
        LogLimit::new(Duration::from_secs(1))
    }

    /// `Some(n)` when a line may be written now, `n` being the lines left out since the last
    /// one; `None` when this one is to be left out (and counted).
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval_counting_the_rest() {
        let mut l = LogLimit::per_second();
        assert_eq!(l.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(l.allow(), None);
        }
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(l.allow(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(l.allow(), Some(6));
        assert_eq!(l.allow(), None);
    }
}
