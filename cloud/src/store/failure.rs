//! What a database failure means to the caller: the database could not be reached (retry
//! later), it refused the data (the request must change), or something else went wrong here.
//!
//! Only a lost connection, a timeout or an overloaded server is [`Failure::Unavailable`]; a
//! value the database refuses (PostgreSQL's class 22, data exception: a NUL character in text,
//! a number out of range) is [`Failure::Refused`], a constraint (class 23) is
//! [`Failure::Conflict`], and everything else is [`Failure::Internal`], reported with the
//! database's own code so it can be found in its log.

/// How a database call failed, as far as the caller should care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection broke, timed out, or the server is shutting down or out of resources:
    /// the same request may succeed later.
    Unavailable,
    /// The database refused a value of the request: it must change to succeed.
    Refused { code: String },
    /// A unique or check constraint refused the row.
    Conflict { code: String },
    /// Anything else: a bug or a schema out of step. `code` is the database's error code when
    /// it gave one.
    Internal { code: Option<String> },
}

/// An error that can say which [`Failure`] it is.
pub trait Classify: std::fmt::Display {
    fn failure(&self) -> Failure;
}

/// PostgreSQL: by SQLSTATE class when the server answered, else by whether the connection is
/// gone.
pub fn postgres(e: &tokio_postgres::Error) -> Failure {
    let Some(state) = e.code() else {
        let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
        // Without an SQLSTATE the server did not answer: a closed connection, a broken socket
        // or a timeout. A value the client library itself could not convert is ours.
        return if e.is_closed() || io || e.to_string().contains("timeout") {
            Failure::Unavailable
        } else {
            Failure::Internal { code: None }
        };
    };
    let code = state.code().to_string();
    match &code[..2] {
        // Connection exception, transaction rollback (serialization, deadlock), insufficient
        // resources, operator intervention (shutdown, restart), system error (I/O).
        "08" | "40" | "53" | "57" | "58" => Failure::Unavailable,
        // Data exception, program limit exceeded (a value too large to store).
        "22" | "54" => Failure::Refused { code },
        "23" => Failure::Conflict { code },
        _ => Failure::Internal { code: Some(code) },
    }
}

/// SQLite: busy, locked, full or unreadable is unavailable; a constraint a conflict; a value
/// too big refused.
pub fn sqlite(e: &rusqlite::Error) -> Failure {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            let code = format!("SQLITE_{:?}", f.code);
            match f.code {
                C::DatabaseBusy
                | C::DatabaseLocked
                | C::DiskFull
                | C::SystemIoFailure
                | C::CannotOpen
                | C::OutOfMemory => Failure::Unavailable,
                C::ConstraintViolation => Failure::Conflict { code },
                C::TooBig => Failure::Refused { code },
                _ => Failure::Internal { code: Some(code) },
            }
        }
        _ => Failure::Internal { code: None },
    }
}

impl Classify for super::StoreError {
    fn failure(&self) -> Failure {
        match self {
            super::StoreError::Postgres(e) => postgres(e),
            super::StoreError::Sqlite(e) => sqlite(e),
            super::StoreError::SqliteGone
            | super::StoreError::Unreachable(_)
            | super::StoreError::Timeout(_) => Failure::Unavailable,
            super::StoreError::Migration { source, .. } => source.failure(),
            super::StoreError::Open { .. } => Failure::Unavailable,
            _ => Failure::Internal { code: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes() {
        let f = |code| {
            sqlite(&rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        assert_eq!(f(rusqlite::ffi::SQLITE_BUSY), Failure::Unavailable);
        assert_eq!(
            f(rusqlite::ffi::SQLITE_CONSTRAINT),
            Failure::Conflict {
                code: "SQLITE_ConstraintViolation".into()
            }
        );
        assert_eq!(
            f(rusqlite::ffi::SQLITE_TOOBIG),
            Failure::Refused {
                code: "SQLITE_TooBig".into()
            }
        );
        assert!(matches!(
            f(rusqlite::ffi::SQLITE_CORRUPT),
            Failure::Internal { code: Some(_) }
        ));
        assert_eq!(
            sqlite(&rusqlite::Error::QueryReturnedNoRows),
            Failure::Internal { code: None }
        );
    }
}
