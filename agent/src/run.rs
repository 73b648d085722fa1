//! Wiring: opens the journal, starts every task under one shutdown root, and stops them in
//! order on SIGTERM/SIGINT within the grace period. SIGHUP reloads the configuration file.
//!
//! Shutdown order: commands stop taking new work, acquisition stops polling, the scheduler
//! commits what the stations already handed over, the journal syncs, the uplink publishes the
//! retained `offline` status and disconnects, the journal closes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fieldlink_buffer::{Journal, JournalConfig, JournalError};
use fieldlink_protocol::EventKind;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{wall_ms, ClockGuard, BUILD_MS};
use crate::commands::{Commands, Ledger};
use crate::config::AgentConfig;
use crate::events::Outbox;
use crate::health::Liveness;
use crate::notify::Notifier;
use crate::plant::Plant;
use crate::scheduler::Scheduler;
use crate::uplink::{Uplink, UplinkError, UplinkStats};

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("state directory {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("uplink: {0}")]
    Uplink(#[from] UplinkError),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

/// How long a loop may go without progress before the watchdog pings stop.
pub const STALL_AFTER: Duration = Duration::from_secs(15);

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(config: AgentConfig, config_path: Option<PathBuf>) -> Result<(), RunError> {
    let notifier = Notifier::from_env();
    let state_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| RunError::State { path, source }
    };
    let boot_epoch =
        crate::state::next_boot_epoch(&config.state_dir).map_err(state_err(&config.state_dir))?;
    if let Some(dir) = config.journal.path.parent() {
        std::fs::create_dir_all(dir).map_err(state_err(dir))?;
    }
    let mut jc = JournalConfig::new(&config.journal.path);
    jc.caps = config.journal.caps;
    jc.durability = config.journal.durability;
    jc.sync_interval = config.journal.commit_interval;
    jc.backfill_share = config.journal.backfill_share;
    let journal = Journal::open(jc).await?;
    tracing::info!(gateway = %config.gateway, boot_epoch, journal = %config.journal.path.display(),
        devices = config.point_map.devices.len(), "agent starting");
    let outbox = Outbox::new(journal.clone(), config.gateway.clone(), boot_epoch);
    if let Some(q) = journal.quarantine() {
        tracing::error!(reason = %q.reason, moved_to = ?q.moved_to,
            points_saved = q.salvage.map(|s| s.points_saved),
            points_lost = q.salvage.and_then(|s| s.points_lost),
            "journal was damaged or missing and moved aside");
        let file = q
            .moved_to
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        outbox
            .event_or_log(EventKind::JournalQuarantined {
                file,
                // Says what happened and, after a salvage, how much was saved and lost.
                error: fieldlink_protocol::clip_text(q.summary()),
            })
            .await;
    }
    let ledger =
        Ledger::open(&config.state_dir, wall_ms()).map_err(state_err(&config.state_dir))?;

    let tracker = TaskTracker::new();
    let acquisition_root = CancellationToken::new();
    let commands_stop = CancellationToken::new();
    let scheduler_stop = CancellationToken::new();
    let uplink_stop = CancellationToken::new();
    let watchdog_stop = CancellationToken::new();

    // One slot: a station waits for the scheduler to take its previous poll, so little that was
    // read is ever held outside the journal (the drivers do not wait for the commit itself).
    let (driver_tx, driver_rx) = mpsc::channel(1);
    let (plant, watches) = Plant::start(
        config.clone(),
        driver_tx,
        outbox.clone(),
        boot_epoch,
        acquisition_root.clone(),
        config_path,
    );
    let wake = Arc::new(Notify::new());
    let liveness = Liveness::new(STALL_AFTER);
    let uplink_stats = Arc::new(UplinkStats::default());

    let scheduler = Scheduler {
        events: driver_rx,
        active: watches.active,
        journal: journal.clone(),
        outbox: outbox.clone(),
        uplink_wake: wake.clone(),
        uplink: uplink_stats.clone(),
        self_telemetry_every: config.self_telemetry_interval,
        clock: ClockGuard::new(BUILD_MS, 1_000_000),
        heartbeat: liveness.register("poll"),
    };
    let scheduler_task = tracker.spawn(scheduler.run(scheduler_stop.clone()));

    let (delivery_tx, delivery_rx) = mpsc::channel(32);
    let (request_tx, request_rx) = mpsc::channel(64);
    let uplink = Uplink {
        mqtt: config.mqtt.clone(),
        gateway: config.gateway.clone(),
        boot_epoch,
        journal: journal.clone(),
        outbox: outbox.clone(),
        wake: wake.clone(),
        birth: watches.birth,
        deliveries: delivery_tx,
        requests: request_rx,
        heartbeat: liveness.register("uplink"),
        stats: uplink_stats,
        shutdown_wait: config.shutdown_grace.mul_f32(0.5),
    };
    let uplink_task = tracker.spawn(uplink.run(uplink_stop.clone()));

    let commands = Commands {
        deliveries: delivery_rx,
        uplink: request_tx,
        outbox: outbox.clone(),
        journal: journal.clone(),
        plant: plant.clone(),
        ledger,
        wake: wake.clone(),
    };
    let commands_task = tracker.spawn(commands.run(commands_stop.clone()));

    let notifier = Arc::new(notifier);
    {
        let n = notifier.clone();
        let l = liveness.clone();
        let stop = watchdog_stop.clone();
        tracker.spawn(async move { n.watchdog(l, stop).await });
    }
    tracker.close();
    notifier.ready();
    tracing::info!("agent running");

    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signal)?;
    let mut uplink_task = uplink_task;
    let uplink_early = loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break None; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break None; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                match plant.reload().await {
                    Ok(hash) => tracing::info!(config_hash = %hash, "reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "reload refused; previous configuration stays");
                        outbox.event_or_log(EventKind::ConfigRejected {
                            config_hash: None,
                            error: fieldlink_protocol::clip_text(e.to_string()),
                        }).await;
                    }
                }
            }
            r = &mut uplink_task => {
                // The uplink only returns early on a setup error (TLS files): fatal.
                break Some(r);
            }
        }
    };
    notifier.stopping();
    let grace = config.shutdown_grace;
    let stop = async {
        commands_stop.cancel();
        let _ = commands_task.await;
        plant.stop().await;
        acquisition_root.cancel();
        scheduler_stop.cancel();
        let _ = scheduler_task.await;
        if let Err(e) = journal.sync().await {
            tracing::error!(error = %e, "journal sync at shutdown failed");
        }
        uplink_stop.cancel();
        let uplink_result = match uplink_early {
            Some(r) => r,
            None => uplink_task.await,
        };
        watchdog_stop.cancel();
        tracker.wait().await;
        uplink_result
    };
    let result = match tokio::time::timeout(grace, stop).await {
        Ok(Ok(r)) => r.map_err(RunError::from),
        Ok(Err(join)) => {
            tracing::error!(error = %join, "uplink task failed");
            Ok(())
        }
        Err(_) => {
            tracing::error!(
                grace_s = grace.as_secs(),
                "shutdown took longer than the grace period"
            );
            Ok(())
        }
    };
    if let Err(e) = journal.close().await {
        tracing::warn!(error = %e, "journal close");
    }
    tracing::info!("agent stopped");
    result
}
