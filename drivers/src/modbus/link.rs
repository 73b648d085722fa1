//! One Modbus link (a TCP connection or a serial bus) with timeouts, resets and bus silence.
//!
//! tokio-modbus's async client waits for an answer forever. Every request here runs under a
//! timeout; a timeout, an I/O error or an answer that does not match its request drops the
//! connection, so a late answer can never be taken for the next request's. The next request
//! reconnects. On a serial bus, a reconnect also discards whatever trickles in until the line has
//! been quiet for a while, for the same reason.
//!
//! Failures are reported as what happened to the device, with its address (see
//! [`crate::modbus::error`]); a stream the device closed is recognised by [`super::watch`], since
//! tokio-modbus reports it with a meaningless `errno`.
//!
//! RTU frames are delimited by silence: the line must stay quiet for 3.5 character times between
//! frames (1.75 ms above 19,200 baud, per the Modbus serial line specification), and slow slaves
//! may need longer to release an RS-485 transceiver. The link waits [`LinkOptions::min_gap`]
//! after the end of each transaction before it sends the next request.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_modbus::client::{Client as _, Context};
use tokio_modbus::slave::SlaveContext as _;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

use crate::io_fault::{IoFault, Medium};
use crate::modbus::connector::{Connector, Framing};
use crate::modbus::error::{LinkError, ModbusResult};
use crate::modbus::watch::{StreamWatch, Watched};
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
    /// What the stream of the current connection has seen.
    watch: Arc<StreamWatch>,
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
            watch: Arc::default(),
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
        // Taken out for the request and put back only when it succeeded: any failure leaves
        // the link without a connection.
        let mut ctx = match self.context.take() {
            Some(ctx) => ctx,
            None => self.connect().await?,
        };
        let limit = self.options.timeout;
        ctx.set_slave(Slave(unit));
        let answer = match timeout(limit, execute(&mut ctx, op)).await {
            Err(_) => {
                return Err(LinkError::Timeout {
                    target: self.connector.target(),
                    unit,
                    after: limit,
                })
            }
            Ok(Err(Failed::Link(e))) => return Err(self.link_error(e)),
            Ok(Err(Failed::Shape(detail))) => {
                return Err(LinkError::Malformed {
                    target: self.connector.target(),
                    detail,
                })
            }
            Ok(Err(Failed::Echo(detail))) => {
                return Err(LinkError::Mismatch {
                    target: self.connector.target(),
                    detail,
                })
            }
            Ok(Ok(answer)) => answer,
        };
        self.context = Some(ctx);
        Ok(answer)
    }

    fn medium(&self) -> Medium {
        match self.connector.framing() {
            Framing::Tcp => Medium::Tcp,
            Framing::Rtu => Medium::Serial,
        }
    }

    /// What a failed request means. A stream that ended is a closed connection (or a port gone)
    /// whatever error tokio-modbus made of it; a frame its codec could not read is a malformed
    /// answer, not a failed link.
    fn link_error(&self, e: tokio_modbus::Error) -> LinkError {
        let target = self.connector.target();
        let io = match e {
            tokio_modbus::Error::Protocol(p) => {
                return LinkError::Mismatch {
                    target,
                    detail: p.to_string(),
                }
            }
            tokio_modbus::Error::Transport(io) => io,
        };
        let fault = match (self.watch.ended(), self.medium()) {
            (Some(0), medium) => IoFault::closed(medium),
            (Some(n), Medium::Tcp) => IoFault::ClosedMidAnswer(n),
            (Some(_), Medium::Serial) => IoFault::PortGone,
            (None, _) if io.kind() == std::io::ErrorKind::InvalidData => {
                return LinkError::Malformed {
                    target,
                    detail: io.to_string(),
                }
            }
            (None, medium) => IoFault::classify(io, medium),
        };
        LinkError::Io { target, fault }
    }

    async fn connect(&mut self) -> Result<Context, LinkError> {
        let target = self.connector.target();
        let medium = self.medium();
        let framing = self.connector.framing();
        let limit = self.options.timeout;
        let connecting = self.connector.connect();
        let mut io = match timeout(limit, connecting).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => {
                return Err(LinkError::Connect {
                    target,
                    fault: IoFault::classify(e, medium),
                })
            }
            Err(_) => {
                return Err(LinkError::Connect {
                    target,
                    fault: IoFault::TimedOut(limit),
                })
            }
        };
        if framing == Framing::Rtu {
            drain_until_quiet(&mut io, self.options.min_gap.max(Duration::from_millis(20))).await;
        }
        self.watch = Arc::default();
        let io = Watched::new(io, self.watch.clone());
        Ok(match framing {
            Framing::Tcp => tokio_modbus::client::tcp::attach(io),
            Framing::Rtu => tokio_modbus::client::rtu::attach(io),
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

/// Why a request got nothing usable back.
enum Failed {
    /// The stream or the framing failed, as tokio-modbus reports it.
    Link(tokio_modbus::Error),
    /// A well-formed answer of the wrong size.
    Shape(String),
    /// A write's echo that is not what was written.
    Echo(String),
}

impl From<tokio_modbus::Error> for Failed {
    fn from(e: tokio_modbus::Error) -> Self {
        Failed::Link(e)
    }
}

/// Sends `op` and checks the answer against it. tokio-modbus's typed calls check answers with
/// `debug_assert`s only, so a device answering 2 registers for 10 would panic a debug build and
/// pass a release build unnoticed; the raw call checked here treats every build alike.
async fn execute(ctx: &mut Context, op: &Op) -> Result<Result<Answer, ExceptionCode>, Failed> {
    let request = match op {
        Op::Read {
            table,
            start,
            count,
        } => match table {
            Table::Coil => Request::ReadCoils(*start, *count),
            Table::DiscreteInput => Request::ReadDiscreteInputs(*start, *count),
            Table::InputRegister => Request::ReadInputRegisters(*start, *count),
            Table::HoldingRegister => Request::ReadHoldingRegisters(*start, *count),
        },
        Op::WriteRegisters { start, words } if words.len() == 1 => {
            Request::WriteSingleRegister(*start, words[0])
        }
        Op::WriteRegisters { start, words } => {
            Request::WriteMultipleRegisters(*start, Cow::Borrowed(words))
        }
        Op::WriteCoils { start, bits } if bits.len() == 1 => {
            Request::WriteSingleCoil(*start, bits[0])
        }
        Op::WriteCoils { start, bits } => Request::WriteMultipleCoils(*start, Cow::Borrowed(bits)),
        Op::MaskWrite { address, and, or } => Request::MaskWriteRegister(*address, *and, *or),
    };
    let response = match ctx.call(request).await? {
        Ok(response) => response,
        Err(exception) => return Ok(Err(exception)),
    };
    check_answer(op, response).map(Ok)
}

fn check_answer(op: &Op, response: Response) -> Result<Answer, Failed> {
    let echo = |what: String| Failed::Echo(format!("{what}, the device echoed {response:?}"));
    match (op, &response) {
        (
            Op::Read { table, count, .. },
            Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits),
        ) if table.is_bits() => {
            // Bits come packed in bytes: the answer holds the count rounded up to whole bytes.
            let padded = usize::from(*count).div_ceil(8) * 8;
            if bits.len() != padded {
                return Err(Failed::Shape(format!(
                    "asked for {count} bits, got {} bytes of them",
                    bits.len() / 8
                )));
            }
            Ok(Answer::Words(
                bits[..usize::from(*count)]
                    .iter()
                    .map(|b| u16::from(*b))
                    .collect(),
            ))
        }
        (
            Op::Read { table, count, .. },
            Response::ReadInputRegisters(words) | Response::ReadHoldingRegisters(words),
        ) if !table.is_bits() => {
            if words.len() != usize::from(*count) {
                return Err(Failed::Shape(format!(
                    "asked for {count} registers, got {}",
                    words.len()
                )));
            }
            Ok(Answer::Words(words.clone()))
        }
        (Op::WriteRegisters { start, words }, Response::WriteSingleRegister(a, w))
            if words.len() == 1 =>
        {
            if (*a, *w) != (*start, words[0]) {
                return Err(echo(format!("wrote {} to register {start}", words[0])));
            }
            Ok(Answer::Done)
        }
        (Op::WriteRegisters { start, words }, Response::WriteMultipleRegisters(a, n)) => {
            if (*a, usize::from(*n)) != (*start, words.len()) {
                return Err(echo(format!("wrote {} registers at {start}", words.len())));
            }
            Ok(Answer::Done)
        }
        (Op::WriteCoils { start, bits }, Response::WriteSingleCoil(a, b)) if bits.len() == 1 => {
            if (*a, *b) != (*start, bits[0]) {
                return Err(echo(format!("wrote {} to coil {start}", bits[0])));
            }
            Ok(Answer::Done)
        }
        (Op::WriteCoils { start, bits }, Response::WriteMultipleCoils(a, n)) => {
            if (*a, usize::from(*n)) != (*start, bits.len()) {
                return Err(echo(format!("wrote {} coils at {start}", bits.len())));
            }
            Ok(Answer::Done)
        }
        (Op::MaskWrite { address, and, or }, Response::MaskWriteRegister(a, x, y)) => {
            if (*a, *x, *y) != (*address, *and, *or) {
                return Err(echo(format!(
                    "masked register {address} with and {and:#06x}, or {or:#06x}"
                )));
            }
            Ok(Answer::Done)
        }
        _ => Err(echo(format!("asked {op:?}"))),
    }
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
