//! Times: RFC 3339 on the API and in the CLI, milliseconds since the Unix epoch inside.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub use fieldlink_plumbing::clock::now_ms;

/// Earliest and latest instants the API accepts and prints: years 0001 to 9999, what RFC 3339
/// can write.
pub const MIN_MS: i64 = -62_135_596_800_000;
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Formats milliseconds as RFC 3339 UTC with millisecond precision; values outside years
/// 0001–9999 are clamped to that range.
pub fn rfc3339(ms: i64) -> String {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            let t = t
                .replace_nanosecond((ms.rem_euclid(1000) * 1_000_000) as u32)
                .ok()?;
            t.format(&Rfc3339).ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Parses RFC 3339 into milliseconds (sub-millisecond digits are dropped).
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return Err(format!("{s:?} is outside years 0001 to 9999"));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123Z"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123+01:00"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(parse_rfc3339(&rfc3339(-1)), Ok(-1));
        assert!(parse_rfc3339("yesterday").is_err());
        assert_eq!(parse_rfc3339(&rfc3339(i64::MAX)), Ok(MAX_MS));
        assert_eq!(parse_rfc3339(&rfc3339(i64::MIN)), Ok(MIN_MS));
    }
}
