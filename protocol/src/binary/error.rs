//! Why a binary telemetry payload could not be read.
//!
//! Every variant names the byte offset or the series at fault, so that a rejected payload can
//! be located in a hex dump.

/// A binary telemetry payload is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error("payload does not start with the magic byte {:#04x}", super::MAGIC)]
    BadMagic,
    #[error("binary version {0} is not supported (this build reads versions {v}, {a} and {p})", v = super::VERSION, a = super::VERSION_ALIASED, p = super::VERSION_PACKED)]
    UnsupportedVersion(u8),
    #[error("truncated at offset {offset}: {what} needs {needed} more bytes")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
    },
    #[error("varint for {what} at offset {offset} is overlong or overflows 64 bits")]
    BadVarint { what: &'static str, offset: usize },
    #[error("{what} at offset {offset} is {value}, the maximum is {max}")]
    TooLarge {
        what: &'static str,
        offset: usize,
        value: u64,
        max: u64,
    },
    #[error("{what} at offset {offset} is {value}, but only {remaining} bytes are left")]
    CountExceedsInput {
        what: &'static str,
        offset: usize,
        value: u64,
        remaining: usize,
    },
    #[error("{what} at offset {offset} has reserved bits set ({value:#04x})")]
    ReservedBits {
        what: &'static str,
        offset: usize,
        value: u8,
    },
    #[error("string at offset {offset} is not UTF-8")]
    NotUtf8 { offset: usize },
    #[error("identifier at offset {offset}: {source}")]
    BadIdent {
        offset: usize,
        source: crate::IdentError,
    },
    #[error("series {series}: string index {index} is outside the table of {len}")]
    StringIndex {
        series: usize,
        index: u64,
        len: usize,
    },
    #[error("series {series}: unknown value codec {codec}")]
    UnknownCodec { series: usize, codec: u8 },
    #[error("series {series}: {what} {value} at offset {offset} is not defined")]
    UnknownCode {
        series: usize,
        what: &'static str,
        offset: usize,
        value: u8,
    },
    #[error("series {series}: has no points")]
    EmptySeries { series: usize },
    #[error("series 0 reuses the timestamps of a previous series, but there is none")]
    NoPreviousTimestamps,
    #[error("series {series}: timestamp overflows 64 bits")]
    TimestampOverflow { series: usize },
    #[error("series {series}: a run of {run} equal intervals exceeds the {left} timestamps left")]
    RunTooLong {
        series: usize,
        run: u64,
        left: usize,
    },
    #[error("series {series}: alias {alias} is outside the birth's table of {len}")]
    UnknownAlias {
        series: usize,
        alias: u64,
        len: usize,
    },
    #[error("config hash at offset {offset} is empty or holds a control character")]
    BadConfigHash { offset: usize },
    #[error(
        "payload names series by the aliases of birth {} (table check {:08x}); decode it with that birth's table",
        .0.config_hash, .0.check
    )]
    NeedsBirth(crate::alias::BirthRef),
    #[error(
        "payload was written against birth {} (table check {:08x}), not the birth given, {} ({:08x})",
        found.config_hash, found.check, have.config_hash, have.check
    )]
    WrongBirth {
        found: crate::alias::BirthRef,
        have: crate::alias::BirthRef,
    },
    #[error("{count} bytes left over after the last series")]
    TrailingBytes { count: usize },
}
