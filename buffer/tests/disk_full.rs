//! Disk full, simulated with SQLite's page limit: appends fail with a typed error, the caller
//! keeps going, nothing committed is harmed, and appends work again when space returns.

mod common;

use common::*;
use fieldlink_buffer::{BlockingJournal, JournalError, RecordClass, Wait};

#[test]
fn a_full_disk_refuses_appends_harms_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut cfg = config(&path);
    cfg.file_limit_bytes = Some(64 * 1024);
    let j = BlockingJournal::open(cfg.clone()).unwrap();

    let mut stored = Vec::new();
    let mut refused = 0u64;
    let mut next = 0u64;
    // Fill until the limit bites, then keep trying like an agent that keeps polling.
    for _ in 0..200 {
        let batch = points(next..next + 100);
        next += 100;
        match j.append_points(batch, Wait::Commit) {
            Ok(_) => stored.extend(next - 100..next),
            Err(JournalError::DiskFull) => refused += 100,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(refused > 0, "the limit was never reached");
    assert!(!stored.is_empty());
    assert!(matches!(
        j.append_record(RecordClass::Event, vec![0; 8_000], Wait::Commit),
        Err(JournalError::DiskFull)
    ));
    let s = j.stats().unwrap();
    assert_eq!(s.telemetry.count, stored.len() as u64);
    assert_eq!(s.events.count, 0);
    assert_eq!(s.dropped.disk_full, refused);

    // Acknowledging still works while full, and frees room.
    let b = j.next_batch(limits(1000)).unwrap().unwrap();
    let first: Vec<u64> = match content(&b) {
        Content::Points(p, _) => p,
        other => panic!("{other:?}"),
    };
    assert!(j.ack(b.id).unwrap());
    j.requeue_in_flight().unwrap();

    // Space returns.
    j.set_file_limit(None).unwrap();
    j.append_points(points(next..next + 100), Wait::Sync)
        .unwrap();
    stored.extend(next..next + 100);
    j.append_record(RecordClass::Event, vec![0; 8_000], Wait::Commit)
        .unwrap();
    j.close().unwrap();

    // The refused count was made durable by the first commit after recovery.
    let j = open(&path);
    assert_eq!(j.stats().unwrap().dropped.disk_full, refused);
    let (nums, recs) = drain_all(&j);
    let want: Vec<u64> = stored.into_iter().filter(|n| !first.contains(n)).collect();
    assert_eq!(nums, want);
    assert_eq!(recs.len(), 1);
}

#[test]
fn reopening_a_journal_larger_than_its_limit_still_drains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = open(&path);
    for c in 0..20 {
        append(&j, c * 100..c * 100 + 100);
    }
    j.close().unwrap();
    // SQLite will not set the page limit below the current size: the file is full as it is.
    let mut cfg = config(&path);
    cfg.file_limit_bytes = Some(8 * 1024);
    let j = BlockingJournal::open(cfg).unwrap();
    assert!(j.quarantine().is_none());
    let mut stored = (0..2000).collect::<Vec<u64>>();
    let mut full = false;
    for c in 50..100 {
        match j.append_points(points(c * 100..c * 100 + 100), Wait::Commit) {
            Ok(_) => stored.extend(c * 100..c * 100 + 100),
            Err(JournalError::DiskFull) => {
                full = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full);
    // Appended after the open, so live: it leaves before the backlog.
    let (mut nums, _) = drain_all(&j);
    nums.sort_unstable();
    assert!(
        nums == stored,
        "drained {} points, stored {}",
        nums.len(),
        stored.len()
    );
}

/// Regression: points refused while the disk was full were counted in memory only until a
/// commit could save them, so a restart while still full lost them from every drop count.
#[test]
fn refusals_survive_a_restart_while_still_full_and_reports_are_recorded_with_their_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut cfg = config(&path);
    cfg.file_limit_bytes = Some(64 * 1024);
    let fill = |j: &BlockingJournal, from: u64| {
        let mut refused = 0;
        for c in 0..200 {
            let n = from + c * 100;
            match j.append_points(points(n..n + 100), Wait::Commit) {
                Ok(_) => {}
                Err(JournalError::DiskFull) => refused += 100,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        refused
    };
    let j = BlockingJournal::open(cfg.clone()).unwrap();
    let first = fill(&j, 0);
    assert!(first > 0, "the limit was never reached");
    assert!(matches!(
        j.append_drop_report(vec![0; 8_000], first, Wait::Commit),
        Err(JournalError::DiskFull)
    ));
    assert_eq!(j.stats().unwrap().drops_reported, 0);
    // Closing commits nothing (the disk is full); the crash test covers kills at any instant.
    j.close().unwrap();

    let j = BlockingJournal::open(cfg.clone()).unwrap();
    assert_eq!(j.stats().unwrap().dropped.disk_full, first);
    let second = fill(&j, 1_000_000);
    assert_eq!(second, 200 * 100, "still full");
    let total = first + second;
    assert_eq!(j.stats().unwrap().dropped.disk_full, total);
    j.close().unwrap();

    // Room returns: the first commit saves every refusal, the report records what it covers.
    cfg.file_limit_bytes = None;
    let j = BlockingJournal::open(cfg.clone()).unwrap();
    assert_eq!(j.stats().unwrap().dropped.disk_full, total);
    j.append_drop_report(b"dropped".to_vec(), total, Wait::Commit)
        .unwrap();
    assert_eq!(j.stats().unwrap().drops_reported, total);
    j.close().unwrap();
    let j = open(&path);
    let s = j.stats().unwrap();
    assert_eq!((s.dropped.disk_full, s.drops_reported), (total, total));
    let (_, records) = drain_all(&j);
    assert_eq!(records, [(RecordClass::Event, b"dropped".to_vec())]);
}

#[test]
fn a_journal_from_before_the_reporting_counters_counts_its_drops_as_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut cfg = config(&path);
    cfg.caps.max_bytes = 16 * 1024;
    let j = BlockingJournal::open(cfg.clone()).unwrap();
    for c in 0..50 {
        append(&j, c * 100..c * 100 + 100);
    }
    let dropped = j.stats().unwrap().dropped.total();
    assert!(dropped > 0);
    j.close().unwrap();
    // As an older release left it: no counters, and a refusal log from some other file.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "DELETE FROM totals WHERE what IN ('drops_reported', 'refused_saved')",
        [],
    )
    .unwrap();
    drop(conn);
    std::fs::write(dir.path().join("j.db.refused"), 999u64.to_le_bytes()).unwrap();
    let j = BlockingJournal::open(cfg).unwrap();
    let s = j.stats().unwrap();
    assert_eq!(s.drops_reported, dropped);
    assert_eq!(
        s.dropped.total(),
        dropped,
        "the stray refusal log was not taken over"
    );
}
