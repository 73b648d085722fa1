//! The thread that owns the SQLite connection.
//!
//! SQLite calls block, and the connection must not be shared, so one dedicated thread owns the
//! [`Store`] and serves requests from a bounded tokio channel, answering each on a oneshot. The
//! thread runs a small current-thread runtime only for its timer: every `sync_interval` it
//! applies the age cap and syncs if anything was committed. Appends that wait for a sync are
//! answered after the queue has been drained, so appenders arriving together share one fsync.

use std::time::Duration;

use fieldlink_protocol::Point;
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use crate::batch::{Appended, Batch, BatchId, RecordClass};
use crate::config::{BatchLimits, Durability, JournalConfig, Wait};
use crate::error::{JournalError, Result};
use crate::integrity::Quarantine;
use crate::stats::Stats;
use crate::store::Store;

/// Requests drained per wake-up before sync waiters are answered.
const BURST: usize = 64;

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

pub(crate) enum Request {
    AppendPoints {
        points: Vec<Point>,
        wait: Wait,
        reply: Reply<Appended>,
    },
    AppendRecord {
        class: RecordClass,
        payload: Vec<u8>,
        /// For a drop report: the drop total it covers.
        reported: Option<u64>,
        wait: Wait,
        reply: Reply<Appended>,
    },
    NextBatch {
        limits: BatchLimits,
        reply: Reply<Option<Batch>>,
    },
    Ack {
        id: BatchId,
        reply: Reply<bool>,
    },
    Requeue {
        reply: Reply<()>,
    },
    Sync {
        reply: Reply<()>,
    },
    Stats {
        reply: Reply<Stats>,
    },
    SetFileLimit {
        bytes: Option<u64>,
        reply: Reply<()>,
    },
    Close {
        reply: Reply<()>,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("journal request")
    }
}

/// Starts the owner thread; the open result (with any quarantine notice) arrives on `opened`.
pub(crate) fn spawn(
    config: JournalConfig,
    requests: mpsc::Receiver<Request>,
    opened: oneshot::Sender<Result<Option<Quarantine>>>,
) -> Result<()> {
    std::thread::Builder::new()
        .name("fieldlink-journal".to_string())
        .spawn(move || run(config, requests, opened))
        .map(|_| ())
        .map_err(|source| JournalError::Io {
            path: "fieldlink-journal thread".into(),
            source,
        })
}

fn run(
    config: JournalConfig,
    requests: mpsc::Receiver<Request>,
    opened: oneshot::Sender<Result<Option<Quarantine>>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(source) => {
            let _ = opened.send(Err(JournalError::Io {
                path: "fieldlink-journal runtime".into(),
                source,
            }));
            return;
        }
    };
    let store = match Store::open(&config) {
        Ok((store, notice)) => {
            let _ = opened.send(Ok(notice));
            store
        }
        Err(e) => {
            let _ = opened.send(Err(e.during(&config.path, "open")));
            return;
        }
    };
    let mut owner = Owner {
        store,
        path: config.path.clone(),
        syncs_on_commit: config.durability == Durability::Full,
    };
    let close = runtime.block_on(owner.serve(requests, config.sync_interval));
    let result = owner
        .store
        .sync()
        .map_err(|e| e.during(&config.path, "sync"));
    drop(owner);
    if let Some(reply) = close {
        let _ = reply.send(result);
    }
}

struct Owner {
    store: Store,
    /// The journal file, for errors.
    path: std::path::PathBuf,
    /// Durability FULL: a commit already synced the WAL, so sync waiters need nothing more.
    syncs_on_commit: bool,
}

/// A sync waiter whose commit succeeded, with what the append reported.
type SyncWaiter = (Reply<Appended>, Appended);

impl Owner {
    /// Serves until every handle is gone or one asks to close.
    async fn serve(
        &mut self,
        mut requests: mpsc::Receiver<Request>,
        interval: Duration,
    ) -> Option<Reply<()>> {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut waiting: Vec<SyncWaiter> = Vec::new();
        loop {
            // Unbiased on purpose: under a steady stream of requests the timer still gets its
            // turn, so the sync interval holds under load too.
            tokio::select! {
                req = requests.recv() => {
                    let req = req?;
                    let mut next = Some(req);
                    let mut served = 0;
                    while let Some(req) = next.take() {
                        if let Some(close) = self.handle(req, &mut waiting) {
                            self.answer_sync_waiters(&mut waiting);
                            return Some(close);
                        }
                        served += 1;
                        if served < BURST {
                            next = requests.try_recv().ok();
                        }
                    }
                    self.answer_sync_waiters(&mut waiting);
                }
                _ = ticker.tick() => {
                    if let Err(e) = self.store.tick() {
                        let e = e.during(&self.path, "upkeep");
                        tracing::warn!(error = %e, "journal upkeep failed, retrying next interval");
                    }
                }
            }
        }
    }

    fn answer_sync_waiters(&mut self, waiting: &mut Vec<SyncWaiter>) {
        if waiting.is_empty() {
            return;
        }
        let result = if self.syncs_on_commit {
            Ok(())
        } else {
            self.store.sync().map_err(|e| e.during(&self.path, "sync"))
        };
        for (reply, appended) in waiting.drain(..) {
            let _ = reply.send(match &result {
                Ok(()) => Ok(appended),
                Err(e) => Err(JournalError::NotSynced(e.to_string())),
            });
        }
    }

    /// Serves one request; a close request is handed back to the caller.
    fn handle(&mut self, req: Request, waiting: &mut Vec<SyncWaiter>) -> Option<Reply<()>> {
        let store = &mut self.store;
        let path = self.path.as_path();
        let at = |op| move |e: JournalError| e.during(path, op);
        match req {
            Request::AppendPoints {
                points,
                wait,
                reply,
            } => finish_append(
                store.append_points(&points).map_err(at("append points")),
                wait,
                reply,
                waiting,
            ),
            Request::AppendRecord {
                class,
                payload,
                reported,
                wait,
                reply,
            } => finish_append(
                store
                    .append_record(class, &payload, reported)
                    .map_err(at("append a record")),
                wait,
                reply,
                waiting,
            ),
            Request::NextBatch { limits, reply } => {
                let _ = reply.send(store.next_batch(limits).map_err(at("read the next batch")));
            }
            Request::Ack { id, reply } => {
                let _ = reply.send(store.ack(id).map_err(at("delete an acknowledged batch")));
            }
            Request::Requeue { reply } => {
                store.requeue_in_flight();
                let _ = reply.send(Ok(()));
            }
            Request::Sync { reply } => {
                let _ = reply.send(store.tick().map_err(at("sync")));
            }
            Request::Stats { reply } => {
                let _ = reply.send(store.stats().map_err(at("read statistics")));
            }
            Request::SetFileLimit { bytes, reply } => {
                let _ = reply.send(
                    store
                        .set_file_limit(bytes)
                        .map_err(at("set the file limit")),
                );
            }
            Request::Close { reply } => return Some(reply),
        }
        None
    }
}

fn finish_append(
    result: Result<Appended>,
    wait: Wait,
    reply: Reply<Appended>,
    waiting: &mut Vec<SyncWaiter>,
) {
    match (result, wait) {
        (Ok(appended), Wait::Sync) => waiting.push((reply, appended)),
        (result, _) => {
            let _ = reply.send(result);
        }
    }
}
