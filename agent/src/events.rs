//! Gateway events and command acknowledgements, journaled in their priority classes.
//!
//! Both go through the journal like telemetry, so they survive a restart and leave only after
//! their PUBACK; the journal sends acknowledgements first, then events, then telemetry, and
//! never drops either class.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fieldlink_buffer::{Journal, JournalError, RecordClass, Wait};
use fieldlink_protocol::{json, Ack, Event, EventKind, Ident};

use crate::clock::wall_ms;

/// Numbers and journals events and acknowledgements. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    journal: Journal,
    gateway: Ident,
    boot_epoch: u64,
    seq: Arc<AtomicU64>,
}

/// Why an event or acknowledgement was not journaled.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot encode: {0}")]
    Encode(#[from] fieldlink_protocol::EncodeError),
}

impl Outbox {
    pub fn new(journal: Journal, gateway: Ident, boot_epoch: u64) -> Outbox {
        Outbox {
            journal,
            gateway,
            boot_epoch,
            seq: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    fn encode(&self, kind: EventKind) -> Result<Vec<u8>, OutboxError> {
        let event = Event {
            gateway: self.gateway.clone(),
            boot_epoch: self.boot_epoch,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            ts_ms: wall_ms().max(0),
            kind,
        };
        Ok(json::encode(&event)?)
    }

    /// Journals an event; returns once it is committed.
    pub async fn event(&self, kind: EventKind) -> Result<(), OutboxError> {
        let payload = self.encode(kind)?;
        self.journal
            .append_record(RecordClass::Event, payload, Wait::Commit)
            .await?;
        Ok(())
    }

    /// Journals a drop report (a `telemetry_dropped` event) together with the journal drop
    /// total it covers, in one commit (see `Journal::append_drop_report`).
    pub async fn drop_report(&self, kind: EventKind, covers: u64) -> Result<(), OutboxError> {
        let payload = self.encode(kind)?;
        self.journal
            .append_drop_report(payload, covers, Wait::Commit)
            .await?;
        Ok(())
    }

    /// Journals an acknowledgement; returns once it is synced (it must survive a power cut:
    /// the cloud tracks the command by it).
    pub async fn ack(&self, ack: &Ack) -> Result<(), OutboxError> {
        let payload = json::encode(ack)?;
        match self
            .journal
            .append_record(RecordClass::Ack, payload, Wait::Sync)
            .await
        {
            Ok(_) | Err(JournalError::NotSynced(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Journals an event, logging instead of failing: for callers that cannot do anything
    /// about a journal error but must not lose the fact silently.
    pub async fn event_or_log(&self, kind: EventKind) {
        if let Err(e) = self.event(kind.clone()).await {
            tracing::error!(error = %e, event = ?kind, "event not journaled");
        }
    }
}
