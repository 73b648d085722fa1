//! Modbus RTU on a serial device: tokio-modbus's RTU server with every configured unit on one
//! bus.
//!
//! tokio-modbus hands the service each request's slave id, so one port answers for many units:
//! requests for unconfigured ids stay unanswered, as a real bus would leave them, and unit 0
//! (broadcast) writes reach every unit without an answer. If the port's byte stream cannot be
//! framed any more, or the device reports end-of-file, the port is reopened after a short pause
//! and the reopen counted.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_serial::{DataBits, Parity, SerialStream, StopBits};
use tokio_util::sync::CancellationToken;

use crate::error::ServeError;
use crate::service::ModbusService;
use crate::simulator::Simulator;

/// Pause before reopening a port whose stream broke.
const REOPEN_PAUSE: Duration = Duration::from_millis(200);

/// A serial device and its line settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    pub path: PathBuf,
    pub baud: u32,
    pub data_bits: DataBits,
    pub parity: Parity,
    pub stop_bits: StopBits,
}

impl SerialSettings {
    /// 8 data bits, no parity, one stop bit.
    pub fn new(path: impl Into<PathBuf>, baud: u32) -> Self {
        SerialSettings {
            path: path.into(),
            baud,
            data_bits: DataBits::Eight,
            parity: Parity::None,
            stop_bits: StopBits::One,
        }
    }

    /// Opens the device. Must be called in a tokio runtime.
    pub fn open(&self) -> Result<SerialStream, ServeError> {
        let builder = tokio_serial::new(self.path.to_string_lossy(), self.baud)
            .data_bits(self.data_bits)
            .parity(self.parity)
            .stop_bits(self.stop_bits);
        SerialStream::open(&builder).map_err(|source| ServeError::OpenSerial {
            path: self.path.clone(),
            source,
        })
    }
}

/// A running Modbus RTU server. Dropping it stops the server and closes the port.
#[derive(Debug)]
pub struct RtuServerHandle {
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl RtuServerHandle {
    /// Stops serving and waits for the port to be closed.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for RtuServerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Simulator {
    /// Opens the serial device now (so a wrong path fails here) and serves Modbus RTU on it on a
    /// spawned task. Must be called in a tokio runtime.
    pub fn start_rtu(&self, settings: SerialSettings) -> Result<RtuServerHandle, ServeError> {
        let port = settings.open()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(self.run_rtu(settings, Some(port), shutdown.clone()));
        Ok(RtuServerHandle {
            shutdown,
            task: Some(task),
        })
    }

    /// Serves Modbus RTU on the device until `shutdown` is cancelled (then `Ok`) or the device
    /// cannot be opened.
    pub fn serve_rtu(
        &self,
        settings: SerialSettings,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), ServeError>> + Send + 'static {
        self.run_rtu(settings, None, shutdown)
    }

    fn run_rtu(
        &self,
        settings: SerialSettings,
        mut port: Option<SerialStream>,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), ServeError>> + Send + 'static {
        let sim = self.clone();
        async move {
            let path = settings.path.display().to_string();
            tracing::info!(%path, baud = settings.baud, units = ?sim.unit_ids(), "serving Modbus RTU");
            loop {
                let serial = match port.take() {
                    Some(serial) => serial,
                    None => settings.open()?,
                };
                let server = tokio_modbus::server::rtu::Server::new(serial);
                tokio::select! {
                    result = server.serve_forever(ModbusService::rtu(sim.clone())) => {
                        match result {
                            Ok(()) => tracing::warn!(%path, "serial device reported end of file; reopening"),
                            Err(err) => tracing::warn!(%path, error = %err, "serial stream broke; reopening"),
                        }
                        sim.inner.stats.update(|s| s.rtu_reopens += 1);
                    }
                    () = shutdown.cancelled() => {
                        tracing::info!(%path, "Modbus RTU server stopped");
                        return Ok(());
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(REOPEN_PAUSE) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }
}
