//! Damage salvages what still reads: each case's saved count is checked exactly against what
//! was appended and against an independent oracle (every id looked up on its own), and saved
//! plus lost equals what the journal held.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::*;
use fieldlink_buffer::{BlockingJournal, Quarantine, RecordClass, Salvage, Wait};

const POINTS: u64 = 7_750;

/// A closed journal holding 7,750 points (155 cycles of 50) and 3 events, all checkpointed.
fn filled(dir: &Path) -> PathBuf {
    let path = dir.join("j.db");
    let j = open(&path);
    for c in 0..POINTS / 50 {
        append(&j, c * 50..c * 50 + 50);
        if c % 60 == 0 {
            j.append_record(
                RecordClass::Event,
                format!("e{c}").into_bytes(),
                Wait::Commit,
            )
            .unwrap();
        }
    }
    j.close().unwrap();
    path
}

fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

/// The points a brute-force reader gets out of a damaged copy: every segment id from 1 to the
/// largest ever written looked up on its own, counted when it reads.
fn oracle(damaged: &Path, max_id: i64) -> u64 {
    let copy = damaged.with_extension("oracle");
    fs::copy(damaged, &copy).unwrap();
    let conn =
        rusqlite::Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    // A file shorter than its header says is refused whole unless the schema is writable.
    conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
    let mut total = 0u64;
    for id in 1..=max_id {
        let got: rusqlite::Result<i64> =
            conn.query_row("SELECT points FROM segments WHERE id = ?1", [id], |r| {
                r.get(0)
            });
        if let Ok(n) = got {
            total += n as u64;
        }
    }
    total
}

fn max_segment(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT max(id) FROM segments", [], |r| r.get(0))
        .unwrap()
}

/// Opens the damaged journal; checks the notice against what drains from the fresh journal.
fn reopen(path: &Path) -> (BlockingJournal, Quarantine, Salvage, Vec<u64>) {
    let j = open(path);
    let q = j.quarantine().expect("a notice").clone();
    let s = q.salvage.expect("a salvage");
    for moved in &q.moved_to {
        assert!(moved.exists(), "{} missing", moved.display());
    }
    let (nums, recs) = drain_all(&j);
    assert_eq!(nums.len() as u64, s.points_saved, "{}", q.summary());
    assert_eq!(recs.len() as u64, s.records_saved);
    assert!(
        nums.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates"
    );
    assert!(nums.iter().all(|n| *n < POINTS));
    assert_eq!(
        s.points_saved + s.points_lost.unwrap(),
        POINTS,
        "{}",
        q.summary()
    );
    assert_eq!(s.records_saved + s.records_lost.unwrap(), 3);
    assert_eq!(j.stats().unwrap().dropped.corrupt, s.points_lost.unwrap());
    println!("{}", q.summary());
    (j, q, s, nums)
}

#[test]
fn a_truncated_file_keeps_the_pages_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    let max_id = max_segment(&path);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len * 3 / 4 / 4096 * 4096)
        .unwrap();
    let expected = oracle(&path, max_id);
    let (_, _, s, _) = reopen(&path);
    assert_eq!(s.points_saved, expected);
    // The first eight pages are the schema and the tables' roots; the rest is data.
    assert!(s.points_saved >= POINTS / 3, "{s:?}");
    assert!(s.points_lost.unwrap() > 0);
}

#[test]
fn one_overwritten_page_in_the_middle_loses_only_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    let max_id = max_segment(&path);
    let pages = fs::metadata(&path).unwrap().len() / 4096;
    overwrite(&path, pages / 2 * 4096, &[0x5A; 4096]);
    let expected = oracle(&path, max_id);
    let (_, _, s, nums) = reopen(&path);
    assert_eq!(s.points_saved, expected);
    // One 4 KiB page holds about fifteen segments of 50 points.
    assert!(s.points_lost.unwrap() <= 800, "{s:?}");
    assert!(nums.contains(&0) && nums.contains(&(POINTS - 1)));
}

#[test]
fn a_garbage_wal_is_set_aside_and_the_checkpointed_file_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    fs::write(&wal, vec![0x33; 10_000]).unwrap();
    let j = open(&path);
    let q = j.quarantine().expect("a notice").clone();
    assert!(q.reason.contains("WAL"), "{}", q.reason);
    assert_eq!(q.salvage, None, "the main file was sound");
    let (nums, recs) = drain_all(&j);
    assert_eq!(nums, (0..POINTS).collect::<Vec<_>>());
    assert_eq!(recs.len(), 3);
}

#[test]
fn rows_still_in_the_wal_are_salvaged_with_the_main_file() {
    // Damage in the main file while the newest commits are only in the WAL (a killed agent):
    // salvage reads the WAL too.
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    let mut cfg = config(&path);
    cfg.sync_interval = std::time::Duration::from_secs(3600);
    let j = BlockingJournal::open(cfg).unwrap();
    append(&j, POINTS..POINTS + 50);
    let copy = dir.path().join("k.db");
    fs::copy(&path, &copy).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut copy_wal = copy.as_os_str().to_owned();
    copy_wal.push("-wal");
    fs::copy(&wal, &copy_wal).unwrap();
    j.close().unwrap();
    let pages = fs::metadata(&copy).unwrap().len() / 4096;
    overwrite(&copy, pages / 2 * 4096, &[0x5A; 4096]);
    let j = open(&copy);
    let q = j.quarantine().expect("a notice").clone();
    let s = q.salvage.expect("salvaged");
    let (nums, _) = drain_all(&j);
    assert_eq!(nums.len() as u64, s.points_saved);
    assert!(
        nums.contains(&POINTS),
        "the WAL-only cycle was salvaged: {}",
        q.summary()
    );
    assert_eq!(s.points_saved + s.points_lost.unwrap(), POINTS + 50);
}

#[test]
fn a_zero_length_journal_where_one_existed_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let j = open(&path);
    let q = j
        .quarantine()
        .expect("a zero-length journal is reported")
        .clone();
    assert!(q.reason.contains("zero-length"), "{}", q.reason);
    assert_eq!(q.moved_to.len(), 1);
    assert_eq!(fs::metadata(&q.moved_to[0]).unwrap().len(), 0);
    append(&j, 0..10);
    assert_eq!(drain_all(&j).0, (0..10).collect::<Vec<_>>());
    j.close().unwrap();
    assert!(open(&path).quarantine().is_none(), "reported once");
}

#[test]
fn a_missing_journal_where_one_existed_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    fs::remove_file(&path).unwrap();
    let j = open(&path);
    let q = j
        .quarantine()
        .expect("a missing journal is reported")
        .clone();
    assert!(q.reason.contains("missing"), "{}", q.reason);
    assert_eq!(q.salvage, None);
    j.close().unwrap();
    assert!(open(&path).quarantine().is_none(), "reported once");
}

#[test]
fn a_first_start_is_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    assert!(open(&path).quarantine().is_none());
    fs::write(dir.path().join("k.db"), b"").unwrap();
    assert!(open(&dir.path().join("k.db")).quarantine().is_none());
}

#[test]
fn a_salvage_interrupted_before_its_rename_is_completed_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    // As a crash between quarantine and rename leaves it: no journal, a finished salvage.
    let mut salvage = path.as_os_str().to_owned();
    salvage.push(".salvage");
    fs::rename(&path, &salvage).unwrap();
    let j = open(&path);
    let q = j.quarantine().expect("a notice").clone();
    assert!(q.reason.contains("interrupted"), "{}", q.reason);
    assert_eq!(drain_all(&j).0.len() as u64, POINTS);
}

#[test]
fn a_stale_salvage_beside_a_sound_journal_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path());
    let mut salvage = path.as_os_str().to_owned();
    salvage.push(".salvage");
    fs::write(&salvage, b"half written").unwrap();
    let j = open(&path);
    assert!(j.quarantine().is_none());
    assert!(!Path::new(&salvage).exists());
    assert_eq!(drain_all(&j).0.len() as u64, POINTS);
}
