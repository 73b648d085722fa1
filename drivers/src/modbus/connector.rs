//! How a Modbus link is opened: the seam that makes the drivers generic over transports.
//!
//! The drivers never open sockets or serial ports themselves; they ask a [`Connector`] for a
//! byte stream and frame it as Modbus TCP or RTU. Production uses [`TcpConnector`] and
//! [`SerialConnector`]; tests put the simulator, pymodbus, a pseudo-terminal or a fault injector
//! behind a connector of their own.

use std::fmt;
use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_serial::SerialPortBuilderExt;

use crate::pointmap::{Parity, SerialSettings};

/// How requests are framed on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// MBAP header with transaction ids.
    Tcp,
    /// Unit id, PDU and CRC, delimited by silence on the line.
    Rtu,
}

/// Opens the byte stream a Modbus link runs on.
pub trait Connector: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug + 'static;

    fn framing(&self) -> Framing;

    /// Opens a fresh stream. Called at start and after every link error.
    fn connect(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send;

    /// Where the link goes, for errors and logs.
    fn target(&self) -> String;
}

/// Modbus TCP to `host:port`.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    pub host: String,
    pub port: u16,
}

impl Connector for TcpConnector {
    type Io = TcpStream;

    fn framing(&self) -> Framing {
        Framing::Tcp
    }

    async fn connect(&mut self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        // Requests are small and answered one at a time: Nagle would only add latency.
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Modbus RTU on a local serial port.
#[derive(Debug, Clone)]
pub struct SerialConnector {
    pub path: String,
    pub line: SerialSettings,
}

impl Connector for SerialConnector {
    type Io = tokio_serial::SerialStream;

    fn framing(&self) -> Framing {
        Framing::Rtu
    }

    async fn connect(&mut self) -> io::Result<tokio_serial::SerialStream> {
        open_serial(&self.path, &self.line)
    }

    fn target(&self) -> String {
        self.path.clone()
    }
}

/// Opens a serial port with the given line settings.
pub fn open_serial(path: &str, line: &SerialSettings) -> io::Result<tokio_serial::SerialStream> {
    let data_bits = match line.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match line.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = if line.stop_bits == 2 {
        tokio_serial::StopBits::Two
    } else {
        tokio_serial::StopBits::One
    };
    tokio_serial::new(path, line.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(io::Error::from)
}
