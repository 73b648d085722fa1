//! Starting acquisition for a whole point map, and the handle the agent keeps.
//!
//! Each Modbus TCP device gets its own station (they poll concurrently); the devices of one
//! serial port share one station (one owner per bus); each serial-line sensor gets its own
//! reader task. All of them send on the caller's event channel and stop when the caller's
//! cancellation token fires.

use std::collections::BTreeMap;
use std::sync::Arc;

use fieldlink_protocol::{Ident, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::event::{DriverEvent, Readings};
use crate::health::DeviceCounters;
use crate::modbus::{
    spawn_station, Command, LinkOptions, ReadNowError, SerialConnector, StationOptions,
    TcpConnector,
};
use crate::pointmap::{Device, DeviceKind, ModbusLink as LinkSpec, PointMap};
use crate::write::{WriteError, WriteOutcome};

/// Running acquisition for a point map.
#[derive(Debug)]
pub struct Acquisition {
    commands: BTreeMap<Ident, mpsc::Sender<Command>>,
    counters: BTreeMap<Ident, Arc<DeviceCounters>>,
    tasks: JoinSet<()>,
}

impl Acquisition {
    /// Starts a task per link (Modbus) or port (serial line). Must run inside a tokio runtime.
    pub fn start(
        map: &PointMap,
        options: StationOptions,
        events: mpsc::Sender<DriverEvent>,
        cancel: CancellationToken,
    ) -> Acquisition {
        let mut acq = Acquisition {
            commands: BTreeMap::new(),
            counters: BTreeMap::new(),
            tasks: JoinSet::new(),
        };
        let mut buses: BTreeMap<String, Vec<Device>> = BTreeMap::new();
        for device in &map.devices {
            match &device.kind {
                DeviceKind::Modbus(m) => match &m.link {
                    LinkSpec::Tcp { host, port } => {
                        let connector = TcpConnector {
                            host: host.clone(),
                            port: *port,
                        };
                        let link = LinkOptions::tcp(device.timeout);
                        let (handle, task) = spawn_station(
                            connector,
                            link,
                            std::slice::from_ref(device),
                            options,
                            events.clone(),
                            cancel.clone(),
                        );
                        acq.adopt(handle, task);
                    }
                    LinkSpec::Rtu { port, .. } => {
                        buses.entry(port.clone()).or_default().push(device.clone())
                    }
                },
                DeviceKind::SerialLine(s) => {
                    let counters = Arc::new(DeviceCounters::default());
                    acq.counters.insert(device.name.clone(), counters.clone());
                    let reader = crate::serial_line::LineReader::new(
                        device.name.clone(),
                        s.clone(),
                        crate::serial_line::SerialOpener {
                            path: s.port.clone(),
                            line: s.line,
                        },
                        counters,
                    );
                    let task = reader.run(
                        crate::serial_line::ReopenOptions::default(),
                        events.clone(),
                        cancel.clone(),
                    );
                    acq.tasks.spawn(task);
                }
            }
        }
        for (port, devices) in buses {
            let Some(DeviceKind::Modbus(first)) = devices.first().map(|d| &d.kind) else {
                continue;
            };
            let LinkSpec::Rtu {
                line, turnaround, ..
            } = &first.link
            else {
                continue;
            };
            // One timeout for the bus: the longest any of its devices asks for.
            let timeout = devices.iter().map(|d| d.timeout).max().unwrap_or_default();
            let link = LinkOptions::rtu(timeout, line.baud, *turnaround);
            let connector = SerialConnector {
                path: port,
                line: *line,
            };
            let (handle, task) = spawn_station(
                connector,
                link,
                &devices,
                options,
                events.clone(),
                cancel.clone(),
            );
            acq.adopt(handle, task);
        }
        acq
    }

    fn adopt(&mut self, handle: crate::modbus::StationHandle, task: tokio::task::JoinHandle<()>) {
        for (name, counters) in handle.counters {
            self.commands.insert(name.clone(), handle.commands.clone());
            self.counters.insert(name, counters);
        }
        self.tasks.spawn(async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "station task failed");
            }
        });
    }

    /// Writes `value` to `point` of `device`.
    pub async fn write(
        &self,
        device: &str,
        point: &str,
        value: Value,
    ) -> Result<WriteOutcome, WriteError> {
        let (tx, device) = self.route(device).map_err(|name| {
            if self.counters.keys().any(|k| k.as_str() == name) {
                WriteError::ReadOnlyDevice(name)
            } else {
                WriteError::UnknownDevice(name)
            }
        })?;
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Write {
            device,
            point: point.to_owned(),
            value,
            reply,
        };
        tx.send(cmd).await.map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Polls every point of a Modbus device now and returns the readings.
    pub async fn read_now(&self, device: &str) -> Result<Readings, ReadNowError> {
        let (tx, device) = self.route(device).map_err(ReadNowError::UnknownDevice)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command::ReadNow { device, reply })
            .await
            .map_err(|_| ReadNowError::Stopped)?;
        rx.await.map_err(|_| ReadNowError::Stopped)?
    }

    /// Changes a Modbus device's poll interval; `false` if there is no such device or the
    /// interval is zero.
    pub async fn set_poll_interval(&self, device: &str, interval: std::time::Duration) -> bool {
        let Ok((tx, device)) = self.route(device) else {
            return false;
        };
        let (reply, rx) = oneshot::channel();
        let cmd = Command::SetPollInterval {
            device,
            interval,
            reply,
        };
        tx.send(cmd).await.is_ok() && rx.await.unwrap_or(false)
    }

    /// The running totals of a device.
    pub fn counters(&self, device: &str) -> Option<Arc<DeviceCounters>> {
        self.counters
            .iter()
            .find(|(k, _)| k.as_str() == device)
            .map(|(_, c)| c.clone())
    }

    /// Waits for every task to end (after the cancellation token fired).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    fn route(&self, device: &str) -> Result<(mpsc::Sender<Command>, Ident), String> {
        self.commands
            .iter()
            .find(|(k, _)| k.as_str() == device)
            .map(|(k, tx)| (tx.clone(), k.clone()))
            .ok_or_else(|| device.to_owned())
    }
}
