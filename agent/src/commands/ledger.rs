//! The command ledger: ids of commands already taken, so a redelivered command runs once.
//!
//! # On disk
//! `commands.ledger` in the state directory, one line per command: `<id> <expires_at_ms>`.
//! A line is appended and fsynced before the command's `received` acknowledgement is journaled
//! and before anything is done for it, so after a crash at any point a command either is in the
//! ledger (and will not run again) or was never acknowledged to the broker (and is redelivered
//! and taken then). A torn last line is ignored on load. Entries are kept until a day after
//! their command expired — past its expiry a redelivered command is refused as expired anyway —
//! and the file is rewritten without them at start.
//!
//! The journal (`fieldlink-buffer`) offers no keyed table for this, hence a file of its own.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const KEEP_AFTER_EXPIRY_MS: i64 = 24 * 3600 * 1000;

/// Commands already taken.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
    seen: HashMap<String, i64>,
}

impl Ledger {
    /// Loads `dir/commands.ledger`, dropping entries long expired at `now_ms`.
    pub fn open(dir: &Path, now_ms: i64) -> io::Result<Ledger> {
        fs::create_dir_all(dir)?;
        let path = dir.join("commands.ledger");
        let mut seen = HashMap::new();
        if let Ok(text) = fs::read_to_string(&path) {
            for line in text.lines() {
                let mut parts = line.split(' ');
                if let (Some(id), Some(exp), None) = (parts.next(), parts.next(), parts.next()) {
                    if let Ok(exp) = exp.parse::<i64>() {
                        if exp.saturating_add(KEEP_AFTER_EXPIRY_MS) >= now_ms {
                            seen.insert(id.to_owned(), exp);
                        }
                    }
                }
            }
        }
        let tmp = dir.join("commands.ledger.tmp");
        {
            let mut f = File::create(&tmp)?;
            for (id, exp) in &seen {
                writeln!(f, "{id} {exp}")?;
            }
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Ledger { path, file, seen })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains_key(id)
    }

    /// Records `id` durably. Ids are protocol identifiers: no spaces or newlines.
    pub fn record(&mut self, id: &str, expires_at_ms: i64) -> io::Result<()> {
        writeln!(self.file, "{id} {expires_at_ms}")?;
        self.file.sync_data()?;
        self.seen.insert(id.to_owned(), expires_at_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_reopen_and_long_expired_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_000_000_000_000;
        let mut l = Ledger::open(dir.path(), now).unwrap();
        l.record("c-1", now + 60_000).unwrap();
        l.record("old", now - 2 * KEEP_AFTER_EXPIRY_MS).unwrap();
        drop(l);
        // A torn line from a crash mid-write.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("commands.ledger"))
            .unwrap();
        f.write_all(b"c-2").unwrap();
        drop(f);
        let l = Ledger::open(dir.path(), now).unwrap();
        assert!(l.contains("c-1"));
        assert!(!l.contains("old"));
        assert!(!l.contains("c-2"), "a torn line is ignored");
        assert!(!l.contains("c-3"));
    }
}
