//! The gateway's durable outbound journal: everything read from the field or produced by the
//! agent that the cloud has not yet acknowledged, in one SQLite file.
//!
//! # Invariants
//!
//! **What is on disk.** One SQLite database in WAL mode (`journal.db`, `journal.db-wal`; the
//! exclusive lock keeps the WAL index in memory, so there is normally no `-shm`). Its tables:
//! `series` (the `(device, metric)` dictionary), `segments` (telemetry: each row a run of points of
//! one append, packed into about 1 KiB; see `codec`), `records` (acknowledgements and
//! events, one opaque payload per row), `drops` (how many telemetry points were dropped, by
//! reason) and `totals` (how many points and records the tables hold, rewritten by every
//! transaction that changes them, so a salvage can count what damage lost). Row ids give the
//! order within a class. `PRAGMA user_version` is the schema version. Beside the database,
//! `journal.db.created` is written once a journal exists, so that a journal later found missing
//! or zero-length is reported instead of silently starting afresh, and `journal.db.refused`
//! counts the points refused while the disk was full (see `store::refused`). Two rows of
//! `totals` besides the data totals: `refused_saved`, how much of that count is already in
//! `drops`, and `drops_reported`, the drop total that journaled drop reports cover.
//! Nothing about delivery is on disk: which batches are in flight lives in memory only.
//!
//! **When a record is committed.** An append is one transaction. When `append_*` returns `Ok`,
//! the rows are in the WAL: a killed process loses none of them. With [`Durability::Normal`]
//! they survive a power cut once the next sync has run (every `sync_interval`, or at once for
//! [`Wait::Sync`]); with [`Durability::Full`] when the call returns. An append that returns an
//! error stored nothing (SQLite rolls the transaction back), except [`JournalError::NotSynced`],
//! which means stored but not yet synced.
//!
//! **When a record may be deleted.** Only (a) when [`Journal::ack`] names the batch that carried
//! it, which the agent calls on the broker's PUBACK for that very publish, or (b) for telemetry
//! only, when a cap drops it: the byte cap on append, the age cap at the periodic upkeep, oldest
//! first, never a segment in flight, and the `drops` counter grows in the same transaction by
//! exactly the number of points deleted. A telemetry segment that no longer decodes is removed
//! when reached and counted under `corrupt`. Acknowledgements and events are never dropped.
//!
//! **What a crash at any instant leaves behind.** SQLite's WAL makes every transaction all or
//! nothing, so after a kill the file holds exactly the appends whose commit had finished, minus
//! exactly the acknowledgements and drops whose commit had finished, and the `drops` counters
//! agree with what is missing. In-flight state is gone, so every unacknowledged batch is pending
//! again and is sent again (the cloud stores idempotently); nothing acknowledged comes back.
//! After a power cut the same holds as of the last sync. A file found damaged on open is
//! salvaged (see `salvage`): every row that still reads and verifies is copied into a new file,
//! the damaged one is moved aside whole (see `integrity`), never rewritten, and the journal goes
//! on with what was saved; [`Quarantine::salvage`] says how many points and records were saved
//! and lost, and the lost points are added to the `corrupt` drop counter. A crash at any step of
//! that leaves either the damaged file in place (salvage redone) or the finished salvage ready
//! to be put in place by the next open.
//!
//! # How the agent uses it
//!
//! ```no_run
//! # async fn agent(points: Vec<fieldlink_protocol::Point>) -> Result<(), fieldlink_buffer::JournalError> {
//! use fieldlink_buffer::{BatchBody, BatchLimits, Journal, JournalConfig, RecordClass, Wait};
//!
//! let journal = Journal::open(JournalConfig::new("/var/lib/fieldlink/journal.db")).await?;
//! if let Some(q) = journal.quarantine() {
//!     // Tell the cloud: the old journal was damaged (or missing), what was saved and lost.
//!     let event = format!("journal quarantined: {}", q.summary()).into_bytes();
//!     journal.append_record(RecordClass::Event, event, Wait::Commit).await?;
//! }
//! // Every poll cycle: one commit, before the next poll.
//! journal.append_points(points, Wait::Commit).await?;
//! // Uplink task, while connected: publish what `next_batch` gives, remember which packet id
//! // carried which batch, and acknowledge on that packet's PUBACK.
//! while let Some(batch) = journal.next_batch(BatchLimits::default()).await? {
//!     match &batch.body {
//!         BatchBody::Telemetry { points, historical } => { /* encode, publish */ }
//!         BatchBody::Record { class, payload, .. } => { /* publish to the ack/events topic */ }
//!     }
//!     journal.ack(batch.id).await?; // on PUBACK
//! }
//! // On reconnect: whatever was in flight is pending again.
//! journal.requeue_in_flight().await?;
//! # Ok(()) }
//! ```
//!
//! Batches come out acknowledgements first, then events (one record per batch: one record is
//! one publish), then telemetry: live points (appended since the last reconnect or open) before
//! backlog, with backlog given `backfill_share` of the points while both wait; backlog batches
//! carry `historical: true`. A telemetry batch holds whole segments, at most
//! [`BatchLimits::max_points`] points and [`BatchLimits::max_bytes`] stored bytes, except that
//! it always holds at least one segment. [`Journal::stats`] gives depth by class, the oldest
//! age, bytes on disk and the durable drop counters for the agent's health report.
//!
//! Disk full (or the configured file limit) makes appends fail with [`JournalError::DiskFull`];
//! the agent keeps running, the refused points are counted under `Dropped::disk_full`, and
//! appends succeed again once space returns. Acknowledging still works while full. The refused
//! count survives a kill or restart while still full: it is written where no free space is
//! needed (the refusal log, overwritten in place), and folded into `drops` by the first commit
//! once there is room, in the same transaction as `refused_saved`.
//!
//! **Reporting drops.** [`Journal::append_drop_report`] journals a drop event and sets
//! `drops_reported` to the drop total it covers in one transaction, so after any crash
//! [`Stats::drops_reported`] is exactly what the journaled events cover: reporting
//! `dropped.total() - drops_reported` at the next chance loses and repeats nothing. A file from
//! a release without these rows counts everything it dropped as reported.

mod batch;
mod clock;
mod codec;
mod config;
mod drain;
mod error;
mod integrity;
mod journal;
mod owner;
mod salvage;
mod schema;
mod series;
mod stats;
mod store;

pub use batch::{Appended, Batch, BatchBody, BatchId, RecordClass};
pub use clock::Clock;
pub use config::{BatchLimits, Caps, Durability, JournalConfig, Wait};
pub use error::{JournalError, SqliteFailure};
pub use integrity::Quarantine;
pub use journal::{BlockingJournal, Journal};
pub use salvage::Salvage;
pub use schema::SCHEMA_VERSION;
pub use stats::{Depth, Dropped, Stats};
