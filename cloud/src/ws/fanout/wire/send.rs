//! The sending side: this instance's events as numbered payloads under the limit.

use std::collections::HashMap;
use std::sync::Arc;

use super::message::{
    escaped_len, json_str, quality_code, AlertMsg, CommandMsg, DeviceMsg, Out, VERSION,
};
use super::{Shed, MAX_PARTS, MIN_LIMIT};
use crate::alerts::AlertView;
use crate::commands::CommandView;
use crate::registry::Device;
use crate::store::{GatewayStatus, PointRow, SeriesKey, WriteBatch};

/// Turns this instance's events into payloads, numbering them.
pub struct Encoder {
    instance: String,
    next_seq: u64,
    limit: usize,
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

    /// `{"i":"…","s":N,"v":V,"b":` with the next sequence number.
    fn open(&mut self) -> String {
        let mut s = String::with_capacity(self.limit);
        s.push_str("{\"i\":");
        json_str(&mut s, &self.instance);
        s.push_str(&format!(",\"s\":{},\"v\":{VERSION},\"b\":", self.next_seq));
        self.next_seq += 1;
        s
    }

    /// The longest envelope head any payload of this encoder can have.
    fn head_room(&self) -> usize {
        "{\"i\":,\"s\":,\"v\":,\"b\":}".len()
            + serde_json::to_string(&self.instance).map_or(0, |s| s.len())
            + u64::MAX.to_string().len()
            + VERSION.to_string().len()
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
        self.body(&Out::Command(&CommandMsg::from(c)), out)
    }

    pub fn alert(&mut self, a: &AlertView, out: &mut Vec<String>) -> Result<(), Shed> {
        self.body(&Out::Alert(&AlertMsg::from(a)), out)
    }

    pub fn device(&mut self, d: &Device, out: &mut Vec<String>) -> Result<(), Shed> {
        self.body(&Out::Device(&DeviceMsg::from(d)), out)
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
