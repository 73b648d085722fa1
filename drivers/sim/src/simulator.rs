//! [`Simulator`]: the shared state every transport serves, and the API tests drive it with.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_modbus::ExceptionCode;

use crate::clock::Clock;
use crate::config::{ConfigError, SimConfig};
use crate::line::{self, LineSensor};
use crate::model::{self, TableMap, UnitFaults};
use crate::point::PointInfo;
use crate::stats::{ServedRead, ServedValue, Stats, StatsSnapshot};
use crate::table::Table;

/// A set of simulated Modbus units, served over any number of TCP listeners and RTU ports at
/// once. Cloning is cheap and every clone sees the same registers and counters.
#[derive(Debug, Clone)]
pub struct Simulator {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) clock: Clock,
    pub(crate) units: BTreeMap<u8, SimUnit>,
    pub(crate) stats: Stats,
    config: SimConfig,
    sensors: Vec<LineSensor>,
}

/// A unit while it runs: tables behind a short-lived lock, faults outside it.
#[derive(Debug)]
pub(crate) struct SimUnit {
    pub(crate) name: Option<String>,
    tables: Mutex<[TableMap; 4]>,
    pub(crate) faults: UnitFaults,
}

impl SimUnit {
    pub(crate) fn tables(&self) -> MutexGuard<'_, [TableMap; 4]> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a direct (non-Modbus) access to the simulator failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("unit {0} is not configured")]
    UnknownUnit(u8),
    /// The access is one a Modbus client would get this exception for.
    #[error("unit {unit}: {table} {address}..+{count}: {code:?}")]
    Exception {
        unit: u8,
        table: Table,
        address: u16,
        count: u16,
        code: ExceptionCode,
    },
}

impl Simulator {
    /// Validates `config` and builds the units; time zero is now.
    pub fn from_config(config: SimConfig) -> Result<Simulator, ConfigError> {
        let clock = Clock::new();
        let units = model::build_units(&config)?
            .into_iter()
            .map(|u| {
                let unit = SimUnit {
                    name: u.name,
                    tables: Mutex::new(u.tables),
                    faults: u.faults,
                };
                (u.id, unit)
            })
            .collect();
        if let Some(rtu) = &config.rtu {
            rtu.settings()?;
        }
        let sensors = line::build_sensors(&config, clock)?;
        Ok(Simulator {
            inner: Arc::new(Inner {
                clock,
                units,
                stats: Stats::new(config.served_log.capacity),
                config,
                sensors,
            }),
        })
    }

    /// The time base of every waveform.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// The configuration the simulator was built from.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Configured unit ids, ascending.
    pub fn unit_ids(&self) -> Vec<u8> {
        self.inner.units.keys().copied().collect()
    }

    /// The configured name of a unit.
    pub fn unit_name(&self, unit: u8) -> Option<&str> {
        self.inner.units.get(&unit)?.name.as_deref()
    }

    pub(crate) fn unit(&self, unit: u8) -> Result<&SimUnit, AccessError> {
        self.inner
            .units
            .get(&unit)
            .ok_or(AccessError::UnknownUnit(unit))
    }

    /// Reads what a Modbus client would get now, bits as 0/1, without counting a request.
    /// Injected faults are not applied.
    pub fn read_registers(
        &self,
        unit: u8,
        table: Table,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, AccessError> {
        self.registers_at(unit, table, address, count, self.inner.clock.elapsed())
    }

    /// One register (or bit, as 0/1) now.
    pub fn read_register(&self, unit: u8, table: Table, address: u16) -> Result<u16, AccessError> {
        Ok(self.read_registers(unit, table, address, 1)?[0])
    }

    /// The registers served at `elapsed` after the epoch: the ground truth for a
    /// [`ServedRead`], given the writes made so far.
    pub fn registers_at(
        &self,
        unit: u8,
        table: Table,
        address: u16,
        count: u16,
        elapsed: Duration,
    ) -> Result<Vec<u16>, AccessError> {
        let tables = self.unit(unit)?.tables();
        tables[table.index()]
            .read(address, count, elapsed)
            .map_err(|code| AccessError::Exception {
                unit,
                table,
                address,
                count,
                code,
            })
    }

    /// Forces registers (bits as 0/1) of any table, read-only points included: a test's way to
    /// set a device state. Written points keep the value from now on.
    pub fn write_registers(
        &self,
        unit: u8,
        table: Table,
        address: u16,
        words: &[u16],
    ) -> Result<(), AccessError> {
        let elapsed = self.inner.clock.elapsed();
        let mut tables = self.unit(unit)?.tables();
        let words: Vec<u16> = if table.is_bits() {
            words.iter().map(|w| u16::from(*w != 0)).collect()
        } else {
            words.to_vec()
        };
        tables[table.index()]
            .write(address, &words, elapsed, false)
            .map_err(|code| AccessError::Exception {
                unit,
                table,
                address,
                count: words.len() as u16,
                code,
            })
    }

    /// Forces one register (or bit, any non-zero value meaning 1).
    pub fn write_register(
        &self,
        unit: u8,
        table: Table,
        address: u16,
        word: u16,
    ) -> Result<(), AccessError> {
        self.write_registers(unit, table, address, &[word])
    }

    /// A copy of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The served-read log, oldest first (empty when `served_log.capacity` is 0).
    pub fn served_log(&self) -> Vec<ServedRead> {
        self.inner.stats.served_log()
    }

    /// Takes the served-read log, leaving it empty.
    pub fn take_served_log(&self) -> Vec<ServedRead> {
        self.inner.stats.take_served_log()
    }

    /// Every point of `unit`, by table then address.
    pub fn points(&self, unit: u8) -> Result<Vec<PointInfo>, AccessError> {
        let tables = self.unit(unit)?.tables();
        Ok(Table::ALL
            .iter()
            .flat_map(|t| tables[t.index()].points().map(|p| p.info(unit)))
            .collect())
    }

    /// The points a served read carried in full, each decoded with its map: what a reader of
    /// those registers should have recorded, and when. Plain memory is not a point and is left
    /// out, as are points the read only partly covered.
    pub fn decode_served(&self, read: &ServedRead) -> Vec<ServedValue> {
        let Ok(unit) = self.unit(read.unit) else {
            return Vec::new();
        };
        let tables = unit.tables();
        let start = read.address;
        let end = u32::from(start) + read.words.len() as u32;
        tables[read.table.index()]
            .points_within(start, end)
            .filter_map(|p| {
                let from = usize::from(p.address - start);
                let words = &read.words[from..from + usize::from(p.width())];
                let raw = fieldlink_drivers::codec::decode(words, p.data_type, p.order).ok()?;
                let point = p.info(read.unit);
                Some(ServedValue {
                    value: point.engineering(&raw),
                    point,
                    raw,
                    elapsed: read.elapsed,
                    served_at: read.served_at,
                })
            })
            .collect()
    }

    /// The configured serial-line sensor called `name`, sharing the simulator's clock.
    pub fn line_sensor(&self, name: &str) -> Option<LineSensor> {
        self.inner
            .sensors
            .iter()
            .find(|s| s.name() == name)
            .cloned()
    }

    /// Every configured serial-line sensor.
    pub fn line_sensors(&self) -> Vec<LineSensor> {
        self.inner.sensors.clone()
    }

    /// Logs the counters through `tracing` every `every` until `shutdown` is cancelled: one
    /// event for the totals and one per unit that saw requests.
    pub fn report_stats(
        &self,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let sim = self.clone();
        async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                let s = sim.stats();
                tracing::info!(
                    target: "fieldlink_sim::stats",
                    requests = s.requests_total(),
                    exceptions = s.exceptions_total(),
                    injected_exceptions = s.faults.injected_exceptions,
                    delayed = s.faults.delayed,
                    silenced = s.faults.silenced,
                    dropped = s.faults.dropped,
                    unknown_unit_requests = s.unknown_unit_requests,
                    broadcasts = s.broadcasts,
                    tcp_connections = s.tcp_connections,
                    rtu_reopens = s.rtu_reopens,
                    served_log_len = sim.inner.stats.served_log_len(),
                    served_log_evicted = s.served_log_evicted,
                    "simulator totals"
                );
                for id in sim.unit_ids() {
                    let requests = s.requests_for_unit(id);
                    if requests == 0 {
                        continue;
                    }
                    let exceptions: u64 = s
                        .exceptions
                        .iter()
                        .filter(|((u, _), _)| *u == id)
                        .map(|(_, n)| n)
                        .sum();
                    let by_function: Vec<String> = s
                        .requests
                        .iter()
                        .filter(|((u, _), _)| *u == id)
                        .map(|((_, f), n)| format!("{f:#04x}:{n}"))
                        .collect();
                    tracing::info!(
                        target: "fieldlink_sim::stats",
                        unit = id,
                        requests,
                        exceptions,
                        by_function = %by_function.join(","),
                        "unit counters"
                    );
                }
                for sensor in &sim.inner.sensors {
                    tracing::info!(
                        target: "fieldlink_sim::stats",
                        sensor = sensor.name(),
                        lines_written = sensor.lines_written(),
                        "line sensor counters"
                    );
                }
            }
        }
    }
}
