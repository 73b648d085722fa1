//! A damaged journal is moved aside and a fresh one starts, with a notice; nobody needs a shell.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::*;
use fieldlink_buffer::{BlockingJournal, RecordClass, Wait};

/// A closed journal holding 5,000 points and one event, checkpointed into the main file.
fn filled(dir: &Path) -> PathBuf {
    let path = dir.join("j.db");
    let j = open(&path);
    for c in 0..50 {
        append(&j, c * 100..c * 100 + 100);
    }
    j.append_record(RecordClass::Event, b"e".to_vec(), Wait::Commit)
        .unwrap();
    j.close().unwrap();
    assert!(fs::metadata(&path).unwrap().len() > 8 * 4096);
    path
}

/// Opens a damaged journal and checks that it was quarantined and that the fresh one works.
fn reopen_quarantined(path: &Path) -> (BlockingJournal, fieldlink_buffer::Quarantine) {
    let j = open(path);
    let q = j.quarantine().expect("a quarantine notice").clone();
    assert!(!q.moved_to.is_empty());
    for moved in &q.moved_to {
        assert!(moved.exists(), "{} missing", moved.display());
        assert!(moved.to_string_lossy().contains(".corrupt-"));
    }
    let s = j.stats().unwrap();
    let (saved_points, saved_records) = q
        .salvage
        .map_or((0, 0), |s| (s.points_saved, s.records_saved));
    assert_eq!(
        (s.telemetry.count, s.events.count),
        (saved_points, saved_records),
        "the fresh journal holds what was salvaged, nothing else"
    );
    drain_all(&j);
    append(&j, 0..10);
    assert_eq!(drain_all(&j).0, (0..10).collect::<Vec<_>>());
    (j, q)
}

fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn an_overwritten_header_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    overwrite(&path, 0, &[0xA5; 100]);
    let (_, q) = reopen_quarantined(&path);
    assert!(q.reason.contains("header"), "{}", q.reason);
    assert_eq!(q.moved_to.len(), 1);
    assert_eq!(fs::read(&q.moved_to[0]).unwrap()[..4], [0xA5; 4]);
}

#[test]
fn a_truncated_file_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2 / 4096 * 4096)
        .unwrap();
    reopen_quarantined(&path);
}

#[test]
fn a_file_cut_mid_page_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096 * 3 + 1000)
        .unwrap();
    reopen_quarantined(&path);
}

#[test]
fn a_damaged_page_inside_the_file_is_found_by_the_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    // Keep the header intact; scribble over the b-tree pages after it.
    let len = fs::metadata(&path).unwrap().len();
    for page in 1..len / 4096 {
        overwrite(&path, page * 4096, &[0x5A; 64]);
    }
    let (_, q) = reopen_quarantined(&path);
    assert!(!q.reason.contains("header"), "{}", q.reason);
}

#[test]
fn a_garbage_wal_is_moved_aside_and_the_main_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    fs::write(&wal, vec![0x33; 10_000]).unwrap();
    let j = open(&path);
    let q = j.quarantine().expect("a notice").clone();
    assert!(q.reason.contains("WAL"), "{}", q.reason);
    assert_eq!(q.moved_to.len(), 1);
    assert!(q.moved_to[0].to_string_lossy().ends_with("-wal"));
    let (nums, recs) = drain_all(&j);
    assert_eq!(nums.len(), 5_000, "checkpointed data survives");
    assert_eq!(recs.len(), 1);
}

#[test]
fn random_bytes_instead_of_a_database_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    fs::write(&path, b"not a database at all, just some text").unwrap();
    reopen_quarantined(&path);
}

#[test]
fn a_journal_from_a_newer_release_is_quarantined_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 999").unwrap();
    drop(conn);
    let (_, q) = reopen_quarantined(&path);
    assert!(q.reason.contains("newer"), "{}", q.reason);
    assert_eq!(q.salvage, None, "a newer file's rows are not ours to copy");
}

#[test]
fn repeated_quarantines_keep_every_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut moved = Vec::new();
    for i in 0..3u8 {
        fs::write(&path, vec![i; 5000]).unwrap();
        let (j, q) = reopen_quarantined(&path);
        j.close().unwrap();
        fs::remove_file(&path).unwrap();
        moved.extend(q.moved_to);
    }
    moved.sort();
    moved.dedup();
    assert_eq!(moved.len(), 3);
    for (i, m) in moved.iter().enumerate() {
        assert_eq!(fs::read(m).unwrap()[0], i as u8);
    }
}

#[test]
fn an_undecodable_segment_is_removed_and_counted_and_draining_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut cfg = config(&path);
    cfg.segment_points = 10;
    let j = BlockingJournal::open(cfg.clone()).unwrap();
    append(&j, 0..30);
    j.close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let changed = conn
        .execute(
            "UPDATE segments SET body = x'ffffffff' WHERE id = (SELECT min(id) + 1 FROM segments)",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let j = BlockingJournal::open(cfg).unwrap();
    assert!(j.quarantine().is_none());
    let (nums, _) = drain_all(&j);
    assert_eq!(nums, (0..10).chain(20..30).collect::<Vec<_>>());
    let s = j.stats().unwrap();
    assert_eq!(s.dropped.corrupt, 10);
    assert_eq!(s.telemetry.count, 0);
}

#[test]
fn a_checkpoint_interrupted_after_page_one_is_not_mistaken_for_truncation() {
    // Regression: the crash test once killed a checkpoint after it had written page 1 (whose
    // header gives the new, larger size) but before the pages that grow the file, and the
    // next open quarantined a sound journal. The WAL still holds every page then.
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let mut cfg = config(&live);
    cfg.sync_interval = std::time::Duration::from_secs(3600);
    let j = BlockingJournal::open(cfg).unwrap();
    for c in 0..50 {
        append(&j, c * 100..c * 100 + 100);
    }
    // Copy the files as a kill would leave them: everything still in the WAL.
    let copy = dir.path().join("j.db");
    fs::copy(&live, &copy).unwrap();
    let mut wal = live.as_os_str().to_owned();
    wal.push("-wal");
    let mut copy_wal = copy.as_os_str().to_owned();
    copy_wal.push("-wal");
    fs::copy(&wal, &copy_wal).unwrap();
    assert!(fs::metadata(&copy_wal).unwrap().len() > 0);
    // Page 1 as the interrupted checkpoint wrote it: a size far past the end of the file.
    let len = fs::metadata(&copy).unwrap().len();
    let claimed = (len / 4096 + 40) as u32;
    overwrite(&copy, 28, &claimed.to_be_bytes());
    let j2 = open(&copy);
    assert!(j2.quarantine().is_none(), "{:?}", j2.quarantine());
    assert_eq!(drain_all(&j2).0.len(), 5_000);
    j.close().unwrap();
}
