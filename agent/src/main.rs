//! `fieldlink-agent [--config FILE] [run | check-config | print-default-config] [--version]`
//!
//! Exit codes: 0 stopped cleanly, 1 failed while running, 2 bad usage or configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use fieldlink_agent::config::{self, DEFAULT_PATH};

const USAGE: &str =
    "usage: fieldlink-agent [--config FILE] [run | check-config | print-default-config]
       fieldlink-agent --version
The configuration file defaults to /etc/fieldlink/agent.toml; any key can be overridden with
FIELDLINK_AGENT__SECTION__KEY environment variables (e.g. FIELDLINK_AGENT__MQTT__URL).";

enum Mode {
    Run,
    Check,
    PrintDefault,
    Version,
    Help,
}

fn parse_args() -> Result<(Mode, PathBuf), String> {
    let mut mode = None;
    let mut path = None;
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
            "run" => Mode::Run,
            "check-config" => Mode::Check,
            "print-default-config" => Mode::PrintDefault,
            "--version" | "-V" => Mode::Version,
            "--help" | "-h" | "help" => Mode::Help,
            other => return Err(format!("unknown argument {other:?}")),
        };
        if mode.replace(m).is_some() {
            return Err("more than one command given".into());
        }
    }
    Ok((
        mode.unwrap_or(Mode::Run),
        path.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
    ))
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
        Mode::Check => match config::load(&path) {
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
                print!("{}", fieldlink_agent::summary::summary(&c));
                println!("configuration OK: {}", path.display());
                if let Some(note) = config::applied::describe(&path, &c) {
                    println!("{note}");
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
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
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
