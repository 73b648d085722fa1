//! Milliseconds since the Unix epoch, UTC: negative before 1970 (a gateway without a real-time
//! clock may boot there), saturating at `i64`'s range rather than wrapping.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as milliseconds since the Unix epoch.
pub fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The system clock now, as milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    epoch_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn before_and_after_the_epoch() {
        assert_eq!(epoch_ms(UNIX_EPOCH), 0);
        assert_eq!(
            epoch_ms(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            1_700_000_000_123
        );
        assert_eq!(epoch_ms(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(
            epoch_ms(UNIX_EPOCH - Duration::from_secs(86_400)),
            -86_400_000
        );
        // Sub-millisecond parts are dropped toward the epoch.
        assert_eq!(epoch_ms(UNIX_EPOCH + Duration::from_micros(1_999)), 1);
        let now = now_ms();
        assert!(
            now > 1_577_836_800_000,
            "the test machine's clock is set: {now}"
        );
    }
}
