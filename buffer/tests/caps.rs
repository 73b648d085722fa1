//! Caps: the oldest telemetry goes first, the counts are exact and durable, acknowledgements and
//! events are never dropped, and nothing in flight is dropped.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use fieldlink_buffer::{BlockingJournal, Caps, Clock, JournalConfig, RecordClass, Wait};

const DAY_MS: i64 = 86_400_000;
const NOW_2026: i64 = 1_795_000_000_000;

fn capped(path: &std::path::Path, max_bytes: u64) -> JournalConfig {
    let mut c = config(path);
    c.segment_points = 50;
    c.caps = Caps {
        max_bytes,
        max_age: None,
    };
    c
}

#[test]
fn the_byte_cap_drops_oldest_telemetry_with_exact_counts_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = BlockingJournal::open(capped(&path, 4_000)).unwrap();
    let mut reported = 0;
    for cycle in 0..40u64 {
        let a = j
            .append_points(points(cycle * 100..cycle * 100 + 100), Wait::Commit)
            .unwrap();
        reported += a.dropped_points;
        let s = j.stats().unwrap();
        assert!(s.stored_bytes <= 4_000, "{} stored", s.stored_bytes);
    }
    let s = j.stats().unwrap();
    assert!(reported > 0);
    assert_eq!(s.dropped.max_bytes, reported);
    assert_eq!(s.dropped.total(), reported);
    j.close().unwrap();

    let j = open(&path);
    assert_eq!(j.stats().unwrap().dropped.max_bytes, reported);
    let (nums, _) = drain_all(&j);
    // What is left is exactly the newest points, and with the dropped ones makes up the whole.
    assert_eq!(nums.len() as u64 + reported, 4_000);
    let first = nums[0];
    assert_eq!(nums, (first..4_000).collect::<Vec<_>>());
}

#[test]
fn acknowledgements_and_events_are_never_dropped_even_past_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let j = BlockingJournal::open(capped(&dir.path().join("j.db"), 2_000)).unwrap();
    append(&j, 0..100);
    for i in 0..40u8 {
        let class = if i % 2 == 0 {
            RecordClass::Ack
        } else {
            RecordClass::Event
        };
        j.append_record(class, vec![i; 100], Wait::Commit).unwrap();
    }
    let s = j.stats().unwrap();
    assert_eq!(s.acks.count, 20);
    assert_eq!(s.events.count, 20);
    assert_eq!(s.telemetry.count, 0, "all telemetry made way");
    assert_eq!(s.dropped.max_bytes, 100);
    // New telemetry cannot fit either: it is dropped at once, and counted.
    let a = j.append_points(points(100..110), Wait::Commit).unwrap();
    assert_eq!(a.dropped_points, 10);
    let (nums, recs) = drain_all(&j);
    assert!(nums.is_empty());
    assert_eq!(recs.len(), 40);
    assert_eq!(j.stats().unwrap().dropped.max_bytes, 110);
}

#[test]
fn telemetry_in_flight_is_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let j = BlockingJournal::open(capped(&dir.path().join("j.db"), 3_000)).unwrap();
    append(&j, 0..100);
    let flying = j.next_batch(limits(100)).unwrap().unwrap();
    assert_eq!(flying.point_count(), 100);
    let mut dropped = 0;
    for c in 1..20u64 {
        dropped += j
            .append_points(points(c * 100..c * 100 + 100), Wait::Commit)
            .unwrap()
            .dropped_points;
    }
    assert!(dropped > 0);
    assert!(j.ack(flying.id).unwrap());
    let (rest, _) = drain_all(&j);
    // Every point was delivered (the flying batch), is still stored, or was counted as dropped.
    assert_eq!(100 + rest.len() as u64 + dropped, 2_000);
    assert_eq!(j.stats().unwrap().dropped.max_bytes, dropped);
}

#[test]
fn the_age_cap_drops_expired_telemetry_but_not_records() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, now) = Clock::manual(NOW_2026);
    let mut c = capped(&dir.path().join("j.db"), 1 << 30);
    c.caps.max_age = Some(Duration::from_secs(7 * 86_400));
    c.clock = clock;
    let j = BlockingJournal::open(c).unwrap();
    append(&j, 0..100);
    j.append_record(RecordClass::Event, b"old event".to_vec(), Wait::Commit)
        .unwrap();
    now.store(NOW_2026 + 5 * DAY_MS, Ordering::SeqCst);
    append(&j, 100..150);
    j.sync().unwrap();
    assert_eq!(j.stats().unwrap().dropped.max_age, 0);
    now.store(NOW_2026 + 8 * DAY_MS, Ordering::SeqCst);
    j.sync().unwrap();
    let s = j.stats().unwrap();
    assert_eq!(s.dropped.max_age, 100);
    assert_eq!(s.telemetry.oldest_age_ms, Some(3 * DAY_MS));
    assert_eq!(s.events.oldest_age_ms, Some(8 * DAY_MS));
    let (nums, recs) = drain_all(&j);
    assert_eq!(nums, (100..150).collect::<Vec<_>>());
    assert_eq!(recs, vec![(RecordClass::Event, b"old event".to_vec())]);
}

#[test]
fn stamps_from_an_unset_clock_are_not_aged_out_when_ntp_jumps_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    // Booted without an RTC: the clock starts near 1970.
    let (clock, now) = Clock::manual(60_000);
    let mut c = capped(&dir.path().join("j.db"), 1 << 30);
    c.caps.max_age = Some(Duration::from_secs(86_400));
    c.clock = clock;
    let j = BlockingJournal::open(c).unwrap();
    append(&j, 0..20);
    now.store(NOW_2026, Ordering::SeqCst);
    j.sync().unwrap();
    let s = j.stats().unwrap();
    assert_eq!(s.dropped.max_age, 0);
    assert_eq!(s.telemetry.count, 20);
}

#[test]
fn the_age_cap_spares_a_batch_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, now) = Clock::manual(NOW_2026);
    let mut c = capped(&dir.path().join("j.db"), 1 << 30);
    c.caps.max_age = Some(Duration::from_secs(86_400));
    c.clock = clock;
    let j = BlockingJournal::open(c).unwrap();
    append(&j, 0..50);
    append(&j, 50..100);
    let flying = j.next_batch(limits(50)).unwrap().unwrap();
    assert_eq!(content(&flying), Content::Points((0..50).collect(), false));
    now.store(NOW_2026 + 2 * DAY_MS, Ordering::SeqCst);
    j.sync().unwrap();
    assert_eq!(j.stats().unwrap().dropped.max_age, 50);
    assert!(j.ack(flying.id).unwrap());
    assert!(j.next_batch(limits(100)).unwrap().is_none());
}
