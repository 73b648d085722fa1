//! Behaviour of the journal through its public handle, on real files.

mod common;

use common::*;
use fieldlink_buffer::{
    BatchLimits, BlockingJournal, Journal, JournalConfig, JournalError, RecordClass, Wait,
};

#[test]
fn points_come_back_in_order_and_acknowledged_ones_never_return() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let small_segments = || {
        let mut c = config(&path);
        c.segment_points = 50;
        c
    };
    let j = BlockingJournal::open(small_segments()).unwrap();
    append(&j, 0..300);
    append(&j, 300..700);
    let b1 = j.next_batch(limits(250)).unwrap().unwrap();
    let b2 = j.next_batch(limits(250)).unwrap().unwrap();
    let got1 = match content(&b1) {
        Content::Points(p, _) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(got1, (0..250).collect::<Vec<_>>());
    assert!(j.ack(b1.id).unwrap());
    assert!(!j.ack(b1.id).unwrap(), "a second ack is a no-op");
    j.close().unwrap();

    // b2 was in flight at the restart: pending again, from where b1 ended.
    let j = BlockingJournal::open(small_segments()).unwrap();
    let _ = b2;
    let (nums, _) = drain_all(&j);
    assert_eq!(nums, (250..700).collect::<Vec<_>>());
    assert_eq!(j.stats().unwrap().telemetry.count, 0);
    assert!(j.next_batch(limits(10)).unwrap().is_none());
}

#[test]
fn acknowledgements_then_events_then_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(&dir.path().join("j.db"));
    append(&j, 0..10);
    j.append_record(RecordClass::Event, b"e1".to_vec(), Wait::Commit)
        .unwrap();
    j.append_record(RecordClass::Ack, b"a1".to_vec(), Wait::Commit)
        .unwrap();
    j.append_record(RecordClass::Event, b"e2".to_vec(), Wait::Commit)
        .unwrap();
    let mut order = Vec::new();
    while let Some(b) = j.next_batch(limits(1000)).unwrap() {
        order.push(content(&b));
        j.ack(b.id).unwrap();
    }
    assert_eq!(
        order,
        vec![
            Content::Record(RecordClass::Ack, b"a1".to_vec()),
            Content::Record(RecordClass::Event, b"e1".to_vec()),
            Content::Record(RecordClass::Event, b"e2".to_vec()),
            Content::Points((0..10).collect(), false),
        ]
    );
}

#[test]
fn live_points_overtake_backlog_which_is_flagged_historical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut cfg = config(&path);
    cfg.backfill_share = 0.5;
    cfg.segment_points = 100;
    let j = BlockingJournal::open(cfg).unwrap();
    append(&j, 0..1000);
    // The uplink comes back: what is stored is backlog; new appends are live.
    j.requeue_in_flight().unwrap();
    append(&j, 1000..1100);
    let b = j.next_batch(limits(100)).unwrap().unwrap();
    assert_eq!(content(&b), Content::Points((1000..1100).collect(), false));
    append(&j, 1100..1200);
    // Live has had 100 points, backlog none: backlog's turn.
    let b = j.next_batch(limits(100)).unwrap().unwrap();
    assert_eq!(content(&b), Content::Points((0..100).collect(), true));
    let b = j.next_batch(limits(100)).unwrap().unwrap();
    assert_eq!(content(&b), Content::Points((1100..1200).collect(), false));
    // No live point pending: backlog goes on.
    let b = j.next_batch(limits(100)).unwrap().unwrap();
    assert_eq!(content(&b), Content::Points((100..200).collect(), true));
}

#[test]
fn backfill_share_zero_drains_backlog_only_when_live_is_idle() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("j.db"));
    cfg.backfill_share = 0.0;
    cfg.segment_points = 10;
    let j = BlockingJournal::open(cfg).unwrap();
    append(&j, 0..50);
    j.requeue_in_flight().unwrap();
    append(&j, 50..80);
    for expected in [50..60, 60..70, 70..80, 0..10] {
        let b = j.next_batch(limits(10)).unwrap().unwrap();
        let live = expected.start >= 50;
        assert_eq!(content(&b), Content::Points(expected.collect(), !live));
    }
}

#[test]
fn batches_respect_point_and_byte_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("j.db"));
    cfg.segment_points = 10;
    let j = BlockingJournal::open(cfg).unwrap();
    append(&j, 0..100);
    let b = j.next_batch(limits(35)).unwrap().unwrap();
    assert_eq!(b.point_count(), 30, "whole segments, at most 35 points");
    let b = j
        .next_batch(BatchLimits {
            max_points: 1000,
            max_bytes: 1,
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        b.point_count(),
        10,
        "at least one segment even past max_bytes"
    );
    let b = j
        .next_batch(BatchLimits {
            max_points: 1000,
            max_bytes: 200,
        })
        .unwrap()
        .unwrap();
    assert!(b.point_count() >= 10 && b.point_count() < 60);
}

#[test]
fn requeue_makes_in_flight_pending_and_forgets_old_batch_ids() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(&dir.path().join("j.db"));
    append(&j, 0..5);
    j.append_record(RecordClass::Ack, b"a".to_vec(), Wait::Commit)
        .unwrap();
    let a = j.next_batch(limits(10)).unwrap().unwrap();
    let t = j.next_batch(limits(10)).unwrap().unwrap();
    assert!(j.next_batch(limits(10)).unwrap().is_none());
    assert_eq!(j.stats().unwrap().in_flight_batches, 2);
    j.requeue_in_flight().unwrap();
    assert!(!j.ack(a.id).unwrap());
    assert!(!j.ack(t.id).unwrap());
    let (nums, recs) = drain_all(&j);
    assert_eq!(nums, (0..5).collect::<Vec<_>>());
    assert_eq!(recs, vec![(RecordClass::Ack, b"a".to_vec())]);
}

#[test]
fn stats_report_depth_by_class_and_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(&dir.path().join("j.db"));
    append(&j, 0..100);
    j.append_record(RecordClass::Event, vec![1; 10], Wait::Commit)
        .unwrap();
    let s = j.stats().unwrap();
    assert_eq!(s.telemetry.count, 100);
    assert_eq!(s.events.count, 1);
    assert_eq!(s.acks.count, 0);
    assert_eq!(s.acks.oldest_age_ms, None);
    assert!(s.telemetry.oldest_age_ms.is_some());
    assert_eq!(s.stored_bytes, s.telemetry.bytes + s.events.bytes);
    assert!(s.file_bytes > 0);
    assert_eq!(s.series, 21);
    assert_eq!(s.dropped.total(), 0);
}

#[test]
fn waiting_for_sync_syncs_and_an_idle_journal_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("j.db"));
    cfg.sync_interval = std::time::Duration::from_secs(3600);
    let j = BlockingJournal::open(cfg).unwrap();
    j.append_points(points(0..10), Wait::Sync).unwrap();
    assert_eq!(j.stats().unwrap().syncs, 1);
    j.sync().unwrap();
    assert_eq!(j.stats().unwrap().syncs, 1, "nothing new to sync");
    append(&j, 10..20);
    j.sync().unwrap();
    assert_eq!(j.stats().unwrap().syncs, 2);
}

#[test]
fn the_periodic_sync_runs_when_something_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("j.db"));
    cfg.sync_interval = std::time::Duration::from_millis(20);
    let j = BlockingJournal::open(cfg).unwrap();
    append(&j, 0..10);
    // Waits for the timer without asserting how long it takes.
    let mut syncs = 0;
    for _ in 0..500 {
        syncs = j.stats().unwrap().syncs;
        if syncs > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(syncs, 1);
}

#[test]
fn a_second_opener_is_refused_with_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = open(&path);
    append(&j, 0..3);
    match BlockingJournal::open(config(&path)) {
        Err(JournalError::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    // And the first opener was not harmed (no quarantine happened).
    assert_eq!(j.stats().unwrap().telemetry.count, 3);
    j.close().unwrap();
    let j = open(&path);
    assert!(j.quarantine().is_none());
    assert_eq!(drain_all(&j).0, vec![0, 1, 2]);
}

#[test]
fn string_values_longer_than_the_protocol_allows_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(&dir.path().join("j.db"));
    let mut p = point(1);
    p.value = fieldlink_protocol::Value::Str("x".repeat(1000));
    assert!(matches!(
        j.append_points(vec![point(0), p], Wait::Commit),
        Err(JournalError::Rejected(_))
    ));
    assert_eq!(j.stats().unwrap().telemetry.count, 0);
    assert_eq!(
        j.stats().unwrap().series,
        0,
        "no series leaked from the refused append"
    );
}

#[test]
fn the_async_handle_works_from_tokio() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let j = Journal::open(JournalConfig::new(&path)).await.unwrap();
        j.append_points(points(0..20), Wait::Sync).await.unwrap();
        j.append_record(RecordClass::Ack, b"ok".to_vec(), Wait::Commit)
            .await
            .unwrap();
        let b = j.next_batch(limits(100)).await.unwrap().unwrap();
        assert_eq!(
            content(&b),
            Content::Record(RecordClass::Ack, b"ok".to_vec())
        );
        assert!(j.ack(b.id).await.unwrap());
        let b = j.next_batch(limits(100)).await.unwrap().unwrap();
        assert_eq!(b.point_count(), 20);
        let clone = j.clone();
        j.close().await.unwrap();
        assert!(matches!(clone.stats().await, Err(JournalError::Closed)));
    });
}

#[test]
fn in_full_mode_a_sync_waiter_needs_no_extra_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("j.db"));
    cfg.durability = fieldlink_buffer::Durability::Full;
    cfg.sync_interval = std::time::Duration::from_secs(3600);
    let j = BlockingJournal::open(cfg).unwrap();
    j.append_points(points(0..10), Wait::Sync).unwrap();
    j.append_record(RecordClass::Ack, b"a".to_vec(), Wait::Sync)
        .unwrap();
    // Every FULL commit was already synced; no checkpoint was needed to answer.
    assert_eq!(j.stats().unwrap().syncs, 0);
    let (nums, recs) = drain_all(&j);
    assert_eq!(nums.len(), 10);
    assert_eq!(recs.len(), 1);
}
