//! A journal that cannot be written says which file and why: a new journal in a read-only
//! directory, and an existing one on a file system that became read-only. The read-only file
//! system is a real one (a tmpfs remounted read-only, which stops root too); where mounting is
//! refused, a directory without write permission (which stops anyone but root).

mod common;

use common::*;
use fieldlink_buffer::{BlockingJournal, JournalError};
use fieldlink_testkit::fs::ReadOnlyDir;

fn open_err(dir: &std::path::Path) -> (JournalError, std::path::PathBuf) {
    let path = dir.join("journal.db");
    match BlockingJournal::open(config(&path)) {
        Ok(_) => panic!("a journal opened in read-only {}", dir.display()),
        Err(e) => (e, path),
    }
}

fn assert_names_file_and_reason(e: &JournalError, path: &std::path::Path, ro: &ReadOnlyDir) {
    let text = e.to_string();
    assert!(text.contains(path.to_str().unwrap()), "{text}");
    assert!(text.contains("open"), "{text}");
    let reason = match ro {
        ReadOnlyDir::Mounted(_) => "Read-only file system",
        ReadOnlyDir::Chmod(_) => "Permission denied",
    };
    assert!(text.contains(reason), "{text}");
}

#[test]
fn a_new_journal_in_a_read_only_directory_names_the_directory() {
    let ro = match ReadOnlyDir::with(|_| {}) {
        Ok(ro) => ro,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let (e, path) = open_err(&ro.path());
    assert_names_file_and_reason(&e, &path, &ro);
    assert!(e.to_string().contains("directory"), "{e}");
}

#[test]
fn an_existing_journal_on_a_read_only_file_system_names_the_file() {
    let ro = match ReadOnlyDir::with(|dir| {
        let j = open(&dir.join("journal.db"));
        append(&j, 0..100);
        j.close().unwrap();
    }) {
        Ok(ro) => ro,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let (e, path) = open_err(&ro.path());
    assert_names_file_and_reason(&e, &path, &ro);
    assert!(!e.to_string().contains("directory"), "{e}");
}
