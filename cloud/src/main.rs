//! `fieldlink-cloud`: parses arguments, loads the configuration, runs a subcommand, and maps
//! failures to exit codes (2: bad configuration, 1: anything else). Under systemd, `serve`
//! reports readiness, watchdog pings and its stop through [`systemd`].

mod systemd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fieldlink_cloud::config::{Settings, DEFAULT_TOML};
use fieldlink_cloud::service;
use systemd::SystemdNotifier;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    version,
    about = "Fieldlink cloud: MQTT ingest into TimescaleDB, PostgreSQL or SQLite"
)]
struct Cli {
    /// TOML configuration file; FIELDLINK_CLOUD__SECTION__KEY variables override it.
    #[arg(long, short, global = true, env = "FIELDLINK_CLOUD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, then ingest and serve HTTP until SIGTERM or Ctrl-C.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Print the default configuration, with comments.
    PrintDefaultConfig,
    /// Manage API bearer tokens (create prints the secret once).
    #[command(subcommand)]
    Token(fieldlink_cloud::auth::cli::TokenCommand),
    /// Register, list and remove gateways (for `ingest.require_registration`).
    #[command(subcommand)]
    Gateway(fieldlink_cloud::registry::cli::GatewayCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::PrintDefaultConfig = cli.command {
        print!("{DEFAULT_TOML}");
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colours only on a terminal (journald would store escape codes).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fieldlink-cloud: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // Every TLS file is opened and parsed before anything runs, by check-config and serve
    // alike: a CA file that is not a certificate would otherwise leave the service running,
    // never ready, with nothing in its log naming the file.
    // A certificate out of its validity dates is refused the same way; one that expires soon
    // is a warning, on stdout for check-config and in the log for serve.
    if let Some(tls) = &settings.mqtt.tls {
        match fieldlink_cloud::ingest::check_tls_files(tls, std::time::SystemTime::now()) {
            Ok(expiring) => {
                for (key, soon) in expiring {
                    if let Command::CheckConfig = cli.command {
                        println!("warning: {key}: {soon}");
                    } else {
                        tracing::warn!(key, file = %soon.path.display(), not_after = %soon.not_after,
                            days_left = soon.days_left, "certificate expires soon: {soon}");
                    }
                }
            }
            Err((key, why)) => {
                eprintln!("fieldlink-cloud: configuration error: {key}: {why}");
                return ExitCode::from(2);
            }
        }
    }
    if let Command::CheckConfig = cli.command {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fieldlink-cloud: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            Command::Migrate => {
                service::migrate(&settings).await?;
                Ok(())
            }
            Command::Token(cmd) => {
                fieldlink_cloud::auth::cli::run(&settings.store, cmd, &mut std::io::stdout()).await
            }
            Command::Gateway(cmd) => {
                fieldlink_cloud::registry::cli::run(&settings.store, cmd, &mut std::io::stdout())
                    .await
            }
            _ => {
                let stop = CancellationToken::new();
                tokio::spawn(stop_on_signal(stop.clone()));
                let (started_tx, started) = tokio::sync::oneshot::channel();
                let notifier = SystemdNotifier::from_env();
                let announcing = notifier
                    .is_enabled()
                    .then(|| tokio::spawn(announce(notifier, started, stop.clone())));
                let served = service::serve(settings, stop.clone(), Some(started_tx)).await;
                // Ended by a signal or by a failure: either way the service is stopping, and
                // the announcement says so before the process exits.
                stop.cancel();
                if let Some(task) = announcing {
                    let _ = task.await;
                }
                served?;
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fieldlink-cloud: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn stop_on_signal(stop: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = ?e.to_string(), "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
    stop.cancel();
}

/// Tells systemd that the service is ready once `serve` reports it serves, pings the watchdog
/// while it runs, and says when a stop begins.
async fn announce(
    notifier: SystemdNotifier,
    started: tokio::sync::oneshot::Receiver<service::Running>,
    stop: CancellationToken,
) {
    let running = tokio::select! {
        r = started => r.ok(),
        _ = stop.cancelled() => None,
    };
    if let Some(running) = running {
        notifier.ready(&format!("serving HTTP on {}", running.http));
        if let Some(every) = notifier.watchdog_every() {
            tracing::debug!(every = ?every, "pinging the systemd watchdog");
        }
        systemd::watchdog(&notifier, stop.clone()).await;
    }
    stop.cancelled().await;
    notifier.stopping("stopping");
}
