//! Free text from requests that no store can keep: PostgreSQL refuses the NUL character in
//! `text` and `jsonb`, so a request carrying one is refused up front with the place it was
//! found, instead of failing in the database.

use super::error::ApiError;

fn refused(place: &str) -> ApiError {
    ApiError::bad_request(format!("{place}: must not contain a NUL character"))
}

/// `s`, when it holds no NUL character; `place` names it in the refusal.
pub fn plain<'a>(place: &str, s: &'a str) -> Result<&'a str, ApiError> {
    if s.contains('\0') {
        return Err(refused(place));
    }
    Ok(s)
}

/// Refuses a JSON value with a NUL character in any string or key; the refusal names the
/// path under `place` (`kind.config`, `receivers[2]`).
pub fn json(place: &str, v: &serde_json::Value) -> Result<(), ApiError> {
    match v {
        serde_json::Value::String(s) => plain(place, s).map(|_| ()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| json(&format!("{place}[{i}]"), x)),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, x)| {
            let at = if place.is_empty() {
                k.clone()
            } else {
                format!("{place}.{k}")
            };
            plain(&at, k)?;
            json(&at, x)
        }),
        _ => Ok(()),
    }
}

/// [`json`] over anything serializable, at the top level of a body.
pub fn body(v: &impl serde::Serialize) -> Result<(), ApiError> {
    let v = serde_json::to_value(v)
        .map_err(|e| ApiError::bad_request(format!("the body cannot be read back: {e}")))?;
    json("", &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_where_the_nul_is() {
        assert!(plain("rule_id", "r-1").is_ok());
        let e = plain("rule_id", "r\0").unwrap_err();
        assert_eq!(e.body.message, "rule_id: must not contain a NUL character");
        let v = serde_json::json!({"name": "ok", "receivers": ["a", "b\u{0}"]});
        assert_eq!(
            body(&v).unwrap_err().body.message,
            "receivers[1]: must not contain a NUL character"
        );
        let v = serde_json::json!({"kind": {"config": "x\u{0}"}});
        assert_eq!(
            json("", &v).unwrap_err().body.message,
            "kind.config: must not contain a NUL character"
        );
        assert!(body(&serde_json::json!({"n": 1, "s": "fine"})).is_ok());
    }
}
