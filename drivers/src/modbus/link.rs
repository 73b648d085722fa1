//! One Modbus link (a TCP connection or a serial bus) with timeouts, resets and bus silence.
//!
//! tokio-modbus's async client waits for an answer forever. Every request here runs under a
//! timeout; a timeout, an I/O error or an answer that does not match its request drops the
//! connection, so a late answer can never be taken for the next request's. The next request
//! reconnects. On a serial bus, a reconnect also discards whatever trickles in until the line has
//! been quiet for a while, for the same reason.
//!
//! RTU frames are delimited by silence: the line must stay quiet for 3.5 character times between
//! frames (1.75 ms above 19,200 baud, per the Modbus serial line specification), and slow slaves
//! may need longer to release an RS-485 transceiver. The link waits [`LinkOptions::min_gap`]
//! after the end of each transaction before it sends the next request.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_modbus::client::{Context, Reader as _, Writer as _};
use tokio_modbus::slave::SlaveContext as _;
use tokio_modbus::{ExceptionCode, Slave};

use crate::modbus::connector::{Connector, Framing};
use crate::modbus::error::{LinkError, ModbusResult};
use crate::pointmap::Table;

/// Timing of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkOptions {
    /// How long one request may wait for its answer.
    pub timeout: Duration,
    /// Silence kept on the line between the end of one transaction and the next request.
    pub min_gap: Duration,
}

impl LinkOptions {
    pub fn tcp(timeout: Duration) -> LinkOptions {
        LinkOptions {
            timeout,
            min_gap: Duration::ZERO,
        }
    }

    /// RTU timing: the 3.5-character inter-frame silence at `baud`, plus `turnaround`.
    pub fn rtu(timeout: Duration, baud: u32, turnaround: Duration) -> LinkOptions {
        LinkOptions {
            timeout,
            min_gap: inter_frame_silence(baud) + turnaround,
        }
    }
}

/// The 3.5-character silence that ends an RTU frame: a character is 11 bits on the line (start,
/// 8 data, parity or a second stop bit, stop); above 19,200 baud the specification fixes 1.75 ms.
pub fn inter_frame_silence(baud: u32) -> Duration {
    if baud == 0 || baud > 19_200 {
        Duration::from_micros(1_750)
    } else {
        Duration::from_nanos(38_500_000_000 / u64::from(baud))
    }
}

/// A Modbus request the drivers make.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Read {
        table: Table,
        start: u16,
        count: u16,
    },
    WriteRegisters {
        start: u16,
        words: Vec<u16>,
    },
    WriteCoils {
        start: u16,
        bits: Vec<bool>,
    },
    /// Function 22: `new = (old & and) | (or & !and)`.
    MaskWrite {
        address: u16,
        and: u16,
        or: u16,
    },
}

/// What came back for an [`Op`].
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Registers, or bits as `0`/`1` words for the bit tables.
    Words(Vec<u16>),
    Done,
}

/// A link and its connection, reconnected on demand.
pub struct ModbusLink<C: Connector> {
    connector: C,
    context: Option<Context>,
    options: LinkOptions,
    /// When the line became free; the next request waits until `quiet_since + min_gap`.
    quiet_since: Instant,
}

impl<C: Connector> std::fmt::Debug for ModbusLink<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModbusLink")
            .field("target", &self.connector.target())
            .field("connected", &self.context.is_some())
            .field("options", &self.options)
            .finish()
    }
}

impl<C: Connector> ModbusLink<C> {
    pub fn new(connector: C, options: LinkOptions) -> Self {
        ModbusLink {
            connector,
            context: None,
            options,
            quiet_since: Instant::now(),
        }
    }

    pub fn options(&self) -> LinkOptions {
        self.options
    }

    pub fn target(&self) -> String {
        self.connector.target()
    }

    pub fn is_connected(&self) -> bool {
        self.context.is_some()
    }

    /// Drops the connection; the next request opens a new one.
    pub fn reset(&mut self) {
        self.context = None;
    }

    /// Reads `count` items of `table` from unit `unit`.
    pub async fn read(
        &mut self,
        unit: u8,
        table: Table,
        start: u16,
        count: u16,
    ) -> ModbusResult<Vec<u16>> {
        let answer = self
            .call(
                unit,
                Op::Read {
                    table,
                    start,
                    count,
                },
            )
            .await?;
        Ok(answer.map(|a| match a {
            Answer::Words(w) => w,
            Answer::Done => Vec::new(),
        }))
    }

    /// Runs one request: waits for bus silence, connects if needed, sends, and waits for the
    /// answer within the timeout. Any link error drops the connection.
    pub async fn call(&mut self, unit: u8, op: Op) -> ModbusResult<Answer> {
        sleep_until(self.quiet_since + self.options.min_gap).await;
        let result = self.call_connected(unit, &op).await;
        self.quiet_since = Instant::now();
        if result.is_err() {
            self.reset();
        }
        result
    }

    async fn call_connected(&mut self, unit: u8, op: &Op) -> ModbusResult<Answer> {
        if self.context.is_none() {
            self.context = Some(self.connect().await?);
        }
        let limit = self.options.timeout;
        let Some(ctx) = self.context.as_mut() else {
            return Err(LinkError::Io(std::io::ErrorKind::NotConnected.into()));
        };
        ctx.set_slave(Slave(unit));
        let answer = match timeout(limit, execute(ctx, op)).await {
            Err(_) => return Err(LinkError::Timeout(limit)),
            Ok(r) => r?,
        };
        if let (Ok(Answer::Words(w)), Op::Read { count, .. }) = (&answer, op) {
            if w.len() != usize::from(*count) {
                return Err(LinkError::Malformed(format!(
                    "asked for {count} items, got {}",
                    w.len()
                )));
            }
        }
        Ok(answer)
    }

    async fn connect(&mut self) -> Result<Context, LinkError> {
        let target = self.connector.target();
        let framing = self.connector.framing();
        let connecting = self.connector.connect();
        let mut io = match timeout(self.options.timeout, connecting).await {
            Ok(Ok(io)) => io,
            Ok(Err(source)) => return Err(LinkError::Connect { target, source }),
            Err(_) => {
                return Err(LinkError::Connect {
                    target,
                    source: std::io::ErrorKind::TimedOut.into(),
                })
            }
        };
        Ok(match framing {
            Framing::Tcp => tokio_modbus::client::tcp::attach(io),
            Framing::Rtu => {
                drain_until_quiet(&mut io, self.options.min_gap.max(Duration::from_millis(20)))
                    .await;
                tokio_modbus::client::rtu::attach(io)
            }
        })
    }
}

/// Reads and discards until the stream has been quiet for `quiet` (at most 64 reads), so bytes
/// of an answer that arrived after its request timed out are not parsed as the next answer.
async fn drain_until_quiet<T: tokio::io::AsyncRead + Unpin>(io: &mut T, quiet: Duration) {
    let mut buf = [0u8; 256];
    for _ in 0..64 {
        match timeout(quiet, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => return,
        }
    }
}

async fn execute(ctx: &mut Context, op: &Op) -> tokio_modbus::Result<Answer> {
    let bits = |r: Result<Vec<bool>, ExceptionCode>| {
        r.map(|b| Answer::Words(b.into_iter().map(u16::from).collect()))
    };
    let done = |r: Result<(), ExceptionCode>| r.map(|()| Answer::Done);
    Ok(match op {
        Op::Read {
            table,
            start,
            count,
        } => match table {
            Table::Coil => bits(ctx.read_coils(*start, *count).await?),
            Table::DiscreteInput => bits(ctx.read_discrete_inputs(*start, *count).await?),
            Table::InputRegister => ctx
                .read_input_registers(*start, *count)
                .await?
                .map(Answer::Words),
            Table::HoldingRegister => ctx
                .read_holding_registers(*start, *count)
                .await?
                .map(Answer::Words),
        },
        Op::WriteRegisters { start, words } if words.len() == 1 => {
            done(ctx.write_single_register(*start, words[0]).await?)
        }
        Op::WriteRegisters { start, words } => {
            done(ctx.write_multiple_registers(*start, words).await?)
        }
        Op::WriteCoils { start, bits } if bits.len() == 1 => {
            done(ctx.write_single_coil(*start, bits[0]).await?)
        }
        Op::WriteCoils { start, bits } => done(ctx.write_multiple_coils(*start, bits).await?),
        Op::MaskWrite { address, and, or } => {
            done(ctx.masked_write_register(*address, *and, *or).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inter_frame_silence_follows_the_specification() {
        // 3.5 characters of 11 bits at 9,600 baud: 4.0104 ms.
        let t = inter_frame_silence(9_600);
        assert!(
            t >= Duration::from_micros(4_010) && t <= Duration::from_micros(4_011),
            "{t:?}"
        );
        let t = inter_frame_silence(19_200);
        assert!(
            t >= Duration::from_micros(2_005) && t <= Duration::from_micros(2_006),
            "{t:?}"
        );
        assert_eq!(inter_frame_silence(115_200), Duration::from_micros(1_750));
    }
}
