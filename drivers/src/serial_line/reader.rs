//! The reader task of one serial-line sensor: open, read lines, reopen when the port vanishes.

use std::future::Future;
use std::io;
use std::sync::Arc;

use fieldlink_protocol::{Ident, Point, Quality, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::event::{hand_over, now_ms, DriverEvent, PointError, PointFailure, Readings};
use crate::health::{DeviceCounters, HealthTracker, Observation};
use crate::io_fault::{IoFault, Medium};
use crate::modbus::connector::open_serial;
use crate::pointmap::point::scale_decimal;
use crate::pointmap::{SerialLineDevice, SerialSettings};
use crate::serial_line::framing::{Frame, LineFramer};
use crate::serial_line::parse::{parse_line, FieldValue};
use fieldlink_plumbing::backoff::{Backoff, Schedule};

/// Opens the byte stream a sensor prints on: the seam tests use.
pub trait LineOpener: Send + 'static {
    type Io: AsyncRead + Unpin + Send + 'static;
    fn open(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send;
    fn target(&self) -> String;
}

/// A local serial port.
#[derive(Debug, Clone)]
pub struct SerialOpener {
    pub path: String,
    pub line: SerialSettings,
}

impl LineOpener for SerialOpener {
    type Io = tokio_serial::SerialStream;

    async fn open(&mut self) -> io::Result<tokio_serial::SerialStream> {
        open_serial(&self.path, &self.line)
    }

    fn target(&self) -> String {
        self.path.clone()
    }
}

/// How eagerly a vanished port is reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReopenOptions {
    /// Waits between attempts to reopen a vanished port, doubling to the cap.
    pub backoff: Schedule,
}

impl Default for ReopenOptions {
    fn default() -> Self {
        ReopenOptions {
            backoff: Schedule::fixed(200, 10_000),
        }
    }
}

/// Reads one serial-line sensor; see the module docs of [`crate::serial_line`].
#[derive(Debug)]
pub struct LineReader<O: LineOpener> {
    device: Ident,
    config: SerialLineDevice,
    opener: O,
    counters: Arc<DeviceCounters>,
    health: HealthTracker,
}

impl<O: LineOpener> LineReader<O> {
    pub fn new(
        device: Ident,
        config: SerialLineDevice,
        opener: O,
        counters: Arc<DeviceCounters>,
    ) -> Self {
        LineReader {
            health: HealthTracker::new(device.clone()),
            device,
            config,
            opener,
            counters,
        }
    }

    /// The task: runs until `cancel` fires or the event receiver is gone.
    pub async fn run(
        mut self,
        reopen: ReopenOptions,
        events: mpsc::Sender<DriverEvent>,
        cancel: CancellationToken,
    ) {
        let mut backoff = Backoff::exact(reopen.backoff);
        let mut framer = LineFramer::new(self.config.framing, self.config.max_line_len);
        loop {
            let opened = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.opener.open() => r,
            };
            let error = match opened {
                Ok(io) => {
                    backoff.succeed();
                    framer.reset();
                    match self.read_port(io, &mut framer, &events, &cancel).await {
                        Ok(Some(e)) => e,
                        Ok(None) => return,
                        Err(()) => return,
                    }
                }
                Err(e) => format!(
                    "cannot open {}: {}",
                    self.opener.target(),
                    IoFault::classify(e, Medium::Serial)
                ),
            };
            if self
                .report(Observation::LinkDown(error.clone()), &events)
                .await
                .is_err()
            {
                return;
            }
            let wait = backoff.fail();
            tracing::info!(device = %self.device, error, retry_in_ms = wait.as_millis() as u64,
                "serial line down");
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Reads until the port fails (`Ok(Some(why))`), cancellation (`Ok(None)`) or the event
    /// receiver goes away (`Err`).
    async fn read_port(
        &mut self,
        mut io: O::Io,
        framer: &mut LineFramer,
        events: &mpsc::Sender<DriverEvent>,
        cancel: &CancellationToken,
    ) -> Result<Option<String>, ()> {
        let mut buf = [0u8; 1024];
        let mut frames = Vec::new();
        loop {
            let n = tokio::select! {
                _ = cancel.cancelled() => return Ok(None),
                r = io.read(&mut buf) => match r {
                    Ok(n) if n > 0 => n,
                    ended => {
                        let fault = match ended {
                            Err(e) => IoFault::classify(e, Medium::Serial),
                            Ok(_) => IoFault::closed(Medium::Serial),
                        };
                        return Ok(Some(format!("{}: {fault}", self.opener.target())));
                    }
                },
            };
            framer.push(&buf[..n], &mut frames);
            for frame in frames.drain(..) {
                DeviceCounters::add(&self.counters.requests_total, 1);
                let ts_ms = now_ms();
                let outcome = match frame {
                    Frame::Line(line) => self.readings(&line, ts_ms),
                    Frame::Overlong => Err(format!(
                        "line longer than {} bytes",
                        self.config.max_line_len
                    )),
                    Frame::NotUtf8 => Err("line is not UTF-8".into()),
                };
                match outcome {
                    Ok(readings) => {
                        let observation = match readings.failures.first() {
                            Some(f) => {
                                Observation::SomeFailed(format!("{}: {}", f.metric, f.error))
                            }
                            None => Observation::AllRead,
                        };
                        DeviceCounters::add(
                            &self.counters.points_total,
                            readings.points.len() as u64,
                        );
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(None),
                            r = hand_over(events, readings) => r.map_err(drop)?,
                        }
                        self.report(observation, events).await?;
                    }
                    Err(why) => {
                        DeviceCounters::add(&self.counters.garbage_lines_total, 1);
                        tracing::debug!(device = %self.device, why, "garbage line skipped");
                        self.report(Observation::SomeFailed(why), events).await?;
                    }
                }
            }
        }
    }

    /// The readings in one line, or why the line is garbage.
    fn readings(&self, line: &str, ts_ms: i64) -> Result<Readings, String> {
        let fields = parse_line(&self.config.format, line).map_err(|e| e.to_string())?;
        let mut out = Readings::new(self.device.clone());
        for p in &self.config.points {
            let Some((_, v)) = fields.iter().find(|(k, _)| *k == p.field) else {
                continue;
            };
            let numeric = p.scale != 1.0 || p.offset != 0.0;
            let value = match v {
                FieldValue::Number(x) => Ok(Value::Number(scale_decimal(*x, p.scale, p.offset))),
                FieldValue::Bool(b) if !numeric => Ok(Value::Bool(*b)),
                FieldValue::Text(s) if !numeric => Ok(Value::Str(s.clone())),
                _ => Err(PointError::Field {
                    field: p.field.clone(),
                    reason: "not a number, and the point is scaled".into(),
                }),
            };
            match value {
                Ok(value) => out.points.push(Point {
                    device: self.device.clone(),
                    metric: p.name.clone(),
                    ts_ms,
                    value,
                    quality: Quality::Good,
                }),
                Err(error) => out.failures.push(PointFailure {
                    metric: p.name.clone(),
                    error,
                }),
            }
        }
        if out.is_empty() {
            return Err("line holds none of the device's fields".into());
        }
        Ok(out)
    }

    async fn report(
        &mut self,
        observation: Observation,
        events: &mpsc::Sender<DriverEvent>,
    ) -> Result<(), ()> {
        if let Some(h) = self.health.observe(observation) {
            events.send(DriverEvent::Health(h)).await.map_err(drop)?;
        }
        Ok(())
    }
}
