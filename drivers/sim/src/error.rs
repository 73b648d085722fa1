//! Why a server or a sensor stopped.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why serving a transport failed. A clean stop through the cancellation token is `Ok`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("Modbus TCP listener failed: {0}")]
    Accept(#[source] io::Error),
    #[error("cannot open serial device {path}: {source}")]
    OpenSerial {
        path: PathBuf,
        #[source]
        source: tokio_serial::Error,
    },
    #[error("cannot write to serial device {path}: {source}")]
    WriteSerial {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the served log: {0}")]
    ServedLog(#[source] io::Error),
    #[error("server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}
