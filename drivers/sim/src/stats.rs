//! What the simulator did: request counters and the bounded log of served reads.
//!
//! The served log is the ground truth of end-to-end tests: every read the simulator answered,
//! with the raw registers and the time it was served. It is bounded; when full the oldest entry
//! is evicted and counted in [`StatsSnapshot::served_log_evicted`], never silently.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fieldlink_drivers::codec::TypedValue;

use crate::point::PointInfo;
use crate::table::Table;

/// One answered read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRead {
    pub unit: u8,
    pub table: Table,
    /// First address of the read.
    pub address: u16,
    /// What was sent: registers, or bits as 0/1.
    pub words: Vec<u16>,
    /// Time since the simulator's epoch at which the values were evaluated.
    pub elapsed: Duration,
    /// Wall-clock time of the same instant.
    pub served_at: SystemTime,
}

/// One point's value within a [`ServedRead`], decoded with the point's map.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedValue {
    pub point: PointInfo,
    /// The raw value as the registers carry it.
    pub raw: TypedValue,
    /// What a reader applying the point's scale and offset gets; `None` for strings.
    pub value: Option<f64>,
    pub elapsed: Duration,
    pub served_at: SystemTime,
}

/// Counters of faults the simulator injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Answers replaced by a configured exception.
    pub injected_exceptions: u64,
    /// Answers held back by a unit's `delay_ms`.
    pub delayed: u64,
    /// Requests a silent unit ignored.
    pub silenced: u64,
    /// Requests dropped by `drop_every` (closing the TCP connection they came on).
    pub dropped: u64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Requests by (unit, function code), for configured units.
    pub requests: BTreeMap<(u8, u8), u64>,
    /// Exception answers by (unit, exception code), injected or not.
    pub exceptions: BTreeMap<(u8, u8), u64>,
    pub faults: FaultCounts,
    /// Requests for a unit id that is not configured.
    pub unknown_unit_requests: u64,
    /// RTU broadcast writes (unit 0) applied to every unit.
    pub broadcasts: u64,
    /// Modbus TCP connections accepted.
    pub tcp_connections: u64,
    /// Times the RTU port was reopened after a framing error or a lost device.
    pub rtu_reopens: u64,
    /// Served-log entries evicted because the log was full.
    pub served_log_evicted: u64,
}

impl StatsSnapshot {
    /// All requests for configured units.
    pub fn requests_total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests for `unit`, all function codes.
    pub fn requests_for_unit(&self, unit: u8) -> u64 {
        self.requests
            .iter()
            .filter(|((u, _), _)| *u == unit)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests for `unit` with function code `function`.
    pub fn requests_for(&self, unit: u8, function: u8) -> u64 {
        self.requests.get(&(unit, function)).copied().unwrap_or(0)
    }

    /// Exception answers of `unit` with `code`.
    pub fn exceptions_for(&self, unit: u8, code: u8) -> u64 {
        self.exceptions.get(&(unit, code)).copied().unwrap_or(0)
    }

    /// All exception answers.
    pub fn exceptions_total(&self) -> u64 {
        self.exceptions.values().sum()
    }
}

/// The live counters behind [`StatsSnapshot`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    inner: Mutex<StatsSnapshot>,
    log: Mutex<ServedLog>,
}

#[derive(Debug, Default)]
struct ServedLog {
    capacity: usize,
    entries: VecDeque<ServedRead>,
}

impl Stats {
    pub(crate) fn new(served_log_capacity: usize) -> Self {
        Stats {
            inner: Mutex::default(),
            log: Mutex::new(ServedLog {
                capacity: served_log_capacity,
                entries: VecDeque::new(),
            }),
        }
    }

    /// Updates the counters; the closure runs under a short lock.
    pub(crate) fn update(&self, f: impl FnOnce(&mut StatsSnapshot)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn log_enabled(&self) -> bool {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).capacity > 0
    }

    pub(crate) fn record_read(&self, read: ServedRead) {
        let evicted = {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            if log.capacity == 0 {
                return;
            }
            let evicted = if log.entries.len() == log.capacity {
                log.entries.pop_front().is_some()
            } else {
                false
            };
            log.entries.push_back(read);
            evicted
        };
        if evicted {
            self.update(|s| s.served_log_evicted += 1);
        }
    }

    pub(crate) fn served_log_len(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    pub(crate) fn served_log(&self) -> Vec<ServedRead> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.entries.iter().cloned().collect()
    }

    pub(crate) fn take_served_log(&self) -> Vec<ServedRead> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.entries.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(address: u16) -> ServedRead {
        ServedRead {
            unit: 1,
            table: Table::HoldingRegister,
            address,
            words: vec![address],
            elapsed: Duration::ZERO,
            served_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_full_log_evicts_the_oldest_and_counts_it() {
        let stats = Stats::new(2);
        for a in 0..5 {
            stats.record_read(read(a));
        }
        let kept: Vec<u16> = stats.served_log().iter().map(|r| r.address).collect();
        assert_eq!(kept, [3, 4]);
        assert_eq!(stats.snapshot().served_log_evicted, 3);
        assert_eq!(stats.take_served_log().len(), 2);
        assert!(stats.served_log().is_empty());
    }

    #[test]
    fn a_disabled_log_keeps_nothing() {
        let stats = Stats::new(0);
        stats.record_read(read(1));
        assert!(!stats.log_enabled());
        assert!(stats.served_log().is_empty());
        assert_eq!(stats.snapshot().served_log_evicted, 0);
    }
}
