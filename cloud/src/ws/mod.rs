//! The WebSocket: one endpoint, `GET /api/v1/ws`, for live telemetry, gateway status, command
//! status and alerts.
//!
//! Auth is checked before the upgrade, with the same rule as REST (viewer or above; 401/403,
//! 429 while the address is throttled): an `Authorization: Bearer` header, or — because
//! browsers cannot set headers on a WebSocket — the subprotocols `fieldlink.v1` and
//! `fieldlink.bearer.<token>` (the answer names `fieldlink.v1` only). A token in the URL
//! (`?token=`, which proxies and browsers log) is refused with 401.
//!
//! A connection lives only as long as its token: it watches the revoked set
//! ([`crate::auth::Revocations`]) and is closed with 1008 "token revoked" at once when this
//! instance revokes it, and within `websocket.token_check_ms` when another instance or the CLI
//! does. Subscriptions are capped per connection and per token ([`limits`]).
//!
//! Client → server, JSON text frames:
//! `{"type": "subscribe", "topic": "telemetry", "gateway": "gw-1", "device": "meter", "metric": "power"}`
//! (each filter optional, also for `alerts`), `{"type": "subscribe", "topic": "commands" |
//! "gateway_status" | "alerts"}`, `{"type": "subscribe", "topic": "device_status", "gateway":
//! "gw-1", "device": "meter"}` (filters optional), and
//! `{"type": "unsubscribe", "topic": "…"}` (drops every subscription to that topic).
//!
//! Server → client: `subscribed`, `unsubscribed`, `telemetry`, `command`, `gateway_status`, `alert`,
//! `device_status` (see [`device`]), `lagged`, `gap`, `error` (with a `code`:
//! `bad_message`, `bad_filter`, `too_many_subscriptions`). `{"type": "gap", "from": "…",
//! "to": "…"}` (RFC 3339) says this instance could not hear the other instances' events between
//! those times (a database restart, see [`fanout`]): read REST for what may be missing.
//!
//! Backpressure, the named policy: each client reads the committed-batch and command-status
//! broadcasts through its own bounded receiver ([`crate::ingest::COMMITTED_CAPACITY`] batches,
//! [`COMMAND_QUEUE`] updates). Publishing into them never waits, so a slow client never slows
//! ingest. A client that falls behind loses the oldest items and gets `{"type": "lagged",
//! "missed": n}`; if it lags again before it has caught up (its queue emptied once), it is
//! closed with code 1008 and reason "lagging".
//!
//! Several instances: a client sees every instance's events, not only those of the instance it
//! is connected to. This instance's own events come from its in-process broadcasts; with a
//! PostgreSQL store, the other instances' events arrive over LISTEN/NOTIFY ([`fanout`]) into
//! one more bounded receiver per client ([`fanout::REMOTE_CAPACITY`] events, the same lag
//! policy), and are filtered and rendered exactly like local ones. Each event reaches a client
//! once: an instance drops its own notifications. With the embedded SQLite store there is one
//! instance, and fan-out is in-process only.

pub mod fanout;
mod limits;

pub use limits::{Refused, Share, WsLimits, WsSettings};

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use crate::alerts::AlertEngine;
use crate::auth::{admit, bearer, AuthThrottle, Role, TokenStore};
use crate::clock::rfc3339;
use crate::commands::{CommandRecord, CommandView, Commands};
use crate::http::{ApiError, HttpCounters};
use crate::ingest::IngestHandle;
use crate::store::{DeviceHealth, WriteBatch};

mod device;

/// What the WebSocket route needs of the service: the token store and throttle it
/// authenticates with, the feeds it forwards (absent where this instance does not ingest,
/// send commands or evaluate alerts), its caps and its counters.
#[derive(Clone)]
pub struct WsState {
    pub tokens: TokenStore,
    pub throttle: Arc<AuthThrottle>,
    pub ingest: Option<IngestHandle>,
    pub commands: Option<Commands>,
    pub alerts: Option<AlertEngine>,
    pub limits: WsLimits,
    pub counters: HttpCounters,
}

/// Read buffer of a client connection.
const CLIENT_READ_BUFFER: usize = 4 * 1024;
/// Largest message a client may send (subscriptions are a few hundred bytes).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Command-status updates kept per client.
pub const COMMAND_QUEUE: usize = 1_024;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Subscribe {
        topic: Topic,
        gateway: Option<String>,
        device: Option<String>,
        metric: Option<String>,
    },
    Unsubscribe {
        topic: Topic,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Topic {
    Telemetry,
    Commands,
    GatewayStatus,
    Alerts,
    DeviceStatus,
}

/// One telemetry filter; absent parts match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Filter {
    gateway: Option<String>,
    device: Option<String>,
    metric: Option<String>,
}

impl Filter {
    fn matches(&self, gateway: &str, device: Option<&str>, metric: Option<&str>) -> bool {
        let part = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have.is_none_or(|h| h == w))
        };
        part(&self.gateway, Some(gateway))
            && part(&self.device, device)
            && part(&self.metric, metric)
    }
}

/// A client's subscriptions.
#[derive(Debug, Default)]
struct Subscriptions {
    telemetry: Vec<Filter>,
    commands: Vec<Filter>,
    gateway_status: Vec<Filter>,
    alerts: Vec<Filter>,
    device_status: Vec<Filter>,
}

impl Subscriptions {
    fn list(&mut self, topic: Topic) -> &mut Vec<Filter> {
        match topic {
            Topic::Telemetry => &mut self.telemetry,
            Topic::Commands => &mut self.commands,
            Topic::GatewayStatus => &mut self.gateway_status,
            Topic::Alerts => &mut self.alerts,
            Topic::DeviceStatus => &mut self.device_status,
        }
    }
}

/// The messages a committed batch gives a client with these subscriptions.
fn batch_messages(subs: &Subscriptions, batch: &WriteBatch) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    if !subs.gateway_status.is_empty() {
        for s in &batch.statuses {
            if subs
                .gateway_status
                .iter()
                .any(|f| f.matches(s.gateway.as_str(), None, None))
            {
                out.push(serde_json::json!({
                    "type": "gateway_status",
                    "gateway": s.gateway.as_str(),
                    "online": s.online,
                    "at": rfc3339(s.at_ms),
                    "agent_version": s.agent_version,
                }));
            }
        }
    }
    if !subs.telemetry.is_empty() {
        for p in &batch.points {
            let k = &p.key;
            if subs.telemetry.iter().any(|f| {
                f.matches(
                    k.gateway.as_str(),
                    Some(k.device.as_str()),
                    Some(k.metric.as_str()),
                )
            }) {
                out.push(serde_json::json!({
                    "type": "telemetry",
                    "gateway": k.gateway.as_str(),
                    "device": k.device.as_str(),
                    "metric": k.metric.as_str(),
                    "time": rfc3339(p.ts_ms),
                    "value": p.value,
                    "quality": p.quality,
                }));
            }
        }
    }
    out
}

fn command_message(
    subs: &Subscriptions,
    seen: &mut CommandProgress,
    c: &CommandView,
) -> Option<serde_json::Value> {
    (subs
        .commands
        .iter()
        .any(|f| f.matches(&c.gateway, None, None))
        && seen.advance(c))
    .then(|| serde_json::json!({"type": "command", "command": c}))
}

/// The status each command was last pushed with to one client. Changes reach a client by two
/// paths (this instance's own, and other instances' through the fan-out), so a `received`
/// recorded on one instance can arrive after the `executed` recorded on another; a client is
/// only ever moved forward (the same rule as the stored status, [`predecessors`](crate::commands::CommandStatus::predecessors)),
/// so what it shows never goes back. Bounded: past [`CommandProgress::LIMIT`] commands it
/// starts over, which at worst lets one stale change through.
#[derive(Debug, Default)]
struct CommandProgress(std::collections::HashMap<String, crate::commands::CommandStatus>);

impl CommandProgress {
    const LIMIT: usize = 4_096;

    /// Whether `c` moves its command forward for this client; records it when it does.
    fn advance(&mut self, c: &CommandView) -> bool {
        if let Some(last) = self.0.get(&c.command_id) {
            if !c.status.predecessors().contains(last) {
                return false;
            }
        } else if self.0.len() >= Self::LIMIT {
            self.0.clear();
        }
        self.0.insert(c.command_id.clone(), c.status);
        true
    }
}

fn alert_message(subs: &Subscriptions, a: &crate::alerts::AlertView) -> Option<serde_json::Value> {
    subs.alerts
        .iter()
        .any(|f| f.matches(&a.gateway, Some(&a.device), Some(&a.metric)))
        .then(|| serde_json::json!({"type": "alert", "alert": a}))
}

/// The messages an event of another instance gives a client with these subscriptions.
fn remote_messages(
    subs: &Subscriptions,
    seen: &mut CommandProgress,
    e: &fanout::Remote,
) -> Vec<serde_json::Value> {
    match e {
        fanout::Remote::Batch(b) => batch_messages(subs, b),
        fanout::Remote::Command(c) => command_message(subs, seen, c).into_iter().collect(),
        fanout::Remote::Alert(a) => alert_message(subs, a).into_iter().collect(),
        fanout::Remote::Gap { from_ms, to_ms } => vec![serde_json::json!({
            "type": "gap",
            "from": rfc3339(*from_ms),
            "to": rfc3339(*to_ms),
        })],
        fanout::Remote::Device(d) => device::message(&subs.device_status, d)
            .into_iter()
            .collect(),
    }
}

/// The subprotocol a client names, and the server answers with.
pub const PROTOCOL: &str = "fieldlink.v1";
/// A client may carry its token as a second subprotocol, `fieldlink.bearer.<token>`, because a
/// browser cannot set headers on a WebSocket; the answer never repeats it.
pub const BEARER_PROTOCOL_PREFIX: &str = "fieldlink.bearer.";

/// The token of a `Sec-WebSocket-Protocol: fieldlink.v1, fieldlink.bearer.<token>` header.
fn protocol_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(BEARER_PROTOCOL_PREFIX))
        .filter(|t| !t.is_empty())
}

/// `GET /api/v1/ws`: authenticates (an `Authorization: Bearer` header, or the token as a
/// subprotocol), then upgrades. Other instances' events come from the [`fanout::RemoteFeed`]
/// extension when the service installed one.
pub async fn upgrade(
    State(s): State<WsState>,
    remote: Option<Extension<fanout::RemoteFeed>>,
    slot: Option<Extension<crate::http::ConnectionSlot>>,
    uri: axum::http::Uri,
    req_extensions: axum::http::Extensions,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let peer = crate::auth::client_of(&req_extensions);
    let secret = bearer(&headers).or_else(|| protocol_token(&headers));
    if secret.is_none() && uri.query().is_some_and(|q| q.contains("token=")) {
        // The token in the URL ended up in proxies' and browsers' logs; it is no longer read.
        s.throttle.failed(peer, "token in the URL");
        return ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "?token= is not accepted: send Authorization: Bearer, or the subprotocols \
             fieldlink.v1 and fieldlink.bearer.<token>",
        )
        .into_response();
    }
    let caller = match admit(&s.tokens, &s.throttle, peer, secret, Role::Viewer).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => return ApiError::rejection(r).into_response(),
    };
    let batches = s.ingest.as_ref().map(|i| i.subscribe_committed());
    let commands = s.commands.as_ref().map(|c| c.subscribe());
    let alerts = s.alerts.as_ref().map(|a| a.subscribe());
    let feeds = Feeds {
        batches,
        commands,
        alerts,
        health: s.ingest.as_ref().map(|i| i.subscribe_device_health()),
        remote: remote.map(|Extension(f)| f.subscribe()),
    };
    let session = Session {
        token_id: caller.token_id.clone(),
        revoked: s
            .tokens
            .revocations()
            .watch(s.limits.settings().token_check),
        share: s.limits.share(&caller.token_id),
        closed_revoked: s.counters.ws_closed_revoked.clone(),
        _slot: slot.map(|Extension(s)| s),
    };
    // A client sends only small control messages and every message to it is flushed on its
    // own, so the per-connection buffers stay small: with the defaults (128 KiB each way) a
    // thousand idle clients held 146 MiB of the cloud's memory, with these 21 MiB
    // (`cloud/benches/ws.rs`, C4).
    ws.protocols([PROTOCOL])
        .read_buffer_size(CLIENT_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| client(socket, feeds, session))
}

/// What a connection holds for its token: the revocations it watches, its share of the
/// token's subscriptions, and its connection slot (given back when the connection ends).
struct Session {
    token_id: String,
    revoked: tokio::sync::watch::Receiver<crate::auth::Revoked>,
    share: limits::Share,
    closed_revoked: prometheus_client::metrics::counter::Counter,
    _slot: Option<crate::http::ConnectionSlot>,
}

/// A client's receivers; an absent one is a source this instance does not have.
struct Feeds {
    batches: Option<Receiver<Arc<WriteBatch>>>,
    commands: Option<Receiver<CommandRecord>>,
    alerts: Option<Receiver<crate::alerts::AlertView>>,
    health: Option<Receiver<Arc<Vec<DeviceHealth>>>>,
    remote: Option<Receiver<fanout::Remote>>,
}

/// Whether a receiver has been behind since its last lag notice.
#[derive(Default)]
struct LagState {
    behind: bool,
}

enum Next {
    Send(Vec<serde_json::Value>),
    Lagged(u64),
    Closed,
}

async fn recv_or_pending<T: Clone>(rx: &mut Option<Receiver<T>>) -> Result<T, RecvError> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn client(mut socket: WebSocket, feeds: Feeds, mut session: Session) {
    let Feeds {
        mut batches,
        mut commands,
        mut alerts,
        mut health,
        mut remote,
    } = feeds;
    let mut subs = Subscriptions::default();
    let mut seen = CommandProgress::default();
    let (mut batch_lag, mut command_lag) = (LagState::default(), LagState::default());
    let (mut alert_lag, mut remote_lag) = (LagState::default(), LagState::default());
    let mut health_lag = LagState::default();
    let mut revoked = revoked_now(&mut session);
    loop {
        if revoked {
            tracing::info!(token_id = ?session.token_id, "closing a WebSocket whose token was revoked");
            session.closed_revoked.inc();
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 1008,
                    reason: Utf8Bytes::from_static("token revoked"),
                })))
                .await;
            return;
        }
        let next = tokio::select! {
            changed = session.revoked.changed() => {
                revoked = changed.is_err() || revoked_now(&mut session);
                continue;
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Text(t))) => {
                    Next::Send(vec![handle(&mut subs, &mut session.share, t.as_str())])
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Next::Closed,
                Some(Ok(_)) => Next::Send(Vec::new()),
            },
            b = recv_or_pending(&mut batches) => match b {
                Ok(batch) => {
                    if batches.as_ref().is_some_and(|r| r.is_empty()) {
                        batch_lag.behind = false;
                    }
                    Next::Send(batch_messages(&subs, &batch))
                }
                Err(RecvError::Lagged(n)) if batch_lag.behind => {
                    let _ = n;
                    Next::Lagged(u64::MAX)
                }
                Err(RecvError::Lagged(n)) => {
                    batch_lag.behind = true;
                    Next::Lagged(n)
                }
                Err(RecvError::Closed) => { batches = None; Next::Send(Vec::new()) }
            },
            c = recv_or_pending(&mut commands) => match c {
                Ok(rec) => {
                    if commands.as_ref().is_some_and(|r| r.is_empty()) {
                        command_lag.behind = false;
                    }
                    Next::Send(command_message(&subs, &mut seen, &CommandView::from(rec)).into_iter().collect())
                }
                Err(RecvError::Lagged(_)) if command_lag.behind => Next::Lagged(u64::MAX),
                Err(RecvError::Lagged(n)) => {
                    command_lag.behind = true;
                    Next::Lagged(n)
                }
                Err(RecvError::Closed) => { commands = None; Next::Send(Vec::new()) }
            },
            a = recv_or_pending(&mut alerts) => match a {
                Ok(alert) => {
                    if alerts.as_ref().is_some_and(|r| r.is_empty()) {
                        alert_lag.behind = false;
                    }
                    Next::Send(alert_message(&subs, &alert).into_iter().collect())
                }
                Err(RecvError::Lagged(_)) if alert_lag.behind => Next::Lagged(u64::MAX),
                Err(RecvError::Lagged(n)) => {
                    alert_lag.behind = true;
                    Next::Lagged(n)
                }
                Err(RecvError::Closed) => { alerts = None; Next::Send(Vec::new()) }
            },
            e = recv_or_pending(&mut remote) => match e {
                Ok(event) => {
                    if remote.as_ref().is_some_and(|r| r.is_empty()) {
                        remote_lag.behind = false;
                    }
                    Next::Send(remote_messages(&subs, &mut seen, &event))
                }
                Err(RecvError::Lagged(_)) if remote_lag.behind => Next::Lagged(u64::MAX),
                Err(RecvError::Lagged(n)) => {
                    remote_lag.behind = true;
                    Next::Lagged(n)
                }
                Err(RecvError::Closed) => { remote = None; Next::Send(Vec::new()) }
            },
            h = recv_or_pending(&mut health) => match h {
                Ok(changes) => {
                    if health.as_ref().is_some_and(|r| r.is_empty()) {
                        health_lag.behind = false;
                    }
                    Next::Send(device::messages(&subs.device_status, &changes))
                }
                Err(RecvError::Lagged(_)) if health_lag.behind => Next::Lagged(u64::MAX),
                Err(RecvError::Lagged(n)) => {
                    health_lag.behind = true;
                    Next::Lagged(n)
                }
                Err(RecvError::Closed) => { health = None; Next::Send(Vec::new()) }
            },
        };
        let out = match next {
            Next::Closed => return,
            Next::Lagged(u64::MAX) => {
                tracing::info!("closing a WebSocket client that stayed behind");
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 1008,
                        reason: Utf8Bytes::from_static("lagging"),
                    })))
                    .await;
                return;
            }
            Next::Lagged(n) => vec![serde_json::json!({"type": "lagged", "missed": n})],
            Next::Send(v) => v,
        };
        for m in out {
            if socket
                .send(Message::Text(m.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Whether the session's token is in the revoked set last published.
fn revoked_now(session: &mut Session) -> bool {
    session
        .revoked
        .borrow_and_update()
        .contains(&session.token_id)
}

/// A filter's part: absent, or an identifier (which bounds its size).
fn filter_part(field: &str, v: Option<String>) -> Result<Option<String>, serde_json::Value> {
    match v {
        Some(v) if fieldlink_protocol::Ident::validate(&v).is_err() => Err(serde_json::json!({
            "type": "error",
            "code": "bad_filter",
            "message": format!("{field}: not an identifier (ASCII letters, digits, _-., 1 to 64 bytes)"),
        })),
        v => Ok(v),
    }
}

/// Applies one client message, within the connection's share of subscriptions; returns the
/// answer.
fn handle(subs: &mut Subscriptions, share: &mut Share, text: &str) -> serde_json::Value {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Subscribe {
            topic,
            gateway,
            device,
            metric,
        }) => {
            let filter = match (|| {
                Ok::<_, serde_json::Value>(Filter {
                    gateway: filter_part("gateway", gateway)?,
                    device: filter_part("device", device)?,
                    metric: filter_part("metric", metric)?,
                })
            })() {
                Ok(f) => f,
                Err(refusal) => return refusal,
            };
            let list = subs.list(topic);
            if !list.contains(&filter) {
                if let Err(refused) = share.take() {
                    return refused.message();
                }
                list.push(filter);
            }
            serde_json::json!({"type": "subscribed", "topic": topic})
        }
        Ok(ClientMessage::Unsubscribe { topic }) => {
            let list = subs.list(topic);
            share.give_back(list.len());
            list.clear();
            serde_json::json!({"type": "unsubscribed", "topic": topic})
        }
        Err(e) => {
            serde_json::json!({"type": "error", "code": "bad_message", "message": e.to_string()})
        }
    }
}

#[cfg(test)]
mod tests {

    fn view(id: &str, status: crate::commands::CommandStatus) -> CommandView {
        CommandView {
            command_id: id.into(),
            gateway: "gw".into(),
            kind: serde_json::Value::Null,
            status,
            created_at: String::new(),
            expires_at: String::new(),
            updated_at: String::new(),
            idempotency_key: None,
            result: None,
            error: None,
        }
    }

    #[test]
    fn a_client_is_only_moved_forward() {
        use crate::commands::CommandStatus::*;
        let mut seen = CommandProgress::default();
        assert!(seen.advance(&view("c1", Pending)));
        assert!(seen.advance(&view("c1", Sent)));
        assert!(seen.advance(&view("c1", Executed)));
        // The other instance's `received`, late: not pushed; nor a repeat.
        assert!(!seen.advance(&view("c1", Received)));
        assert!(!seen.advance(&view("c1", Executed)));
        // Another command is independent; a final status after `pending` is forward.
        assert!(seen.advance(&view("c2", Pending)));
        assert!(seen.advance(&view("c2", Expired)));
        assert!(!seen.advance(&view("c2", Sent)));
    }

    use super::*;

    #[test]
    fn filters_match_absent_parts_as_wildcards() {
        let f = Filter {
            gateway: Some("gw-1".into()),
            device: None,
            metric: Some("power".into()),
        };
        assert!(f.matches("gw-1", Some("meter"), Some("power")));
        assert!(!f.matches("gw-1", Some("meter"), Some("energy")));
        assert!(!f.matches("gw-2", Some("meter"), Some("power")));
        assert!(Filter::default().matches("any", Some("d"), Some("m")));
    }

    #[test]
    fn subscribe_and_unsubscribe() {
        let limits = WsLimits::new(
            WsSettings {
                max_subscriptions_per_connection: 2,
                ..WsSettings::default()
            },
            Default::default(),
        );
        let mut share = limits.share("t");
        let mut s = Subscriptions::default();
        let sub = r#"{"type":"subscribe","topic":"telemetry","device":"meter"}"#;
        let r = handle(&mut s, &mut share, sub);
        assert_eq!(r["type"], "subscribed");
        // The same filter again counts once.
        assert_eq!(handle(&mut s, &mut share, sub)["type"], "subscribed");
        assert_eq!((s.telemetry.len(), share.held()), (1, 1));
        let r = handle(
            &mut s,
            &mut share,
            r#"{"type":"subscribe","topic":"alerts"}"#,
        );
        assert_eq!(r["type"], "subscribed");
        let r = handle(
            &mut s,
            &mut share,
            r#"{"type":"subscribe","topic":"commands"}"#,
        );
        assert_eq!(r["code"], "too_many_subscriptions");
        assert!(s.commands.is_empty());
        handle(
            &mut s,
            &mut share,
            r#"{"type":"unsubscribe","topic":"telemetry"}"#,
        );
        assert!(s.telemetry.is_empty());
        assert_eq!(share.held(), 1);
        let r = handle(
            &mut s,
            &mut share,
            r#"{"type":"subscribe","topic":"weather"}"#,
        );
        assert_eq!(r["type"], "error");
        let r = handle(
            &mut s,
            &mut share,
            r#"{"type":"subscribe","topic":"telemetry","gateway":"a b\u001b"}"#,
        );
        assert_eq!(r["code"], "bad_filter");
    }
}
