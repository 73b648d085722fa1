//! `fieldlink-sim`: a Modbus TCP and RTU slave simulator, and a serial-line sensor emulator, for
//! Fieldlink's tests, benchmarks and demo.
//!
//! It lives outside the `fieldlink-drivers` crate so the gateway binary carries none of it, but it
//! encodes every typed register with the drivers' own codec ([`fieldlink_drivers::codec`]), so
//! the simulator and the drivers cannot disagree on a layout.
//!
//! # What it simulates
//! - Several **units** (slave ids 1..=247), each with the four Modbus tables: coils, discrete
//!   inputs, input registers and holding registers.
//! - **Points**: a typed value at an address — `bool` in the bit tables; `u16`, `i16`, `u32`,
//!   `i32`, `u64`, `i64`, `f32`, `f64`, `bool`, `bit:N` or `string:N` in the register tables — in
//!   any word order (`ABCD`, `CDAB`, `BADC`, `DCBA`) with a scale and an offset. Served raw value
//!   = `(waveform value - offset) / scale`, rounded for integer types, so a reader applying
//!   `raw * scale + offset` gets the waveform back. Several `bit:N` points may share a register
//!   (a status word).
//! - **Waveforms** (see [`config::WaveformConfig`]): `constant`, `counter`, `ramp`, `sine`,
//!   `random_walk` (seeded) and `step`. A waveform is a pure function of the time elapsed since
//!   the simulator's [`Clock`] started, evaluated when an answer is built, so the ground truth of
//!   any served value can be computed from its served-at time.
//! - **Writes**: points marked `writable` accept Modbus writes (function codes 5, 6, 15, 16, 22,
//!   23) and keep what was written from then on; plain memory (`[units.size]`) reads 0 until
//!   written. Writes to read-only points get exception 2; writes are all or nothing.
//! - **Faults** per unit: exceptions on address ranges, a `delay_ms` on every answer, a `silent`
//!   unit that never answers, and `drop_every = N`: every Nth request to the unit is not answered
//!   and, over TCP, its connection is closed (the count is per unit, across connections). On RTU
//!   a delayed unit holds the bus like a real half-duplex line: later requests wait behind it,
//!   and its answer may arrive after the master has given up on it.
//! - Unconfigured addresses answer exception 2 (illegal data address), oversized requests
//!   exception 3, unsupported function codes exception 1. Over TCP a request for an unconfigured
//!   unit gets exception 0x0B (ids 0 and 255 reach the unit when only one is configured); over
//!   RTU it stays unanswered, and unit 0 writes are broadcast to every unit without an answer.
//!
//! # What it records
//! - [`Simulator::stats`]: requests by (unit, function code), exceptions by (unit, code),
//!   injected faults, unknown-unit requests, TCP connections, RTU port reopens.
//! - [`Simulator::served_log`]: with `served_log.capacity > 0`, every answered read — unit,
//!   table, first address, the raw registers (bits as 0/1), the elapsed time at which they were
//!   evaluated and the wall-clock time. Bounded: the oldest entry is evicted and counted.
//!   [`Simulator::decode_served`] turns an entry into per-point values (name, raw typed value,
//!   engineering value) — the ground truth of an end-to-end "no reading lost" test — and
//!   [`Simulator::points`] lists a unit's points to build a matching point map from.
//!   [`Simulator::export_served_log`] streams the log as JSON lines (the binary's
//!   `--served-log FILE`), for a test running the simulator in another process.
//! - The binary logs both periodically through `tracing` (`--stats-interval`).
//!
//! # Library API
//! ```no_run
//! use fieldlink_sim::{SerialSettings, SimConfig, Simulator, Table};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SimConfig::from_toml_str(r#"
//!     [[units]]
//!     id = 1
//!     [[units.points]]
//!     table = "holding_register"
//!     address = 0
//!     type = "f32"
//!     waveform = { kind = "sine", offset = 230, amplitude = 5, period_s = 10 }
//! "#)?;
//! let sim = Simulator::from_config(config)?;            // validates; time zero is now
//! let tcp = sim.bind_tcp("127.0.0.1:0".parse()?).await?;
//! let addr = tcp.local_addr();                          // the real port
//! let rtu = sim.start_rtu(SerialSettings::new("/dev/pts/7", 19200))?;
//!
//! sim.write_register(1, Table::HoldingRegister, 0, 0x4000)?;   // force a value, for tests
//! let now = sim.read_registers(1, Table::HoldingRegister, 0, 2)?;
//! let at_5s = sim.registers_at(1, Table::HoldingRegister, 0, 2, std::time::Duration::from_secs(5))?;
//! let counters = sim.stats();
//! let served = sim.served_log();
//!
//! tcp.stop().await?;                                    // or drop the handle
//! rtu.stop().await?;
//! # Ok(()) }
//! ```
//! For a server under an existing shutdown root use [`Simulator::serve_tcp`] (with a
//! `TcpListener` you bound) and [`Simulator::serve_rtu`], which run until their
//! `CancellationToken` is cancelled. Serial-line sensors: [`Simulator::line_sensor`] then
//! [`LineSensor::start`] with a device path; [`LineSensor::written_log`] keeps what was written
//! (up to `served_log.capacity` lines, with the time the values were taken).
//!
//! # Configuration file
//! TOML, parsed by [`SimConfig::from_toml_str`] / [`SimConfig::load`] and checked by
//! [`SimConfig::validate`] (also run by [`Simulator::from_config`]). Errors name the place, e.g.
//! `units[1] (unit 2).points[4] (input_register 10): overlaps points[3] (input_register 10) (u16)`.
//!
//! ```toml
//! [tcp]                         # binary only; --tcp overrides
//! listen = "127.0.0.1:5020"
//! [rtu]                         # binary only; --rtu/--baud override
//! path = "/dev/ttyUSB0"
//! baud = 19200
//! parity = "even"               # none (default) | even | odd
//! data_bits = 8                 # default 8
//! stop_bits = 1                 # default 1
//! [served_log]
//! capacity = 10000              # 0 (default): off
//!
//! [[units]]
//! id = 1                        # 1..=247, unique
//! name = "meter"                # optional
//! size = { holding_registers = 100, coils = 16 }   # plain memory 0..size per table
//! faults = { delay_ms = 0, silent = false, drop_every = 10 }
//!
//! [[units.faults.exceptions]]
//! table = "holding_register"
//! address = 200
//! count = 5                     # default 1
//! code = 2                      # default 2
//!
//! [[units.points]]
//! name = "voltage"              # optional
//! table = "input_register"      # coil | discrete_input | input_register | holding_register
//! address = 0
//! type = "f32"                  # default: u16 (registers), bool (bits)
//! order = "CDAB"                # default ABCD
//! scale = 0.1                   # default 1
//! offset = 0.0                  # default 0
//! writable = false              # coil and holding_register only
//! repeat = 1                    # consecutive copies of the point
//! waveform = { kind = "sine", offset = 230, amplitude = 5, period_s = 60, phase_deg = 0 }
//! # other kinds:
//! #   { kind = "constant", value = 12.5 }   (or true, or "TEXT" for string:N points)
//! #   { kind = "counter", start = 0, increment = 1, interval_s = 1 }   integer types wrap
//! #   { kind = "ramp", min = 0, max = 100, period_s = 60 }
//! #   { kind = "random_walk", start = 50, max_step = 2, min = 0, max = 100, interval_s = 1, seed = 7 }
//! #   { kind = "step", values = [0, 1, 5], interval_s = 10 }
//! # no waveform: constant 0 (empty for strings)
//!
//! [[line_sensors]]
//! name = "weather"
//! path = "/dev/ttyUSB1"         # optional; --line weather=PATH overrides
//! baud = 9600
//! interval_s = 1.0
//! format = "key_value"          # T=21.4 H=55   |  "json": {"T":21.4,"H":55}
//! line_ending = "lf"            # or "crlf"
//! garbage_every = 50            # optional: every 50th line is garbage
//! [[line_sensors.fields]]
//! key = "T"
//! decimals = 1
//! waveform = { kind = "sine", offset = 18, amplitude = 6, period_s = 600 }
//! ```
//! A complete annotated example is `drivers/sim/examples/plant.toml` (also printed by
//! `fieldlink-sim print-example-config`).
//!
//! # Binary
//! `fieldlink-sim run --config FILE [--tcp ADDR] [--rtu PATH [--baud N]] [--line NAME=PATH]...
//! [--stats-interval SECS] [--served-log FILE]`, `fieldlink-sim check-config FILE`,
//! `fieldlink-sim print-example-config`. Exit codes: 0 stopped cleanly, 2 usage, 3 invalid
//! configuration, 4 a transport failed.

pub mod clock;
pub mod config;
mod error;
mod export;
mod line;
mod model;
mod point;
mod rtu;
mod service;
mod simulator;
mod stats;
pub mod table;
mod tcp;
pub mod waveform;

pub use clock::Clock;
pub use config::{ConfigError, SimConfig};
pub use error::ServeError;
pub use line::{LineSensor, LineSensorHandle, WrittenLine};
pub use point::PointInfo;
pub use rtu::{RtuServerHandle, SerialSettings};
pub use simulator::{AccessError, Simulator};
pub use stats::{FaultCounts, ServedRead, ServedValue, StatsSnapshot};
pub use table::Table;
pub use tcp::TcpServerHandle;
pub use tokio_modbus::ExceptionCode;
