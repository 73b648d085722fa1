//! What the HTTP side refused or closed, as Prometheus counters (registered with the rest of
//! [`crate::metrics::Metrics`]): the log lines about these are rate-limited, the counts are not.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Counters of the HTTP server, authentication and the WebSocket. Cheap to clone (each handle
/// is shared).
#[derive(Debug, Clone, Default)]
pub struct HttpCounters {
    /// Connections refused because every slot was taken.
    pub connections_refused: Counter,
    /// Requests whose authentication failed (401).
    pub auth_failures: Counter,
    /// Requests refused with 429 because their address failed too often.
    pub auth_throttled: Counter,
    /// WebSocket subscriptions refused at a cap.
    pub ws_subscriptions_refused: Counter,
    /// WebSockets closed because their token was revoked.
    pub ws_closed_revoked: Counter,
}

impl HttpCounters {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_connections_refused",
            "HTTP connections refused because every connection slot was taken",
            self.connections_refused.clone(),
        );
        registry.register(
            "http_auth_failures",
            "Requests whose authentication failed (401)",
            self.auth_failures.clone(),
        );
        registry.register(
            "http_auth_throttled",
            "Requests refused with 429: too many failed authentications from their address",
            self.auth_throttled.clone(),
        );
        registry.register(
            "ws_subscriptions_refused",
            "WebSocket subscriptions refused at the per-connection or per-token cap",
            self.ws_subscriptions_refused.clone(),
        );
        registry.register(
            "ws_closed_revoked",
            "WebSockets closed because their token was revoked",
            self.ws_closed_revoked.clone(),
        );
    }
}
