//! The owner task of one Modbus link, polling every device on it.
//!
//! A Modbus TCP device gets a station of its own, so TCP devices poll concurrently. All devices
//! on one RS-485 port share one station: the task owns the port, so requests for different unit
//! ids can never overlap on the wire, and it keeps the bus silence between them (see
//! [`crate::modbus::link`]). Writes, read-now requests and interval changes reach the task through
//! a bounded channel and are answered on a oneshot, between two polls.
//!
//! A device whose link fails (no connection, no answer) is backed off exponentially up to a cap;
//! while it waits the other devices on the bus keep their poll rate. A poll that falls behind its
//! schedule is not caught up in a burst: the next one is scheduled one interval after it ran.
//!
//! A poll's readings are handed over with a receipt (see [`crate::event`]): the station does
//! not poll again, on any device of its link, until the consumer has taken them (committed them
//! to the journal). Commands are still served while it waits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fieldlink_protocol::{Ident, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::event::{offer, DriverEvent, Readings};
use crate::health::{DeviceCounters, HealthTracker, Observation};
use crate::modbus::connector::Connector;
use crate::modbus::error::LinkError;
use crate::modbus::link::{LinkOptions, ModbusLink};
use crate::modbus::poll::poll_plan;
use crate::plan::{PlanItem, PlanLimits, ReadPlan};
use crate::pointmap::{Device, DeviceKind};
use crate::write::{write_point, WriteError, WriteOutcome};
use fieldlink_plumbing::backoff::{Backoff, Schedule};

/// Tunables of a station that are not in the point map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationOptions {
    /// Waits after a device's link failed: the first, doubling per consecutive failure to
    /// the cap; exact, so a silent unit's turns on a shared bus are predictable.
    pub backoff: Schedule,
    /// Read limits; the Modbus maxima unless a device is known to want less.
    pub max_registers: u16,
    pub max_bits: u16,
}

impl Default for StationOptions {
    fn default() -> Self {
        StationOptions {
            backoff: Schedule::fixed(500, 30_000),
            max_registers: crate::plan::MAX_READ_REGISTERS,
            max_bits: crate::plan::MAX_READ_BITS,
        }
    }
}

/// A request to a station, answered on the oneshot.
#[derive(Debug)]
pub enum Command {
    Write {
        device: Ident,
        point: String,
        value: Value,
        reply: oneshot::Sender<Result<WriteOutcome, WriteError>>,
    },
    /// Polls every point of the device now; the readings go to the reply, not the event channel.
    ReadNow {
        device: Ident,
        reply: oneshot::Sender<Result<Readings, ReadNowError>>,
    },
    /// Changes the poll interval of all of the device's points.
    SetPollInterval {
        device: Ident,
        interval: Duration,
        reply: oneshot::Sender<bool>,
    },
}

/// Why a read-now request has no readings.
#[derive(Debug, thiserror::Error)]
pub enum ReadNowError {
    #[error("no Modbus device {0:?}")]
    UnknownDevice(String),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("the device's acquisition task has stopped")]
    Stopped,
}

/// The way into a running station.
#[derive(Debug, Clone)]
pub struct StationHandle {
    pub commands: mpsc::Sender<Command>,
    /// Counters per device on the station.
    pub counters: BTreeMap<Ident, Arc<DeviceCounters>>,
}

/// Starts the owner task of a link carrying `devices` (the Modbus ones; others are ignored).
pub fn spawn_station<C: Connector>(
    connector: C,
    link: LinkOptions,
    devices: &[Device],
    options: StationOptions,
    events: mpsc::Sender<DriverEvent>,
    cancel: CancellationToken,
) -> (StationHandle, tokio::task::JoinHandle<()>) {
    let now = Instant::now();
    let limits = |gap| PlanLimits {
        max_gap: gap,
        max_registers: options.max_registers,
        max_bits: options.max_bits,
    };
    let devices: Vec<StationDevice> = devices
        .iter()
        .filter_map(|d| match &d.kind {
            DeviceKind::Modbus(m) => Some(StationDevice {
                name: d.name.clone(),
                unit_id: m.unit_id,
                groups: groups(m, limits(m.max_gap), now),
                limits: limits(m.max_gap),
                modbus: m.clone(),
                health: HealthTracker::new(d.name.clone()),
                backoff: Backoff::exact(options.backoff),
                backoff_until: None,
                counters: Arc::default(),
            }),
            DeviceKind::SerialLine(_) => None,
        })
        .collect();
    let counters = devices
        .iter()
        .map(|d| (d.name.clone(), d.counters.clone()))
        .collect();
    let (tx, rx) = mpsc::channel(16);
    let station = Station {
        link: ModbusLink::new(connector, link),
        devices,
        handed_over: None,
        commands: rx,
        events,
        cancel,
    };
    let task = tokio::spawn(station.run());
    (
        StationHandle {
            commands: tx,
            counters,
        },
        task,
    )
}

/// Points grouped by poll interval, each group with its own plan.
fn groups(m: &crate::pointmap::ModbusDevice, limits: PlanLimits, now: Instant) -> Vec<PollGroup> {
    let mut by_interval: BTreeMap<Duration, Vec<PlanItem>> = BTreeMap::new();
    for (index, p) in m.points.iter().enumerate() {
        by_interval
            .entry(p.poll_interval)
            .or_default()
            .push(PlanItem {
                index,
                table: p.table,
                address: p.address,
                count: p.count(),
            });
    }
    by_interval
        .into_iter()
        .map(|(interval, items)| PollGroup {
            interval,
            plan: ReadPlan::new(items, limits),
            next_due: now,
        })
        .collect()
}

struct PollGroup {
    interval: Duration,
    plan: ReadPlan,
    next_due: Instant,
}

struct StationDevice {
    name: Ident,
    unit_id: u8,
    modbus: crate::pointmap::ModbusDevice,
    groups: Vec<PollGroup>,
    limits: PlanLimits,
    health: HealthTracker,
    backoff: Backoff,
    backoff_until: Option<Instant>,
    counters: Arc<DeviceCounters>,
}

impl StationDevice {
    fn due_at(&self) -> Option<Instant> {
        let due = self.groups.iter().map(|g| g.next_due).min()?;
        Some(self.backoff_until.map_or(due, |b| b.max(due)))
    }
}

struct Station<C: Connector> {
    link: ModbusLink<C>,
    devices: Vec<StationDevice>,
    /// The last poll's receipt, until the consumer has taken its readings.
    handed_over: Option<oneshot::Receiver<()>>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<DriverEvent>,
    cancel: CancellationToken,
}

/// Why a station's loop ended.
enum Stop {
    Cancelled,
    EventsClosed,
}

impl<C: Connector> Station<C> {
    async fn run(mut self) {
        let target = self.link.target();
        let why = self.run_loop().await;
        match why {
            Stop::Cancelled => tracing::debug!(%target, "station stopped: cancelled"),
            Stop::EventsClosed => {
                tracing::warn!(%target, "station stopped: event receiver gone")
            }
        }
    }

    async fn run_loop(&mut self) -> Stop {
        let mut commands_open = true;
        loop {
            let next = self
                .devices
                .iter()
                .enumerate()
                .filter_map(|(i, d)| d.due_at().map(|t| (t, i)))
                .min();
            let sleep = async {
                match next {
                    Some((t, _)) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let waiting = self.handed_over.is_some();
            let taken = async {
                match self.handed_over.as_mut() {
                    Some(rx) => {
                        let _ = rx.await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Stop::Cancelled,
                cmd = self.commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => commands_open = false,
                },
                _ = taken, if waiting => self.handed_over = None,
                _ = sleep, if !waiting => {
                    if let Some((_, i)) = next {
                        if self.poll_due(i).await.is_err() {
                            return Stop::EventsClosed;
                        }
                    }
                }
            }
        }
    }

    /// Polls the groups of device `i` that are due and reports the outcome.
    async fn poll_due(&mut self, i: usize) -> Result<(), ()> {
        let now = Instant::now();
        let d = &mut self.devices[i];
        let mut out = Readings::new(d.name.clone());
        let mut link_error = None;
        for g in d.groups.iter_mut().filter(|g| g.next_due <= now) {
            g.next_due += g.interval;
            if g.next_due <= now {
                g.next_due = now + g.interval;
            }
            if link_error.is_some() {
                continue;
            }
            let points = &d.modbus.points;
            if let Err(e) = poll_plan(
                &mut self.link,
                d.unit_id,
                points,
                &mut g.plan,
                &d.counters,
                &mut out,
            )
            .await
            {
                link_error = Some(e);
            }
        }
        DeviceCounters::add(&d.counters.polls_total, 1);
        let observation = match &link_error {
            Some(e) => {
                let wait = d.backoff.fail();
                d.backoff_until = Some(Instant::now() + wait);
                tracing::info!(device = %d.name, error = %e, retry_in_ms = wait.as_millis() as u64,
                    "device link failed");
                Observation::LinkDown(e.to_string())
            }
            None => {
                d.backoff.succeed();
                d.backoff_until = None;
                match out.failures.first() {
                    Some(f) => Observation::SomeFailed(format!("{}: {}", f.metric, f.error)),
                    None => Observation::AllRead,
                }
            }
        };
        let health = d.health.observe(observation);
        if !out.is_empty() {
            self.handed_over = Some(offer(&self.events, out).await.map_err(drop)?);
        }
        if let Some(h) = health {
            self.events
                .send(DriverEvent::Health(h))
                .await
                .map_err(drop)?;
        }
        Ok(())
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Write {
                device,
                point,
                value,
                reply,
            } => {
                let result = match self.devices.iter().find(|d| d.name == device) {
                    None => Err(WriteError::UnknownDevice(device.to_string())),
                    Some(d) => match d.modbus.point(&point) {
                        None => Err(WriteError::UnknownPoint {
                            device: device.to_string(),
                            point,
                        }),
                        Some(p) => write_point(&mut self.link, d.unit_id, p, &value).await,
                    },
                };
                let _ = reply.send(result);
            }
            Command::ReadNow { device, reply } => {
                let Some(d) = self.devices.iter_mut().find(|d| d.name == device) else {
                    let _ = reply.send(Err(ReadNowError::UnknownDevice(device.to_string())));
                    return;
                };
                let mut out = Readings::new(d.name.clone());
                let mut result = Ok(());
                for g in &mut d.groups {
                    result = poll_plan(
                        &mut self.link,
                        d.unit_id,
                        &d.modbus.points,
                        &mut g.plan,
                        &d.counters,
                        &mut out,
                    )
                    .await;
                    if result.is_err() {
                        break;
                    }
                }
                let _ = reply.send(result.map(|()| out).map_err(ReadNowError::from));
            }
            Command::SetPollInterval {
                device,
                interval,
                reply,
            } => {
                let found = self.devices.iter_mut().find(|d| d.name == device);
                let ok = found.is_some() && !interval.is_zero();
                if let (Some(d), true) = (found, ok) {
                    for p in &mut d.modbus.points {
                        p.poll_interval = interval;
                    }
                    d.groups = groups(&d.modbus, d.limits, Instant::now());
                }
                let _ = reply.send(ok);
            }
        }
    }
}
