//! Commands to gateways: validated against the gateway's last birth, stored before they are
//! published, published when the gateway is online (else on its next birth), and tracked from
//! the agent's acknowledgements.
//!
//! Durable invariants:
//! - A command row exists, status `pending`, before anything is published; a crash before the
//!   publish leaves it pending and the gateway's next birth (or this service's restart, which
//!   receives the retained birth again) publishes it.
//! - Publishing twice is harmless: the agent journals commands by id and runs each once.
//! - A command is never published after its expiry, and the message carries the expiry, so an
//!   agent that gets it late answers `expired` instead of running it.
//! - Status moves forward only ([`CommandStatus::predecessors`]), by conditional updates, so
//!   redelivered or reordered acknowledgements and several cloud instances agree.
//!
//! The service holds its own MQTT connection (client id `<mqtt.client_id>-commands`, persistent
//! session, QoS 1): it publishes commands, and subscribes to every gateway's retained status
//! (births carry the devices, points, value kinds and writability that validation needs) and to
//! acknowledgements, which the broker keeps for this session while the service is down. Ingest
//! still stores every acknowledgement in `command_acks` on its own path.

mod records;
mod status;
mod view;

pub use view::CommandView;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldlink_protocol::{
    json, Ack, Birth, CommandKind, Ident, Message, Status, TopicKind, TopicPrefix,
};
use rumqttc::{AsyncClient, Event, Incoming, QoS};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use records::{CommandRecord, CommandRecords};
pub use status::CommandStatus;

use crate::clock::now_ms;
use crate::ingest::session::SiblingCloses;
use crate::ingest::MqttSettings;
use crate::records::{DbError, RecordsDb};

/// Expiry bounds and timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSettings {
    pub prefix: TopicPrefix,
    /// Time to live of a command created without one.
    pub default_ttl: Duration,
    /// Longest time to live a request may ask for.
    pub max_ttl: Duration,
    /// How often unanswered commands are checked for expiry.
    pub expiry_check: Duration,
}

impl Default for CommandSettings {
    fn default() -> Self {
        CommandSettings {
            prefix: TopicPrefix::default(),
            default_ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(86_400),
            expiry_check: Duration::from_secs(1),
        }
    }
}

/// Why a command was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("gateway {0} has sent no birth yet, so the command cannot be checked")]
    NoBirth(Ident),
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("mqtt: {0}")]
    Mqtt(String),
}

#[derive(Debug, Clone, Default)]
struct GatewayState {
    birth: Option<Birth>,
    online: bool,
}

struct Inner {
    records: CommandRecords,
    client: AsyncClient,
    settings: CommandSettings,
    gateways: Mutex<HashMap<Ident, GatewayState>>,
    updates: broadcast::Sender<CommandRecord>,
}

/// The running command service. Cheap to clone.
#[derive(Clone)]
pub struct Commands {
    inner: Arc<Inner>,
}

/// Checks a command against what the gateway announced in its birth.
pub fn check_against_birth(kind: &CommandKind, birth: &Birth) -> Result<(), String> {
    let device = |name: &Ident| {
        birth
            .devices
            .iter()
            .find(|d| &d.name == name)
            .ok_or_else(|| format!("gateway {} has no device {name}", birth.gateway))
    };
    match kind {
        CommandKind::WritePoint {
            device: d,
            point,
            value,
        } => {
            let dev = device(d)?;
            let p = dev
                .points
                .iter()
                .find(|p| &p.name == point)
                .ok_or_else(|| format!("device {d} has no point {point}"))?;
            if !p.writable {
                return Err(format!("point {d}/{point} is not writable"));
            }
            if value.kind() != p.kind {
                return Err(format!(
                    "point {d}/{point} takes {:?} values, not {:?}",
                    p.kind,
                    value.kind()
                ));
            }
            Ok(())
        }
        CommandKind::ReadNow { device: d, points } => {
            let dev = device(d)?;
            for point in points {
                if !dev.points.iter().any(|p| &p.name == point) {
                    return Err(format!("device {d} has no point {point}"));
                }
            }
            Ok(())
        }
        CommandKind::SetPollInterval { device: d, .. } => device(d).map(|_| ()),
        CommandKind::ApplyConfig { .. } | CommandKind::Ping => Ok(()),
    }
}

impl Commands {
    /// Connects to the broker and starts the event loop and the expiry timer on `tracker`.
    pub fn start(
        mqtt: &MqttSettings,
        settings: CommandSettings,
        db: Arc<RecordsDb>,
        stop: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Commands, CommandError> {
        Self::start_beside(mqtt, settings, db, stop, tracker, SiblingCloses::default())
    }

    /// [`Commands::start`] beside ingest on the same broker: every end of this connection is
    /// recorded in `closes`, so ingest can tell a broker restart from a takeover of its session.
    pub fn start_beside(
        mqtt: &MqttSettings,
        settings: CommandSettings,
        db: Arc<RecordsDb>,
        stop: CancellationToken,
        tracker: &TaskTracker,
        closes: SiblingCloses,
    ) -> Result<Commands, CommandError> {
        let mut own = mqtt.clone();
        own.client_id = format!("{}-commands", mqtt.client_id);
        let mut options =
            crate::ingest::mqtt_options(&own).map_err(|e| CommandError::Mqtt(e.to_string()))?;
        options.set_manual_acks(false);
        let (client, mut eventloop) = AsyncClient::new(options, 1_024);
        eventloop.set_network_options(crate::ingest::network_options());
        let (updates, _) = broadcast::channel(1_024);
        let commands = Commands {
            inner: Arc::new(Inner {
                records: CommandRecords::new(db),
                client,
                settings,
                gateways: Mutex::new(HashMap::new()),
                updates,
            }),
        };
        tracker.spawn(
            commands
                .clone()
                .run_event_loop(eventloop, stop.clone(), closes),
        );
        tracker.spawn(commands.clone().run_expiry(stop));
        Ok(commands)
    }

    /// Every status change, as it is stored.
    pub fn subscribe(&self) -> broadcast::Receiver<CommandRecord> {
        self.inner.updates.subscribe()
    }

    pub fn records(&self) -> &CommandRecords {
        &self.inner.records
    }

    /// Validates and stores a command, and publishes it if the gateway is online. Returns the
    /// command and whether it is new (false: an earlier command had the same idempotency key).
    pub async fn create(
        &self,
        gateway: Ident,
        kind: CommandKind,
        ttl: Option<Duration>,
        idempotency_key: Option<String>,
        created_by: &str,
    ) -> Result<(CommandRecord, bool), CommandError> {
        let s = &self.inner.settings;
        let ttl = ttl.unwrap_or(s.default_ttl);
        if ttl.is_zero() || ttl > s.max_ttl {
            return Err(CommandError::Invalid(format!(
                "the time to live must be 1 to {} seconds",
                s.max_ttl.as_secs()
            )));
        }
        let (birth, online) = {
            let g = self.inner.gateways.lock().expect("gateway map lock");
            let st = g.get(&gateway).cloned().unwrap_or_default();
            (st.birth, st.online)
        };
        let birth = birth.ok_or_else(|| CommandError::NoBirth(gateway.clone()))?;
        check_against_birth(&kind, &birth).map_err(CommandError::Invalid)?;
        let now = now_ms();
        let id = crate::auth::random_hex(8).map_err(|e| CommandError::Mqtt(e.to_string()))?;
        let rec = CommandRecord {
            command_id: Ident::new(&format!("c-{id}")).expect("hex is a valid id"),
            gateway,
            kind,
            status: CommandStatus::Pending,
            created_at_ms: now,
            expires_at_ms: now + ttl.as_millis() as i64,
            updated_at_ms: now,
            idempotency_key,
            result: None,
            error: None,
            created_by: created_by.to_string(),
        };
        rec.message()
            .validate()
            .map_err(|e| CommandError::Invalid(e.to_string()))?;
        let (stored, new) = self.inner.records.insert(&rec).await?;
        if new {
            let _ = self.inner.updates.send(stored.clone());
            if online {
                if let Some(sent) = self.publish(&stored).await? {
                    return Ok((sent, true));
                }
            }
        }
        Ok((stored, new))
    }

    /// Publishes a pending command and records it as sent.
    async fn publish(&self, rec: &CommandRecord) -> Result<Option<CommandRecord>, CommandError> {
        if rec.expires_at_ms < now_ms() {
            return Ok(None);
        }
        let payload =
            json::encode(&rec.message()).map_err(|e| CommandError::Mqtt(e.to_string()))?;
        let topic = self
            .inner
            .settings
            .prefix
            .topic(&rec.gateway, TopicKind::Cmd);
        self.inner
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| CommandError::Mqtt(e.to_string()))?;
        let sent = self
            .inner
            .records
            .advance(
                rec.command_id.as_str(),
                CommandStatus::Sent,
                None,
                None,
                now_ms(),
            )
            .await?;
        if let Some(s) = &sent {
            let _ = self.inner.updates.send(s.clone());
        }
        Ok(sent)
    }

    async fn on_birth(&self, birth: Birth) {
        let gateway = birth.gateway.clone();
        {
            let mut g = self.inner.gateways.lock().expect("gateway map lock");
            let st = g.entry(gateway.clone()).or_default();
            st.birth = Some(birth);
            st.online = true;
        }
        let due = match self.inner.records.due(&gateway, now_ms()).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), gateway = %gateway,
                    "could not read queued commands; they go out on the next birth");
                return;
            }
        };
        for rec in due {
            if let Err(e) = self.publish(&rec).await {
                tracing::warn!(error = ?e.to_string(), command = %rec.command_id, "could not publish a queued command");
            }
        }
    }

    async fn on_ack(&self, gateway: &Ident, ack: Ack) {
        let records = &self.inner.records;
        match records.get(ack.command_id.as_str()).await {
            Ok(Some(rec)) if &rec.gateway == gateway => {}
            Ok(_) => {
                tracing::info!(gateway = %gateway, command = %ack.command_id,
                    "acknowledgement for a command this gateway was not sent; ignored");
                return;
            }
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), command = %ack.command_id, "could not read a command");
                return;
            }
        }
        let result = ack
            .result
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok());
        match records
            .advance(
                ack.command_id.as_str(),
                CommandStatus::of_ack(ack.stage),
                result.as_ref(),
                ack.error.as_deref(),
                now_ms(),
            )
            .await
        {
            Ok(Some(rec)) => {
                let _ = self.inner.updates.send(rec);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), command = %ack.command_id, "could not record an acknowledgement")
            }
        }
    }

    async fn on_publish(&self, topic: &str, payload: &[u8]) {
        let Ok(t) = self.inner.settings.prefix.parse(topic) else {
            return;
        };
        match t.kind {
            TopicKind::Status if !payload.is_empty() => match json::decode::<Status>(payload) {
                Ok(Status::Online(b)) if b.gateway == t.gateway => self.on_birth(b).await,
                Ok(Status::Offline(d)) if d.gateway == t.gateway => {
                    let mut g = self.inner.gateways.lock().expect("gateway map lock");
                    if let Some(st) = g.get_mut(&d.gateway) {
                        if st
                            .birth
                            .as_ref()
                            .is_none_or(|b| b.boot_epoch <= d.boot_epoch)
                        {
                            st.online = false;
                        }
                    }
                }
                _ => {}
            },
            TopicKind::Ack => {
                if let Ok(ack) = json::decode::<Ack>(payload) {
                    self.on_ack(&t.gateway, ack).await;
                }
            }
            _ => {}
        }
    }

    async fn run_event_loop(
        self,
        mut eventloop: rumqttc::EventLoop,
        stop: CancellationToken,
        closes: SiblingCloses,
    ) {
        let prefix = self.inner.settings.prefix.clone();
        loop {
            let ev = tokio::select! {
                _ = stop.cancelled() => break,
                ev = eventloop.poll() => ev,
            };
            match ev {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    for kind in [TopicKind::Status, TopicKind::Ack] {
                        if let Err(e) = self
                            .inner
                            .client
                            .try_subscribe(prefix.filter(kind), QoS::AtLeastOnce)
                        {
                            tracing::warn!(error = ?e.to_string(), "command service could not subscribe");
                        }
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    self.on_publish(&p.topic, &p.payload).await;
                }
                Ok(_) => {}
                Err(e) => {
                    closes.record();
                    tracing::warn!(error = ?e.to_string(), "command service: broker connection lost; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        let _ = self.inner.client.try_disconnect();
    }

    async fn run_expiry(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.settings.expiry_check);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            match self.inner.records.expire_due(now_ms()).await {
                Ok(expired) => {
                    for rec in expired {
                        let _ = self.inner.updates.send(rec);
                    }
                }
                Err(e) => tracing::warn!(error = ?e.to_string(), "command expiry check failed"),
            }
        }
    }
}
