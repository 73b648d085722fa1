//! Journal figures for goal A5, printed rather than asserted.
//!
//! 1. Append and drain throughput, points/s, batches of 1,000 points, in each durability mode;
//!    `NORMAL` is the baseline and `FULL` is quoted as a ratio of it.
//! 2. A 10-million-point backlog: bytes on disk per point, the time to reopen it (the open-time
//!    integrity check reads the whole file), and RSS sampled from
//!    `/proc/self/status` every million points while appending and while draining (it must stay
//!    flat: the journal streams from disk and never loads the backlog).
//! 3. fsyncs per second at default settings under the reference workload's rate (1,000 points/s
//!    in 10 commits/s, drained as it arrives): the journal's own sync counter, and, when
//!    `strace` is installed, the fsync/fdatasync system calls it actually made.
//!
//! Environment: `FIELDLINK_BENCH_BACKLOG` (points, default 10,000,000),
//! `FIELDLINK_BENCH_FSYNC_SECS` (default 10).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fieldlink_buffer::{BatchLimits, BlockingJournal, Durability, JournalConfig, Stats, Wait};
use fieldlink_protocol::{Ident, Point, Quality, Value};

const BATCH: usize = 1_000;
const FSYNC_CHILD_ENV: &str = "FIELDLINK_BENCH_FSYNC_CHILD";

/// The reference workload's shape: 10 devices × 100 registers per cycle; even registers are
/// integers, odd ones scaled readings that need a full f64.
struct Workload {
    devices: Vec<Ident>,
    metrics: Vec<Ident>,
    cycle: i64,
}

impl Workload {
    fn new() -> Self {
        Workload {
            devices: (0..10)
                .map(|d| Ident::new(&format!("meter-{d:02}")).unwrap())
                .collect(),
            metrics: (0..100)
                .map(|m| Ident::new(&format!("reg-{m:03}")).unwrap())
                .collect(),
            cycle: 0,
        }
    }

    /// `n` points of the next cycle(s).
    fn points(&mut self, n: usize) -> Vec<Point> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let ts_ms = 1_790_000_000_000 + self.cycle * 1000;
            for d in &self.devices {
                for (i, m) in self.metrics.iter().enumerate() {
                    if out.len() == n {
                        break;
                    }
                    let raw = (self.cycle * 7 + i as i64 * 13) % 4096;
                    let value = if i % 2 == 0 {
                        Value::Number(raw as f64)
                    } else {
                        Value::Number(230.0 + raw as f64 * 0.1)
                    };
                    out.push(Point {
                        device: d.clone(),
                        metric: m.clone(),
                        ts_ms,
                        value,
                        quality: Quality::Good,
                    });
                }
            }
            self.cycle += 1;
        }
        out
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn config(path: &Path, durability: Durability) -> JournalConfig {
    let mut c = JournalConfig::new(path);
    c.durability = durability;
    c.caps.max_bytes = 64 << 30;
    c
}

fn limits() -> BatchLimits {
    BatchLimits {
        max_points: BATCH,
        max_bytes: 1 << 20,
    }
}

/// Points/s appending `batches` batches of 1,000, then draining them.
fn throughput(durability: Durability, batches: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let j = BlockingJournal::open(config(&dir.path().join("j.db"), durability)).unwrap();
    let mut w = Workload::new();
    let input: Vec<Vec<Point>> = (0..batches).map(|_| w.points(BATCH)).collect();
    let t = Instant::now();
    for p in input {
        j.append_points(p, Wait::Commit).unwrap();
    }
    let append = (batches * BATCH) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut drained = 0;
    while let Some(b) = j.next_batch(limits()).unwrap() {
        drained += b.point_count();
        j.ack(b.id).unwrap();
    }
    let drain = drained as f64 / t.elapsed().as_secs_f64();
    assert_eq!(drained, batches * BATCH);
    j.close().unwrap();
    (append, drain)
}

fn backlog(points: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = BlockingJournal::open(config(&path, Durability::Normal)).unwrap();
    let mut w = Workload::new();
    let every = (points / 10).max(BATCH);
    let mut rss_append = Vec::new();
    let t = Instant::now();
    for i in 0..points / BATCH {
        j.append_points(w.points(BATCH), Wait::Commit).unwrap();
        if ((i + 1) * BATCH).is_multiple_of(every) {
            rss_append.push(rss_kib());
        }
    }
    let append_secs = t.elapsed().as_secs_f64();
    j.sync().unwrap();
    let s: Stats = j.stats().unwrap();
    let per_point_disk = s.file_bytes as f64 / points as f64;
    let per_point_stored = s.stored_bytes as f64 / points as f64;
    let db_only = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    // Reopening runs the integrity check over the whole file.
    j.close().unwrap();
    let t = Instant::now();
    let j = BlockingJournal::open(config(&path, Durability::Normal)).unwrap();
    let reopen_secs = t.elapsed().as_secs_f64();
    let mut rss_drain = Vec::new();
    let t = Instant::now();
    let mut drained = 0;
    while let Some(b) = j.next_batch(limits()).unwrap() {
        drained += b.point_count();
        j.ack(b.id).unwrap();
        if drained.is_multiple_of(every) {
            rss_drain.push(rss_kib());
        }
    }
    let drain_secs = t.elapsed().as_secs_f64();
    assert_eq!(drained, points);
    let fmt = |v: &[u64]| {
        v.iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("backlog of {points} points (NORMAL):");
    println!(
        "  bytes on disk per point: {per_point_disk:.2} (database + WAL {} bytes; database alone {:.2} B/point; stored-record accounting {per_point_stored:.2} B/point)",
        s.file_bytes,
        db_only as f64 / points as f64
    );
    println!(
        "  append {:.0} points/s, drain {:.0} points/s over the whole backlog",
        points as f64 / append_secs,
        points as f64 / drain_secs
    );
    println!("  reopen with the backlog (quick_check included): {reopen_secs:.2} s");
    println!(
        "  RSS MiB while appending, every {every} points: {}",
        fmt(&rss_append)
    );
    println!(
        "  RSS MiB while draining,  every {every} points: {}",
        fmt(&rss_drain)
    );
    j.close().unwrap();
}

/// Default settings, 1,000 points/s in 10 commits/s, drained as it arrives, for `secs`.
fn steady(secs: u64, durability: Durability) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let j = BlockingJournal::open(config(&dir.path().join("j.db"), durability)).unwrap();
    let mut w = Workload::new();
    let start = Instant::now();
    let mut commits = 0;
    for tick in 0..secs * 10 {
        j.append_points(w.points(100), Wait::Commit).unwrap();
        commits += 1;
        while let Some(b) = j.next_batch(limits()).unwrap() {
            j.ack(b.id).unwrap();
            commits += 1;
        }
        let due = start + Duration::from_millis((tick + 1) * 100);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let syncs = j.stats().unwrap().syncs;
    j.close().unwrap();
    (commits, syncs)
}

fn fsync_child() {
    let secs: u64 = std::env::var("FIELDLINK_BENCH_FSYNC_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mode = match std::env::var(FSYNC_CHILD_ENV).as_deref() {
        Ok("full") => Durability::Full,
        _ => Durability::Normal,
    };
    let (commits, syncs) = steady(secs, mode);
    println!(
        "  {mode:?}: {secs} s, {:.1} commits/s, journal syncs {:.2}/s",
        commits as f64 / secs as f64,
        syncs as f64 / secs as f64
    );
}

/// Runs the steady workload in a child under `strace -c` and returns the fsync-family count.
fn strace_fsyncs(mode: &str) -> Option<(u64, String)> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new("strace")
        .args([
            "-f",
            "-c",
            "-e",
            "trace=fsync,fdatasync,sync_file_range,msync",
        ])
        .arg(exe)
        .env(FSYNC_CHILD_ENV, mode)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let summary = String::from_utf8_lossy(&out.stderr);
    let mut total = 0;
    for line in summary.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 5
            && ["fsync", "fdatasync", "sync_file_range", "msync"].contains(cols.last()?)
        {
            total += cols[3].parse::<u64>().ok()?;
        }
    }
    Some((
        total,
        String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
    ))
}

fn main() {
    if std::env::var(FSYNC_CHILD_ENV).is_ok() {
        fsync_child();
        return;
    }
    let backlog_points: usize = std::env::var("FIELDLINK_BENCH_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let secs: u64 = std::env::var("FIELDLINK_BENCH_FSYNC_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);

    println!("journal throughput, batches of {BATCH} points:");
    let batches = 500;
    let (na, nd) = throughput(Durability::Normal, batches);
    let (fa, fd) = throughput(Durability::Full, batches);
    println!("  NORMAL  append {na:>10.0} points/s   drain {nd:>10.0} points/s   (baseline)");
    println!(
        "  FULL    append {fa:>10.0} points/s   drain {fd:>10.0} points/s   ({:.2}x / {:.2}x of NORMAL)",
        fa / na,
        fd / nd
    );

    backlog(backlog_points);

    println!("fsyncs at default settings, 1,000 points/s in 10 appends/s, drained as it arrives:");
    for mode in ["normal", "full"] {
        match strace_fsyncs(mode) {
            Some((n, child_line)) => {
                println!("{child_line}");
                println!(
                    "  {mode}: fsync-family system calls (strace -f -c): {n} = {:.2}/s",
                    n as f64 / secs as f64
                );
            }
            None => {
                let (commits, syncs) = steady(
                    secs,
                    if mode == "full" {
                        Durability::Full
                    } else {
                        Durability::Normal
                    },
                );
                println!(
                    "  {mode}: strace unavailable; {:.1} commits/s, journal syncs {:.2}/s",
                    commits as f64 / secs as f64,
                    syncs as f64 / secs as f64
                );
            }
        }
    }
}
