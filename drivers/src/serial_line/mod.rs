//! Serial-line sensors: instruments that print one reading per line of text.
//!
//! Weather stations, gas analysers and scales often speak no Modbus at all; they print lines
//! such as `T=21.4 H=55` or `{"temp": 21.4}` at their own pace. The reader frames the byte stream
//! into lines ([`framing`]), turns each line into named fields with the configured format
//! ([`parse`]) and maps fields to points. A line that cannot be used is garbage: counted,
//! skipped, never fatal. USB serial adapters vanish and come back (a loose cable, a brown-out);
//! the reader treats a failed read as the port gone, reports the device offline and reopens it
//! with capped exponential backoff ([`reader`]).

pub mod framing;
pub mod parse;
pub mod reader;

pub use framing::{Frame, LineFramer};
pub use parse::{parse_line, FieldValue, ParseError};
pub use reader::{LineOpener, LineReader, ReopenOptions, SerialOpener};
