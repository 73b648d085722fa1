//! Prometheus metrics of the service, exposed as text on `/metrics`.
//!
//! Every metric is created once at start and shared; handles are cheap atomics, so the hot path
//! never locks. Names carry their unit (`_seconds`, `_total` for counts).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    /// Points in accepted telemetry messages, replays included.
    pub points_received: Counter,
    /// Points that were new to the store.
    pub points_stored: Counter,
    /// Messages taken off the broker, by topic kind.
    pub messages: Family<Labels, Counter>,
    /// Committed write transactions.
    pub batches: Counter,
    /// Messages refused, by reason.
    pub dead_letters: Family<Labels, Counter>,
    /// Failed write attempts (each is retried).
    pub write_errors: Counter,
    /// Time to commit one batch.
    pub write_seconds: Histogram,
    /// From a message's arrival to the commit of its rows.
    pub ingest_lag_seconds: Histogram,
    /// Messages received but not yet acknowledged to the broker.
    pub unacked_messages: Gauge,
    /// Messages over their gateway's quota, by outcome (`stored` within the grace, `dropped`).
    pub quota_messages: Family<Labels, Counter>,
    /// Points in messages dropped over quota.
    pub quota_dropped_points: Counter,
    /// Slow-down requests sent to gateways over quota.
    pub quota_slow_downs: Counter,
    /// Live-event notifications this instance sent to the others.
    pub fanout_notifications_sent: Counter,
    /// Notifications taken off the live channel, by outcome.
    pub fanout_notifications_received: Family<Labels, Counter>,
    /// Notifications of other instances found missing by their sequence numbers.
    pub fanout_notifications_missed: Counter,
    /// Local events not published to the other instances, by reason.
    pub fanout_events_shed: Family<Labels, Counter>,
    /// 1 while the live channel is listened to.
    pub fanout_listening: Gauge,
    /// Length of each gap in listening to the live channel.
    pub fanout_listen_gap_seconds: Histogram,
    /// Packets from the broker over `mqtt.max_packet_bytes` (each costs one reconnect).
    pub mqtt_oversized_packets: Counter,
    /// Established connections the broker closed and accepted again at once (a takeover).
    pub mqtt_session_closed_by_broker: Counter,
    /// Dead letters deleted by their bounds, by reason (`cap`, `age`).
    pub dead_letters_dropped: Family<Labels, Counter>,
    /// What HTTP, authentication and the WebSocket refused or closed.
    pub http: crate::http::HttpCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fieldlink_cloud");
        let m = Metrics {
            registry: Registry::default(),
            points_received: Counter::default(),
            points_stored: Counter::default(),
            messages: Family::default(),
            batches: Counter::default(),
            dead_letters: Family::default(),
            write_errors: Counter::default(),
            write_seconds: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            ingest_lag_seconds: Histogram::new(exponential_buckets(0.000_5, 2.0, 18)),
            unacked_messages: Gauge::default(),
            quota_messages: Family::default(),
            quota_dropped_points: Counter::default(),
            quota_slow_downs: Counter::default(),
            fanout_notifications_sent: Counter::default(),
            fanout_notifications_received: Family::default(),
            fanout_notifications_missed: Counter::default(),
            fanout_events_shed: Family::default(),
            fanout_listening: Gauge::default(),
            fanout_listen_gap_seconds: Histogram::new(exponential_buckets(0.1, 2.0, 14)),
            mqtt_oversized_packets: Counter::default(),
            mqtt_session_closed_by_broker: Counter::default(),
            dead_letters_dropped: Family::default(),
            http: Default::default(),
        };
        m.http.register(&mut registry);
        registry.register(
            "dead_letters_dropped",
            "Dead letters deleted by their bounds, by reason: cap (a gateway's oldest past ingest.dead_letter_max_per_gateway), age (past ingest.dead_letter_retention_days)",
            m.dead_letters_dropped.clone(),
        );
        registry.register(
            "mqtt_oversized_packets",
            "Packets from the broker over mqtt.max_packet_bytes, each taken on a connection raised for it",
            m.mqtt_oversized_packets.clone(),
        );
        registry.register(
            "mqtt_session_closed_by_broker",
            "Established broker connections closed by the broker and accepted again at once (another client using the client id)",
            m.mqtt_session_closed_by_broker.clone(),
        );
        registry.register(
            "points_received",
            "Points in accepted telemetry messages, replays included",
            m.points_received.clone(),
        );
        registry.register(
            "points_stored",
            "Points new to the store (replays excluded)",
            m.points_stored.clone(),
        );
        registry.register(
            "mqtt_messages",
            "Messages taken off the broker, by topic kind",
            m.messages.clone(),
        );
        registry.register(
            "write_batches",
            "Committed write transactions",
            m.batches.clone(),
        );
        registry.register(
            "dead_letters",
            "Messages refused into the dead-letter table, by reason",
            m.dead_letters.clone(),
        );
        registry.register(
            "write_errors",
            "Failed write attempts; each batch is retried",
            m.write_errors.clone(),
        );
        registry.register_with_unit(
            "write_latency",
            "Time to commit one batch",
            Unit::Seconds,
            m.write_seconds.clone(),
        );
        registry.register_with_unit(
            "ingest_lag",
            "From a message's arrival to the commit of its rows",
            Unit::Seconds,
            m.ingest_lag_seconds.clone(),
        );
        registry.register(
            "unacked_messages",
            "Messages received and not yet acknowledged to the broker",
            m.unacked_messages.clone(),
        );
        registry.register(
            "quota_messages",
            "Messages over their gateway's quota, by outcome (stored within the grace, dropped)",
            m.quota_messages.clone(),
        );
        registry.register(
            "quota_dropped_points",
            "Points in messages dropped for being over their gateway's quota",
            m.quota_dropped_points.clone(),
        );
        registry.register(
            "quota_slow_downs",
            "Slow-down requests sent to gateways over their quota",
            m.quota_slow_downs.clone(),
        );
        registry.register(
            "fanout_notifications_sent",
            "Live-event notifications sent to the other instances",
            m.fanout_notifications_sent.clone(),
        );
        registry.register(
            "fanout_notifications_received",
            "Notifications taken off the live channel, by outcome (delivered, own, duplicate, part, undecodable, newer: of a newer format version)",
            m.fanout_notifications_received.clone(),
        );
        registry.register(
            "fanout_notifications_missed",
            "Notifications of other instances that never arrived (holes in their sequence numbers)",
            m.fanout_notifications_missed.clone(),
        );
        registry.register(
            "fanout_events_shed",
            "Local live events not published to the other instances, by reason",
            m.fanout_events_shed.clone(),
        );
        registry.register(
            "fanout_listening",
            "1 while the live channel is listened to, 0 during a gap",
            m.fanout_listening.clone(),
        );
        registry.register_with_unit(
            "fanout_listen_gap",
            "Length of each gap in listening to the live channel",
            Unit::Seconds,
            m.fanout_listen_gap_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn fanout_received(&self, outcome: &str) {
        self.fanout_notifications_received
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    pub fn fanout_shed(&self, reason: &str, events: u64) {
        if events > 0 {
            self.fanout_events_shed
                .get_or_create(&vec![("reason", reason.to_string())])
                .inc_by(events);
        }
    }

    pub fn message(&self, kind: &str) {
        self.messages
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    pub fn dead_letters_dropped(&self, reason: &str, n: u64) {
        self.dead_letters_dropped
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc_by(n);
    }

    pub fn dead_letter(&self, reason: &str) {
        self.dead_letters
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_names_with_units_and_labels() {
        let m = Metrics::new();
        m.points_stored.inc_by(5);
        m.dead_letter("decode");
        m.write_seconds.observe(0.01);
        let text = m.render();
        assert!(
            text.contains("fieldlink_cloud_points_stored_total 5"),
            "{text}"
        );
        assert!(
            text.contains("fieldlink_cloud_dead_letters_total{reason=\"decode\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fieldlink_cloud_write_latency_seconds_count 1"),
            "{text}"
        );
        m.http.auth_throttled.inc();
        assert!(
            text.contains("fieldlink_cloud_http_auth_failures_total 0"),
            "{text}"
        );
        assert!(
            m.render()
                .contains("fieldlink_cloud_http_auth_throttled_total 1"),
            "{text}"
        );
        assert!(text.contains("# EOF"), "{text}");
    }
}
