//! The series dictionary: `(device, metric)` ↔ a small integer stored in each packed point.
//!
//! Identifiers are up to 64 bytes each and repeat in every cycle; storing them once per series
//! keeps a point to a few bytes. The dictionary lives in the `series` table and, whole, in
//! memory (a gateway has thousands of series, not millions). New series are *staged* while an
//! append transaction runs and become visible only when it commits, so a rolled-back append
//! (disk full) never leaves the memory copy ahead of the file.

use std::collections::HashMap;

use fieldlink_protocol::Ident;
use rusqlite::Transaction;

use crate::error::{JournalError, Result};

pub(crate) type SeriesId = u32;

#[derive(Debug, Default)]
pub(crate) struct SeriesDictionary {
    by_name: HashMap<Ident, HashMap<Ident, SeriesId>>,
    by_id: Vec<Option<(Ident, Ident)>>,
    staged: Vec<(SeriesId, Ident, Ident)>,
}

impl SeriesDictionary {
    /// Reads the whole `series` table.
    pub(crate) fn load(conn: &rusqlite::Connection) -> Result<Self> {
        let mut dict = SeriesDictionary::default();
        let mut stmt = conn.prepare("SELECT id, device, metric FROM series ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let device: String = row.get(1)?;
            let metric: String = row.get(2)?;
            let bad = |what: &str| JournalError::Corrupt(format!("series {id}: {what}"));
            let id = SeriesId::try_from(id).map_err(|_| bad("id out of range"))?;
            let device = Ident::new(&device).map_err(|e| bad(&e.to_string()))?;
            let metric = Ident::new(&metric).map_err(|e| bad(&e.to_string()))?;
            dict.insert(id, device, metric);
        }
        Ok(dict)
    }

    pub(crate) fn insert(&mut self, id: SeriesId, device: Ident, metric: Ident) {
        let slot = id as usize;
        if self.by_id.len() <= slot {
            self.by_id.resize(slot + 1, None);
        }
        self.by_id[slot] = Some((device.clone(), metric.clone()));
        self.by_name.entry(device).or_default().insert(metric, id);
    }

    /// The id of a series, staging a new one if it is unknown. The flag says it is new.
    pub(crate) fn id_or_stage(&mut self, device: &Ident, metric: &Ident) -> (SeriesId, bool) {
        if let Some(id) = self.by_name.get(device).and_then(|m| m.get(metric)) {
            return (*id, false);
        }
        if let Some((id, _, _)) = self
            .staged
            .iter()
            .find(|(_, d, m)| d == device && m == metric)
        {
            return (*id, true);
        }
        let id = (self.by_id.len() + self.staged.len()) as SeriesId;
        self.staged.push((id, device.clone(), metric.clone()));
        (id, true)
    }

    /// Writes the staged series inside the caller's transaction.
    pub(crate) fn write_staged(&self, tx: &Transaction<'_>) -> Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let mut stmt =
            tx.prepare_cached("INSERT INTO series (id, device, metric) VALUES (?1, ?2, ?3)")?;
        for (id, device, metric) in &self.staged {
            stmt.execute((i64::from(*id), device.as_str(), metric.as_str()))?;
        }
        Ok(())
    }

    /// The transaction committed: staged series become part of the dictionary.
    pub(crate) fn commit_staged(&mut self) {
        for (id, device, metric) in std::mem::take(&mut self.staged) {
            self.insert(id, device, metric);
        }
    }

    /// The transaction rolled back: forget the staged series.
    pub(crate) fn discard_staged(&mut self) {
        self.staged.clear();
    }

    pub(crate) fn lookup(&self, id: SeriesId) -> Option<&(Ident, Ident)> {
        self.by_id.get(id as usize).and_then(|s| s.as_ref())
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.iter().filter(|s| s.is_some()).count()
    }
}
