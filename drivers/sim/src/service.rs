//! The Modbus request handler both transports share, with fault injection and accounting.
//!
//! Order of events for a request to a configured unit: count it; apply `drop_every`, then
//! `silent`, then `delay_ms`; then evaluate the waveforms at the current time, answer, and log
//! the read. The values served are therefore those of the moment the answer leaves, after any
//! delay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use crate::simulator::{SimUnit, Simulator};
use crate::stats::ServedRead;
use crate::table::Table;

/// Largest register count of one read (function codes 3 and 4).
const MAX_READ_REGISTERS: u16 = 125;
/// Largest bit count of one read (function codes 1 and 2).
const MAX_READ_BITS: u16 = 2000;
/// Largest register count of one write (function code 16).
const MAX_WRITE_REGISTERS: u16 = 123;
/// Largest coil count of one write (function code 15).
const MAX_WRITE_BITS: u16 = 1968;
/// Largest register count of the write half of function code 23.
const MAX_READ_WRITE_REGISTERS: u16 = 121;

/// Which transport a service answers on; they differ for unknown and broadcast unit ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp,
    Rtu,
}

/// One instance per TCP connection, or one per RTU port.
#[derive(Debug, Clone)]
pub(crate) struct ModbusService {
    sim: Simulator,
    transport: Transport,
    /// Set to close the TCP connection this service answers on.
    close: Option<Arc<AtomicBool>>,
}

impl ModbusService {
    pub(crate) fn tcp(sim: Simulator, close: Arc<AtomicBool>) -> Self {
        ModbusService {
            sim,
            transport: Transport::Tcp,
            close: Some(close),
        }
    }

    pub(crate) fn rtu(sim: Simulator) -> Self {
        ModbusService {
            sim,
            transport: Transport::Rtu,
            close: None,
        }
    }

    /// The configured unit a request addresses. Over TCP, ids 0 and 255 (both used for "the
    /// device at this address") reach the only unit when exactly one is configured.
    fn resolve(&self, slave: u8) -> Option<u8> {
        let units = &self.sim.inner.units;
        if units.contains_key(&slave) {
            return Some(slave);
        }
        if self.transport == Transport::Tcp && (slave == 0 || slave == 255) && units.len() == 1 {
            return units.keys().next().copied();
        }
        None
    }

    async fn handle(self, req: SlaveRequest<'static>) -> Result<Option<Response>, ExceptionCode> {
        if self
            .close
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Acquire))
        {
            // A request pipelined behind the one that dropped the connection.
            return Ok(None);
        }
        let SlaveRequest { slave, request } = req;
        let function = request.function_code().value();
        let stats = &self.sim.inner.stats;

        if slave == 0 && self.transport == Transport::Rtu {
            self.broadcast(&request);
            return Ok(None);
        }
        let Some(unit_id) = self.resolve(slave) else {
            stats.update(|s| s.unknown_unit_requests += 1);
            tracing::debug!(unit = slave, function, "request for an unconfigured unit");
            return match self.transport {
                Transport::Tcp => Err(ExceptionCode::GatewayTargetDevice),
                Transport::Rtu => Ok(None),
            };
        };
        let Some(unit) = self.sim.inner.units.get(&unit_id) else {
            return Ok(None);
        };
        stats.update(|s| *s.requests.entry((unit_id, function)).or_default() += 1);

        if unit.faults.count_and_check_drop() {
            stats.update(|s| s.faults.dropped += 1);
            if let Some(close) = &self.close {
                close.store(true, Ordering::Release);
            }
            tracing::debug!(
                unit = unit_id,
                function,
                "dropping request (drop_every fault)"
            );
            return Ok(None);
        }
        if unit.faults.silent {
            stats.update(|s| s.faults.silenced += 1);
            return Ok(None);
        }
        if !unit.faults.delay.is_zero() {
            stats.update(|s| s.faults.delayed += 1);
            tokio::time::sleep(unit.faults.delay).await;
        }

        let result = self.execute(unit_id, unit, &request);
        if let Err(code) = result {
            stats.update(|s| *s.exceptions.entry((unit_id, u8::from(code))).or_default() += 1);
        }
        result.map(Some)
    }

    /// Applies a broadcast write to every unit; reads and non-writes are ignored, as on a bus.
    fn broadcast(&self, request: &Request<'static>) {
        let is_write = matches!(
            request,
            Request::WriteSingleCoil(..)
                | Request::WriteMultipleCoils(..)
                | Request::WriteSingleRegister(..)
                | Request::WriteMultipleRegisters(..)
        );
        if !is_write {
            return;
        }
        self.sim.inner.stats.update(|s| s.broadcasts += 1);
        for (&id, unit) in &self.sim.inner.units {
            if let Err(code) = self.execute(id, unit, request) {
                tracing::debug!(unit = id, ?code, "broadcast write refused");
            }
        }
    }

    fn execute(
        &self,
        unit_id: u8,
        unit: &SimUnit,
        request: &Request<'static>,
    ) -> Result<Response, ExceptionCode> {
        let op = Operation {
            unit_id,
            unit,
            sim: &self.sim,
        };
        match request {
            Request::ReadCoils(a, n) => op
                .read(Table::Coil, *a, *n, MAX_READ_BITS)
                .map(|w| Response::ReadCoils(bits(&w))),
            Request::ReadDiscreteInputs(a, n) => op
                .read(Table::DiscreteInput, *a, *n, MAX_READ_BITS)
                .map(|w| Response::ReadDiscreteInputs(bits(&w))),
            Request::ReadHoldingRegisters(a, n) => op
                .read(Table::HoldingRegister, *a, *n, MAX_READ_REGISTERS)
                .map(Response::ReadHoldingRegisters),
            Request::ReadInputRegisters(a, n) => op
                .read(Table::InputRegister, *a, *n, MAX_READ_REGISTERS)
                .map(Response::ReadInputRegisters),
            Request::WriteSingleCoil(a, on) => op
                .write(Table::Coil, *a, &[u16::from(*on)], 1)
                .map(|()| Response::WriteSingleCoil(*a, *on)),
            Request::WriteMultipleCoils(a, coils) => {
                let words: Vec<u16> = coils.iter().map(|c| u16::from(*c)).collect();
                op.write(Table::Coil, *a, &words, MAX_WRITE_BITS)
                    .map(|()| Response::WriteMultipleCoils(*a, words.len() as u16))
            }
            Request::WriteSingleRegister(a, w) => op
                .write(Table::HoldingRegister, *a, &[*w], 1)
                .map(|()| Response::WriteSingleRegister(*a, *w)),
            Request::WriteMultipleRegisters(a, words) => op
                .write(Table::HoldingRegister, *a, words, MAX_WRITE_REGISTERS)
                .map(|()| Response::WriteMultipleRegisters(*a, words.len() as u16)),
            Request::MaskWriteRegister(a, and, or) => {
                let current = op.peek(Table::HoldingRegister, *a)?;
                let new = (current & and) | (or & !and);
                op.write(Table::HoldingRegister, *a, &[new], 1)
                    .map(|()| Response::MaskWriteRegister(*a, *and, *or))
            }
            Request::ReadWriteMultipleRegisters(ra, rn, wa, words) => {
                // The write half runs first, as the specification orders.
                op.write(Table::HoldingRegister, *wa, words, MAX_READ_WRITE_REGISTERS)?;
                op.read(Table::HoldingRegister, *ra, *rn, MAX_READ_REGISTERS)
                    .map(Response::ReadWriteMultipleRegisters)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

impl tokio_modbus::server::Service for ModbusService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = BoxFuture<'static, Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        Box::pin(self.clone().handle(req))
    }
}

/// One request's access to one unit.
struct Operation<'a> {
    unit_id: u8,
    unit: &'a SimUnit,
    sim: &'a Simulator,
}

impl Operation<'_> {
    fn check(
        &self,
        table: Table,
        address: u16,
        count: usize,
        max: u16,
    ) -> Result<u16, ExceptionCode> {
        let count = u16::try_from(count).map_err(|_| ExceptionCode::IllegalDataValue)?;
        if count == 0 || count > max {
            return Err(ExceptionCode::IllegalDataValue);
        }
        if let Some(code) = self.unit.faults.exception_for(table, address, count) {
            self.sim
                .inner
                .stats
                .update(|s| s.faults.injected_exceptions += 1);
            return Err(code);
        }
        Ok(count)
    }

    fn read(
        &self,
        table: Table,
        address: u16,
        count: u16,
        max: u16,
    ) -> Result<Vec<u16>, ExceptionCode> {
        self.check(table, address, usize::from(count), max)?;
        let clock = self.sim.inner.clock;
        let elapsed = clock.elapsed();
        let words = self.unit.tables()[table.index()].read(address, count, elapsed)?;
        let stats = &self.sim.inner.stats;
        if stats.log_enabled() {
            stats.record_read(ServedRead {
                unit: self.unit_id,
                table,
                address,
                words: words.clone(),
                elapsed,
                served_at: clock.wall_time(elapsed),
            });
        }
        Ok(words)
    }

    /// The current value of one register, without logging it as served.
    fn peek(&self, table: Table, address: u16) -> Result<u16, ExceptionCode> {
        self.check(table, address, 1, 1)?;
        let elapsed = self.sim.inner.clock.elapsed();
        Ok(self.unit.tables()[table.index()].read(address, 1, elapsed)?[0])
    }

    fn write(
        &self,
        table: Table,
        address: u16,
        words: &[u16],
        max: u16,
    ) -> Result<(), ExceptionCode> {
        self.check(table, address, words.len(), max)?;
        let elapsed = self.sim.inner.clock.elapsed();
        self.unit.tables()[table.index()].write(address, words, elapsed, true)
    }
}

fn bits(words: &[u16]) -> Vec<bool> {
    words.iter().map(|w| *w != 0).collect()
}
