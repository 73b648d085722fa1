//! Commands from the cloud: validated, journaled, run once, acknowledged.
//!
//! For each delivery, in order:
//! 1. Decode and validate it against the protocol; a command that does not decode but names
//!    an id is acknowledged `rejected` with the reason.
//! 2. If its id is in the [`ledger`], it was taken before (a redelivery): only the broker's
//!    PUBACK is sent, nothing runs again.
//! 3. Record the id in the ledger (fsynced), journal the `received` acknowledgement, and only
//!    then PUBACK the delivery: from here on the command is ours and will not be redelivered.
//! 4. Refuse it as `expired` after its expiry, `rejected` if it does not fit the configuration
//!    (unknown device or point, not writable, wrong value type or range), otherwise run it and
//!    acknowledge `executed` (with the read-back or read value) or `failed`.
//!
//! Acknowledgements travel through the journal's acknowledgement class, which leaves before
//! events and telemetry and is never dropped.

pub mod ledger;

use std::sync::Arc;
use std::time::Duration;

use fieldlink_buffer::{Journal, Wait};
use fieldlink_drivers::pointmap::DeviceKind;
use fieldlink_drivers::write::plan_write;
use fieldlink_drivers::WriteError;
use fieldlink_protocol::{
    clip_text, json, Ack, AckStage, Command, CommandKind, ConfigDocument, Ident, Value,
};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

pub use ledger::Ledger;

use crate::clock::wall_ms;
use crate::events::Outbox;
use crate::plant::{ApplyError, Plant};
use crate::uplink::{Delivery, UplinkRequest};

/// The command task's inputs.
pub struct Commands {
    pub deliveries: mpsc::Receiver<Delivery>,
    pub uplink: mpsc::Sender<UplinkRequest>,
    pub outbox: Outbox,
    pub journal: Journal,
    pub plant: Arc<Plant>,
    pub ledger: Ledger,
    pub wake: Arc<Notify>,
}

/// How a command ended.
struct Outcome {
    stage: AckStage,
    result: Option<Value>,
    error: Option<String>,
}

impl Outcome {
    fn received() -> Outcome {
        Outcome {
            stage: AckStage::Received,
            result: None,
            error: None,
        }
    }
    fn executed(result: Option<Value>) -> Outcome {
        Outcome {
            stage: AckStage::Executed,
            result,
            error: None,
        }
    }
    fn rejected(why: impl ToString) -> Outcome {
        Outcome {
            stage: AckStage::Rejected,
            result: None,
            error: Some(why.to_string()),
        }
    }
    fn failed(why: impl ToString) -> Outcome {
        Outcome {
            stage: AckStage::Failed,
            result: None,
            error: Some(why.to_string()),
        }
    }
}

impl Commands {
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                d = self.deliveries.recv() => match d {
                    Some(d) => self.take(d).await,
                    None => return,
                },
            }
        }
    }

    fn puback(&self, d: &Delivery) {
        let req = UplinkRequest::Acknowledge {
            connection: d.connection,
            pkid: d.pkid,
        };
        if self.uplink.try_send(req).is_err() {
            tracing::warn!("uplink busy; delivery stays unacknowledged and will come again");
        }
        self.wake.notify_one();
    }

    async fn ack(&self, id: &Ident, o: Outcome) -> bool {
        let ack = Ack {
            command_id: id.clone(),
            stage: o.stage,
            result: o.result,
            error: o.error.map(clip_text),
            ts_ms: wall_ms().max(0),
        };
        tracing::info!(command = %id, stage = ?ack.stage, error = ?ack.error, "command acknowledged");
        let ok = match self.outbox.ack(&ack).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(command = %id, error = %e, "acknowledgement not journaled");
                false
            }
        };
        self.wake.notify_one();
        ok
    }

    async fn take(&mut self, d: Delivery) {
        let cmd = match json::decode::<Command>(&d.payload) {
            Ok(c) => c,
            Err(e) => {
                let id = serde_json::from_slice::<serde_json::Value>(&d.payload)
                    .ok()
                    .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
                    .and_then(|s| Ident::new(&s).ok());
                match id {
                    Some(id) if !self.ledger.contains(id.as_str()) => {
                        if let Err(le) = self.ledger.record(id.as_str(), wall_ms()) {
                            tracing::error!(error = %le, "command ledger not written");
                            return;
                        }
                        if self.ack(&id, Outcome::received()).await {
                            self.puback(&d);
                            let why = format!("invalid command: {e}");
                            self.ack(&id, Outcome::rejected(why)).await;
                        }
                    }
                    Some(_) => self.puback(&d),
                    None => {
                        tracing::warn!(error = %e, "command without a usable id dropped");
                        self.outbox
                            .event_or_log(fieldlink_protocol::EventKind::Error {
                                device: None,
                                message: clip_text(format!("undecodable command dropped: {e}")),
                            })
                            .await;
                        self.puback(&d);
                    }
                }
                return;
            }
        };
        if self.ledger.contains(cmd.id.as_str()) {
            tracing::info!(command = %cmd.id, "command already taken; redelivery ignored");
            self.puback(&d);
            return;
        }
        if let Err(e) = self.ledger.record(cmd.id.as_str(), cmd.expires_at_ms) {
            // Not acknowledged to the broker: it comes again once the disk works.
            tracing::error!(command = %cmd.id, error = %e, "command ledger not written");
            return;
        }
        if !self.ack(&cmd.id, Outcome::received()).await {
            return;
        }
        self.puback(&d);
        let outcome = if cmd.is_expired(wall_ms()) {
            Outcome {
                stage: AckStage::Expired,
                result: None,
                error: Some(format!("expired at {} ms", cmd.expires_at_ms)),
            }
        } else {
            self.execute(&cmd.kind).await
        };
        self.ack(&cmd.id, outcome).await;
    }

    async fn execute(&self, kind: &CommandKind) -> Outcome {
        let (config, acquisition) = self.plant.current().await;
        let modbus = |device: &Ident| match config.point_map.device(device.as_str()) {
            None => Err(Outcome::rejected(format!("no device {device}"))),
            Some(d) => match &d.kind {
                DeviceKind::Modbus(m) => Ok(m.clone()),
                DeviceKind::SerialLine(_) => Err(Outcome::rejected(format!(
                    "device {device} is a serial-line sensor"
                ))),
            },
        };
        match kind {
            CommandKind::Ping => Outcome::executed(None),
            CommandKind::WritePoint {
                device,
                point,
                value,
            } => {
                let m = match modbus(device) {
                    Ok(m) => m,
                    Err(o) => return o,
                };
                let Some(p) = m.point(point.as_str()) else {
                    return Outcome::rejected(format!("device {device} has no point {point}"));
                };
                if let Err(e) = plan_write(p, value) {
                    return Outcome::rejected(e);
                }
                match acquisition
                    .write(device.as_str(), point.as_str(), value.clone())
                    .await
                {
                    Ok(w) => Outcome::executed(Some(w.read_back.unwrap_or_else(|| value.clone()))),
                    Err(
                        e @ (WriteError::UnknownDevice(_)
                        | WriteError::UnknownPoint { .. }
                        | WriteError::NotWritable(_)
                        | WriteError::ReadOnlyDevice(_)
                        | WriteError::Value(_)),
                    ) => Outcome::rejected(e),
                    Err(e) => Outcome::failed(e),
                }
            }
            CommandKind::ReadNow { device, points } => {
                let m = match modbus(device) {
                    Ok(m) => m,
                    Err(o) => return o,
                };
                if let Some(p) = points.iter().find(|p| m.point(p.as_str()).is_none()) {
                    return Outcome::rejected(format!("device {device} has no point {p}"));
                }
                match acquisition.read_now(device.as_str()).await {
                    Err(e) => Outcome::failed(e),
                    Ok(r) => {
                        let read: Vec<_> = r
                            .points
                            .into_iter()
                            .filter(|p| points.is_empty() || points.contains(&p.metric))
                            .collect();
                        let result = (read.len() == 1).then(|| read[0].value.clone());
                        let failures: Vec<String> = r
                            .failures
                            .iter()
                            .filter(|f| points.is_empty() || points.contains(&f.metric))
                            .map(|f| format!("{}: {}", f.metric, f.error))
                            .collect();
                        if let Err(e) = self.journal.append_points(read, Wait::Commit).await {
                            return Outcome::failed(format!("readings not journaled: {e}"));
                        }
                        self.wake.notify_one();
                        if failures.is_empty() {
                            Outcome::executed(result)
                        } else {
                            Outcome::failed(failures.join("; "))
                        }
                    }
                }
            }
            CommandKind::SetPollInterval {
                device,
                interval_ms,
            } => {
                if let Err(o) = modbus(device) {
                    return o;
                }
                let interval = Duration::from_millis(*interval_ms);
                if acquisition
                    .set_poll_interval(device.as_str(), interval)
                    .await
                {
                    Outcome::executed(None)
                } else {
                    Outcome::failed(format!("device {device} did not take the interval"))
                }
            }
            CommandKind::ApplyConfig { config } => match config {
                ConfigDocument::Toml(text) => {
                    drop(acquisition);
                    match self.plant.apply_text(text).await {
                        Ok(hash) => Outcome::executed(Some(Value::Str(hash))),
                        Err(e @ (ApplyError::Invalid(_) | ApplyError::Immutable(_))) => {
                            self.outbox
                                .event_or_log(fieldlink_protocol::EventKind::ConfigRejected {
                                    config_hash: None,
                                    error: clip_text(e.to_string()),
                                })
                                .await;
                            Outcome::rejected(e)
                        }
                        Err(e) => Outcome::failed(e),
                    }
                }
                ConfigDocument::Document(_) => {
                    Outcome::rejected("this agent takes its configuration as TOML")
                }
            },
        }
    }
}
