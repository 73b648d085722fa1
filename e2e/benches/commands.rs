//! Goal C3: a command from REST to the Modbus write done to status EXECUTED, over loopback,
//! through the whole chain (the cloud on PostgreSQL, Mosquitto, the release agent binary, the
//! simulator), against baselines measured in the same run:
//! - a Modbus write round trip from this process straight to the simulator (the write the
//!   command ends in, without anything in front of it);
//! - a REST round trip (`GET /api/v1/commands/{id}`) to the same cloud.
//!
//! Each command is a `write_point` of a new setpoint, sent one at a time: the clock starts
//! before the POST; "write done" is when the simulator's register first holds the new value
//! (a watcher thread reads it every 100 µs); "EXECUTED" is when the WebSocket pushes the
//! command's `executed` status. The agent polls the station every second, as in the
//! reference workload, so a write may wait behind a poll in progress.
//!
//! `cargo bench -p fieldlink-e2e --bench commands`; `BENCH_COMMANDS` sets the count
//! (default 300).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldlink_e2e::site::{DEVICE, GATEWAY, SETPOINT_REGISTER, UNIT};
use fieldlink_e2e::system::Options;
use fieldlink_e2e::ws::{is_command, Feed};
use fieldlink_e2e::{runtime, System};
use fieldlink_sim::Table;
use serde_json::json;
use tokio_modbus::client::Writer;

const WARM_UP: usize = 10;
const PATIENCE: Duration = Duration::from_secs(30);

/// Milliseconds at percentile `p` (0..=1) of `samples`, nearest rank.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1_000.0
}

struct Row {
    what: &'static str,
    samples: Vec<Duration>,
}

impl Row {
    fn p50(&self) -> f64 {
        percentile(&self.samples, 0.50)
    }
    fn p99(&self) -> f64 {
        percentile(&self.samples, 0.99)
    }
    fn max(&self) -> f64 {
        percentile(&self.samples, 1.0)
    }
}

/// Records when each value first appears in the setpoint register.
struct RegisterWatch {
    seen: Arc<Mutex<HashMap<u16, Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RegisterWatch {
    fn start(sim: fieldlink_sim::Simulator) -> RegisterWatch {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut last = None;
            while !st.load(Ordering::Relaxed) {
                let now = Instant::now();
                let v = sim
                    .read_register(UNIT, Table::HoldingRegister, SETPOINT_REGISTER)
                    .expect("the setpoint register");
                if last != Some(v) {
                    s.lock().unwrap().entry(v).or_insert(now);
                    last = Some(v);
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        RegisterWatch {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen_at(&self, value: u16) -> Option<Instant> {
        self.seen.lock().unwrap().get(&value).copied()
    }
}

impl Drop for RegisterWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn main() {
    let n: usize = std::env::var("BENCH_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // `cargo bench` passes `--bench`; nothing else is taken.
    let agent = fieldlink_e2e::agent::binary();
    eprintln!("agent binary: {}", agent.display());
    runtime().block_on(async {
        let mut sys = System::start(Options {
            poll_ms: 1_000,
            cloud_extra: String::new(),
        })
        .await;
        let feed = Feed::connect(
            sys.cloud.http,
            &sys.cloud.viewer_token,
            &[json!({"topic": "commands", "gateway": GATEWAY})],
        )
        .await;
        let path = format!("/api/v1/gateways/{GATEWAY}/commands");

        // Baseline: a Modbus write round trip straight to the simulator.
        let mut modbus = tokio_modbus::client::tcp::connect_slave(
            sys.site.modbus_addr(),
            tokio_modbus::Slave(UNIT),
        )
        .await
        .expect("connect to the simulator");
        let mut direct = Vec::with_capacity(n);
        for i in 0..(WARM_UP + n) {
            let t0 = Instant::now();
            modbus
                .write_single_register(SETPOINT_REGISTER, 50_000 + i as u16)
                .await
                .expect("the write reaches the simulator")
                .expect("the simulator accepts the write");
            if i >= WARM_UP {
                direct.push(t0.elapsed());
            }
        }
        drop(modbus);

        // The chain: REST → Modbus write done → EXECUTED on the WebSocket.
        let watch = RegisterWatch::start(sys.site.sim.clone());
        let (mut answered, mut written, mut executed) = (Vec::new(), Vec::new(), Vec::new());
        let mut rest = Vec::with_capacity(n);
        let mut last_id = String::new();
        for i in 0..(WARM_UP + n) {
            let value = 1_000 + i as u16;
            let body = json!({"kind": {"command": "write_point", "device": DEVICE,
                "point": "setpoint", "value": value}});
            let t0 = Instant::now();
            let created = sys
                .cloud
                .operator
                .expect("POST", &path, Some(&body), 201)
                .await;
            let t_answer = Instant::now();
            let id = created["command_id"]
                .as_str()
                .expect("a command id")
                .to_string();
            let done = feed
                .wait_for("the command executed", PATIENCE, |m| {
                    is_command(m, &id, "executed")
                })
                .await;
            let t_write = watch.seen_at(value).unwrap_or_else(|| {
                panic!("command {id}: executed, but {value} never reached the register")
            });
            if i >= WARM_UP {
                answered.push(t_answer - t0);
                written.push(t_write - t0);
                executed.push(done.at - t0);
                let t1 = Instant::now();
                sys.cloud
                    .viewer
                    .expect("GET", &format!("/api/v1/commands/{last_id}"), None, 200)
                    .await;
                rest.push(t1.elapsed());
            }
            last_id = id;
        }
        drop(watch);
        let statuses = feed.command_statuses(&last_id);
        assert_eq!(statuses, ["pending", "sent", "received", "executed"]);

        let rows = [
            Row {
                what: "baseline: Modbus write round trip, direct",
                samples: direct,
            },
            Row {
                what: "baseline: REST GET /commands/{id} round trip",
                samples: rest,
            },
            Row {
                what: "REST POST answered (201, sent)",
                samples: answered,
            },
            Row {
                what: "REST → Modbus write done in the simulator",
                samples: written,
            },
            Row {
                what: "REST → EXECUTED pushed on the WebSocket",
                samples: executed,
            },
        ];
        println!();
        println!(
            "C3 commands over loopback: {n} write_point commands one at a time (after {WARM_UP} \
             warm-up), agent polling every 1 s, cloud on PostgreSQL, Mosquitto"
        );
        println!(
            "build: {} (this benchmark and the agent binary); 2-core machine shared with other work",
            if cfg!(debug_assertions) { "dev, unoptimized" } else { "release" }
        );
        println!("{:<48} {:>9} {:>9} {:>9}", "", "p50 ms", "p99 ms", "max ms");
        for r in &rows {
            println!(
                "{:<48} {:>9.2} {:>9.2} {:>9.2}",
                r.what,
                r.p50(),
                r.p99(),
                r.max()
            );
        }
        let (base, exec) = (&rows[0], &rows[4]);
        println!(
            "EXECUTED / direct Modbus write: p50 {:.1}×, p99 {:.1}×",
            exec.p50() / base.p50(),
            exec.p99() / base.p99()
        );
        println!(
            "goal C3: p50 ≤ 50 ms ({}), p99 ≤ 200 ms ({})",
            if exec.p50() <= 50.0 { "met" } else { "missed" },
            if exec.p99() <= 200.0 { "met" } else { "missed" },
        );
        sys.cloud.stop().await;
    });
}
