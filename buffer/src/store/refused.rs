//! The refusal log: how many telemetry points the journal refused for lack of space, kept where
//! a full disk cannot stop it from being written.
//!
//! A refused append cannot be counted in `drops` while the disk is full: that is a commit, and
//! the commit needs room. So every refusal also adds to a running total in `journal.db.refused`,
//! eight bytes (little-endian u64) created when the journal opens and afterwards only
//! overwritten in place, which needs no free space. The `totals` row `refused_saved` says how
//! much of that total is already in `drops`; the first commit with room adds the difference to
//! `drops` and moves `refused_saved` up in the same transaction. A kill at any instant leaves
//! the log ahead of `refused_saved` by exactly the refusals not yet in `drops`, which the next
//! open counts again; a power cut loses at most the refusals since the last sync of the log.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The open refusal log.
pub(crate) struct RefusalLog {
    path: PathBuf,
    /// `None` when the file could not be created (no room at open): refusals are then counted
    /// in memory only, as before the log existed, and the next open tries again.
    file: Option<File>,
    total: u64,
    unsynced: bool,
}

/// Where the log of the journal at `db` lives.
pub(crate) fn refusal_log_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".refused");
    PathBuf::from(name)
}

impl RefusalLog {
    /// Opens (creating with the value `saved`) the log beside `db`. A log that is missing,
    /// short or behind `saved`, or not `trusted` (the journal file is new, so the log belongs
    /// to another), starts from `saved`: nothing unsaved.
    pub(crate) fn open(db: &Path, saved: u64, trusted: bool) -> RefusalLog {
        let path = refusal_log_path(db);
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path);
        let mut log = RefusalLog {
            path,
            file: None,
            total: saved,
            unsynced: false,
        };
        let mut file = match opened {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %log.path.display(), error = %e,
                    "cannot open the refusal log; points refused while the disk is full are \
                     counted in memory only until the next start");
                return log;
            }
        };
        let mut bytes = [0u8; 8];
        let found = match file.read_exact(&mut bytes) {
            Ok(()) => Some(u64::from_le_bytes(bytes)),
            Err(_) => None,
        };
        let found = found.filter(|_| trusted);
        log.total = found.filter(|t| *t >= saved).unwrap_or(saved);
        log.file = Some(file);
        if found != Some(log.total) {
            if let Err(e) = log.write() {
                tracing::warn!(path = %log.path.display(), error = %e,
                    "cannot write the refusal log; refusals are counted in memory only");
                log.file = None;
            }
        }
        log
    }

    /// The running total of refused points.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Adds `points` refusals; the total is in the file (surviving a kill) when this returns,
    /// unless writing failed, which is logged and leaves the count in memory only.
    pub(crate) fn add(&mut self, points: u64) {
        self.total += points;
        if self.file.is_some() {
            if let Err(e) = self.write() {
                tracing::warn!(path = %self.path.display(), error = %e,
                    "cannot write the refusal log; refusals are counted in memory only");
            }
        }
    }

    /// Makes the last total survive a power cut.
    pub(crate) fn sync(&mut self) {
        if let (true, Some(f)) = (self.unsynced, &self.file) {
            if f.sync_data().is_ok() {
                self.unsynced = false;
            }
        }
    }

    fn write(&mut self) -> std::io::Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&self.total.to_le_bytes())?;
        self.unsynced = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_survives_reopening_and_never_goes_below_what_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let mut log = RefusalLog::open(&db, 0, true);
        log.add(5);
        log.add(7);
        drop(log);
        assert_eq!(RefusalLog::open(&db, 0, true).total(), 12);
        assert_eq!(RefusalLog::open(&db, 10, true).total(), 12);
        // Behind what the journal saved (a log from elsewhere): starts from the saved value.
        assert_eq!(RefusalLog::open(&db, 20, true).total(), 20);
        assert_eq!(
            std::fs::read(refusal_log_path(&db)).unwrap(),
            20u64.to_le_bytes()
        );
        std::fs::write(refusal_log_path(&db), b"xy").unwrap();
        assert_eq!(RefusalLog::open(&db, 3, true).total(), 3);
        // A new journal file does not take over the log of the one before it.
        RefusalLog::open(&db, 3, true).add(4);
        assert_eq!(RefusalLog::open(&db, 0, false).total(), 0);
    }
}
