//! `fieldlink-demo`: runs the simulated site, the agent and the cloud together until Ctrl-C.
//!
//! Exit codes: 0 stopped cleanly, 1 a part failed, 2 bad usage.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

#[derive(Parser)]
#[command(
    version,
    about = "Run a whole Fieldlink system on this machine: a simulated pumping station, a real \
             agent, and the cloud with its embedded broker, store and dashboard"
)]
struct Cli {
    /// Directory for the database, the agent's journal and the generated configuration; a
    /// second start with the same directory continues with its data.
    #[arg(
        long,
        default_value = "fieldlink-demo-data",
        env = "FIELDLINK_DEMO_DATA"
    )]
    data_dir: PathBuf,
    /// Address for the cloud's HTTP server (dashboard and API). Default: 127.0.0.1:8080, or a
    /// free port when that one is taken.
    #[arg(long, env = "FIELDLINK_DEMO_HTTP")]
    http: Option<SocketAddr>,
    /// Leave out the serial weather station (which needs socat).
    #[arg(long)]
    no_serial: bool,
}

/// Logs go to `demo.log` in the data directory (RUST_LOG, default info) and, from WARN up,
/// to stderr, so the terminal shows what is running and what goes wrong. The embedded broker's
/// own log (a disconnect is an ERROR there) stays in the file.
fn init_logging(data_dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("demo.log"))?;
    let file_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rumqttd=warn"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .with_filter(file_filter),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(EnvFilter::new("warn,rumqttd=off")),
        )
        .init();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli.data_dir) {
        eprintln!(
            "fieldlink-demo: cannot write logs into {}: {e}",
            cli.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fieldlink-demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = fieldlink_demo::Options {
        data_dir: cli.data_dir,
        http: cli.http,
        serial: !cli.no_serial,
    };
    let result = runtime.block_on(fieldlink_demo::run(options, |started| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{started}");
        let _ = out.flush();
    }));
    match result {
        Ok(()) => {
            println!("Fieldlink demo stopped.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fieldlink-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
