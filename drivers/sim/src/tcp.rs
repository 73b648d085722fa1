//! Modbus TCP: tokio-modbus's server, one [`ModbusService`] per connection.
//!
//! The `drop_every` fault needs to close a connection from inside the request handler, which
//! tokio-modbus's service interface cannot express; each connection's stream is therefore wrapped
//! in a [`ClosableStream`] that reads end-of-file once its service asks for it, which ends that
//! connection's task and closes the socket.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ServeError;
use crate::service::ModbusService;
use crate::simulator::Simulator;

/// A running Modbus TCP server. Dropping it stops the server (and its connections).
#[derive(Debug)]
pub struct TcpServerHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TcpServerHandle {
    /// The address the listener is bound to (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every connection and waits for the server task.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TcpServerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Simulator {
    /// Binds `addr` and serves Modbus TCP on a spawned task. Must be called in a tokio runtime.
    pub async fn bind_tcp(&self, addr: SocketAddr) -> Result<TcpServerHandle, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(self.serve_tcp(listener, shutdown.clone()));
        Ok(TcpServerHandle {
            local_addr,
            shutdown,
            task: Some(task),
        })
    }

    /// Serves Modbus TCP on `listener` until `shutdown` is cancelled (then `Ok`) or accepting
    /// fails. Connections are closed when this future ends or is dropped.
    pub fn serve_tcp(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), ServeError>> + Send + 'static {
        let sim = self.clone();
        async move {
            let local = listener.local_addr().ok();
            tracing::info!(addr = ?local, "serving Modbus TCP");
            let server = tokio_modbus::server::tcp::Server::new(listener);
            let on_connected = |stream: TcpStream, peer: SocketAddr| {
                let sim = sim.clone();
                async move {
                    tracing::debug!(%peer, "Modbus TCP connection");
                    sim.inner.stats.update(|s| s.tcp_connections += 1);
                    let close = Arc::new(AtomicBool::new(false));
                    let stream = ClosableStream {
                        inner: stream,
                        close: Arc::clone(&close),
                    };
                    Ok(Some((ModbusService::tcp(sim, close), stream)))
                }
            };
            let on_process_error = |err: io::Error| {
                tracing::debug!(error = %err, "Modbus TCP connection ended with an error");
            };
            tokio::select! {
                result = server.serve(&on_connected, on_process_error) => {
                    result.map_err(ServeError::Accept)
                }
                () = shutdown.cancelled() => {
                    tracing::info!(addr = ?local, "Modbus TCP server stopped");
                    Ok(())
                }
            }
        }
    }
}

/// A TCP stream that reads end-of-file once `close` is set.
#[derive(Debug)]
struct ClosableStream {
    inner: TcpStream,
    close: Arc<AtomicBool>,
}

impl AsyncRead for ClosableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.close.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClosableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
