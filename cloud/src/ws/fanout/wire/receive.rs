//! The receiving side: drops this instance's own payloads and repeats, counts holes, joins
//! pieces, and turns bodies back into events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fieldlink_protocol::Ident;

use super::message::{json_str, quality_of, Envelope, Head, In, VERSION};
use super::{Remote, MAX_PARTS};
use crate::store::{GatewayStatus, PointRow, SeriesKey, WriteBatch};

/// A source not heard from for this long is forgotten (instances get a new id at each start).
const FORGET_AFTER: Duration = Duration::from_secs(3_600);

/// What became of one payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent by this instance: its clients had the event already.
    Own,
    /// A payload already taken (a sender's retry).
    Duplicate,
    /// An event for this instance's clients.
    Delivered,
    /// A piece of a body still incomplete, or one whose earlier pieces were missed.
    Part,
    /// Not a payload of this format.
    Undecodable,
    /// A payload of a newer version of the format than this instance reads: dropped, its
    /// sequence number taken.
    Newer,
}

/// What the receiver makes of one payload.
#[derive(Debug)]
pub struct Taken {
    pub outcome: Outcome,
    pub event: Option<Remote>,
    /// Payloads of this source that never arrived, just before this one.
    pub missed: u64,
    /// The sending instance.
    pub source: Option<String>,
}

struct Partial {
    next: u32,
    of: u32,
    text: String,
}

struct Source {
    /// The last sequence number taken; `None` until the first.
    last_seq: Option<u64>,
    heard: Instant,
    partial: Option<Partial>,
}

/// The receiving side: drops this instance's own payloads and repeats, notices holes, joins
/// pieces.
pub struct Inbox {
    own: String,
    /// How this instance's own payloads begin, so they are dropped without being parsed (a
    /// lone instance hears every one of its own).
    own_head: String,
    sources: HashMap<String, Source>,
}

impl Inbox {
    pub fn new(own: &str) -> Inbox {
        let mut own_head = String::from("{\"i\":");
        json_str(&mut own_head, own);
        own_head.push(',');
        Inbox {
            own: own.to_string(),
            own_head,
            sources: HashMap::new(),
        }
    }

    pub fn take(&mut self, payload: &str, now: Instant) -> Taken {
        let taken = |outcome, event, missed, source| Taken {
            outcome,
            event,
            missed,
            source,
        };
        if payload.starts_with(&self.own_head) {
            return taken(Outcome::Own, None, 0, Some(self.own.clone()));
        }
        // The whole payload at once, as nearly every one is read; only one that does not parse
        // is read again for its head, to tell a newer version's from a broken one.
        let (i, seq, version, body) = match serde_json::from_str::<Envelope>(payload) {
            Ok(e) => (e.i, e.s, e.v, Some(e.b)),
            Err(_) => match serde_json::from_str::<Head>(payload) {
                Ok(h) if h.v > VERSION => (h.i, h.s, h.v, None),
                _ => return taken(Outcome::Undecodable, None, 0, None),
            },
        };
        if i == self.own {
            return taken(Outcome::Own, None, 0, Some(i));
        }
        if !self.sources.contains_key(&i) {
            self.sources
                .retain(|_, s| now.saturating_duration_since(s.heard) < FORGET_AFTER);
        }
        let src = self.sources.entry(i.clone()).or_insert(Source {
            last_seq: None,
            heard: now,
            partial: None,
        });
        let missed = match src.last_seq {
            Some(last) if seq <= last => {
                return taken(Outcome::Duplicate, None, 0, Some(i));
            }
            Some(last) => seq - last - 1,
            None => 0,
        };
        if missed > 0 {
            src.partial = None;
        }
        src.last_seq = Some(seq);
        src.heard = now;
        let body = match body {
            Some(b) if version <= VERSION => b,
            _ => {
                src.partial = None;
                return taken(Outcome::Newer, None, missed, Some(i));
            }
        };
        let body = match body {
            In::Part { n, of, d } => {
                let Some(whole) = join(&mut src.partial, n, of, d) else {
                    return taken(Outcome::Part, None, missed, Some(i));
                };
                match serde_json::from_str::<In>(&whole) {
                    Ok(In::Part { .. }) | Err(_) => {
                        return taken(Outcome::Undecodable, None, missed, Some(i))
                    }
                    Ok(b) => b,
                }
            }
            b => {
                src.partial = None;
                b
            }
        };
        match event(body) {
            Some(e) => taken(Outcome::Delivered, Some(e), missed, Some(i)),
            None => taken(Outcome::Undecodable, None, missed, Some(i)),
        }
    }
}

/// Adds a piece; returns the whole text once its last piece is in.
fn join(partial: &mut Option<Partial>, n: u32, of: u32, d: String) -> Option<String> {
    if of == 0 || of > MAX_PARTS || n >= of {
        *partial = None;
        return None;
    }
    if n == 0 {
        *partial = Some(Partial {
            next: 1,
            of,
            text: d,
        });
    } else {
        match partial {
            Some(p) if p.next == n && p.of == of => {
                p.text.push_str(&d);
                p.next += 1;
            }
            _ => {
                *partial = None;
                return None;
            }
        }
    }
    match partial {
        Some(p) if p.next == p.of => partial.take().map(|p| p.text),
        _ => None,
    }
}

fn ident(s: &str) -> Option<Ident> {
    Ident::new(s).ok()
}

fn event(body: In) -> Option<Remote> {
    Some(match body {
        In::Points { t, r } => {
            let mut points = Vec::new();
            let mut last: Option<Arc<SeriesKey>> = None;
            for (g, d, m, ps) in r {
                let same = |s: &str, of: fn(&SeriesKey) -> &Ident| match (s, &last) {
                    ("", Some(k)) => Some(of(k).clone()),
                    ("", None) => None,
                    (s, _) => ident(s),
                };
                let key = Arc::new(SeriesKey {
                    gateway: same(&g, |k| &k.gateway)?,
                    device: same(&d, |k| &k.device)?,
                    metric: ident(&m)?,
                });
                for (delta, value, q) in ps {
                    points.push(PointRow {
                        key: key.clone(),
                        ts_ms: t.checked_add(delta)?,
                        value,
                        quality: quality_of(q)?,
                    });
                }
                last = Some(key);
            }
            Remote::Batch(Arc::new(WriteBatch {
                points,
                ..WriteBatch::default()
            }))
        }
        In::Status { g, on, at, e, v, h } => Remote::Batch(Arc::new(WriteBatch {
            statuses: vec![GatewayStatus {
                gateway: ident(&g)?,
                online: on,
                at_ms: at,
                boot_epoch: e,
                agent_version: v,
                config_hash: h,
            }],
            ..WriteBatch::default()
        })),
        In::Command(c) => Remote::Command(Arc::new(c.into())),
        In::Alert(a) => Remote::Alert(Arc::new(a.into())),
        In::Device(d) => Remote::Device(Arc::new(d.into())),
        In::Part { .. } => return None,
    })
}
