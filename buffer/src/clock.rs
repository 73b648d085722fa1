//! Wall-clock time for append stamps and age caps, replaceable in tests.
//!
//! Age is measured with the wall clock because it must survive restarts; a monotonic clock does
//! not. The manual clock lets tests move time without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Where the journal reads "now" from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock the test sets, in milliseconds since the Unix epoch.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `ms`, and the handle to move it.
    pub fn manual(ms: i64) -> (Clock, Arc<AtomicI64>) {
        let cell = Arc::new(AtomicI64::new(ms));
        (Clock::Manual(cell.clone()), cell)
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => fieldlink_plumbing::clock::now_ms(),
            Clock::Manual(cell) => cell.load(Ordering::SeqCst),
        }
    }
}

/// Stamps before this instant (2020-01-01T00:00:00Z) come from a clock that was not set yet.
pub(crate) const CLOCK_SET_AFTER_MS: i64 = 1_577_836_800_000;

/// `YYYYMMDDTHHMMSSZ` for a Unix time in milliseconds, used in quarantine file names.
pub(crate) fn utc_stamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_known_instants() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(CLOCK_SET_AFTER_MS), "20200101T000000Z");
        // 2024-02-29T23:59:59.999Z, a leap day.
        assert_eq!(utc_stamp(1_709_251_199_999), "20240229T235959Z");
        assert_eq!(utc_stamp(-1000), "19691231T235959Z");
    }

    #[test]
    fn manual_clock_moves() {
        let (clock, cell) = Clock::manual(5);
        assert_eq!(clock.now_ms(), 5);
        cell.store(9, Ordering::SeqCst);
        assert_eq!(clock.now_ms(), 9);
    }
}
