//! The name pattern of a point block: `hr_{n}`, `r{n:03}`, `coil_{address}`.
//!
//! Two placeholders, each optionally zero-padded: `{n}` is the point's number in the block
//! (counted from the block's `number_from`), `{address}` its register or bit address. `{n:03}`
//! pads to three digits (`007`); a wider number is written in full. Anything else between braces,
//! and a brace without its partner, is an error: identifiers never contain braces, so there is
//! nothing to escape.

use std::fmt::Write as _;

/// A parsed name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamePattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Number { width: usize },
    Address { width: usize },
}

/// Widest zero padding accepted; a u32 has at most ten digits.
const MAX_WIDTH: usize = 10;

impl NamePattern {
    /// Parses `pattern`; the error says what is wrong in words for the operator.
    pub(crate) fn parse(pattern: &str) -> Result<NamePattern, String> {
        let mut parts = Vec::new();
        let mut rest = pattern;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!(
                    "`}}` at byte {} closes nothing",
                    pattern.len() - rest.len() + open
                ));
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                format!(
                    "`{{` at byte {} is never closed",
                    pattern.len() - rest.len() + open
                )
            })?;
            parts.push(placeholder(&after[..close])?);
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(NamePattern { parts })
    }

    /// Whether the pattern names points apart at all.
    pub(crate) fn has_placeholder(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    /// The name of the point numbered `n` at `address`.
    pub(crate) fn render(&self, n: u64, address: u32) -> String {
        let mut out = String::new();
        for part in &self.parts {
            let _ = match part {
                Part::Text(t) => out.write_str(t),
                Part::Number { width } => write!(out, "{n:0width$}"),
                Part::Address { width } => write!(out, "{address:0width$}"),
            };
        }
        out
    }
}

fn placeholder(inside: &str) -> Result<Part, String> {
    let (key, width) = match inside.split_once(':') {
        None => (inside, 0),
        Some((key, spec)) => {
            let width = spec
                .strip_prefix('0')
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| (1..=MAX_WIDTH).contains(w))
                .ok_or_else(|| {
                    format!(
                        "`{{{inside}}}`: the padding is written as a zero and a width from 1 to \
                         {MAX_WIDTH}, as in `{{{key}:03}}`"
                    )
                })?;
            (key, width)
        }
    };
    match key {
        "n" => Ok(Part::Number { width }),
        "address" => Ok(Part::Address { width }),
        other => Err(format!(
            "`{{{other}}}` is not a placeholder; use `{{n}}` (the point's number) or \
             `{{address}}` (its address)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_with_and_without_padding() {
        let p = NamePattern::parse("hr_{n}").unwrap();
        assert!(p.has_placeholder());
        assert_eq!(p.render(7, 40_007), "hr_7");
        let p = NamePattern::parse("r{n:03}_at{address:05}").unwrap();
        assert_eq!(p.render(7, 12), "r007_at00012");
        assert_eq!(p.render(1234, 123_456), "r1234_at123456");
        let p = NamePattern::parse("{address}").unwrap();
        assert_eq!(p.render(0, 9), "9");
        let plain = NamePattern::parse("voltage").unwrap();
        assert!(!plain.has_placeholder());
        assert_eq!(plain.render(3, 3), "voltage");
    }

    #[test]
    fn mistakes_are_named() {
        for (pattern, wanted) in [
            ("hr_{n", "`{` at byte 3 is never closed"),
            ("hr_n}", "`}` at byte 4 closes nothing"),
            ("hr_{i}", "`{i}` is not a placeholder"),
            ("hr_{}", "`{}` is not a placeholder"),
            ("hr_{n:3}", "`{n:3}`: the padding is written as a zero"),
            ("hr_{n:0}", "`{n:0}`: the padding"),
            ("hr_{n:011}", "`{n:011}`: the padding"),
        ] {
            let e = NamePattern::parse(pattern).unwrap_err();
            assert!(e.starts_with(wanted), "{pattern}: {e}");
        }
    }
}
