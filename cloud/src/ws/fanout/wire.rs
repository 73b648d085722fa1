//! The notification payloads of the fan-out, and the receiving side's bookkeeping. Pure: no
//! I/O, so every rule here is tested byte for byte.
//!
//! A payload is JSON text of at most `limit` bytes (PostgreSQL's limit is 7,999):
//!
//! ```text
//! {"i":"<instance>","s":<seq>,"b":<body>}
//! ```
//!
//! `i` is the sending instance's id (random, new at every start) and `s` numbers its payloads
//! from 0 without holes, so a receiver drops its own payloads, drops a payload it already had,
//! and counts the payloads it missed. A body is an object with one key, its tag:
//!
//! | tag | what | content |
//! |---|---|---|
//! | `p` | telemetry points | `{"t": base time (ms), "r": [[gateway, device, metric, [[time − base, value, quality], …]], …]}`; quality 0 good, 1 uncertain, 2 bad; a gateway or device of `""` is the previous run's |
//! | `g` | a gateway's status | `{"g": gateway, "on": online, "at": time (ms), "e": boot epoch, "v": agent version, "h": configuration hash}` |
//! | `c` | a command's status | the command as REST shows it |
//! | `a` | an alert's change | the alert as REST shows it |
//! | `d` | a device's health | the device as REST shows it |
//! | `part` | a piece of a body too large for one payload | `{"n": index from 0, "of": count, "d": text}` |
//!
//! Telemetry is chunked: a committed batch's points, grouped by series, fill as many `p`
//! payloads as they need, and each one stands alone, so a receiver delivers it at once and a
//! lost one loses only its own points. Every other body is one payload, unless it is longer
//! than one payload can carry (a command with a large configuration or result): then its
//! text is cut into `part` payloads with consecutive sequence numbers, sent in one
//! transaction, and the receiver joins them; a hole among them discards the whole body.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fieldlink_protocol::{Ident, Quality, Value};
use serde::{Deserialize, Serialize};

use crate::alerts::AlertView;
use crate::commands::CommandView;
use crate::registry::Device;
use crate::store::{GatewayStatus, PointRow, SeriesKey, WriteBatch};

/// Most pieces one body may be cut into (with 7,999-byte payloads, about 500 KB of text).
pub const MAX_PARTS: u32 = 64;

/// The smallest payload limit an encoder takes: a point with the longest identifiers and the
/// longest string value, every character escaped, fits in one payload of this size.
pub const MIN_LIMIT: usize = 2_048;

/// A source not heard from for this long is forgotten (instances get a new id at each start).
const FORGET_AFTER: Duration = Duration::from_secs(3_600);

/// An event from another instance, as this instance's clients get it.
#[derive(Debug, Clone)]
pub enum Remote {
    /// Points or gateway statuses, in a batch of their own.
    Batch(Arc<WriteBatch>),
    Command(Arc<CommandView>),
    Alert(Arc<AlertView>),
    /// This instance was not listening between these times (milliseconds since the Unix
    /// epoch): what other instances published then is missing.
    Gap {
        from_ms: i64,
        to_ms: i64,
    },
    /// A device's health after a commit of the sending instance.
    Device(Arc<Device>),
}

/// Why a local event was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Its text needs more than [`MAX_PARTS`] payloads.
    Oversized,
}

#[derive(Serialize)]
enum Out<'a> {
    #[serde(rename = "g")]
    Status {
        g: &'a str,
        on: bool,
        at: i64,
        e: Option<i64>,
        v: Option<&'a str>,
        h: Option<&'a str>,
    },
    #[serde(rename = "c")]
    Command(&'a CommandView),
    #[serde(rename = "a")]
    Alert(&'a AlertView),
    #[serde(rename = "d")]
    Device(&'a Device),
    #[serde(rename = "part")]
    Part { n: u32, of: u32, d: &'a str },
}

type Run = (String, String, String, Vec<(i64, Value, u8)>);

#[derive(Deserialize)]
enum In {
    #[serde(rename = "p")]
    Points { t: i64, r: Vec<Run> },
    #[serde(rename = "g")]
    Status {
        g: String,
        on: bool,
        at: i64,
        e: Option<i64>,
        v: Option<String>,
        h: Option<String>,
    },
    #[serde(rename = "c")]
    Command(CommandView),
    #[serde(rename = "a")]
    Alert(AlertView),
    #[serde(rename = "d")]
    Device(Device),
    #[serde(rename = "part")]
    Part { n: u32, of: u32, d: String },
}

#[derive(Deserialize)]
struct Envelope {
    i: String,
    s: u64,
    b: In,
}

/// Turns this instance's events into payloads, numbering them.
pub struct Encoder {
    instance: String,
    next_seq: u64,
    limit: usize,
}

fn quality_code(q: Quality) -> u8 {
    match q {
        Quality::Good => 0,
        Quality::Uncertain => 1,
        Quality::Bad => 2,
    }
}

fn quality_of(code: u8) -> Option<Quality> {
    match code {
        0 => Some(Quality::Good),
        1 => Some(Quality::Uncertain),
        2 => Some(Quality::Bad),
        _ => None,
    }
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{08}' | '\u{0c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

fn json_str(out: &mut String, s: &str) {
    // Writing JSON into a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// `[time - base,value,quality]`.
fn point_json(out: &mut String, p: &PointRow, base_ms: i64) {
    use std::fmt::Write;
    let _ = write!(out, "[{},", p.ts_ms.wrapping_sub(base_ms));
    out.push_str(&serde_json::to_string(&p.value).unwrap_or_else(|_| "null".into()));
    let _ = write!(out, ",{}]", quality_code(p.quality));
}

/// `["gateway","device","metric",[`, with `""` for a gateway or device the same as the previous
/// run's.
fn run_head(out: &mut String, k: &SeriesKey, previous: Option<&SeriesKey>) {
    out.push('[');
    match previous {
        Some(p) if p.gateway == k.gateway => out.push_str("\"\""),
        _ => json_str(out, k.gateway.as_str()),
    }
    out.push(',');
    match previous {
        Some(p) if p.device == k.device => out.push_str("\"\""),
        _ => json_str(out, k.device.as_str()),
    }
    out.push(',');
    json_str(out, k.metric.as_str());
    out.push_str(",[");
}

impl Encoder {
    /// `limit` is the longest payload, in bytes; at least [`MIN_LIMIT`].
    pub fn new(instance: &str, limit: usize) -> Encoder {
        Encoder {
            instance: instance.to_string(),
            next_seq: 0,
            limit: limit.max(MIN_LIMIT),
        }
    }

    /// `{"i":"…","s":N,"b":` with the next sequence number.
    fn open(&mut self) -> String {
        let mut s = String::with_capacity(self.limit);
        s.push_str("{\"i\":");
        json_str(&mut s, &self.instance);
        s.push_str(&format!(",\"s\":{},\"b\":", self.next_seq));
        self.next_seq += 1;
        s
    }

    /// The longest envelope head any payload of this encoder can have.
    fn head_room(&self) -> usize {
        "{\"i\":,\"s\":,\"b\":}".len()
            + serde_json::to_string(&self.instance).map_or(0, |s| s.len())
            + u64::MAX.to_string().len()
    }

    /// The payloads of one committed batch: its gateway statuses, then its points. Returns
    /// how many points did not fit in a payload (none with a limit of [`MIN_LIMIT`] or more).
    pub fn batch(&mut self, batch: &WriteBatch, out: &mut Vec<String>) -> usize {
        for s in &batch.statuses {
            self.status(s, out);
        }
        self.points(&batch.points, out)
    }

    fn status(&mut self, s: &GatewayStatus, out: &mut Vec<String>) {
        let body = Out::Status {
            g: s.gateway.as_str(),
            on: s.online,
            at: s.at_ms,
            e: s.boot_epoch,
            v: s.agent_version.as_deref(),
            h: s.config_hash.as_deref(),
        };
        // Identifiers and the protocol's string limits keep a status far below any limit.
        let _ = self.body(&body, out);
    }

    pub fn command(&mut self, c: &CommandView, out: &mut Vec<String>) -> Result<(), Shed> {
        self.body(&Out::Command(c), out)
    }

    pub fn alert(&mut self, a: &AlertView, out: &mut Vec<String>) -> Result<(), Shed> {
        self.body(&Out::Alert(a), out)
    }

    pub fn device(&mut self, d: &Device, out: &mut Vec<String>) -> Result<(), Shed> {
        self.body(&Out::Device(d), out)
    }

    /// One payload, or `part` payloads when the body does not fit in one.
    fn body(&mut self, body: &Out<'_>, out: &mut Vec<String>) -> Result<(), Shed> {
        let text = serde_json::to_string(body).unwrap_or_default();
        if text.len() + self.head_room() <= self.limit {
            let mut p = self.open();
            p.push_str(&text);
            p.push('}');
            out.push(p);
            return Ok(());
        }
        let frame = serde_json::to_string(&Out::Part {
            n: u32::MAX,
            of: u32::MAX,
            d: "",
        })
        .map_or(0, |s| s.len());
        let budget = self.limit.saturating_sub(self.head_room() + frame);
        let mut pieces = Vec::new();
        let (mut start, mut used) = (0, 0);
        for (at, c) in text.char_indices() {
            let n = escaped_len(c);
            if used + n > budget {
                pieces.push(&text[start..at]);
                start = at;
                used = 0;
            }
            used += n;
        }
        pieces.push(&text[start..]);
        if pieces.len() > MAX_PARTS as usize {
            return Err(Shed::Oversized);
        }
        let of = pieces.len() as u32;
        for (n, d) in pieces.into_iter().enumerate() {
            let mut p = self.open();
            let part = Out::Part { n: n as u32, of, d };
            p.push_str(&serde_json::to_string(&part).unwrap_or_default());
            p.push('}');
            out.push(p);
        }
        Ok(())
    }

    /// Points grouped by series (first appearance first, each series in batch order), in as
    /// many payloads as they fill. Returns how many points did not fit in any.
    fn points(&mut self, points: &[PointRow], out: &mut Vec<String>) -> usize {
        if points.is_empty() {
            return 0;
        }
        let mut dropped = 0;
        let mut order: Vec<&Arc<SeriesKey>> = Vec::new();
        let mut runs: HashMap<&SeriesKey, Vec<&PointRow>> = HashMap::new();
        for p in points {
            let run = runs.entry(&*p.key).or_default();
            if run.is_empty() {
                order.push(&p.key);
            }
            run.push(p);
        }
        const CLOSE_RUN: &str = "]]";
        const CLOSE: &str = "]}}}";
        let mut cur: Option<Chunk> = None;
        let mut head = String::new();
        let mut point = String::new();
        for key in order {
            for p in &runs[&**key] {
                loop {
                    let chunk = cur.get_or_insert_with(|| Chunk::open(self.open(), p.ts_ms));
                    point.clear();
                    point_json(&mut point, p, chunk.base_ms);
                    let need = if chunk.in_run {
                        1 + point.len()
                    } else {
                        head.clear();
                        run_head(&mut head, key, chunk.last.as_deref());
                        usize::from(chunk.last.is_some()) + head.len() + point.len()
                    };
                    if chunk.text.len() + need + CLOSE_RUN.len() + CLOSE.len() <= self.limit {
                        if chunk.in_run {
                            chunk.text.push(',');
                        } else {
                            if chunk.last.is_some() {
                                chunk.text.push(',');
                            }
                            chunk.text.push_str(&head);
                            chunk.last = Some((*key).clone());
                            chunk.in_run = true;
                        }
                        chunk.text.push_str(&point);
                        break;
                    }
                    if chunk.last.is_none() {
                        dropped += 1;
                        break;
                    }
                    let mut full = cur.take().expect("filled above");
                    if full.in_run {
                        full.text.push_str(CLOSE_RUN);
                    }
                    full.text.push_str(CLOSE);
                    out.push(full.text);
                }
            }
            if let Some(c) = cur.as_mut() {
                if c.in_run {
                    c.text.push_str(CLOSE_RUN);
                    c.in_run = false;
                }
            }
        }
        if let Some(mut c) = cur.take() {
            if c.last.is_some() {
                c.text.push_str(CLOSE);
                out.push(c.text);
            } else {
                // Opened but empty: give its number back so receivers see no hole.
                self.next_seq -= 1;
            }
        }
        dropped
    }
}

/// A `p` payload being filled.
struct Chunk {
    text: String,
    /// Point times are written relative to this (the first point's).
    base_ms: i64,
    /// The series of the last run begun, whose gateway and device the next run may elide.
    last: Option<Arc<SeriesKey>>,
    /// Whether that run is still open.
    in_run: bool,
}

impl Chunk {
    fn open(mut text: String, base_ms: i64) -> Chunk {
        text.push_str(&format!("{{\"p\":{{\"t\":{base_ms},\"r\":["));
        Chunk {
            text,
            base_ms,
            last: None,
            in_run: false,
        }
    }
}

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
        let env: Envelope = match serde_json::from_str(payload) {
            Ok(e) => e,
            Err(_) => return taken(Outcome::Undecodable, None, 0, None),
        };
        if env.i == self.own {
            return taken(Outcome::Own, None, 0, Some(env.i));
        }
        if !self.sources.contains_key(&env.i) {
            self.sources
                .retain(|_, s| now.saturating_duration_since(s.heard) < FORGET_AFTER);
        }
        let src = self.sources.entry(env.i.clone()).or_insert(Source {
            last_seq: None,
            heard: now,
            partial: None,
        });
        let missed = match src.last_seq {
            Some(last) if env.s <= last => {
                return taken(Outcome::Duplicate, None, 0, Some(env.i));
            }
            Some(last) => env.s - last - 1,
            None => 0,
        };
        if missed > 0 {
            src.partial = None;
        }
        src.last_seq = Some(env.s);
        src.heard = now;
        let body = match env.b {
            In::Part { n, of, d } => {
                let Some(whole) = join(&mut src.partial, n, of, d) else {
                    return taken(Outcome::Part, None, missed, Some(env.i));
                };
                match serde_json::from_str::<In>(&whole) {
                    Ok(In::Part { .. }) | Err(_) => {
                        return taken(Outcome::Undecodable, None, missed, Some(env.i))
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
            Some(e) => taken(Outcome::Delivered, Some(e), missed, Some(env.i)),
            None => taken(Outcome::Undecodable, None, missed, Some(env.i)),
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
        In::Command(c) => Remote::Command(Arc::new(c)),
        In::Alert(a) => Remote::Alert(Arc::new(a)),
        In::Device(d) => Remote::Device(Arc::new(d)),
        In::Part { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const LIMIT: usize = 7_999;

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }

    fn point(gw: &str, dev: &str, metric: &str, ts_ms: i64, value: Value) -> PointRow {
        PointRow {
            key: Arc::new(SeriesKey {
                gateway: id(gw),
                device: id(dev),
                metric: id(metric),
            }),
            ts_ms,
            value,
            quality: Quality::Good,
        }
    }

    fn command(kind: serde_json::Value) -> CommandView {
        CommandView {
            command_id: "c-1".into(),
            gateway: "gw-1".into(),
            kind,
            status: crate::commands::CommandStatus::Sent,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: "2026-01-01T00:05:00.000Z".into(),
            updated_at: "2026-01-01T00:00:01.000Z".into(),
            idempotency_key: None,
            result: None,
            error: None,
        }
    }

    /// Everything the receiver delivers for `payloads`, in order.
    fn receive(inbox: &mut Inbox, payloads: &[String]) -> Vec<Taken> {
        payloads
            .iter()
            .map(|p| inbox.take(p, Instant::now()))
            .collect()
    }

    fn points_of(taken: &[Taken]) -> Vec<PointRow> {
        taken
            .iter()
            .filter_map(|t| match &t.event {
                Some(Remote::Batch(b)) => Some(b.points.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Orders points by series, then by position within the series (as the encoder groups).
    fn by_series(points: &[PointRow]) -> Vec<PointRow> {
        let mut order: Vec<SeriesKey> = Vec::new();
        for p in points {
            if !order.contains(&p.key) {
                order.push((*p.key).clone());
            }
        }
        order
            .iter()
            .flat_map(|k| points.iter().filter(move |p| &*p.key == k).cloned())
            .collect()
    }

    #[test]
    fn a_large_batch_is_chunked_into_self_contained_payloads_under_the_limit() {
        let mut points = Vec::new();
        for row in 0..500 {
            for dev in ["meter-1", "meter-2", "pump"] {
                for metric in ["power", "energy", "state"] {
                    let value = match metric {
                        "state" => Value::Str(format!("run \"{row}\"\n\u{1}é")),
                        "energy" => Value::Number(row as f64 * 0.1 + 1e-9),
                        _ => Value::Bool(row % 2 == 0),
                    };
                    let mut p = point("gw-1", dev, metric, 1_700_000_000_000 + row, value);
                    p.quality = [Quality::Good, Quality::Uncertain, Quality::Bad][row as usize % 3];
                    points.push(p);
                }
            }
        }
        let batch = WriteBatch {
            points: points.clone(),
            statuses: vec![GatewayStatus {
                gateway: id("gw-1"),
                online: true,
                at_ms: 1_700_000_000_000,
                boot_epoch: Some(7),
                agent_version: Some("0.1.0".into()),
                config_hash: Some("abc".into()),
            }],
            ..WriteBatch::default()
        };
        let mut enc = Encoder::new("aaaa", LIMIT);
        let mut out = Vec::new();
        assert_eq!(enc.batch(&batch, &mut out), 0);
        assert!(out.len() > 10, "{} payloads", out.len());
        for p in &out {
            assert!(p.len() <= LIMIT, "{} bytes", p.len());
            serde_json::from_str::<serde_json::Value>(p).expect("each payload is JSON");
        }
        let mut inbox = Inbox::new("bbbb");
        let taken = receive(&mut inbox, &out);
        assert!(taken
            .iter()
            .all(|t| t.outcome == Outcome::Delivered && t.missed == 0));
        // The status comes first, on its own.
        match &taken[0].event {
            Some(Remote::Batch(b)) => assert_eq!(b.statuses, batch.statuses),
            other => panic!("{other:?}"),
        }
        assert_eq!(points_of(&taken), by_series(&points));

        // Each payload stands alone: losing one loses its points only, and is counted.
        let mut inbox = Inbox::new("bbbb");
        let mut kept = out.clone();
        let lost = kept.remove(3);
        let taken = receive(&mut inbox, &kept);
        assert_eq!(taken.iter().map(|t| t.missed).sum::<u64>(), 1);
        let lost_points = points_of(&receive(&mut Inbox::new("cccc"), &[lost])).len();
        assert!(lost_points > 0);
        assert_eq!(points_of(&taken).len() + lost_points, points.len());
    }

    #[test]
    fn own_payloads_and_repeats_are_dropped_and_holes_counted() {
        let mut enc = Encoder::new("aaaa", LIMIT);
        let mut out = Vec::new();
        for t in 0..4 {
            let b = WriteBatch {
                points: vec![point("gw-1", "d", "m", t, Value::Number(t as f64))],
                ..WriteBatch::default()
            };
            enc.batch(&b, &mut out);
        }
        assert_eq!(out.len(), 4);
        let mut own = Inbox::new("aaaa");
        assert!(receive(&mut own, &out)
            .iter()
            .all(|t| t.outcome == Outcome::Own && t.event.is_none()));

        let mut inbox = Inbox::new("bbbb");
        let t = inbox.take(&out[0], Instant::now());
        assert_eq!((t.outcome, t.missed), (Outcome::Delivered, 0));
        assert_eq!(t.source.as_deref(), Some("aaaa"));
        let t = inbox.take(&out[0], Instant::now());
        assert_eq!(t.outcome, Outcome::Duplicate);
        assert!(t.event.is_none());
        let t = inbox.take(&out[3], Instant::now());
        assert_eq!((t.outcome, t.missed), (Outcome::Delivered, 2));
        assert_eq!(
            inbox.take(&out[2], Instant::now()).outcome,
            Outcome::Duplicate
        );

        // A source first heard in the middle of its sequence has missed nothing yet.
        let mut late = Inbox::new("cccc");
        assert_eq!(late.take(&out[2], Instant::now()).missed, 0);

        assert_eq!(
            inbox.take("not json", Instant::now()).outcome,
            Outcome::Undecodable
        );
        assert_eq!(
            inbox
                .take(r#"{"i":"dddd","s":0,"b":{"zz":{}}}"#, Instant::now())
                .outcome,
            Outcome::Undecodable
        );
        for bad in [
            r#"{"i":"dddd","s":1,"b":{"p":{"t":0,"r":[["gw 1","d","m",[[1,2.0,0]]]]}}}"#,
            // An elided gateway with no run before it to take it from.
            r#"{"i":"dddd","s":2,"b":{"p":{"t":0,"r":[["","d","m",[[1,2.0,0]]]]}}}"#,
            r#"{"i":"dddd","s":3,"b":{"p":{"t":0,"r":[["g","d","m",[[1,2.0,3]]]]}}}"#,
        ] {
            assert_eq!(
                inbox.take(bad, Instant::now()).outcome,
                Outcome::Undecodable,
                "{bad}"
            );
        }
        let elided = r#"{"i":"dddd","s":4,"b":{"p":{"t":10,"r":[["g","d","m",[[1,2.0,0]]],["","","n",[[-1,true,2]]],["h","","m",[[0,"x",1]]]]}}}"#;
        match inbox.take(elided, Instant::now()).event {
            Some(Remote::Batch(b)) => assert_eq!(
                b.points,
                [
                    point("g", "d", "m", 11, Value::Number(2.0)),
                    PointRow {
                        quality: Quality::Bad,
                        ..point("g", "d", "n", 9, Value::Bool(true))
                    },
                    PointRow {
                        quality: Quality::Uncertain,
                        ..point("h", "d", "m", 10, Value::Str("x".into()))
                    },
                ]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn device_health_round_trips() {
        let device = Device {
            gateway: "gw-1".into(),
            device: "meter".into(),
            state: crate::store::DeviceState::Unknown,
            since: Some("2023-11-14T22:13:20Z".into()),
            reported_state: Some(crate::store::ReportedState::Offline),
            last_error: Some("no answer \"quoted\"\n".into()),
            last_error_at: None,
        };
        let mut out = Vec::new();
        Encoder::new("aaaa", LIMIT)
            .device(&device, &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        let taken = receive(&mut Inbox::new("bbbb"), &out);
        match &taken[0].event {
            Some(Remote::Device(d)) => assert_eq!(
                serde_json::to_value(&**d).unwrap(),
                serde_json::to_value(&device).unwrap()
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_and_alerts_round_trip_and_a_large_command_goes_in_pieces() {
        let mut enc = Encoder::new("aaaa", LIMIT);
        let mut out = Vec::new();
        let small = command(json!({"command": "ping"}));
        enc.command(&small, &mut out).unwrap();
        let alert = AlertView {
            alert_id: "a-1".into(),
            rule_id: "r-1".into(),
            gateway: "gw-1".into(),
            device: "boiler".into(),
            metric: "temp".into(),
            kind: crate::alerts::records::RuleKind::Value,
            severity: crate::alerts::records::Severity::Critical,
            status: "active".into(),
            started_at_ms: 1_700_000_000_000,
            started_at: "2023-11-14T22:13:20.000Z".into(),
            updated_at: "2023-11-14T22:13:20.000Z".into(),
            last_value: Some(85.5),
        };
        enc.alert(&alert, &mut out).unwrap();
        // A configuration of 100 KB with quotes, newlines and non-ASCII text.
        let config: String = (0..2_500)
            .map(|i| format!("[device.\"d{i}\"]\naddress = \"é{i}\"\t\n"))
            .collect();
        let large = command(json!({"command": "apply_config", "config": {"toml": config}}));
        let before = out.len();
        enc.command(&large, &mut out).unwrap();
        let pieces = out.len() - before;
        assert!(pieces > 10, "{pieces}");
        assert!(out.iter().all(|p| p.len() <= LIMIT));

        let mut inbox = Inbox::new("bbbb");
        let taken = receive(&mut inbox, &out);
        assert_eq!(taken.iter().filter(|t| t.event.is_some()).count(), 3);
        assert_eq!(
            taken.iter().filter(|t| t.outcome == Outcome::Part).count(),
            pieces - 1
        );
        match (
            &taken[0].event,
            &taken[1].event,
            &taken.last().unwrap().event,
        ) {
            (Some(Remote::Command(c)), Some(Remote::Alert(a)), Some(Remote::Command(l))) => {
                assert_eq!(
                    serde_json::to_value(&**c).unwrap(),
                    serde_json::to_value(&small).unwrap()
                );
                assert_eq!(
                    serde_json::to_value(&**a).unwrap(),
                    serde_json::to_value(&alert).unwrap()
                );
                assert_eq!(
                    serde_json::to_value(&**l).unwrap(),
                    serde_json::to_value(&large).unwrap()
                );
            }
            other => panic!("{other:?}"),
        }

        // A hole among the pieces drops the whole command; what follows still arrives.
        let mut inbox = Inbox::new("bbbb");
        let mut holed = out.clone();
        holed.remove(before + 2);
        enc.command(&small, &mut holed).unwrap();
        let taken = receive(&mut inbox, &holed);
        let commands: Vec<&Taken> = taken
            .iter()
            .filter(|t| matches!(t.event, Some(Remote::Command(_))))
            .collect();
        assert_eq!(commands.len(), 2, "the first and the last small one");
        assert_eq!(taken.iter().map(|t| t.missed).sum::<u64>(), 1);

        // Beyond MAX_PARTS pieces it is not published at all, and uses no sequence number.
        let huge = command(json!({"toml": "x".repeat(MAX_PARTS as usize * LIMIT)}));
        let mut none = Vec::new();
        assert_eq!(enc.command(&huge, &mut none), Err(Shed::Oversized));
        assert!(none.is_empty());
        enc.command(&small, &mut none).unwrap();
        let t = inbox.take(&none[0], Instant::now());
        assert_eq!((t.outcome, t.missed), (Outcome::Delivered, 0));
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            (-1e300f64..1e300).prop_map(Value::Number),
            "\\PC{0,40}|[\"\\\\\u{0}-\u{1f}]{0,256}".prop_map(Value::Str),
        ]
    }

    proptest! {
        /// Whatever the values and the limit, every payload fits and the receiver gets every
        /// point back, exactly.
        #[test]
        fn every_payload_fits_and_every_point_comes_back(
            limit in MIN_LIMIT..LIMIT,
            values in proptest::collection::vec((0usize..5, value()), 1..400),
        ) {
            let points: Vec<PointRow> = values
                .into_iter()
                .enumerate()
                .map(|(i, (series, v))| {
                    point("gw-1", &format!("dev-{series}"), &"m".repeat(1 + series * 15), i as i64, v)
                })
                .collect();
            let mut enc = Encoder::new("0123456789abcdef", limit);
            let mut out = Vec::new();
            let batch = WriteBatch { points: points.clone(), ..WriteBatch::default() };
            prop_assert_eq!(enc.batch(&batch, &mut out), 0);
            for p in &out {
                prop_assert!(p.len() <= limit, "{} > {}", p.len(), limit);
            }
            let taken = receive(&mut Inbox::new("other"), &out);
            prop_assert!(taken.iter().all(|t| t.outcome == Outcome::Delivered && t.missed == 0));
            prop_assert_eq!(points_of(&taken), by_series(&points));
        }
    }
}
