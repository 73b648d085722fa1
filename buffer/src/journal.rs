//! The handle the agent holds: async methods, plus a blocking twin for benches and tools.
//!
//! Every method sends one request to the owner thread and waits for its answer on a oneshot.
//! The request queue is bounded (`queue_len`): an appender that outruns the disk waits, which is
//! the backpressure the poll scheduler should see.

use fieldlink_protocol::Point;
use tokio::sync::{mpsc, oneshot};

use crate::batch::{Appended, Batch, BatchId, RecordClass};
use crate::config::{BatchLimits, JournalConfig, Wait};
use crate::error::{JournalError, Result};
use crate::integrity::Quarantine;
use crate::owner::{self, Reply, Request};
use crate::stats::Stats;

/// Async handle to the journal. Cheap to clone; the journal closes when [`Journal::close`] is
/// called or the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Journal {
    requests: mpsc::Sender<Request>,
    quarantine: Option<Quarantine>,
}

impl Journal {
    /// Opens the journal at `config.path`, creating it if needed. A damaged file is quarantined
    /// and a fresh journal opened; [`Journal::quarantine`] then says what happened.
    pub async fn open(config: JournalConfig) -> Result<Journal> {
        let (journal, opened) = Self::start(config)?;
        let quarantine = opened.await.map_err(|_| JournalError::Closed)??;
        Ok(Journal {
            quarantine,
            ..journal
        })
    }

    fn start(
        config: JournalConfig,
    ) -> Result<(Journal, oneshot::Receiver<Result<Option<Quarantine>>>)> {
        config.validate()?;
        let (tx, rx) = mpsc::channel(config.queue_len);
        let (opened_tx, opened_rx) = oneshot::channel();
        owner::spawn(config, rx, opened_tx)?;
        Ok((
            Journal {
                requests: tx,
                quarantine: None,
            },
            opened_rx,
        ))
    }

    /// The quarantine done while opening, if the file was damaged. Turn it into an event.
    pub fn quarantine(&self) -> Option<&Quarantine> {
        self.quarantine.as_ref()
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Stores one poll cycle's points in one commit. Returns after the commit (or the sync, per
    /// `wait`). On [`JournalError::DiskFull`] nothing was stored and the points are counted as
    /// dropped (`Dropped::disk_full`).
    pub async fn append_points(&self, points: Vec<Point>, wait: Wait) -> Result<Appended> {
        self.call(|reply| Request::AppendPoints {
            points,
            wait,
            reply,
        })
        .await
    }

    /// Stores one acknowledgement or event payload, already encoded for the wire. On an error
    /// other than `NotSynced` nothing was stored: keep a copy to append again, since these
    /// classes must never be lost.
    pub async fn append_record(
        &self,
        class: RecordClass,
        payload: Vec<u8>,
        wait: Wait,
    ) -> Result<Appended> {
        self.call(|reply| Request::AppendRecord {
            class,
            payload,
            reported: None,
            wait,
            reply,
        })
        .await
    }

    /// Stores an event payload that reports dropped telemetry, and records in the same commit
    /// that drop reports now cover a drop total ([`crate::Dropped::total`]) of `reported`, so
    /// that after a restart [`Stats::drops_reported`] says exactly what is left to report: a
    /// report is journaled if and only if its count is recorded as reported.
    pub async fn append_drop_report(
        &self,
        payload: Vec<u8>,
        reported: u64,
        wait: Wait,
    ) -> Result<Appended> {
        self.call(|reply| Request::AppendRecord {
            class: RecordClass::Event,
            payload,
            reported: Some(reported),
            wait,
            reply,
        })
        .await
    }

    /// The next batch to publish, marked in flight; `None` when nothing is pending.
    pub async fn next_batch(&self, limits: BatchLimits) -> Result<Option<Batch>> {
        self.call(|reply| Request::NextBatch { limits, reply })
            .await
    }

    /// The broker acknowledged the publish that carried batch `id`: delete its content.
    /// `false` when the id is unknown (already acknowledged, or forgotten by a requeue).
    pub async fn ack(&self, id: BatchId) -> Result<bool> {
        self.call(|reply| Request::Ack { id, reply }).await
    }

    /// The uplink reconnected: every batch in flight is pending again, and everything stored so
    /// far counts as backlog.
    pub async fn requeue_in_flight(&self) -> Result<()> {
        self.call(|reply| Request::Requeue { reply }).await
    }

    /// Runs the periodic upkeep now rather than at the next interval: applies the age cap and
    /// syncs if anything was committed since the last sync.
    pub async fn sync(&self) -> Result<()> {
        self.call(|reply| Request::Sync { reply }).await
    }

    pub async fn stats(&self) -> Result<Stats> {
        self.call(|reply| Request::Stats { reply }).await
    }

    /// Sets or lifts the hard ceiling on the file size (see `JournalConfig::file_limit_bytes`).
    pub async fn set_file_limit(&self, bytes: Option<u64>) -> Result<()> {
        self.call(|reply| Request::SetFileLimit { bytes, reply })
            .await
    }

    /// Syncs, closes the file and stops the owner thread. Other clones then get `Closed`.
    pub async fn close(self) -> Result<()> {
        self.call(|reply| Request::Close { reply }).await
    }
}

/// The same journal for callers without a tokio runtime (benches, tools, tests). Must not be
/// used from inside an async context.
#[derive(Debug, Clone)]
pub struct BlockingJournal {
    inner: Journal,
}

impl BlockingJournal {
    pub fn open(config: JournalConfig) -> Result<BlockingJournal> {
        let (journal, opened) = Journal::start(config)?;
        let quarantine = opened.blocking_recv().map_err(|_| JournalError::Closed)??;
        Ok(BlockingJournal {
            inner: Journal {
                quarantine,
                ..journal
            },
        })
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .requests
            .blocking_send(make(tx))
            .map_err(|_| JournalError::Closed)?;
        rx.blocking_recv().map_err(|_| JournalError::Closed)?
    }

    pub fn quarantine(&self) -> Option<&Quarantine> {
        self.inner.quarantine()
    }

    /// See [`Journal::append_points`].
    pub fn append_points(&self, points: Vec<Point>, wait: Wait) -> Result<Appended> {
        self.call(|reply| Request::AppendPoints {
            points,
            wait,
            reply,
        })
    }

    /// See [`Journal::append_record`].
    pub fn append_record(
        &self,
        class: RecordClass,
        payload: Vec<u8>,
        wait: Wait,
    ) -> Result<Appended> {
        self.call(|reply| Request::AppendRecord {
            class,
            payload,
            reported: None,
            wait,
            reply,
        })
    }

    /// See [`Journal::append_drop_report`].
    pub fn append_drop_report(
        &self,
        payload: Vec<u8>,
        reported: u64,
        wait: Wait,
    ) -> Result<Appended> {
        self.call(|reply| Request::AppendRecord {
            class: RecordClass::Event,
            payload,
            reported: Some(reported),
            wait,
            reply,
        })
    }

    /// See [`Journal::next_batch`].
    pub fn next_batch(&self, limits: BatchLimits) -> Result<Option<Batch>> {
        self.call(|reply| Request::NextBatch { limits, reply })
    }

    /// See [`Journal::ack`].
    pub fn ack(&self, id: BatchId) -> Result<bool> {
        self.call(|reply| Request::Ack { id, reply })
    }

    /// See [`Journal::requeue_in_flight`].
    pub fn requeue_in_flight(&self) -> Result<()> {
        self.call(|reply| Request::Requeue { reply })
    }

    /// See [`Journal::sync`].
    pub fn sync(&self) -> Result<()> {
        self.call(|reply| Request::Sync { reply })
    }

    pub fn stats(&self) -> Result<Stats> {
        self.call(|reply| Request::Stats { reply })
    }

    pub fn set_file_limit(&self, bytes: Option<u64>) -> Result<()> {
        self.call(|reply| Request::SetFileLimit { bytes, reply })
    }

    pub fn close(self) -> Result<()> {
        self.call(|reply| Request::Close { reply })
    }

    /// The async handle to the same journal.
    pub fn handle(&self) -> Journal {
        self.inner.clone()
    }
}
