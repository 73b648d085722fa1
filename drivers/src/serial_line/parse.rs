//! Turning one line into named fields, by regex, `key=value` pairs or JSON.

use crate::pointmap::LineFormat;

/// A field's value as the line gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Number(f64),
    Bool(bool),
    Text(String),
}

/// Why a line yields no fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line does not match the pattern")]
    NoMatch,
    #[error("token {0:?} is not key=value")]
    NotKeyValue(String),
    #[error("not a JSON object: {0}")]
    NotJsonObject(String),
}

/// Parses `line` with `format` into `(field, value)` pairs. Text values that read as numbers
/// become numbers.
pub fn parse_line(
    format: &LineFormat,
    line: &str,
) -> Result<Vec<(String, FieldValue)>, ParseError> {
    let line = line.trim();
    match format {
        LineFormat::Regex(re) => {
            let caps = re.captures(line).ok_or(ParseError::NoMatch)?;
            Ok(re
                .capture_names()
                .flatten()
                .filter_map(|name| caps.name(name).map(|m| (name.to_owned(), text(m.as_str()))))
                .collect())
        }
        LineFormat::KeyValue => {
            let mut fields = Vec::new();
            for token in line
                .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .filter(|t| !t.is_empty())
            {
                match token.split_once('=') {
                    Some((k, v)) if !k.is_empty() => fields.push((k.to_owned(), text(v))),
                    _ => return Err(ParseError::NotKeyValue(token.to_owned())),
                }
            }
            if fields.is_empty() {
                return Err(ParseError::NotKeyValue(line.to_owned()));
            }
            Ok(fields)
        }
        LineFormat::JsonLines => {
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).map_err(|e| ParseError::NotJsonObject(e.to_string()))?;
            Ok(object
                .into_iter()
                .filter_map(|(k, v)| {
                    let value = match v {
                        serde_json::Value::Number(n) => FieldValue::Number(n.as_f64()?),
                        serde_json::Value::Bool(b) => FieldValue::Bool(b),
                        serde_json::Value::String(s) => text(&s),
                        _ => return None,
                    };
                    Some((k, value))
                })
                .collect())
        }
    }
}

fn text(s: &str) -> FieldValue {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => FieldValue::Number(x),
        _ => FieldValue::Text(s.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_lite::Regex;

    #[test]
    fn regex_named_groups() {
        let f = LineFormat::Regex(
            Regex::new(r"T=(?P<t>-?[0-9.]+)C H=(?P<h>[0-9.]+)%( (?P<id>\w+))?").unwrap(),
        );
        assert_eq!(
            parse_line(&f, "T=-3.5C H=80% wx1\r").unwrap(),
            [
                ("t".into(), FieldValue::Number(-3.5)),
                ("h".into(), FieldValue::Number(80.0)),
                ("id".into(), FieldValue::Text("wx1".into()))
            ]
        );
        assert_eq!(parse_line(&f, "garbage"), Err(ParseError::NoMatch));
    }

    #[test]
    fn regex_classes_are_ascii_and_literals_any_text() {
        // `\d` and `\w` are ASCII classes: an Arabic-Indic digit is not a digit to a pattern.
        let f = LineFormat::Regex(Regex::new(r"^T=(?P<t>\d+)°C (?P<who>\w+)$").unwrap());
        assert_eq!(
            parse_line(&f, "T=21°C north").unwrap(),
            [
                ("t".into(), FieldValue::Number(21.0)),
                ("who".into(), FieldValue::Text("north".into()))
            ]
        );
        assert_eq!(
            parse_line(&f, "T=\u{663}\u{661}°C north"),
            Err(ParseError::NoMatch)
        );
        assert_eq!(parse_line(&f, "T=21°C nörth"), Err(ParseError::NoMatch));
    }

    #[test]
    fn key_value_pairs() {
        let f = LineFormat::KeyValue;
        assert_eq!(
            parse_line(&f, "a=1, b=2.5;c=on").unwrap(),
            [
                ("a".into(), FieldValue::Number(1.0)),
                ("b".into(), FieldValue::Number(2.5)),
                ("c".into(), FieldValue::Text("on".into()))
            ]
        );
        assert!(
            matches!(parse_line(&f, "a=1 junk"), Err(ParseError::NotKeyValue(t)) if t == "junk")
        );
        assert!(parse_line(&f, "=3").is_err());
        assert!(parse_line(&f, "   ").is_err());
    }

    #[test]
    fn json_lines_take_top_level_scalars() {
        let f = LineFormat::JsonLines;
        let mut fields = parse_line(
            &f,
            r#"{"t": 21.5, "ok": true, "s": "7", "nested": {"x": 1}}"#,
        )
        .unwrap();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            fields,
            [
                ("ok".into(), FieldValue::Bool(true)),
                ("s".into(), FieldValue::Number(7.0)),
                ("t".into(), FieldValue::Number(21.5)),
            ]
        );
        assert!(matches!(
            parse_line(&f, "[1,2]"),
            Err(ParseError::NotJsonObject(_))
        ));
        assert!(matches!(
            parse_line(&f, "{\"t\": "),
            Err(ParseError::NotJsonObject(_))
        ));
    }
}
