//! `fieldlink-sim`: serve a simulator configuration over Modbus TCP, Modbus RTU and serial lines.
//!
//! Parses arguments, loads the configuration, wires the servers to one shutdown token and maps
//! errors to exit codes: 0 stopped by SIGINT or SIGTERM, 2 usage, 3 invalid configuration, 4 a transport
//! failed. Everything else is in the library (see its crate documentation).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use fieldlink_sim::{SerialSettings, ServeError, SimConfig, Simulator};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const USAGE: &str = "\
usage:
  fieldlink-sim run --config FILE [--tcp ADDR] [--rtu PATH] [--baud N]
                    [--line NAME=PATH]... [--stats-interval SECS] [--served-log FILE]
  fieldlink-sim check-config FILE
  fieldlink-sim print-example-config

  --tcp ADDR            serve Modbus TCP on ADDR (port 0 picks a free port; the bound address
                        is printed on stdout as `tcp ADDR`)
  --rtu PATH            serve Modbus RTU on serial device PATH, every unit on one bus
  --baud N              RTU baud rate (default: config or 9600)
  --line NAME=PATH      run line sensor NAME on serial device PATH
  --stats-interval SECS log counters every SECS seconds (default 10, 0 = never)
  --served-log FILE     append every answered read to FILE as a JSON line (turns the
                        served log on with 10000 entries if the configuration has it off)";

/// Served-log capacity when `--served-log` is given and the configuration has none.
const DEFAULT_SERVED_LOG: usize = 10_000;
/// How often `--served-log` moves the served log to its file.
const EXPORT_EVERY: Duration = Duration::from_millis(200);

const EXIT_USAGE: u8 = 2;
const EXIT_CONFIG: u8 = 3;
const EXIT_TRANSPORT: u8 = 4;

struct RunArgs {
    config: PathBuf,
    tcp: Option<SocketAddr>,
    rtu: Option<PathBuf>,
    baud: Option<u32>,
    lines: BTreeMap<String, PathBuf>,
    stats_interval: Duration,
    served_log: Option<PathBuf>,
}

enum Command {
    Run(RunArgs),
    Check(PathBuf),
    PrintExample,
    Help,
}

fn main() -> ExitCode {
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("fieldlink-sim: {err:#}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::PrintExample => {
            print!("{}", SimConfig::example_toml());
            ExitCode::SUCCESS
        }
        Command::Check(path) => match SimConfig::load(&path).and_then(|c| c.validate()) {
            Ok(()) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("fieldlink-sim: {}: {err}", path.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Run(args) => run(args),
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<Command> {
    let Some(command) = args.next() else {
        bail!("no command given");
    };
    match command.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "print-example-config" => return Ok(Command::PrintExample),
        "check-config" => {
            let path = args.next().context("check-config needs a FILE")?;
            return Ok(Command::Check(path.into()));
        }
        "run" => {}
        other => bail!("unknown command {other:?}"),
    }
    let mut config = None;
    let mut run = RunArgs {
        config: PathBuf::new(),
        tcp: None,
        rtu: None,
        baud: None,
        lines: BTreeMap::new(),
        stats_interval: Duration::from_secs(10),
        served_log: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--tcp" => run.tcp = Some(value()?.parse().context("--tcp needs HOST:PORT")?),
            "--rtu" => run.rtu = Some(value()?.into()),
            "--served-log" => run.served_log = Some(value()?.into()),
            "--baud" => run.baud = Some(value()?.parse().context("--baud needs a number")?),
            "--line" => {
                let v = value()?;
                let (name, path) = v.split_once('=').context("--line needs NAME=PATH")?;
                run.lines.insert(name.to_owned(), path.into());
            }
            "--stats-interval" => {
                let secs: f64 = value()?.parse().context("--stats-interval needs seconds")?;
                if !(secs.is_finite() && secs >= 0.0) {
                    bail!("--stats-interval needs a non-negative number of seconds");
                }
                run.stats_interval = Duration::from_secs_f64(secs);
            }
            other => bail!("unknown option {other:?}"),
        }
    }
    run.config = config.context("run needs --config FILE")?;
    Ok(Command::Run(run))
}

fn run(args: RunArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let loaded = SimConfig::load(&args.config).map(|mut config| {
        if args.served_log.is_some() && config.served_log.capacity == 0 {
            config.served_log.capacity = DEFAULT_SERVED_LOG;
        }
        config
    });
    let sim = match loaded.and_then(Simulator::from_config) {
        Ok(sim) => sim,
        Err(err) => {
            eprintln!("fieldlink-sim: {}: {err}", args.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(name) = args.lines.keys().find(|n| sim.line_sensor(n).is_none()) {
        eprintln!(
            "fieldlink-sim: --line names sensor {name:?}, which {} does not define\n\n{USAGE}",
            args.config.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("fieldlink-sim: cannot start the runtime: {err}");
            return ExitCode::from(EXIT_TRANSPORT);
        }
    };
    match runtime.block_on(serve(sim, args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fieldlink-sim: {err:#}");
            ExitCode::from(EXIT_TRANSPORT)
        }
    }
}

async fn serve(sim: Simulator, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut signals = StopSignals::install()?;
    let shutdown = CancellationToken::new();
    let mut tasks: JoinSet<Result<(), ServeError>> = JoinSet::new();

    let tcp = args.tcp.or(sim.config().tcp.as_ref().map(|t| t.listen));
    if let Some(addr) = tcp {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        println!("tcp {}", listener.local_addr()?);
        tasks.spawn(sim.serve_tcp(listener, shutdown.clone()));
    }
    let configured_rtu = match &sim.config().rtu {
        Some(rtu) => Some(rtu.settings()?),
        None => None,
    };
    let rtu = match (args.rtu.clone(), configured_rtu) {
        (Some(path), Some(configured)) => Some(SerialSettings { path, ..configured }),
        (Some(path), None) => Some(SerialSettings::new(path, 9600)),
        (None, configured) => configured,
    };
    if let Some(mut settings) = rtu {
        if let Some(baud) = args.baud {
            settings.baud = baud;
        }
        settings.open()?;
        tasks.spawn(sim.serve_rtu(settings, shutdown.clone()));
    }
    for sensor in sim.line_sensors() {
        let Some(path) = args
            .lines
            .get(sensor.name())
            .cloned()
            .or(sensor.path().map(PathBuf::from))
        else {
            tracing::warn!(
                sensor = sensor.name(),
                "line sensor has no device path; not started"
            );
            continue;
        };
        let settings = SerialSettings::new(path, sensor.baud());
        let token = shutdown.clone();
        tasks.spawn(async move { sensor.run(settings, token).await });
    }
    if tasks.is_empty() {
        eprintln!("fieldlink-sim: nothing to serve: give --tcp, --rtu or --line (or set them in the configuration)\n\n{USAGE}");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    if let Some(path) = &args.served_log {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let export = sim.export_served_log(file, EXPORT_EVERY, shutdown.clone());
        tasks.spawn(async move { export.await.map_err(ServeError::ServedLog) });
    }
    if !args.stats_interval.is_zero() {
        tokio::spawn(sim.report_stats(args.stats_interval, shutdown.clone()));
    }

    let mut code = ExitCode::SUCCESS;
    tokio::select! {
        signal = signals.recv() => tracing::info!(signal, "stopping"),
        Some(done) = tasks.join_next() => {
            match done {
                Ok(Ok(())) => tracing::info!("a server stopped; stopping the others"),
                Ok(Err(err)) => {
                    tracing::error!(error = %err, "a server failed; stopping");
                    code = ExitCode::from(EXIT_TRANSPORT);
                }
                Err(err) => {
                    tracing::error!(error = %err, "a server task panicked; stopping");
                    code = ExitCode::from(EXIT_TRANSPORT);
                }
            }
        }
    }
    shutdown.cancel();
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(err)) = done {
            tracing::error!(error = %err, "a task failed while stopping");
            code = ExitCode::from(EXIT_TRANSPORT);
        }
    }
    Ok(code)
}

/// SIGINT and SIGTERM, listened to from before anything is served, so a signal sent as soon as
/// the `tcp ADDR` line is printed stops the simulator cleanly.
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Waits for either signal and names it.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
