//! The journal's one error type.
//!
//! Callers act on the kind, not on the text: `DiskFull` means "keep running, count what you
//! could not store, try again later"; `Closed` means the owner thread is gone and the handle is
//! useless; `Locked` means another process holds the journal. Corruption found while opening is
//! not an error at all: the file is salvaged and quarantined and the journal goes on with what
//! was saved (see `salvage`, `integrity`).

use std::path::PathBuf;

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The disk (or the configured file limit) is full. Nothing was committed by the failed
    /// operation and nothing committed before it was harmed; later operations succeed again once
    /// space returns.
    #[error("journal is full: no space left for the journal file")]
    DiskFull,

    /// Another process has the journal open (the journal takes an exclusive lock).
    #[error("journal {path} is locked by another process")]
    Locked { path: PathBuf },

    /// Stored data failed to decode or SQLite reported corruption while running. Reopening the
    /// journal checks the file and quarantines it if it is damaged.
    #[error("journal data is corrupt: {0}")]
    Corrupt(String),

    /// The file could not be moved aside or a directory could not be read.
    #[error("journal file operation on {path} failed: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A configuration value is out of range.
    #[error("invalid journal configuration: {0}")]
    Config(String),

    /// A value cannot be stored (for example a telemetry string longer than the protocol allows).
    #[error("record rejected: {0}")]
    Rejected(String),

    /// The owner thread has stopped (the journal was closed or its thread panicked).
    #[error("journal owner thread has stopped")]
    Closed,

    /// The append committed (the record is stored and survives a process kill) but the sync it
    /// waited for failed, so it may not yet survive a power cut. Do not append it again.
    #[error("committed but not synced: {0}")]
    NotSynced(String),

    /// Any other SQLite failure.
    #[error("sqlite: {0}")]
    Sqlite(#[source] rusqlite::Error),
}

impl From<rusqlite::Error> for JournalError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => JournalError::DiskFull,
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                JournalError::Corrupt(e.to_string())
            }
            _ => JournalError::Sqlite(e),
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;
