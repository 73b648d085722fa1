//! Starting the pieces in order, reporting what runs, and stopping them in order.
//!
//! Start: data directory → simulator (and the weather station's pty) → cloud (broker, store,
//! HTTP) → agent. Stop, on SIGINT or SIGTERM: the agent first (it handles the same signal
//! itself: commits its last poll, syncs the journal, publishes `offline`), then the cloud
//! (drains ingest, commits, acknowledges), then the simulator and `socat`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::agent_config::{self, AgentAddresses, AgentConfigError};
use crate::pty::{self, PtyPair};
use crate::site::{Site, SiteError, WEATHER};

/// The HTTP address tried first when none is given: the dashboard URL people expect.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";

/// How long the agent gets beyond its own grace period before the demo stops waiting for it.
const AGENT_STOP_MARGIN: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Everything durable: the cloud's database, the agent's journal and state, the generated
    /// configuration. Created when missing; reused as it is when present.
    pub data_dir: PathBuf,
    /// Where the cloud serves HTTP. `None`: [`DEFAULT_HTTP`], or any free port if that is taken.
    pub http: Option<SocketAddr>,
    /// Run the serial weather station over a `socat` pty pair (when `socat` is installed).
    pub serial: bool,
}

/// What is running, for the person who started it.
#[derive(Debug, Clone)]
pub struct Started {
    pub data_dir: PathBuf,
    pub dashboard: String,
    pub broker: SocketAddr,
    pub modbus: SocketAddr,
    pub database: PathBuf,
    pub journal: PathBuf,
    pub agent_config: PathBuf,
    /// Alert rules installed at this start (0 when the database had rules already).
    pub rules_installed: usize,
    /// An operator API token: signs in to the dashboard, reads the API, sends commands.
    pub token: String,
    /// The gateway's end of the weather station's pty, or why the station is not running.
    pub weather: Result<PathBuf, String>,
}

impl std::fmt::Display for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Fieldlink demo is running.")?;
        writeln!(
            f,
            "  simulator   Modbus TCP on {}: energy-meter (unit 1), climate (unit 2), pump (unit 3)",
            self.modbus
        )?;
        match &self.weather {
            Ok(port) => writeln!(
                f,
                "  serial      weather station on {} (socat pty pair)",
                port.display()
            )?,
            Err(why) => writeln!(f, "  serial      weather station skipped: {why}")?,
        }
        writeln!(
            f,
            "  agent       gateway {}, journal {}, configuration {}",
            crate::GATEWAY_ID,
            self.journal.display(),
            self.agent_config.display()
        )?;
        writeln!(
            f,
            "  cloud       embedded MQTT broker mqtt://{}, SQLite store {}",
            self.broker,
            self.database.display()
        )?;
        writeln!(
            f,
            "  data        {} (start again with the same directory to continue)",
            self.data_dir.display()
        )?;
        writeln!(
            f,
            "  alerts      rules of demo/alert-rules.toml ({} installed now)",
            self.rules_installed
        )?;
        writeln!(f, "  dashboard   {}", self.dashboard)?;
        writeln!(f, "  token       {}", self.token)?;
        write!(f, "Press Ctrl-C to stop.")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free port on 127.0.0.1: {0}")]
    Port(std::io::Error),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    AgentConfig(#[from] AgentConfigError),
    #[error("agent configuration {path}: {reason}")]
    AgentRejected { path: PathBuf, reason: String },
    #[error("cloud configuration: {0}")]
    CloudConfig(#[from] fieldlink_cloud::config::ConfigError),
    #[error("cloud: {0}")]
    Cloud(#[from] fieldlink_cloud::service::ServiceError),
    #[error("cloud stopped before it served HTTP")]
    CloudEnded,
    #[error(transparent)]
    Rules(#[from] crate::rules::RulesError),
    #[error("operator token: {0}")]
    Token(#[from] crate::token::TokenError),
    #[error("agent: {0}")]
    Agent(#[from] fieldlink_agent::run::RunError),
    #[error("agent stopped unexpectedly: {0}")]
    AgentPanicked(String),
}

fn free_port() -> Result<SocketAddr, DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(DemoError::Port)?;
    listener.local_addr().map_err(DemoError::Port)
}

fn http_addr(wanted: Option<SocketAddr>) -> Result<SocketAddr, DemoError> {
    if let Some(addr) = wanted {
        return Ok(addr);
    }
    let default: SocketAddr = DEFAULT_HTTP.parse().expect("DEFAULT_HTTP is an address");
    match TcpListener::bind(default) {
        Ok(probe) => {
            drop(probe);
            Ok(default)
        }
        Err(e) => {
            tracing::info!(error = %e, "{DEFAULT_HTTP} is taken; the dashboard gets a free port");
            Ok(SocketAddr::from(([127, 0, 0, 1], 0)))
        }
    }
}

fn data_dir(path: &Path) -> Result<PathBuf, DemoError> {
    let err = |source| DemoError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path.join("agent")).map_err(err)?;
    path.canonicalize().map_err(err)
}

/// Runs the demo until SIGINT or SIGTERM; `started` is called once everything runs.
pub async fn run(options: Options, started: impl FnOnce(&Started)) -> Result<(), DemoError> {
    // Registered first, so a Ctrl-C during start is seen here rather than killing the process.
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DemoError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(DemoError::Signal)?;

    let dir = data_dir(&options.data_dir)?;
    let mut site = Site::start(SocketAddr::from(([127, 0, 0, 1], 0))).await?;

    let mut pty = None;
    let weather = if !options.serial {
        Err("turned off with --no-serial".to_string())
    } else if !pty::socat_available() {
        Err("socat is not installed (apt install socat)".to_string())
    } else {
        match PtyPair::start(&dir, &format!("tty-{WEATHER}")).await {
            Ok(pair) => match site.start_weather(&pair) {
                Ok(()) => {
                    let port = pair.gateway_end().to_path_buf();
                    pty = Some(pair);
                    Ok(port)
                }
                Err(e) => {
                    pair.stop().await;
                    Err(e.to_string())
                }
            },
            Err(e) => Err(e.to_string()),
        }
    };

    let broker = free_port()?;
    let settings = crate::cloud_config::settings(&dir, broker, http_addr(options.http)?)?;
    let database = dir.join(crate::cloud_config::DATABASE_FILE);
    let store_spec = settings.store.clone();
    // Migrated before the cloud starts, so the rules are there when its alert engine loads.
    let rules_installed = match fieldlink_cloud::service::migrate(&settings).await {
        Ok(_) => crate::rules::install_if_none(&store_spec).await,
        Err(e) => {
            stop_site(site, pty).await;
            return Err(e.into());
        }
    };
    let rules_installed = match rules_installed {
        Ok(n) => n,
        Err(e) => {
            stop_site(site, pty).await;
            return Err(e.into());
        }
    };
    let cloud_stop = CancellationToken::new();
    let (running_tx, running_rx) = tokio::sync::oneshot::channel();
    let mut cloud = tokio::spawn(fieldlink_cloud::service::serve(
        settings,
        cloud_stop.clone(),
        Some(running_tx),
    ));
    let http = match running_rx.await {
        Ok(running) => running.http,
        Err(_) => {
            let err = match (&mut cloud).await {
                Ok(Err(e)) => DemoError::Cloud(e),
                _ => DemoError::CloudEnded,
            };
            stop_site(site, pty).await;
            return Err(err);
        }
    };

    // The cloud has migrated the database by now, token table included.
    let token = match crate::token::operator_token(&store_spec, &dir).await {
        Ok(t) => t,
        Err(e) => {
            stop_cloud(cloud_stop, cloud).await;
            stop_site(site, pty).await;
            return Err(e.into());
        }
    };

    let journal = dir.join("agent").join("journal.db");
    let agent_config = dir.join("agent.toml");
    let addresses = AgentAddresses {
        broker,
        modbus: site.modbus_addr(),
        journal: &journal,
        weather_port: weather.as_ref().ok().map(PathBuf::as_path),
    };
    let config = agent_config::render(crate::AGENT_TOML, &addresses)
        .map_err(DemoError::from)
        .and_then(|text| {
            std::fs::write(&agent_config, text).map_err(|source| DemoError::DataDir {
                path: agent_config.clone(),
                source,
            })
        })
        .and_then(|()| {
            fieldlink_agent::config::load(&agent_config).map_err(|e| DemoError::AgentRejected {
                path: agent_config.clone(),
                reason: e.to_string(),
            })
        });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            stop_cloud(cloud_stop, cloud).await;
            stop_site(site, pty).await;
            return Err(e);
        }
    };
    let agent_grace = config.shutdown_grace;
    let mut agent = tokio::spawn(fieldlink_agent::run::run(
        config,
        Some(agent_config.clone()),
    ));

    started(&Started {
        data_dir: dir.clone(),
        dashboard: format!("http://{http}/"),
        broker,
        modbus: site.modbus_addr(),
        database,
        journal,
        agent_config,
        rules_installed,
        token,
        weather: weather.clone(),
    });

    let agent_result = tokio::select! {
        _ = interrupt.recv() => {
            tracing::info!("SIGINT: stopping");
            wait_for_agent(&mut agent, agent_grace).await
        }
        _ = terminate.recv() => {
            tracing::info!("SIGTERM: stopping");
            wait_for_agent(&mut agent, agent_grace).await
        }
        r = &mut agent => agent_outcome(r),
    };
    let cloud_result = stop_cloud_result(cloud_stop, cloud).await;
    stop_site(site, pty).await;
    agent_result.and(cloud_result)
}

type AgentTask = tokio::task::JoinHandle<Result<(), fieldlink_agent::run::RunError>>;

fn agent_outcome(
    r: Result<Result<(), fieldlink_agent::run::RunError>, tokio::task::JoinError>,
) -> Result<(), DemoError> {
    match r {
        Ok(r) => r.map_err(DemoError::from),
        Err(e) => Err(DemoError::AgentPanicked(e.to_string())),
    }
}

/// The agent stops on the same signal by itself; this waits for it, within its grace period.
async fn wait_for_agent(agent: &mut AgentTask, grace: Duration) -> Result<(), DemoError> {
    match tokio::time::timeout(grace + AGENT_STOP_MARGIN, &mut *agent).await {
        Ok(r) => agent_outcome(r),
        Err(_) => {
            tracing::warn!("the agent did not stop within its grace period; abandoning it");
            agent.abort();
            Ok(())
        }
    }
}

type CloudTask = tokio::task::JoinHandle<Result<(), fieldlink_cloud::service::ServiceError>>;

async fn stop_cloud_result(stop: CancellationToken, cloud: CloudTask) -> Result<(), DemoError> {
    stop.cancel();
    match cloud.await {
        Ok(r) => r.map_err(DemoError::from),
        Err(_) => Err(DemoError::CloudEnded),
    }
}

async fn stop_cloud(stop: CancellationToken, cloud: CloudTask) {
    if let Err(e) = stop_cloud_result(stop, cloud).await {
        tracing::warn!(error = %e, "cloud stopped with an error");
    }
}

async fn stop_site(site: Site, pty: Option<PtyPair>) {
    site.stop().await;
    if let Some(pty) = pty {
        pty.stop().await;
    }
}
