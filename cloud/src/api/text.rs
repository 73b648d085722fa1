//! Text from requests, checked before anything stores or logs it. PostgreSQL refuses the NUL
//! character in `text` and `jsonb`; other control characters are stored, but then come back
//! out of logs, terminals and CLI tables as escape sequences or forged lines. So a request
//! carrying one is refused up front with 422 `invalid_text` and the field it was found in
//! (`name`, `receivers[2]`, `kind.config`), never a database error.
//!
//! Two rules: a *line* (names, ids, keys, filters) holds no control character at all (Unicode
//! category Cc: U+0000–U+001F and U+007F–U+009F); a *document* (the strings inside a command,
//! such as a TOML configuration) may also hold tab, line feed and carriage return.

use crate::http::error::ApiError;

/// The first character `allowed` refuses, as `U+XXXX`.
fn first_refused(s: &str, allowed: impl Fn(char) -> bool) -> Option<String> {
    s.chars()
        .find(|&c| c.is_control() && !allowed(c))
        .map(|c| format!("U+{:04X}", c as u32))
}

fn refuse(place: &str, found: String) -> ApiError {
    ApiError::invalid_text(
        place,
        &format!("must not contain control characters such as NUL ({found} found)"),
    )
}

/// `s`, when it holds no control character; `place` names it in the refusal.
pub fn line<'a>(place: &str, s: &'a str) -> Result<&'a str, ApiError> {
    match first_refused(s, |_| false) {
        Some(found) => Err(refuse(place, found)),
        None => Ok(s),
    }
}

/// `s`, when its only control characters are tab, line feed and carriage return.
pub fn document<'a>(place: &str, s: &'a str) -> Result<&'a str, ApiError> {
    match first_refused(s, |c| matches!(c, '\t' | '\n' | '\r')) {
        Some(found) => Err(refuse(place, found)),
        None => Ok(s),
    }
}

/// An identifier (gateway, device, metric): control characters are refused as text (422),
/// anything else the protocol does not allow as a bad request (400).
pub fn ident(place: &str, s: &str) -> Result<fieldlink_protocol::Ident, ApiError> {
    line(place, s)?;
    fieldlink_protocol::Ident::new(s)
        .map_err(|e| ApiError::bad_request(format!("{place} {s:?}: {e}")))
}

/// Walks a JSON value: keys are lines, strings are checked by `check`; the refusal names the
/// path under `place` (`kind.config`, `receivers[2]`).
fn walk(
    place: &str,
    v: &serde_json::Value,
    check: &dyn Fn(&str, &str) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    match v {
        serde_json::Value::String(s) => check(place, s),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| walk(&format!("{place}[{i}]"), x, check)),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, x)| {
            let at = if place.is_empty() {
                k.clone()
            } else {
                format!("{place}.{k}")
            };
            line(&at, k)?;
            walk(&at, x, check)
        }),
        _ => Ok(()),
    }
}

/// A JSON document whose strings follow the [`document`] rule.
pub fn json(place: &str, v: &serde_json::Value) -> Result<(), ApiError> {
    walk(place, v, &|at, s| document(at, s).map(|_| ()))
}

/// A request body whose every string is a [`line`].
pub fn body(v: &impl serde::Serialize) -> Result<(), ApiError> {
    let v = serde_json::to_value(v)
        .map_err(|e| ApiError::bad_request(format!("the body cannot be read back: {e}")))?;
    walk("", &v, &|at, s| line(at, s).map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_where_the_control_character_is() {
        assert!(line("rule_id", "r-1 é ✓").is_ok());
        let e = line("rule_id", "r\0").unwrap_err();
        assert_eq!(e.status, 422);
        assert_eq!(e.body.code, "invalid_text");
        assert_eq!(
            e.body.message,
            "rule_id: must not contain control characters such as NUL (U+0000 found)"
        );
        for bad in ["a\u{1b}[31m", "a\nb", "\u{7f}", "x\u{85}"] {
            assert!(line("name", bad).is_err(), "{bad:?}");
        }
        assert!(document("config", "[a]\r\n\tb = 1\n").is_ok());
        assert!(document("config", "a\u{1b}").is_err());

        let v = serde_json::json!({"name": "ok", "receivers": ["a", "b\u{0}"]});
        assert!(body(&v)
            .unwrap_err()
            .body
            .message
            .starts_with("receivers[1]: "));
        let v = serde_json::json!({"kind": {"config": "x\u{0}"}});
        assert!(json("", &v)
            .unwrap_err()
            .body
            .message
            .starts_with("kind.config: "));
        assert!(json("", &serde_json::json!({"config": "a = 1\nb = 2\n"})).is_ok());
        assert!(body(&serde_json::json!({"name": "a\nb"})).is_err());
        assert!(json("kind", &serde_json::json!({"a\tb": 1}))
            .unwrap_err()
            .body
            .message
            .starts_with("kind.a\tb: "));
        assert!(body(&serde_json::json!({"n": 1, "s": "fine"})).is_ok());
    }
}
