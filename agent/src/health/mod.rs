//! Liveness of the agent's loops, for the systemd watchdog.
//!
//! Each long-running loop (the poll scheduler, the uplink) owns a [`Heartbeat`] and beats it
//! every time it goes round. [`Liveness::all_alive`] is true only while every registered loop has
//! beaten within the stall limit; the notifier sends `WATCHDOG=1` only then, so a loop stuck on
//! a dead disk or a wedged lock makes systemd restart the agent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One loop's beat.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    name: &'static str,
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Heartbeat {
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn age(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Every registered loop.
#[derive(Debug, Clone)]
pub struct Liveness {
    origin: Instant,
    beats: Arc<Mutex<Vec<Heartbeat>>>,
    stall_after: Duration,
}

impl Liveness {
    pub fn new(stall_after: Duration) -> Liveness {
        Liveness {
            origin: Instant::now(),
            beats: Arc::default(),
            stall_after,
        }
    }

    /// Registers a loop; it counts as alive from now.
    pub fn register(&self, name: &'static str) -> Heartbeat {
        let hb = Heartbeat {
            name,
            origin: self.origin,
            last_ms: Arc::default(),
        };
        hb.beat();
        self.beats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hb.clone());
        hb
    }

    /// The first loop that has not beaten within the stall limit, if any.
    pub fn stalled(&self) -> Option<&'static str> {
        let beats = self.beats.lock().unwrap_or_else(|e| e.into_inner());
        beats
            .iter()
            .find(|b| b.age() > self.stall_after)
            .map(Heartbeat::name)
    }

    pub fn all_alive(&self) -> bool {
        self.stalled().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_is_stalled() {
        let l = Liveness::new(Duration::from_millis(50));
        let a = l.register("poll");
        let _b = l.register("uplink");
        assert!(l.all_alive());
        std::thread::sleep(Duration::from_millis(80));
        a.beat();
        assert_eq!(l.stalled(), Some("uplink"));
    }
}
