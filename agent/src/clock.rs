//! Wall-clock sanity for gateways without a real-time clock.
//!
//! Until NTP syncs, such a gateway believes it is 1970 (or whenever its image was made).
//! Readings taken then are held in memory with the monotonic instant they were taken at, and
//! re-stamped once the wall clock is plausible again: `now_wall - (now_mono - taken_mono)`.
//! The clock counts as plausible once it is past the agent's build date.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

use fieldlink_protocol::Point;

/// Milliseconds since the Unix epoch per the system clock (negative before 1970).
pub fn wall_ms() -> i64 {
    fieldlink_plumbing::clock::now_ms()
}

/// When this binary was built, in ms since the epoch (set by `build.rs`).
pub const BUILD_MS: i64 = match i64::from_str_radix(env!("FIELDLINK_BUILD_MS"), 10) {
    Ok(ms) => ms,
    Err(_) => 0,
};

/// The system clock, when it is plausible (past [`BUILD_MS`]); `None` while it is not, so
/// that dates checked against it (certificates) are not judged by a clock stuck in 1970.
pub fn trusted_now() -> Option<SystemTime> {
    (wall_ms() >= BUILD_MS).then(SystemTime::now)
}

struct Held {
    points: Vec<Point>,
    wall_ms: i64,
    taken: Instant,
}

/// Readings held while the clock is implausible.
pub struct ClockGuard {
    sane_after_ms: i64,
    held: VecDeque<Held>,
    held_points: usize,
    max_points: usize,
    /// Points dropped because too many were held.
    pub dropped: u64,
}

impl ClockGuard {
    pub fn new(sane_after_ms: i64, max_points: usize) -> ClockGuard {
        ClockGuard {
            sane_after_ms,
            held: VecDeque::new(),
            held_points: 0,
            max_points,
            dropped: 0,
        }
    }

    pub fn is_sane(&self, wall_ms: i64) -> bool {
        wall_ms >= self.sane_after_ms
    }

    pub fn held_points(&self) -> usize {
        self.held_points
    }

    /// Takes the readings of one poll at `(wall_ms, now)`. Returns what may be journaled now:
    /// everything held before, re-stamped, then these points, once the clock is sane; nothing
    /// while it is not.
    pub fn admit(&mut self, points: Vec<Point>, wall_ms: i64, now: Instant) -> Vec<Point> {
        if !self.is_sane(wall_ms) {
            self.held_points += points.len();
            self.held.push_back(Held {
                points,
                wall_ms,
                taken: now,
            });
            while self.held_points > self.max_points {
                match self.held.pop_front() {
                    Some(h) => {
                        self.held_points -= h.points.len();
                        self.dropped += h.points.len() as u64;
                    }
                    None => break,
                }
            }
            return Vec::new();
        }
        let mut out = self.release(wall_ms, now);
        out.extend(points);
        out
    }

    /// Re-stamps and returns everything held, if the clock is sane at `wall_ms`.
    pub fn release(&mut self, wall_ms: i64, now: Instant) -> Vec<Point> {
        if !self.is_sane(wall_ms) || self.held.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(self.held_points);
        for h in self.held.drain(..) {
            let taken_at = wall_ms - now.duration_since(h.taken).as_millis() as i64;
            for mut p in h.points {
                // Keep each point's offset from the moment its poll was handed over.
                p.ts_ms = taken_at + (p.ts_ms - h.wall_ms);
                out.push(p);
            }
        }
        self.held_points = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_protocol::Ident;
    use std::time::Duration;

    fn pt(ts: i64) -> Point {
        Point::new(Ident::new("d").unwrap(), Ident::new("m").unwrap(), ts, 1.0)
    }

    #[test]
    fn readings_before_the_build_date_are_held_and_restamped() {
        let sane = 1_700_000_000_000;
        let mut g = ClockGuard::new(sane, 100);
        let t0 = Instant::now();
        // Clock says 1970 + 5 s; two points 3 ms apart.
        assert!(g.admit(vec![pt(5_000), pt(5_003)], 5_000, t0).is_empty());
        assert_eq!(g.held_points(), 2);
        // Ten seconds later NTP has set the clock.
        let t1 = t0 + Duration::from_secs(10);
        let now = sane + 50_000;
        let out = g.admit(vec![pt(now)], now, t1);
        let ts: Vec<i64> = out.iter().map(|p| p.ts_ms).collect();
        assert_eq!(ts, vec![now - 10_000, now - 10_000 + 3, now]);
        assert_eq!(g.held_points(), 0);
    }

    #[test]
    fn holding_is_bounded_oldest_first() {
        let mut g = ClockGuard::new(1_000_000, 3);
        let t = Instant::now();
        g.admit(vec![pt(1), pt(2)], 1, t);
        g.admit(vec![pt(3), pt(4)], 3, t);
        assert_eq!((g.held_points(), g.dropped), (2, 2));
        const { assert!(BUILD_MS > 1_600_000_000_000, "build date is set") };
    }
}
