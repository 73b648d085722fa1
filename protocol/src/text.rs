//! Free text cut to a limit in bytes, on a character boundary.
//!
//! The protocol's text limits ([`MAX_TEXT_LEN`] and the others in [`crate::limits`]) count
//! bytes. Cutting by characters instead lets text with multi-byte characters (`°C`, `m³/h`,
//! names in other scripts) exceed the limit, and a message that fails validation is not sent.

use crate::limits::MAX_TEXT_LEN;

/// The longest prefix of `s` that is at most `max` bytes long and ends on a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Cuts `s` in place to at most `max` bytes, on a character boundary.
pub fn clip_in_place(s: &mut String, max: usize) {
    let keep = clip(s, max).len();
    s.truncate(keep);
}

/// `s` cut to [`MAX_TEXT_LEN`] bytes, the limit of every free-text field (an error's text, an
/// event's message).
pub fn clip_text(mut s: String) -> String {
    clip_in_place(&mut s, MAX_TEXT_LEN);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_byte_text_is_cut_by_bytes_on_a_boundary() {
        // 600 characters, 1,200 bytes: within 1,000 characters, over 1,024 bytes.
        let long = "°".repeat(600);
        let cut = clip_text(long);
        assert_eq!(cut.len(), 1_024);
        assert_eq!(cut.chars().count(), 512);
        // A three-byte character straddling the limit is left out whole.
        let s = format!("a{}", "€".repeat(400));
        let cut = clip(&s, MAX_TEXT_LEN);
        assert_eq!(cut.len(), 1 + 3 * 341);
        assert!(s.starts_with(cut));
    }

    #[test]
    fn short_text_and_exact_lengths_are_kept() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abc", 2), "ab");
        assert_eq!(clip("", 0), "");
        assert_eq!(clip("°", 1), "");
        let mut s = "m³/h".to_string();
        clip_in_place(&mut s, 2);
        assert_eq!(s, "m");
    }
}
