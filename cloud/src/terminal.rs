//! Text for a terminal: what the CLI prints in its tables comes from the database, where an
//! older version, a direct write or a gateway may have left any character. A cell is printed
//! with its control characters (and the bidirectional overrides that reorder what is shown)
//! escaped as `\n`, `\t`, `\u{1b}`, and its backslashes doubled, so it can neither move the
//! cursor, clear the screen, forge a line nor split a tab-separated column.

use std::fmt::Write;

/// Whether `c` changes how the text around it is shown (Unicode's directional formatting
/// characters).
fn reorders(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s`, safe to print in a table cell.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || reorders(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(cell("North station é"), "North station é");
        assert_eq!(
            cell("a\u{1b}[2J\nadmin token created\tx"),
            "a\\u{1b}[2J\\nadmin token created\\tx"
        );
        assert_eq!(
            cell("x\u{202e}gpj.exe\u{7f}\u{0}"),
            "x\\u{202e}gpj.exe\\u{7f}\\u{0}"
        );
        assert_eq!(cell("back\\slash"), "back\\\\slash");
    }
}
