//! Checking a journal file before trusting it, and moving a damaged one aside.
//!
//! A journal that cannot be read must never need a human with a shell (goal R2). Opening
//! therefore checks, in order: the WAL header (a WAL with a garbage header is moved aside on its
//! own, since the main file may still hold everything that was checkpointed), the main file's
//! header and length, then SQLite's `PRAGMA quick_check` and the schema version. Anything wrong
//! with the main file moves the file and its companions aside under a timestamped name
//! (`journal.db.corrupt-20261122T130812Z`, `…-wal`, `…-shm`), after `salvage` has copied out
//! what still verifies; the journal goes on with that. A journal the marker
//! (`journal.db.created`) says existed but that is missing, or zero-length with no WAL, is
//! reported the same way. The [`Quarantine`] notice says what happened and what was saved so
//! the agent can send an event about it.
//!
//! Files are renamed WAL first and main file last: a crash halfway leaves either the damaged
//! main file (checked and moved again on the next open) or nothing, never a stale WAL next to a
//! fresh main file, which SQLite would replay into it.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::clock::utc_stamp;
use crate::error::{JournalError, Result};
use crate::salvage::Salvage;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
const WAL_MAGIC_LE: u32 = 0x377f_0682;
const WAL_MAGIC_BE: u32 = 0x377f_0683;

/// A journal (or its WAL) was found damaged and moved aside, or missing where one existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    /// What was wrong, for the event and the log.
    pub reason: String,
    /// Where the damaged files are now (empty when the journal was missing).
    pub moved_to: Vec<PathBuf>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What was copied out of the damaged main file into the fresh journal, when it was
    /// salvaged (`None` when only the WAL was moved aside, or nothing could be salvaged).
    pub salvage: Option<Salvage>,
}

impl Quarantine {
    pub(crate) fn merge(self, later: Quarantine) -> Quarantine {
        let mut moved_to = self.moved_to;
        moved_to.extend(later.moved_to);
        Quarantine {
            reason: format!("{}; then {}", self.reason, later.reason),
            moved_to,
            at_ms: later.at_ms,
            salvage: later.salvage.or(self.salvage),
        }
    }

    /// What happened and what was saved, in one line for the log and the event to the cloud.
    pub fn summary(&self) -> String {
        match &self.salvage {
            Some(s) => format!("{}: {}", s.summary(), self.reason),
            None => self.reason.clone(),
        }
    }
}

/// `journal.db.created`: written once a journal exists, so that a journal missing or emptied
/// later is told apart from a first start.
pub(crate) fn marker_path(db: &Path) -> PathBuf {
    companion(db, ".created")
}

/// Writes the marker if it is not there yet (a first start, or a journal of an earlier release).
pub(crate) fn write_marker(db: &Path, now_ms: i64) -> Result<()> {
    let marker = marker_path(db);
    if marker.exists() {
        return Ok(());
    }
    let text = format!(
        "journal {} created at {}\n",
        db.display(),
        utc_stamp(now_ms)
    );
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&marker)?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| io(&marker, e))?;
    sync_dir(db);
    Ok(())
}

/// A journal the marker says existed is missing, or zero-length with no WAL to replay into it.
/// A zero-length file is moved aside like a damaged one; a fresh journal starts either way.
pub(crate) fn expected_but_absent(db: &Path, now_ms: i64) -> Result<Option<Quarantine>> {
    let marker = marker_path(db);
    if !marker.exists() {
        return Ok(None);
    }
    let wal_len = fs::metadata(wal_path(db)).map(|m| m.len()).unwrap_or(0);
    let since = fs::read_to_string(&marker).unwrap_or_default();
    let since = since.trim();
    let reason = match fs::metadata(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!(
                "journal file is missing though one existed ({since}); everything it held is lost"
            )
        }
        Err(e) => return Err(io(db, e)),
        Ok(m) if m.len() == 0 && wal_len == 0 => {
            format!("journal file is zero-length though one existed ({since}); everything it held is lost")
        }
        Ok(_) => return Ok(None),
    };
    quarantine(db, reason, true, now_ms).map(Some)
}

pub(crate) fn sync_dir(db: &Path) {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

pub(crate) fn wal_path(db: &Path) -> PathBuf {
    companion(db, "-wal")
}

pub(crate) fn shm_path(db: &Path) -> PathBuf {
    companion(db, "-shm")
}

fn companion(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Why the WAL cannot be a WAL, if it cannot.
pub(crate) fn wal_problem(db: &Path) -> Result<Option<String>> {
    let wal = wal_path(db);
    let Some(head) = read_head(&wal, 32)? else {
        return Ok(None);
    };
    if head.is_empty() {
        return Ok(None);
    }
    if head.len() < 32 {
        return Ok(Some(format!(
            "WAL is {} bytes, shorter than its header",
            head.len()
        )));
    }
    let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if magic != WAL_MAGIC_LE && magic != WAL_MAGIC_BE {
        return Ok(Some("WAL header has no WAL magic number".to_string()));
    }
    Ok(None)
}

/// Why the main file cannot be a sound SQLite database, as far as its header and length tell.
pub(crate) fn header_problem(db: &Path) -> Result<Option<String>> {
    let Some(head) = read_head(db, 100)? else {
        return Ok(None);
    };
    let len = fs::metadata(db).map_err(|e| io(db, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    if head.len() < 100 {
        return Ok(Some(format!(
            "file is {len} bytes, shorter than the header"
        )));
    }
    if &head[..16] != SQLITE_MAGIC {
        return Ok(Some("file header is not an SQLite header".to_string()));
    }
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65_536u64,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => return Ok(Some(format!("header page size {n} is invalid"))),
    };
    if len % page_size != 0 {
        return Ok(Some(format!(
            "file length {len} is not a multiple of the page size {page_size}"
        )));
    }
    // A checkpoint writes page 1 (with the new size) before the pages that grow the file, so
    // while a WAL exists a short file is an interrupted checkpoint the WAL will redo, not damage.
    let wal_len = fs::metadata(wal_path(db)).map(|m| m.len()).unwrap_or(0);
    let change_counter = &head[24..28];
    let valid_for = &head[92..96];
    let pages = u32::from_be_bytes([head[28], head[29], head[30], head[31]]);
    if wal_len == 0 && change_counter == valid_for && u64::from(pages) * page_size > len {
        return Ok(Some(format!(
            "file is {len} bytes but its header says {pages} pages of {page_size}"
        )));
    }
    Ok(None)
}

fn read_head(path: &Path, n: usize) -> Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    let mut head = Vec::with_capacity(n);
    file.take(n as u64)
        .read_to_end(&mut head)
        .map_err(|e| io(path, e))?;
    Ok(Some(head))
}

/// Moves the journal's files aside (`whole`) or only its WAL and shared-memory files.
pub(crate) fn quarantine(
    db: &Path,
    reason: String,
    whole: bool,
    now_ms: i64,
) -> Result<Quarantine> {
    let base = free_name(db, now_ms);
    let mut moved_to = Vec::new();
    let mut moves = vec![
        (wal_path(db), wal_path(&base)),
        (shm_path(db), shm_path(&base)),
    ];
    if whole {
        moves.push((db.to_path_buf(), base.clone()));
    }
    for (from, to) in moves {
        match fs::rename(&from, &to) {
            Ok(()) => moved_to.push(to),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&from, e)),
        }
    }
    sync_dir(db);
    tracing::error!(path = %db.display(), %reason, moved = ?moved_to, "journal quarantined");
    Ok(Quarantine {
        reason,
        moved_to,
        at_ms: now_ms,
        salvage: None,
    })
}

/// `journal.db.corrupt-<stamp>`, with `-2`, `-3`… if that name (or its companions) is taken.
fn free_name(db: &Path, now_ms: i64) -> PathBuf {
    let stem = format!("{}.corrupt-{}", db.display(), utc_stamp(now_ms));
    let mut n = 1;
    loop {
        let candidate = if n == 1 {
            PathBuf::from(&stem)
        } else {
            PathBuf::from(format!("{stem}-{n}"))
        };
        if !candidate.exists() && !wal_path(&candidate).exists() && !shm_path(&candidate).exists() {
            return candidate;
        }
        n += 1;
    }
}

fn io(path: &Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_not_problems() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        assert_eq!(header_problem(&db).unwrap(), None);
        assert_eq!(wal_problem(&db).unwrap(), None);
        fs::write(&db, b"").unwrap();
        fs::write(wal_path(&db), b"").unwrap();
        assert_eq!(header_problem(&db).unwrap(), None);
        assert_eq!(wal_problem(&db).unwrap(), None);
    }

    #[test]
    fn garbage_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        fs::write(&db, vec![7u8; 4096]).unwrap();
        assert!(header_problem(&db).unwrap().is_some());
        fs::write(&db, b"SQLite format 3\0").unwrap();
        assert!(header_problem(&db).unwrap().is_some());
        fs::write(wal_path(&db), vec![1u8; 100]).unwrap();
        assert!(wal_problem(&db).unwrap().is_some());
    }

    #[test]
    fn quarantine_names_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        fs::write(&db, b"x").unwrap();
        fs::write(wal_path(&db), b"w").unwrap();
        let q1 = quarantine(&db, "test".into(), true, 0).unwrap();
        assert_eq!(q1.moved_to.len(), 2);
        assert!(!db.exists() && !wal_path(&db).exists());
        fs::write(&db, b"y").unwrap();
        let q2 = quarantine(&db, "again".into(), true, 0).unwrap();
        assert_eq!(q2.moved_to.len(), 1);
        assert_ne!(q1.moved_to[1], q2.moved_to[0]);
        assert_eq!(fs::read(&q2.moved_to[0]).unwrap(), b"y");
        assert!(q2.moved_to[0]
            .to_string_lossy()
            .ends_with("j.db.corrupt-19700101T000000Z-2"));
    }
}
