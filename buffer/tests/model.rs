//! Model-based property test: random appends, reads, acknowledgements, requeues and restarts
//! against an in-memory model of what the journal must hold and hand out.
//!
//! Checked after every step: nothing appended and committed is lost, nothing acknowledged comes
//! back, a telemetry batch is the next run of its region (backlog or live) in append order,
//! records come out per class in order and before telemetry, the historical flag is right, and
//! the depth the journal reports matches the model.

mod common;

use std::collections::{HashMap, VecDeque};

use common::*;
use fieldlink_buffer::{BatchId, BlockingJournal, JournalConfig, RecordClass, Wait};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(u16),
    Record(bool, u8),
    Next(u16),
    Ack(usize),
    StaleAck(usize),
    Requeue,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u16..120).prop_map(Op::Append),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(a, b)| Op::Record(a, b)),
        5 => (1u16..150).prop_map(Op::Next),
        4 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::StaleAck),
        1 => Just(Op::Requeue),
        1 => Just(Op::Restart),
    ]
}

/// A stored telemetry point in the model: its number and whether it is backlog.
#[derive(Debug, Clone, Copy)]
struct Stored {
    n: u64,
    backlog: bool,
}

#[derive(Default)]
struct Model {
    telemetry: Vec<Stored>,
    records: [VecDeque<Vec<u8>>; 2],
    in_flight: HashMap<BatchId, Content>,
    done: Vec<BatchId>,
    next_n: u64,
}

impl Model {
    fn flying_points(&self) -> Vec<u64> {
        self.in_flight
            .values()
            .filter_map(|c| match c {
                Content::Points(p, _) => Some(p.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn flying_records(&self, class: RecordClass) -> usize {
        self.in_flight
            .values()
            .filter(|c| matches!(c, Content::Record(k, _) if *k == class))
            .count()
    }

    fn forget_flight(&mut self) {
        let ids: Vec<_> = self.in_flight.keys().copied().collect();
        self.done.extend(ids);
        self.in_flight.clear();
        for s in &mut self.telemetry {
            s.backlog = true;
        }
    }
}

fn class_of(ack: bool) -> RecordClass {
    if ack {
        RecordClass::Ack
    } else {
        RecordClass::Event
    }
}

fn run(ops: Vec<Op>, share: f64, segment_points: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let cfg = || {
        let mut c = JournalConfig::new(&path);
        c.backfill_share = share;
        c.segment_points = segment_points;
        c
    };
    let mut j = Some(BlockingJournal::open(cfg()).unwrap());
    let mut m = Model::default();
    for op in ops {
        let jr = j.as_ref().unwrap();
        match op {
            Op::Append(k) => {
                let range = m.next_n..m.next_n + u64::from(k);
                m.next_n = range.end;
                jr.append_points(points(range.clone()), Wait::Commit)
                    .unwrap();
                m.telemetry
                    .extend(range.map(|n| Stored { n, backlog: false }));
            }
            Op::Record(ack, b) => {
                let payload = vec![b, (m.next_n % 251) as u8];
                m.next_n += 1;
                jr.append_record(class_of(ack), payload.clone(), Wait::Commit)
                    .unwrap();
                m.records[usize::from(!ack)].push_back(payload);
            }
            Op::Next(max) => {
                let got = jr.next_batch(limits(usize::from(max))).unwrap();
                check_next(
                    &m,
                    got.as_ref().map(|b| (b.id, content(b))),
                    max,
                    share,
                    segment_points,
                )?;
                if let Some(b) = got {
                    m.in_flight.insert(b.id, content(&b));
                }
            }
            Op::Ack(i) => {
                if m.in_flight.is_empty() {
                    continue;
                }
                let mut ids: Vec<_> = m.in_flight.keys().copied().collect();
                ids.sort();
                let id = ids[i % ids.len()];
                prop_assert!(jr.ack(id).unwrap());
                match m.in_flight.remove(&id).unwrap() {
                    Content::Points(p, _) => m.telemetry.retain(|s| !p.contains(&s.n)),
                    Content::Record(class, payload) => {
                        let q = &mut m.records[usize::from(class == RecordClass::Event)];
                        let at = q.iter().position(|x| *x == payload).unwrap();
                        q.remove(at);
                    }
                }
                m.done.push(id);
            }
            Op::StaleAck(i) => {
                if !m.done.is_empty() {
                    let id = m.done[i % m.done.len()];
                    prop_assert!(!jr.ack(id).unwrap(), "stale ack {id} accepted");
                }
            }
            Op::Requeue => {
                jr.requeue_in_flight().unwrap();
                m.forget_flight();
            }
            Op::Restart => {
                j.take().unwrap().close().unwrap();
                j = Some(BlockingJournal::open(cfg()).unwrap());
                m.forget_flight();
                // Batch ids restart with the process; old ones are meaningless now.
                m.done.clear();
            }
        }
        let s = j.as_ref().unwrap().stats().unwrap();
        prop_assert_eq!(s.telemetry.count, m.telemetry.len() as u64);
        prop_assert_eq!(s.acks.count, m.records[0].len() as u64);
        prop_assert_eq!(s.events.count, m.records[1].len() as u64);
        prop_assert_eq!(s.in_flight_batches, m.in_flight.len());
    }
    // Everything still stored comes out after a restart, exactly once.
    j.take().unwrap().close().unwrap();
    let jr = BlockingJournal::open(cfg()).unwrap();
    let (nums, recs) = drain_all(&jr);
    let mut want: Vec<u64> = m.telemetry.iter().map(|s| s.n).collect();
    let mut got = nums.clone();
    want.sort_unstable();
    got.sort_unstable();
    prop_assert_eq!(got, want);
    let want_recs: Vec<_> = m.records[0]
        .iter()
        .map(|p| (RecordClass::Ack, p.clone()))
        .chain(m.records[1].iter().map(|p| (RecordClass::Event, p.clone())))
        .collect();
    prop_assert_eq!(recs, want_recs);
    Ok(())
}

fn check_next(
    m: &Model,
    got: Option<(BatchId, Content)>,
    max: u16,
    share: f64,
    segment_points: usize,
) -> Result<(), TestCaseError> {
    for (i, class) in [RecordClass::Ack, RecordClass::Event]
        .into_iter()
        .enumerate()
    {
        let flying = m.flying_records(class);
        if m.records[i].len() > flying {
            // Records of a class are handed out in order, so the flying ones are the first.
            let want = Content::Record(class, m.records[i][flying].clone());
            prop_assert_eq!(got.map(|g| g.1), Some(want));
            return Ok(());
        }
    }
    let flying = m.flying_points();
    let waiting: Vec<Stored> = m
        .telemetry
        .iter()
        .filter(|s| !flying.contains(&s.n))
        .copied()
        .collect();
    let Some((_, content)) = got else {
        prop_assert!(
            waiting.is_empty(),
            "None while {} points wait",
            waiting.len()
        );
        return Ok(());
    };
    let Content::Points(batch, historical) = content else {
        return Err(TestCaseError::fail("record batch while no record waits"));
    };
    let region: Vec<u64> = waiting
        .iter()
        .filter(|s| s.backlog == historical)
        .map(|s| s.n)
        .collect();
    prop_assert!(!batch.is_empty());
    prop_assert!(batch.len() <= usize::from(max).max(segment_points));
    prop_assert_eq!(&batch[..], &region[..batch.len().min(region.len())]);
    let live_waiting = waiting.iter().any(|s| !s.backlog);
    let backlog_waiting = waiting.iter().any(|s| s.backlog);
    if share == 0.0 && live_waiting {
        prop_assert!(
            !historical,
            "backlog sent while live points wait at share 0"
        );
    }
    if share == 1.0 && backlog_waiting {
        prop_assert!(historical, "live sent while backlog waits at share 1");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_journal_behaves_like_its_model(
        ops in proptest::collection::vec(op(), 1..60),
        share in prop_oneof![Just(0.0), Just(0.5), Just(1.0)],
        segment_points in 1usize..40,
    ) {
        run(ops, share, segment_points)?;
    }
}
