//! What the agent decides about its journal: where it lives, how durable a commit is, how big
//! it may grow and how backlog shares the uplink with live data.
//!
//! Values are checked once by [`JournalConfig::validate`] when the journal opens, so the owner
//! thread never meets a nonsensical setting at run time.

use std::path::PathBuf;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::{JournalError, Result};

/// How much a returned commit promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode. A commit writes the WAL without fsync: once it returns,
    /// a killed process loses nothing. The WAL is synced and checkpointed every
    /// [`JournalConfig::sync_interval`], so a power cut loses at most that interval's commits and
    /// flash sees one write burst per interval. The default.
    Normal,
    /// `synchronous=FULL`: every commit fsyncs the WAL before it returns, so a power cut loses
    /// nothing that was committed. Costs one fsync per commit.
    Full,
}

/// What an appender waits for before its call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// The commit (survives a process kill; in [`Durability::Normal`] not yet a power cut).
    #[default]
    Commit,
    /// The commit and an fsync of the WAL (survives a power cut). Waiters that arrive together
    /// share one sync.
    Sync,
}

/// When something must give. Only telemetry is ever dropped, oldest first; acknowledgements and
/// events are kept even past the caps (the disk itself is then the limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Stored bytes (record payloads and encoded points plus a fixed per-row overhead) above
    /// which the oldest telemetry is dropped. The file is somewhat larger: SQLite's page slack
    /// (about 7 % in the benchmark) and the WAL between checkpoints. Deleted pages are reused,
    /// not returned, so the file stays at its high-water mark.
    pub max_bytes: u64,
    /// Telemetry appended longer ago than this is dropped. Records appended while the clock was
    /// obviously unset (before 2020) are never dropped by age: a gateway without an RTC jumps
    /// decades forward when NTP syncs, and that jump must not empty the journal.
    pub max_age: Option<Duration>,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_bytes: 512 * 1024 * 1024,
            max_age: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

/// How [`crate::Journal::next_batch`] bounds one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// At most this many points in a telemetry batch.
    pub max_points: usize,
    /// At most this many stored bytes in a batch.
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_points: 1000,
            max_bytes: 256 * 1024,
        }
    }
}

/// Everything the journal needs to open.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The SQLite file. Its `-wal` and `-shm` companions live beside it.
    pub path: PathBuf,
    pub durability: Durability,
    /// How often the WAL is synced and checkpointed when something was committed since the last
    /// sync. Bounds what a power cut can lose in [`Durability::Normal`].
    pub sync_interval: Duration,
    pub caps: Caps,
    /// Share of telemetry points (0.0 to 1.0) given to backlog while live points are waiting.
    /// 0 drains backlog only when no live point is pending; 1 drains backlog first.
    pub backfill_share: f64,
    /// Most points per stored segment. An appended cycle is split into segments of at most this
    /// many points and about 1 KiB of encoded points (four to a SQLite page); a batch holds
    /// whole segments, so a batch's `max_points` should be well above a segment's size.
    pub segment_points: usize,
    /// Hard ceiling on the database file, enforced by SQLite (`max_page_count`). Appends past it
    /// fail with [`JournalError::DiskFull`] exactly as on a full disk. `None`: the disk decides.
    pub file_limit_bytes: Option<u64>,
    /// Request queue length between the handle and the owner thread.
    pub queue_len: usize,
    pub clock: Clock,
}

impl JournalConfig {
    /// Defaults for a journal at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JournalConfig {
            path: path.into(),
            durability: Durability::Normal,
            sync_interval: Duration::from_secs(1),
            caps: Caps::default(),
            backfill_share: 0.5,
            segment_points: 250,
            file_limit_bytes: None,
            queue_len: 64,
            clock: Clock::System,
        }
    }

    /// Checks ranges; called by `open`.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: &str| Err(JournalError::Config(msg.to_string()));
        if self.sync_interval.is_zero() {
            return bad("sync_interval must be greater than zero");
        }
        if !(0.0..=1.0).contains(&self.backfill_share) {
            return bad("backfill_share must be between 0 and 1");
        }
        if self.segment_points == 0 || self.segment_points > 65_536 {
            return bad("segment_points must be between 1 and 65536");
        }
        if self.queue_len == 0 {
            return bad("queue_len must be at least 1");
        }
        if self.caps.max_bytes == 0 {
            return bad("caps.max_bytes must be greater than zero");
        }
        Ok(())
    }
}

impl BatchLimits {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_points == 0 || self.max_bytes == 0 {
            return Err(JournalError::Config(
                "batch limits must be greater than zero".to_string(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_refused() {
        let good = JournalConfig::new("/tmp/x.db");
        assert!(good.validate().is_ok());
        let mut c = good.clone();
        c.backfill_share = 1.5;
        assert!(matches!(c.validate(), Err(JournalError::Config(_))));
        let mut c = good.clone();
        c.sync_interval = Duration::ZERO;
        assert!(c.validate().is_err());
        let mut c = good;
        c.segment_points = 0;
        assert!(c.validate().is_err());
        assert!(BatchLimits {
            max_points: 0,
            max_bytes: 1
        }
        .validate()
        .is_err());
    }
}
