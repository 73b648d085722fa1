//! Which tokens are revoked, for connections that outlive the request that authenticated them
//! (WebSockets): a revoked token's connections close within [`Revocations::every`].
//!
//! One poller per token store reads the ids of revoked tokens from the database every
//! `every` (so a revocation by another instance sharing the database, or by
//! `fieldlink-cloud token revoke`, is seen) and publishes the set on a `watch` channel when it
//! changes; a revocation through this instance's API is published at once. The poller runs
//! only while some connection watches: it starts with the first one and ends after the last
//! one has gone. Tokens are never deleted, so the set only grows, and it is one small query
//! per interval whatever the number of connections.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::records::{DbError, Fields, RecordsDb};

/// The set of revoked token ids.
pub type Revoked = Arc<HashSet<String>>;

/// The revoked tokens, as last read. Cheap to clone.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<RecordsDb>,
    tx: watch::Sender<Revoked>,
    polling: Mutex<bool>,
}

impl Revocations {
    pub fn new(db: Arc<RecordsDb>) -> Revocations {
        Revocations {
            inner: Arc::new(Inner {
                db,
                tx: watch::Sender::new(Arc::new(HashSet::new())),
                polling: Mutex::new(false),
            }),
        }
    }

    /// A receiver of the revoked set, read again every `every` while any receiver is alive.
    /// Must be called within a Tokio runtime.
    pub fn watch(&self, every: Duration) -> watch::Receiver<Revoked> {
        let rx = self.inner.tx.subscribe();
        let start = match self.inner.polling.lock() {
            Ok(mut p) if !*p => {
                *p = true;
                true
            }
            _ => false,
        };
        if start {
            tokio::spawn(poll(self.inner.clone(), every));
        }
        rx
    }

    /// Publishes a revocation made here, without waiting for the next read.
    pub fn revoked(&self, token_id: &str) {
        self.inner.tx.send_if_modified(|set| {
            if set.contains(token_id) {
                return false;
            }
            let mut next = HashSet::clone(set);
            next.insert(token_id.to_string());
            *set = Arc::new(next);
            true
        });
    }
}

async fn poll(inner: Arc<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        {
            let Ok(mut p) = inner.polling.lock() else {
                return;
            };
            if inner.tx.receiver_count() == 0 {
                *p = false;
                return;
            }
        }
        let read = inner
            .db
            .query(
                "SELECT token_id FROM api_tokens WHERE revoked_at IS NOT NULL",
                vec![],
            )
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Fields::of(r, "api_tokens").text(0, "token_id"))
                    .collect::<Result<HashSet<String>, DbError>>()
            });
        match read {
            Ok(ids) => {
                inner.tx.send_if_modified(|set| {
                    if ids.is_subset(set) {
                        return false;
                    }
                    let mut next = HashSet::clone(set);
                    next.extend(ids);
                    *set = Arc::new(next);
                    true
                });
            }
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), "reading revoked tokens failed; retrying")
            }
        }
    }
}
