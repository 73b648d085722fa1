//! The configuration in force and the acquisition running for it, swapped as one.
//!
//! Commands and reloads reach the running acquisition through [`Plant`]. Applying a new
//! configuration validates it first (nothing changes on a refusal), then under the write lock
//! stops the old acquisition, starts the new one and publishes the new report rules and birth.
//! An applied document is made permanent in the state directory ([`config::applied`]), never
//! over the operator's file; if it cannot be stored, the old configuration is started again:
//! the swap is all or nothing. The journal and the MQTT session are never
//! touched: sections that would need them (`gateway`, `mqtt`, `journal`) must stay as they are.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fieldlink_drivers::modbus::StationOptions;
use fieldlink_drivers::{Acquisition, DriverEvent};
use fieldlink_protocol::{Birth, EventKind};
use tokio::sync::{mpsc, watch, RwLock};
use tokio_util::sync::CancellationToken;

use crate::config::{self, AgentConfig};
use crate::events::Outbox;
use crate::scheduler::{gateway_device_info, Active};

/// A running acquisition and the configuration it was started from.
pub struct Running {
    pub config: Arc<AgentConfig>,
    pub acquisition: Arc<Acquisition>,
    cancel: CancellationToken,
}

/// Shared access to what is in force.
pub struct Plant {
    current: RwLock<Running>,
    events: mpsc::Sender<DriverEvent>,
    active: watch::Sender<Arc<Active>>,
    birth: watch::Sender<Arc<Birth>>,
    outbox: Outbox,
    boot_epoch: u64,
    root: CancellationToken,
    /// The operator's file: re-read on reload; an applied configuration is stored against it.
    config_path: Option<PathBuf>,
}

/// Why a new configuration was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(#[from] config::ConfigError),
    #[error("{0} cannot change while running; restart the agent for that")]
    Immutable(&'static str),
    #[error("new configuration not saved ({0}); previous configuration restored")]
    RolledBack(String),
}

/// The birth message for a configuration.
pub fn birth_for(config: &AgentConfig, boot_epoch: u64) -> Birth {
    let mut devices = crate::inventory::devices(&config.point_map);
    let names: Vec<_> = config
        .point_map
        .devices
        .iter()
        .map(|d| d.name.clone())
        .collect();
    devices.push(gateway_device_info(&names));
    Birth {
        gateway: config.gateway.clone(),
        boot_epoch,
        ts_ms: 0,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        config_hash: config.hash.clone(),
        devices,
    }
}

fn start(
    config: &AgentConfig,
    events: &mpsc::Sender<DriverEvent>,
    root: &CancellationToken,
) -> Running {
    let cancel = root.child_token();
    let acquisition = Acquisition::start(
        &config.point_map,
        StationOptions::default(),
        events.clone(),
        cancel.clone(),
    );
    Running {
        config: Arc::new(config.clone()),
        acquisition: Arc::new(acquisition),
        cancel,
    }
}

fn active_for(r: &Running) -> Active {
    Active {
        rules: r.config.reporting.clone(),
        counters: r
            .config
            .point_map
            .devices
            .iter()
            .filter_map(|d| Some((d.name.clone(), r.acquisition.counters(d.name.as_str())?)))
            .collect(),
    }
}

/// Receivers for the scheduler (rules, counters) and the uplink (birth).
pub struct PlantWatches {
    pub active: watch::Receiver<Arc<Active>>,
    pub birth: watch::Receiver<Arc<Birth>>,
}

impl Plant {
    /// Starts acquisition for `config`.
    pub fn start(
        config: AgentConfig,
        events: mpsc::Sender<DriverEvent>,
        outbox: Outbox,
        boot_epoch: u64,
        root: CancellationToken,
        config_path: Option<PathBuf>,
    ) -> (Arc<Plant>, PlantWatches) {
        let running = start(&config, &events, &root);
        let (active, active_rx) = watch::channel(Arc::new(active_for(&running)));
        let (birth, birth_rx) = watch::channel(Arc::new(birth_for(&config, boot_epoch)));
        let plant = Plant {
            current: RwLock::new(running),
            events,
            active,
            birth,
            outbox,
            boot_epoch,
            root,
            config_path,
        };
        (
            Arc::new(plant),
            PlantWatches {
                active: active_rx,
                birth: birth_rx,
            },
        )
    }

    /// The acquisition and configuration in force (a snapshot; a swap does not affect it).
    pub async fn current(&self) -> (Arc<AgentConfig>, Arc<Acquisition>) {
        let r = self.current.read().await;
        (r.config.clone(), r.acquisition.clone())
    }

    /// Applies `text` (TOML) as the new configuration; see the module docs.
    pub async fn apply_text(&self, text: &str) -> Result<String, ApplyError> {
        let new = config::parse(text)?;
        self.apply(new, Some(text)).await
    }

    /// Re-reads the configuration in force (SIGHUP): the operator's file, or the copy applied
    /// from the cloud while the file is unchanged.
    pub async fn reload(&self) -> Result<String, ApplyError> {
        let Some(path) = &self.config_path else {
            return Err(ApplyError::Immutable("a configuration without a file"));
        };
        let in_force = config::applied::load_in_force(path)?;
        if let Some(notice) = in_force.notice {
            tracing::warn!("{notice}");
        }
        self.apply(in_force.config, None).await
    }

    async fn apply(&self, new: AgentConfig, save: Option<&str>) -> Result<String, ApplyError> {
        let mut cur = self.current.write().await;
        let old = cur.config.clone();
        if new.gateway != old.gateway || new.raw.gateway != old.raw.gateway {
            return Err(ApplyError::Immutable("[gateway]"));
        }
        if new.raw.mqtt != old.raw.mqtt {
            return Err(ApplyError::Immutable("[mqtt]"));
        }
        if new.raw.journal != old.raw.journal {
            return Err(ApplyError::Immutable("[journal]"));
        }
        if new.raw.logging != old.raw.logging {
            tracing::warn!("[logging] changes take effect at the next restart");
        }
        self.stop_running(&mut cur).await;
        *cur = start(&new, &self.events, &self.root);
        if let (Some(text), Some(path)) = (save, &self.config_path) {
            if let Err(e) = config::applied::save(path, &new.state_dir, text) {
                tracing::error!(error = %e, "cannot save the new configuration; rolling back");
                self.stop_running(&mut cur).await;
                *cur = start(&old, &self.events, &self.root);
                self.active.send_replace(Arc::new(active_for(&cur)));
                return Err(ApplyError::RolledBack(e.to_string()));
            }
        }
        self.active.send_replace(Arc::new(active_for(&cur)));
        self.birth
            .send_replace(Arc::new(birth_for(&new, self.boot_epoch)));
        let hash = new.hash.clone();
        drop(cur);
        self.outbox
            .event_or_log(EventKind::ConfigApplied {
                config_hash: hash.clone(),
            })
            .await;
        tracing::info!(config_hash = %hash, "configuration applied");
        Ok(hash)
    }

    /// Cancels the running acquisition and waits (bounded) for its tasks, so serial ports are
    /// free before a new acquisition opens them.
    async fn stop_running(&self, cur: &mut Running) {
        cur.cancel.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        // Commands may hold a clone for the duration of a write; wait for them to let go.
        loop {
            if Arc::strong_count(&cur.acquisition) == 1 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("old acquisition still referenced; not waiting for its tasks");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let placeholder = Arc::new(Acquisition::start(
            &fieldlink_drivers::PointMap {
                devices: Vec::new(),
            },
            StationOptions::default(),
            self.events.clone(),
            cur.cancel.clone(),
        ));
        let acq = std::mem::replace(&mut cur.acquisition, placeholder);
        if let Ok(acq) = Arc::try_unwrap(acq) {
            let _ = tokio::time::timeout(Duration::from_secs(5), acq.join()).await;
        }
    }

    /// Stops acquisition for good (shutdown).
    pub async fn stop(&self) {
        let mut cur = self.current.write().await;
        self.stop_running(&mut cur).await;
    }
}
