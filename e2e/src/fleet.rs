//! A small fleet for isolation tests: two honest sites, each a simulated meter behind a real
//! `fieldlink-agent` (one publishing binary telemetry, the other JSON), a third registered gateway id (`mallory`) whose credentials the attacker
//! holds, and the `fieldlink-cloud` binary as a child process, on one of two brokers:
//!
//! - [`BrokerKind::Mosquitto`]: Mosquitto on the shipped configuration and ACL
//!   (`docs/examples/mosquitto/{fieldlink.conf,acl}`, relocated by `fieldlink-testkit`), mutual
//!   TLS with a certificate and a password per client, the cloud on PostgreSQL; this is the
//!   deployment of `docs/DEPLOY.md`.
//! - [`BrokerKind::Embedded`]: the cloud's embedded broker and its embedded SQLite store, the
//!   single-node default.
//!
//! The cloud runs as its own process so that its resident memory is its own
//! (`/proc/<pid>/status`), and so that the embedded broker, which lives as long as its process,
//! is gone with it. Everything listens on free loopback ports and stops on drop.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fieldlink_sim::{SimConfig, Simulator, TcpServerHandle};
use fieldlink_testkit::tls::{ClientFiles, TestPki};
use fieldlink_testkit::{free_port, Mosquitto, Postgres, Program, ShippedBroker};
use serde_json::Value;

use crate::agent::Agent;
use crate::http::Api;

/// The honest gateways, one per site.
pub const HONEST: [&str; 2] = ["gw-north", "gw-south"];
/// The gateway id whose valid credentials the attacker holds; registered like the others.
pub const ATTACKER: &str = "mallory";
/// The quota every gateway gets in these tests: a hundred times what an honest gateway here
/// sends (one counter every 100 ms), a fiftieth of the flood.
pub const QUOTA_POINTS_PER_S: u32 = 1_000;
/// Twice an honest gateway's ten batches a second.
pub const QUOTA_MESSAGES_PER_S: u32 = 20;
/// The cloud's MQTT client id: the shipped default, which an attacker can read in the docs.
pub const CLOUD_CLIENT_ID: &str = "fieldlink-cloud";
/// The device each honest agent polls, and its one point.
pub const DEVICE: &str = "meter";
pub const METRIC: &str = "count";
/// The honest agents' poll interval: 10 readings per second per gateway.
pub const POLL_MS: u64 = 100;

/// A counter that steps every 20 ms, so every poll (100 ms apart) reads a value of its own:
/// the value identifies the reading in the served log and in the store.
const SIM_TOML: &str = r#"
[served_log]
capacity = 200000
[[units]]
id = 1
name = "meter"
[[units.points]]
name = "count"
table = "holding_register"
address = 0
type = "u32"
waveform = { kind = "counter", start = 0, increment = 1, interval_s = 0.02 }
"#;

/// Which broker the fleet publishes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Mosquitto,
    Embedded,
}

/// How a client reaches the broker as one user.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub port: u16,
    pub user: String,
    pub password: String,
    /// CA, client certificate and key when the broker wants mutual TLS.
    pub tls: Option<TlsClient>,
}

#[derive(Debug, Clone)]
pub struct TlsClient {
    pub ca: PathBuf,
    pub cert: ClientFiles,
}

/// One honest site: its simulator.
pub struct Site {
    pub gateway: &'static str,
    pub sim: Simulator,
    tcp: Option<TcpServerHandle>,
    addr: SocketAddr,
}

impl Site {
    async fn start(gateway: &'static str) -> Site {
        let config = SimConfig::from_toml_str(SIM_TOML).expect("the meter's simulator config");
        let sim = Simulator::from_config(config).expect("a valid meter");
        let tcp = sim
            .bind_tcp(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("the simulator listens");
        let addr = tcp.local_addr();
        Site {
            gateway,
            sim,
            tcp: Some(tcp),
            addr,
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        // Dropping the handle stops the server.
        self.tcp.take();
    }
}

/// The cloud binary as a child process; killed on drop.
pub struct CloudProcess {
    program: Program,
    pub http: SocketAddr,
}

impl CloudProcess {
    pub fn pid(&self) -> u32 {
        self.program.pid()
    }

    pub fn log_text(&self) -> String {
        self.program.log_text()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.program.running()
    }
}

/// Everything running. Field order is drop order: agents, then the cloud, the sites, the
/// broker, the database, and last the directory they all wrote into.
pub struct Fleet {
    pub kind: BrokerKind,
    pub agents: Vec<Agent>,
    pub cloud: CloudProcess,
    pub sites: Vec<Site>,
    broker: Option<Mosquitto>,
    postgres: Option<Postgres>,
    /// Admin and viewer tokens.
    pub admin: Api,
    pub viewer: Api,
    pub viewer_token: String,
    /// Each client's way in, by MQTT user name (the honest gateways, `mallory`, the cloud).
    endpoints: Vec<Endpoint>,
    pub dir: tempfile::TempDir,
}

fn secret(user: &str) -> String {
    format!("{user}-secret")
}

impl Fleet {
    /// Starts the fleet and returns once both honest gateways are online in the cloud and
    /// their first readings are stored.
    pub async fn start(kind: BrokerKind) -> Fleet {
        let agent_bin = crate::agent::binary().to_path_buf();
        let cloud_bin = crate::binaries::workspace_binary("fieldlink-cloud", "FIELDLINK_CLOUD_BIN");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let users: Vec<&str> = HONEST
            .iter()
            .copied()
            .chain([ATTACKER, CLOUD_CLIENT_ID])
            .collect();

        let (broker, postgres, endpoints, database): (_, _, Vec<Endpoint>, String) = match kind {
            BrokerKind::Mosquitto => {
                let pki = TestPki::new(dir.path(), "fleet").expect("a test CA");
                let server = pki.server("broker").expect("the broker's certificate");
                // The shipped configuration: the gateways' users (mallory among them) on one
                // listener, the cloud's on the other.
                let pairs: Vec<(String, String)> = users
                    .iter()
                    .filter(|u| **u != CLOUD_CLIENT_ID)
                    .map(|u| (u.to_string(), secret(u)))
                    .collect();
                let refs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(u, p)| (u.as_str(), p.as_str()))
                    .collect();
                let cloud_secret = secret(CLOUD_CLIENT_ID);
                let ShippedBroker { broker, cloud_port } = ShippedBroker::start(
                    dir.path(),
                    pki.ca_cert(),
                    &server,
                    &refs,
                    (CLOUD_CLIENT_ID, &cloud_secret),
                )
                .expect("Mosquitto on the shipped configuration");
                let endpoints = users
                    .iter()
                    .map(|u| Endpoint {
                        port: if *u == CLOUD_CLIENT_ID {
                            cloud_port
                        } else {
                            broker.port()
                        },
                        user: u.to_string(),
                        password: secret(u),
                        tls: Some(TlsClient {
                            ca: pki.ca_cert().to_path_buf(),
                            cert: pki.client(u).expect("a client certificate"),
                        }),
                    })
                    .collect();
                let postgres = Postgres::start().expect("start PostgreSQL (package postgresql)");
                let url = postgres
                    .create_database("fieldlink")
                    .expect("the cloud's database");
                let database = format!("url = \"{url}\"\ntimescale = \"off\"");
                (Some(broker), Some(postgres), endpoints, database)
            }
            BrokerKind::Embedded => {
                let port = free_port();
                let endpoints = users
                    .iter()
                    .map(|u| Endpoint {
                        port,
                        user: u.to_string(),
                        password: secret(u),
                        tls: None,
                    })
                    .collect();
                let database = format!(
                    "sqlite_path = \"{}\"",
                    dir.path().join("cloud.db").display()
                );
                (None, None, endpoints, database)
            }
        };

        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let cloud_endpoint = find(&endpoints, CLOUD_CLIENT_ID).clone();
        let mqtt = match (&cloud_endpoint.tls, kind) {
            (Some(tls), BrokerKind::Mosquitto) => format!(
                "url = \"mqtts://127.0.0.1:{port}\"\nusername = \"{user}\"\npassword = \"{pw}\"\n\
                 ca_file = \"{ca}\"\nclient_cert_file = \"{cert}\"\nclient_key_file = \"{key}\"",
                port = cloud_endpoint.port,
                user = cloud_endpoint.user,
                pw = cloud_endpoint.password,
                ca = tls.ca.display(),
                cert = tls.cert.cert.display(),
                key = tls.cert.key.display(),
            ),
            _ => format!("embedded_listen = \"127.0.0.1:{}\"", cloud_endpoint.port),
        };
        let config = dir.path().join("cloud.toml");
        std::fs::write(
            &config,
            format!(
                "[database]\n{database}\n\n[mqtt]\n{mqtt}\nclient_id = \"{CLOUD_CLIENT_ID}\"\n\
                 keep_alive_secs = 5\n\n[ingest]\nrequire_registration = true\n\n\
                 [ingest.quota]\npoints_per_s = {QUOTA_POINTS_PER_S}\n\
                 messages_per_s = {QUOTA_MESSAGES_PER_S}\nburst_secs = 2\ngrace_secs = 2\n\n\
                 [http]\nlisten = \"{http}\"\n\n[service]\nshutdown_grace_secs = 2\n"
            ),
        )
        .expect("write the cloud configuration");

        let cli = |args: &[&str]| -> String {
            let out = Command::new(&cloud_bin)
                .arg("--config")
                .arg(&config)
                .args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .output()
                .expect("run fieldlink-cloud");
            assert!(
                out.status.success(),
                "fieldlink-cloud {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        cli(&["migrate"]);
        let token = |role: &str| -> String {
            cli(&[
                "token",
                "create",
                "--name",
                &format!("e2e {role}"),
                "--role",
                role,
            ])
            .lines()
            .next()
            .expect("a token on the first line")
            .trim()
            .to_string()
        };
        let admin_token = token("admin");
        let viewer_token = token("viewer");
        for gw in HONEST.iter().chain([&ATTACKER]) {
            cli(&["gateway", "register", gw]);
        }

        let log = dir.path().join("cloud.log");
        let args = [
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("serve"),
        ];
        let program = Program::start(&cloud_bin, &args, &log, &[("NO_COLOR", "1")])
            .expect("start fieldlink-cloud serve");
        let cloud = CloudProcess { program, http };
        let ready = crate::eventually("the cloud to be ready", Duration::from_secs(60), || async {
            (crate::fleet::get_status(http, "/health/ready").await == Some(200)).then_some(())
        });
        if tokio::time::timeout(Duration::from_secs(61), ready)
            .await
            .is_err()
        {
            panic!("the cloud never became ready; log:\n{}", cloud.log_text());
        }

        let mut sites = Vec::new();
        for gw in HONEST {
            sites.push(Site::start(gw).await);
        }
        let mut agents = Vec::new();
        for site in &sites {
            let state = dir.path().join(site.gateway);
            std::fs::create_dir_all(&state).expect("the agent's state directory");
            let conf = agent_config(&state, site, find(&endpoints, site.gateway));
            agents.push(Agent::start(
                &conf,
                &dir.path().join(format!("{}.log", site.gateway)),
            ));
        }
        let fleet = Fleet {
            kind,
            agents,
            cloud,
            sites,
            broker,
            postgres,
            admin: Api::new(http, &admin_token),
            viewer: Api::new(http, &viewer_token),
            viewer_token,
            endpoints,
            dir,
        };
        drop(agent_bin);
        for gw in HONEST {
            let viewer = fleet.viewer.clone();
            crate::eventually(
                &format!("{gw} online with readings stored"),
                Duration::from_secs(60),
                || {
                    let viewer = viewer.clone();
                    async move {
                        let g = viewer.get(&format!("/api/v1/gateways/{gw}")).await;
                        let latest = viewer
                            .get(&format!("/api/v1/gateways/{gw}/devices/{DEVICE}/latest"))
                            .await;
                        (g.body["online"] == true
                            && latest.body.as_array().is_some_and(|a| !a.is_empty()))
                        .then_some(())
                    }
                },
            )
            .await;
        }
        fleet
    }

    /// How `user` reaches the broker (its password, and its certificate under mutual TLS).
    pub fn endpoint(&self, user: &str) -> Endpoint {
        find(&self.endpoints, user).clone()
    }

    /// The site behind honest gateway `gw`.
    pub fn site(&self, gw: &str) -> &Site {
        self.sites
            .iter()
            .find(|s| s.gateway == gw)
            .expect("an honest gateway")
    }

    /// The cloud's `/metrics` text.
    pub async fn metrics(&self) -> String {
        match get_text(self.cloud.http, "/metrics").await {
            Some((200, text)) => text,
            other => panic!("GET /metrics: {other:?}"),
        }
    }

    /// `GET /api/v1/gateways/{gw}` as the viewer sees it.
    pub async fn gateway(&self, gw: &str) -> Value {
        self.viewer
            .get(&format!("/api/v1/gateways/{gw}"))
            .await
            .body
    }

    /// What the logs say, for failure messages: the cloud's tail and the broker's tail.
    pub fn logs_tail(&self) -> String {
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        let broker = self.broker.as_ref().map(Mosquitto::log).unwrap_or_default();
        format!(
            "cloud log (tail):\n{}\nbroker log (tail):\n{}",
            tail(self.cloud.log_text()),
            tail(broker)
        )
    }

    /// The PostgreSQL server, when the fleet runs on one.
    pub fn postgres(&self) -> Option<&Postgres> {
        self.postgres.as_ref()
    }
}

fn find<'a>(endpoints: &'a [Endpoint], user: &str) -> &'a Endpoint {
    endpoints
        .iter()
        .find(|e| e.user == user)
        .expect("a known MQTT user")
}

fn agent_config(state: &Path, site: &Site, e: &Endpoint) -> PathBuf {
    let tls = match &e.tls {
        Some(t) => format!(
            "url = \"mqtts://127.0.0.1:{}\"\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"",
            e.port,
            t.ca.display(),
            t.cert.cert.display(),
            t.cert.key.display()
        ),
        None => format!("url = \"mqtt://127.0.0.1:{}\"", e.port),
    };
    // One honest gateway in each encoding, each in the newest layout the cloud announces.
    let encoding = if site.gateway == HONEST[1] {
        "json"
    } else {
        "binary"
    };
    let text = format!(
        r#"
[gateway]
id = "{gw}"
self_telemetry_s = 3600
shutdown_grace_s = 5

[mqtt]
{tls}
username = "{user}"
password = "{password}"
encoding = "{encoding}"
keep_alive_s = 5
reconnect_min_ms = 100
reconnect_max_ms = 500

[journal]
path = "{journal}"

[logging]
level = "info"

[[devices]]
name = "{DEVICE}"
poll_interval_ms = {POLL_MS}
timeout_ms = 1000
transport = {{ kind = "tcp", host = "127.0.0.1", port = {port}, unit_id = 1 }}

[[devices.points]]
name = "{METRIC}"
table = "holding_register"
address = 0
type = "u32"
"#,
        gw = site.gateway,
        user = e.user,
        password = e.password,
        journal = state.join("journal.db").display(),
        port = site.addr.port(),
    );
    let path = state.join("agent.toml");
    std::fs::write(&path, text).expect("write the agent configuration");
    path
}

/// The status of an unauthenticated GET, or `None` when nothing answered within 5 s.
pub async fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    get_text(addr, path).await.map(|(status, _)| status)
}

/// An unauthenticated GET (health, metrics): status and body, `None` when nothing answered
/// within 5 s.
pub async fn get_text(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// Sum of the samples of metric `name` (exact name, any labels) whose label set contains every
/// `labels` pair, from Prometheus text.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_match_names_and_labels_exactly() {
        let text = "# HELP x\nfieldlink_cloud_dead_letters_total{reason=\"decode\"} 2\n\
                    fieldlink_cloud_dead_letters_total{reason=\"too_large\"} 3\n\
                    fieldlink_cloud_dead_letters_total_x 7\n";
        assert_eq!(
            metric_sum(text, "fieldlink_cloud_dead_letters_total", &[]),
            5.0
        );
        assert_eq!(
            metric_sum(
                text,
                "fieldlink_cloud_dead_letters_total",
                &[("reason", "too_large")]
            ),
            3.0
        );
    }
}
