//! The HTTP plumbing every route of the service is served through: [`server`] (timeouts, the
//! connection cap) inside [`hygiene`] (early 413, request timeout, `nosniff` and `no-store`),
//! errors as the API reports them ([`error`]), and the counters of what HTTP refused.

pub mod counters;
pub mod error;
pub mod hygiene;
pub mod server;

pub use counters::HttpCounters;
pub use error::{ApiError, ErrorBody};
pub use hygiene::Limits;
pub use server::{ConnectionSlot, ServerSettings};

use std::net::SocketAddr;

use axum::Router;
use tokio_util::sync::CancellationToken;

/// Binds `listen` and serves `router` with `settings` until `stop` fires, counting refused
/// connections in `counters`; the bound address
/// goes to `bound` before serving, so a port of 0 can be used.
pub async fn serve(
    listen: SocketAddr,
    router: Router,
    settings: &ServerSettings,
    counters: HttpCounters,
    stop: CancellationToken,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let _ = bound.send(listener.local_addr()?);
    server::serve(listener, router, settings, counters, stop).await
}
