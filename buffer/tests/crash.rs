//! Crash test: a child process appends, reads and acknowledges, reporting each step on stdout
//! only after the journal call returned; the parent SIGKILLs it at a seeded random moment, then
//! reopens the journal and checks that every item whose append returned is present exactly once
//! unless its acknowledgement may have committed, and that nothing acknowledged came back.
//!
//! The child is this same binary, started with `FIELDLINK_CRASH_CHILD` set. Reproduce one run
//! with `FIELDLINK_CRASH_SEED=<seed>`; `FIELDLINK_CRASH_ITERATIONS` sets how many kills.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use fieldlink_buffer::{BatchBody, BatchLimits, BlockingJournal, JournalConfig, RecordClass, Wait};

const CHILD_ENV: &str = "FIELDLINK_CRASH_CHILD";

/// Small deterministic generator (xorshift64*), enough for schedules.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn journal_config(path: &Path) -> JournalConfig {
    let mut c = JournalConfig::new(path);
    c.segment_points = 64;
    c.sync_interval = Duration::from_millis(5);
    c
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    parent();
}

/// Works on the journal forever (until killed). Lines: `T a n` about to append items
/// `a..a+n`; `P a n` that append returned; `K x y z` about to acknowledge a batch holding those
/// items; `A` that acknowledgement returned.
fn child(spec: &str) {
    let mut parts = spec.split(',');
    let path = parts.next().unwrap().to_string();
    let seed: u64 = parts.next().unwrap().parse().unwrap();
    let mut next: u64 = parts.next().unwrap().parse().unwrap();
    let mut rng = Rng::new(seed);
    let j = BlockingJournal::open(journal_config(Path::new(&path))).unwrap();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        match rng.below(10) {
            0..=4 => {
                let n = 1 + rng.below(300);
                writeln!(out, "T {next} {n}").unwrap();
                out.flush().unwrap();
                let wait = if rng.below(8) == 0 {
                    Wait::Sync
                } else {
                    Wait::Commit
                };
                j.append_points(points(next..next + n), wait).unwrap();
                writeln!(out, "P {next} {n}").unwrap();
                out.flush().unwrap();
                next += n;
            }
            5 => {
                writeln!(out, "T {next} 1").unwrap();
                out.flush().unwrap();
                let class = if rng.below(2) == 0 {
                    RecordClass::Ack
                } else {
                    RecordClass::Event
                };
                j.append_record(class, next.to_le_bytes().to_vec(), Wait::Commit)
                    .unwrap();
                writeln!(out, "P {next} 1").unwrap();
                out.flush().unwrap();
                next += 1;
            }
            6..=8 => {
                let limits = BatchLimits {
                    max_points: 1 + rng.below(700) as usize,
                    max_bytes: 64 * 1024,
                };
                let Some(b) = j.next_batch(limits).unwrap() else {
                    continue;
                };
                let items = items_of(&b.body);
                let list: Vec<String> = items.iter().map(u64::to_string).collect();
                writeln!(out, "K {}", list.join(" ")).unwrap();
                out.flush().unwrap();
                assert!(j.ack(b.id).unwrap());
                writeln!(out, "A").unwrap();
                out.flush().unwrap();
            }
            _ => j.requeue_in_flight().unwrap(),
        }
    }
}

fn items_of(body: &BatchBody) -> Vec<u64> {
    match body {
        BatchBody::Telemetry { points, .. } => points.iter().map(number).collect(),
        BatchBody::Record { payload, .. } => {
            vec![u64::from_le_bytes(payload.as_slice().try_into().unwrap())]
        }
    }
}

/// What the parent knows about every item ever attempted.
#[derive(Default)]
struct Ledger {
    attempted: HashSet<u64>,
    committed: HashSet<u64>,
    maybe_acked: HashSet<u64>,
    acked: HashSet<u64>,
}

impl Ledger {
    /// Reads one child's complete lines (a line cut by the kill is ignored).
    fn read(&mut self, text: &str) {
        let mut pending_ack: Option<Vec<u64>> = None;
        for line in text.split_inclusive('\n') {
            let Some(line) = line.strip_suffix('\n') else {
                break;
            };
            let mut words = line.split(' ');
            let tag = words.next().unwrap();
            let nums: Vec<u64> = words.map(|w| w.parse().unwrap()).collect();
            match tag {
                "T" => self.attempted.extend(nums[0]..nums[0] + nums[1]),
                "P" => self.committed.extend(nums[0]..nums[0] + nums[1]),
                "K" => {
                    self.maybe_acked.extend(nums.iter().copied());
                    pending_ack = Some(nums);
                }
                "A" => self.acked.extend(pending_ack.take().unwrap()),
                other => panic!("unknown child line {other:?}"),
            }
        }
    }

    /// Checks the journal's content against what the children reported.
    fn check(&self, found: &[u64], seed: u64) {
        let mut counts: HashMap<u64, u32> = HashMap::new();
        for n in found {
            *counts.entry(*n).or_default() += 1;
        }
        for (n, c) in &counts {
            assert_eq!(*c, 1, "seed {seed}: item {n} present {c} times");
            assert!(
                self.attempted.contains(n),
                "seed {seed}: item {n} was never appended"
            );
            assert!(
                !self.acked.contains(n),
                "seed {seed}: acknowledged item {n} came back"
            );
        }
        for n in &self.committed {
            if !self.maybe_acked.contains(n) {
                assert!(
                    counts.contains_key(n),
                    "seed {seed}: committed item {n} is lost"
                );
            }
        }
    }
}

/// Everything in the journal, read without acknowledging (so it stays for the next child).
fn contents(path: &Path) -> Vec<u64> {
    let j = BlockingJournal::open(journal_config(path)).unwrap();
    if let Some(q) = j.quarantine() {
        panic!("a kill must never damage the file, but: {}", q.reason);
    }
    let mut found = Vec::new();
    while let Some(b) = j.next_batch(limits(5_000)).unwrap() {
        found.extend(items_of(&b.body));
    }
    j.close().unwrap();
    found
}

fn parent() {
    let iterations: u64 = std::env::var("FIELDLINK_CRASH_ITERATIONS")
        .ok()
        .map(|v| v.parse().unwrap())
        .unwrap_or(120);
    let only_seed: Option<u64> = std::env::var("FIELDLINK_CRASH_SEED")
        .ok()
        .map(|v| v.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let exe = std::env::current_exe().unwrap();
    let mut ledger = Ledger::default();
    let seeds: Vec<u64> = match only_seed {
        Some(s) => vec![s],
        None => (0..iterations).map(|i| 0xC0FFEE + i).collect(),
    };
    let mut mid_work = 0;
    for (i, seed) in seeds.iter().copied().enumerate() {
        let mut rng = Rng::new(seed ^ 0x5EED);
        let start = (i as u64 + 1) * 10_000_000;
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, format!("{},{seed},{start}", path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let mut r = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => text.push_str(&line),
                }
            }
            text
        });
        std::thread::sleep(Duration::from_millis(2 + rng.below(80)));
        child.kill().unwrap();
        child.wait().unwrap();
        let text = reader.join().unwrap();
        if !text.is_empty() {
            mid_work += 1;
        }
        ledger.read(&text);
        ledger.check(&contents(&path), seed);
    }
    assert!(
        mid_work * 2 > seeds.len(),
        "most children must be killed while working, only {mid_work} were"
    );
    println!(
        "crash: {} kills ({mid_work} mid-work), {} items committed, {} acknowledged: 1 passed, 0 failed",
        seeds.len(),
        ledger.committed.len(),
        ledger.acked.len()
    );
}
