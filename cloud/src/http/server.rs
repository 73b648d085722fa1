//! The HTTP/1.1 server every route is served by: hyper's connection, our accept loop.
//!
//! `axum::serve` has no header read timeout and no connection cap, so an idle or half-sent
//! connection stayed open for good (six minutes and counting, issue 14). Here:
//! - **Connection cap.** A connection holds a [`ConnectionSlot`] from accept until it closes;
//!   a WebSocket keeps its connection's slot for as long as it is open (the upgrade hands it
//!   over). With every slot taken, a new connection is answered `503` with `Retry-After: 1`
//!   and closed (by at most 256 small tasks at a time, each for at most a second; past that
//!   it is closed without an answer), so the listener never queues work it cannot take.
//! - **Header read timeout.** hyper times the wait for every request's head, from the
//!   connection opening or its previous response on: a slow (or never finished) head, and a
//!   keep-alive connection left idle, are closed after
//!   [`ServerSettings::header_read_timeout`]. A half-sent body is the request timeout's
//!   ([`crate::http::Limits::request_timeout`]), in the routes' middleware.
//! - Each request carries the client's address (`ConnectInfo<SocketAddr>`) and its
//!   connection's slot in its extensions.
//!
//! Stopping: no new connection is accepted; each open one finishes the request in flight
//! (bounded by the request timeout) and closes; upgraded WebSockets end with their feeds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

/// Timeouts and caps of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// How long a request's head may take to arrive, counted from the connection opening or
    /// its previous response (so also the keep-alive idle time).
    pub header_read_timeout: Duration,
    /// Open connections, WebSockets included.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 20_000,
        }
    }
}

/// One of [`ServerSettings::max_connections`], held by a connection (and by the WebSocket it
/// became) until it closes.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// What a connection over the cap is told before it is closed.
const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: application/json\r\nConnection: close\r\nContent-Length: 73\r\n\r\n\
{\"code\":\"unavailable\",\"message\":\"too many open connections; retry later\"}";

/// Connections over the cap answered at once; more than that are closed without an answer.
const REFUSING: usize = 256;

/// Tells a connection over the cap so, and closes it once the client has read the answer (or
/// after a second): closing with the request unread would reset the connection, and the
/// client could lose the answer.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if stream.write_all(FULL).await.is_ok() && stream.shutdown().await.is_ok() {
            let mut buf = [0u8; 1024];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        }
    })
    .await;
}

/// Serves `router` on `listener` until `stop` fires and every connection has finished.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: &ServerSettings,
    counters: super::HttpCounters,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let connections = TaskTracker::new();
    let mut refused_log = crate::log_limit::LogLimit::per_second();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = ?e.to_string(), "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            counters.connections_refused.inc();
            // Answered by a small bounded set of tasks; past that, closed without a word.
            if let Ok(p) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    let _p = p;
                    refuse(stream).await;
                });
            }
            if let Some(suppressed) = refused_log.allow() {
                tracing::warn!(
                    client = %peer,
                    max_connections = settings.max_connections,
                    also_refused = suppressed,
                    "refused an HTTP connection: every connection slot is taken"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = PerConnection {
            router: router.clone(),
            peer,
            slot: ConnectionSlot(Arc::new(permit)),
        };
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(client = %peer, error = ?e.to_string(), "HTTP connection ended");
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// The router, with the connection's address and slot put into each request.
#[derive(Clone)]
struct PerConnection {
    router: Router,
    peer: SocketAddr,
    slot: ConnectionSlot,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for PerConnection {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        req.extensions_mut().insert(self.slot.clone());
        self.router.clone().call(req.map(axum::body::Body::new))
    }
}
