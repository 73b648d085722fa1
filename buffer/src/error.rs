//! The journal's one error type.
//!
//! Callers act on the kind, not on the text: `DiskFull` means "keep running, count what you
//! could not store, try again later"; `Closed` means the owner thread is gone and the handle is
//! useless; `Locked` means another process holds the journal. Corruption found while opening is
//! not an error at all: the file is salvaged and quarantined and the journal goes on with what
//! was saved (see `salvage`, `integrity`).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

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

    /// Any other SQLite failure, naming the file and what failed (boxed: it is the largest).
    #[error(transparent)]
    Sqlite(Box<SqliteFailure>),
}

/// An SQLite failure: the journal file, what the journal was doing, SQLite's error and, where
/// the file or its directory cannot be written, the system's reason (a read-only file system,
/// a permission).
#[derive(Debug, thiserror::Error)]
#[error("journal {}: {op}: sqlite: {source}{}", path.display(),
    cause.as_ref().map(|c| format!("; {c}")).unwrap_or_default())]
pub struct SqliteFailure {
    pub path: PathBuf,
    pub op: &'static str,
    #[source]
    pub source: rusqlite::Error,
    pub cause: Option<String>,
}

impl From<rusqlite::Error> for JournalError {
    /// Inside the crate, before [`JournalError::during`] names the file and the operation.
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => JournalError::DiskFull,
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                JournalError::Corrupt(e.to_string())
            }
            _ => JournalError::Sqlite(Box::new(SqliteFailure {
                path: PathBuf::new(),
                op: "",
                source: e,
                cause: None,
            })),
        }
    }
}

impl JournalError {
    /// Names the journal file `path` and the operation `op` in an SQLite failure, and adds why
    /// the file cannot be written when an I/O, read-only or cannot-open error suggests it. Every
    /// error leaving the owner thread passes here.
    pub(crate) fn during(self, path: &Path, op: &'static str) -> JournalError {
        use rusqlite::ffi::ErrorCode;
        match self {
            JournalError::Sqlite(mut f) => {
                if f.cause.is_none() {
                    f.cause = match f.source.sqlite_error_code() {
                        Some(ErrorCode::SystemIoFailure)
                        | Some(ErrorCode::ReadOnly)
                        | Some(ErrorCode::CannotOpen)
                        | Some(ErrorCode::PermissionDenied) => unwritable(path),
                        _ => None,
                    };
                }
                f.path = path.to_path_buf();
                f.op = op;
                JournalError::Sqlite(f)
            }
            other => other,
        }
    }
}

/// Why the journal (its file, its WAL, or for a new journal its directory) cannot be written,
/// as the system says it; `None` if everything opens for writing. The files are opened for
/// writing without changing them; the directory is probed by creating and removing a file.
fn unwritable(path: &Path) -> Option<String> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    for file in [path, Path::new(&wal)] {
        match OpenOptions::new().write(true).open(file) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Some(format!("{} cannot be written: {e}", file.display())),
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut probe = path.as_os_str().to_owned();
    probe.push(".probe");
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
        Err(e) => Some(format!(
            "its directory {} cannot be written: {e}",
            dir.display()
        )),
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;
