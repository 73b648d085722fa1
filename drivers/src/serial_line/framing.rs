//! Splitting a serial byte stream into lines.

use crate::pointmap::LineFraming;

/// What the framer found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its terminator. Empty lines are not reported.
    Line(String),
    /// A line longer than the limit; its bytes up to the next terminator are discarded.
    Overlong,
    /// A line that is not UTF-8 (line noise, a wrong baud rate).
    NotUtf8,
}

/// Accumulates bytes and cuts them into [`Frame`]s; keeps a partial line between pushes.
#[derive(Debug, Clone)]
pub struct LineFramer {
    framing: LineFraming,
    max_len: usize,
    buf: Vec<u8>,
    /// Inside a line already reported as overlong: drop bytes until its end.
    skipping: bool,
}

impl LineFramer {
    pub fn new(framing: LineFraming, max_len: usize) -> LineFramer {
        LineFramer {
            framing,
            max_len,
            buf: Vec::new(),
            skipping: false,
        }
    }

    /// Forgets any partial line, as after reopening the port.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }

    /// Feeds `bytes`, appending every frame they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        for &b in bytes {
            if b == b'\n' {
                let ends = match self.framing {
                    LineFraming::Lf => true,
                    LineFraming::Crlf => self.buf.last() == Some(&b'\r') || self.skipping,
                };
                if ends {
                    self.finish(out);
                    continue;
                }
            }
            if self.skipping {
                continue;
            }
            self.buf.push(b);
            // A CRLF line may hold one byte over the limit: its `\r`, pending the `\n`.
            let allowed = self.max_len + usize::from(self.framing == LineFraming::Crlf);
            if self.buf.len() > allowed {
                out.push(Frame::Overlong);
                self.buf.clear();
                self.skipping = true;
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Frame>) {
        if self.skipping {
            self.skipping = false;
            self.buf.clear();
            return;
        }
        if self.framing == LineFraming::Crlf {
            self.buf.pop();
        }
        let line = std::mem::take(&mut self.buf);
        if line.is_empty() {
            return;
        }
        match String::from_utf8(line) {
            Ok(s) => out.push(Frame::Line(s)),
            Err(_) => out.push(Frame::NotUtf8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framing: LineFraming, max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut f = LineFramer::new(framing, max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.into())
    }

    #[test]
    fn lf_lines_across_partial_reads() {
        assert_eq!(
            frames(LineFraming::Lf, 64, &[b"a=1\nb=", b"2\n\nc", b"=3"]),
            [line("a=1"), line("b=2")]
        );
    }

    #[test]
    fn crlf_needs_both_bytes_and_keeps_bare_lf() {
        assert_eq!(
            frames(LineFraming::Crlf, 64, &[b"x\ny\r", b"\nz\r\n"]),
            [line("x\ny"), line("z")]
        );
        assert_eq!(frames(LineFraming::Lf, 64, &[b"x\r\n"]), [line("x\r")]);
    }

    #[test]
    fn overlong_lines_are_reported_once_and_skipped_to_their_end() {
        assert_eq!(
            frames(LineFraming::Lf, 4, &[b"12345678", b"90\nok\n1234\n"]),
            [Frame::Overlong, line("ok"), line("1234")]
        );
        assert_eq!(
            frames(LineFraming::Crlf, 4, &[b"1234\r\n12345\r\nok\r\n"]),
            [line("1234"), Frame::Overlong, line("ok")]
        );
    }

    #[test]
    fn invalid_utf8_is_a_frame_of_its_own() {
        assert_eq!(
            frames(LineFraming::Lf, 64, &[b"\xff\xfe\nok\n"]),
            [Frame::NotUtf8, line("ok")]
        );
    }
}
