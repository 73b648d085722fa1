//! `serve` and `migrate`: wiring the store, the broker, ingest, the rollup, alerts and their
//! notifications, the live-event fan-out between instances (PostgreSQL only), and HTTP under
//! one shutdown root (a `CancellationToken` and a `TaskTracker`).
//!
//! Stop order: the token fires (signal or caller); HTTP stops accepting; the event loop stops
//! forwarding; the classifier and the writer drain what they hold; the writer commits and its
//! acknowledgements go out; the event loop disconnects. Everything is given
//! `shutdown_grace`; what is not committed by then stays unacknowledged at the broker.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{self, BrokerError};
use crate::config::{BrokerSettings, Settings};
use crate::health::{self, AppState};
use crate::ingest::{self, IngestError};
use crate::metrics::Metrics;
use crate::store::{Backend, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("ingest: {0}")]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("api: {0}")]
    Api(String),
    #[error("notifications: {0}")]
    Notify(#[from] crate::notify::NotifyError),
    #[error("http on {listen}: {source}")]
    Http {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Opens the store and applies pending migrations; returns the backend and what was applied.
pub async fn migrate(settings: &Settings) -> Result<(Store, Vec<i32>), ServiceError> {
    let store = Store::open(&settings.store).await?;
    let applied = store.migrate().await?;
    tracing::info!(backend = %store.backend(), applied = ?applied, "schema is current");
    Ok((store, applied))
}

/// What a running service tells its caller.
pub struct Running {
    pub http: SocketAddr,
}

/// Runs until `stop` fires, then drains. `started` receives the bound HTTP address.
pub async fn serve(
    mut settings: Settings,
    stop: CancellationToken,
    started: Option<tokio::sync::oneshot::Sender<Running>>,
) -> Result<(), ServiceError> {
    if let BrokerSettings::Embedded { listen } = settings.broker {
        // The embedded broker's sessions live in this process and end with it, so the client
        // id need not outlive it: a random suffix per start means no gateway can connect under
        // the cloud's id and take its session (the embedded broker has no ACL of its own yet).
        let suffix = crate::auth::random_hex(8).map_err(|e| BrokerError {
            listen,
            reason: format!("no randomness for the client id: {e}"),
        })?;
        settings.mqtt.client_id = format!("{}-{suffix}", settings.mqtt.client_id);
    }
    let (mut store, _) = migrate(&settings).await?;
    store.set_dead_letter_limits(settings.ingest.dead_letters);
    match store.backend() {
        Backend::Timescale => {
            tracing::info!("storage: TimescaleDB (hypertable, continuous aggregate)")
        }
        Backend::Postgres => tracing::info!(
            "storage: plain PostgreSQL (no TimescaleDB); the service maintains the hourly rollup"
        ),
        Backend::Sqlite => tracing::info!("storage: embedded SQLite"),
    }
    let store = Arc::new(store);
    if let BrokerSettings::Embedded { listen } = settings.broker {
        tokio::task::spawn_blocking(move || broker::start(listen))
            .await
            .map_err(|e| BrokerError {
                listen,
                reason: e.to_string(),
            })??;
    }
    let metrics = Arc::new(Metrics::new());
    let tracker = TaskTracker::new();
    let ingest_stop = CancellationToken::new();
    let handle = ingest::start(
        &settings.mqtt,
        settings.ingest.clone(),
        store.clone(),
        metrics.clone(),
        ingest_stop.clone(),
        &tracker,
    )?;

    if store.backend() == Backend::Postgres {
        let store = store.clone();
        let stop = stop.clone();
        let every = settings.rollup_interval;
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match store.refresh_rollup().await {
                    Ok(0) => {}
                    Ok(hours) => tracing::debug!(hours, "hourly rollup refreshed"),
                    Err(e) => {
                        tracing::warn!(error = ?e.to_string(), "hourly rollup refresh failed")
                    }
                }
            }
        });
    }

    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let state = AppState {
        store: store.clone(),
        ingest: handle.clone(),
        metrics: metrics.clone(),
    };
    let listen = settings.http_listen;
    let http_stop = stop.clone();
    let api_db = crate::records::RecordsDb::open(&settings.store)
        .await
        .map_err(|e| ServiceError::Api(e.to_string()))?;
    let api_db = Arc::new(api_db);
    let commands = crate::commands::Commands::start_beside(
        &settings.mqtt,
        settings.commands.clone(),
        api_db.clone(),
        ingest_stop.clone(),
        &tracker,
        handle.sibling_closes(),
    )
    .map_err(|e| ServiceError::Api(e.to_string()))?;
    // Alerts and notifications share a records handle (its own connections) apart from the
    // API's, so neither waits behind the API's queries.
    let alerts_db = Arc::new(
        crate::records::RecordsDb::open(&settings.store)
            .await
            .map_err(|e| ServiceError::Api(e.to_string()))?,
    );
    let notifier = crate::notify::Notifier::new(
        alerts_db.clone(),
        settings.notifications.clone(),
        settings.mqtt.client_id.clone(),
    )?;
    let alerts = crate::alerts::AlertEngine::load_with(
        alerts_db.clone(),
        crate::notify::Routing::new(settings.notifications.routes()),
        notifier.waker(),
    )
    .await
    .map_err(|e| ServiceError::Api(e.to_string()))?;
    tracker.spawn(
        alerts
            .clone()
            .run(handle.subscribe_committed(), ingest_stop.clone()),
    );
    tracker.spawn(alerts.clone().run_checks(
        crate::alerts::SilenceReads::new(alerts_db),
        settings.alert_check_interval,
        ingest_stop.clone(),
    ));
    tracker.spawn(notifier.run(ingest_stop.clone(), settings.shutdown_grace));
    let remote = crate::ws::fanout::start(
        &settings.store,
        crate::ws::fanout::LocalEvents {
            batches: handle.subscribe_committed(),
            commands: commands.subscribe(),
            alerts: alerts.subscribe(),
            health: handle.subscribe_device_health(),
        },
        metrics.clone(),
        ingest_stop.clone(),
        &tracker,
    )
    .map_err(|e| ServiceError::Api(format!("live-event fan-out: {e}")))?;
    let api_state = crate::api::ApiState::new(store.clone(), api_db)
        .with_alerts(alerts)
        .with_commands(commands)
        .with_ingest(handle.clone())
        .with_counters(metrics.http.clone());
    let mut router = health::router(state, &settings.api.limits)
        .merge(crate::api::router(api_state, &settings.api))
        .merge(crate::dashboard::router());
    if let Some(remote) = remote {
        router = router.layer(axum::Extension(remote));
    }
    let server_settings = settings.http_server.clone();
    let http_counters = metrics.http.clone();
    let http = tokio::spawn(async move {
        crate::http::serve(
            listen,
            router,
            &server_settings,
            http_counters,
            http_stop,
            bound_tx,
        )
        .await
    });
    let http_addr = match bound_rx.await {
        Ok(addr) => addr,
        Err(_) => {
            let source = match http.await {
                Ok(Err(e)) => e,
                _ => std::io::Error::other("the HTTP task ended before binding"),
            };
            ingest_stop.cancel();
            return Err(ServiceError::Http { listen, source });
        }
    };
    tracing::info!(http = %http_addr, "serving");
    if let Some(tx) = started {
        let _ = tx.send(Running { http: http_addr });
    }

    stop.cancelled().await;
    tracing::info!("stopping: draining ingest");
    ingest_stop.cancel();
    tracker.close();
    if tokio::time::timeout(settings.shutdown_grace * 2, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("ingest did not drain within the grace period; unacknowledged messages stay with the broker");
    }
    let _ = http.await;
    tracing::info!("stopped");
    Ok(())
}
