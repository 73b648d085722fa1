//! The served-read log as JSON lines, for a test or a tool in another process.
//!
//! One line per answered read, oldest first:
//!
//! ```json
//! {"unit":1,"table":"holding_register","address":0,"words":[17258,0],"elapsed_s":1.25,
//!  "served_at_unix_us":1795000000000000,
//!  "points":[{"name":"voltage","address":0,"type":"f32","raw":230.0,"value":230.0}]}
//! ```
//!
//! `points` holds the points the read carried in full, decoded with their maps (see
//! [`crate::Simulator::decode_served`]); `raw` is a number, a boolean or a string.

use std::future::Future;
use std::io;
use std::time::{Duration, UNIX_EPOCH};

use fieldlink_drivers::codec::{DataType, TypedValue};
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::simulator::Simulator;
use crate::stats::ServedRead;
use crate::table::Table;

#[derive(Serialize)]
struct ReadLine<'a> {
    unit: u8,
    table: Table,
    address: u16,
    words: &'a [u16],
    elapsed_s: f64,
    served_at_unix_us: u128,
    points: Vec<PointLine>,
}

#[derive(Serialize)]
struct PointLine {
    name: Option<String>,
    address: u16,
    #[serde(rename = "type")]
    data_type: DataType,
    raw: serde_json::Value,
    value: Option<f64>,
}

impl Simulator {
    /// One served read as a JSON line (without the newline).
    pub fn served_json_line(&self, read: &ServedRead) -> String {
        let points = self
            .decode_served(read)
            .into_iter()
            .map(|v| PointLine {
                name: v.point.name,
                address: v.point.address,
                data_type: v.point.data_type,
                raw: raw_json(&v.raw),
                value: v.value,
            })
            .collect();
        let line = ReadLine {
            unit: read.unit,
            table: read.table,
            address: read.address,
            words: &read.words,
            elapsed_s: read.elapsed.as_secs_f64(),
            served_at_unix_us: read
                .served_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros()),
            points,
        };
        // Serialising plain numbers, strings and vectors cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Moves the served-read log to `out` as JSON lines every `every`, and once more when
    /// `shutdown` is cancelled, then returns. Entries the bounded log evicted before a move are
    /// counted in [`crate::StatsSnapshot::served_log_evicted`].
    pub fn export_served_log<W>(
        &self,
        mut out: W,
        every: Duration,
        shutdown: CancellationToken,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let sim = self.clone();
        async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stop = tokio::select! {
                    _ = ticks.tick() => false,
                    () = shutdown.cancelled() => true,
                };
                let mut text = String::new();
                for read in sim.take_served_log() {
                    text.push_str(&sim.served_json_line(&read));
                    text.push('\n');
                }
                out.write_all(text.as_bytes()).await?;
                out.flush().await?;
                if stop {
                    return Ok(());
                }
            }
        }
    }
}

fn raw_json(raw: &TypedValue) -> serde_json::Value {
    match raw {
        TypedValue::Bool(b) => serde_json::Value::Bool(*b),
        TypedValue::U16(v) => (*v).into(),
        TypedValue::I16(v) => (*v).into(),
        TypedValue::U32(v) => (*v).into(),
        TypedValue::I32(v) => (*v).into(),
        TypedValue::U64(v) => (*v).into(),
        TypedValue::I64(v) => (*v).into(),
        TypedValue::F32(v) => f64::from(*v).into(),
        TypedValue::F64(v) => (*v).into(),
        TypedValue::Str(s) => s.clone().into(),
    }
}
