//! `fieldlink-agent [--config FILE] [run | check-config [--points] | print-default-config]
//! [--version]`
//!
//! Exit codes: 0 stopped cleanly, 1 failed while running, 2 bad usage or configuration.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use fieldlink_agent::config::{self, DEFAULT_PATH};

const USAGE: &str =
    "usage: fieldlink-agent [--config FILE] [run | check-config [--points] | print-default-config]
       fieldlink-agent --version
check-config --points lists every point, templates applied and blocks expanded, one a line.
The configuration file defaults to /etc/fieldlink/agent.toml; any key can be overridden with
FIELDLINK_AGENT__SECTION__KEY environment variables (e.g. FIELDLINK_AGENT__MQTT__URL).";

enum Mode {
    Run,
    /// With `true`, the point list instead of the summary.
    Check(bool),
    PrintDefault,
    Version,
    Help,
}

fn parse_args() -> Result<(Mode, PathBuf), String> {
    let mut mode = None;
    let mut path = None;
    let mut points = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let m = match a.as_str() {
            "--config" | "-c" => {
                path = Some(PathBuf::from(args.next().ok_or("--config needs a file")?));
                continue;
            }
            s if s.starts_with("--config=") => {
                path = Some(PathBuf::from(&s["--config=".len()..]));
                continue;
            }
            "--points" => {
                points = true;
                continue;
            }
            "run" => Mode::Run,
            "check-config" => Mode::Check(false),
            "print-default-config" => Mode::PrintDefault,
            "--version" | "-V" => Mode::Version,
            "--help" | "-h" | "help" => Mode::Help,
            other => return Err(format!("unknown argument {other:?}")),
        };
        if mode.replace(m).is_some() {
            return Err("more than one command given".into());
        }
    }
    let mode = match (mode.unwrap_or(Mode::Run), points) {
        (Mode::Check(_), true) => Mode::Check(true),
        (_, true) => return Err("--points goes with check-config only".into()),
        (m, false) => m,
    };
    Ok((mode, path.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))))
}

/// Writes to stdout; a reader that went away (`check-config --points | head`) is not an error.
fn stdout(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn main() -> ExitCode {
    let (mode, path) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("fieldlink-agent: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match mode {
        Mode::Version => {
            println!("fieldlink-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Mode::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Mode::PrintDefault => {
            print!("{}", config::EXAMPLE);
            ExitCode::SUCCESS
        }
        Mode::Check(points) => match config::load(&path) {
            Ok(c) => {
                if let Some(tls) = &c.mqtt.tls {
                    // A gateway without an RTC reads 1970 until NTP: certificate dates are
                    // only checked against a clock that is at least past this build.
                    let now = fieldlink_agent::clock::trusted_now();
                    if now.is_none() {
                        println!("note: the clock is not set; certificate dates not checked");
                    }
                    match fieldlink_agent::uplink::tls::check_files(tls, now) {
                        Ok(check) => {
                            for (key, soon) in check.expiring {
                                println!("warning: {key}: {soon}");
                            }
                        }
                        Err((key, e)) => {
                            eprintln!("{}: {key}: {e}", path.display());
                            return ExitCode::from(2);
                        }
                    }
                }
                let verdict = format!("configuration OK: {}", path.display());
                let note = config::applied::describe(&path, &c);
                if points {
                    // The list alone on stdout, for tools; the verdict on stderr.
                    stdout(&fieldlink_agent::summary::point_list(&c));
                    eprintln!("{verdict}");
                    if let Some(note) = note {
                        eprintln!("{note}");
                    }
                } else {
                    stdout(&fieldlink_agent::summary::summary(&c));
                    stdout(&format!("{verdict}\n"));
                    if let Some(note) = note {
                        stdout(&format!("{note}\n"));
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                ExitCode::from(2)
            }
        },
        Mode::Run => {
            let in_force = match config::applied::load_in_force(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            let c = in_force.config;
            fieldlink_agent::logging::init(&c.logging);
            if let Some(notice) = in_force.notice {
                tracing::warn!("{notice}");
            }
            if let config::applied::Source::Applied(p) = &in_force.source {
                tracing::info!(file = %p.display(), "configuration applied from the cloud is in force");
            }
            // One thread runs every task: the agent's work is I/O waits and small encodings,
            // and each further thread would hold a heap arena of its own (goal A1). The journal
            // keeps its own thread for SQLite.
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(fieldlink_agent::run::run(c, Some(path))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "agent failed");
                    ExitCode::from(1)
                }
            }
        }
    }
}
