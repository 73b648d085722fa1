//! The whole chain started in order — PostgreSQL, Mosquitto, the simulator, the cloud, the
//! agent — and stopped in reverse on drop.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::agent::{self, Agent};
use crate::cloud::Cloud;
use crate::site::{self, Site};

/// What a test wants of the chain.
#[derive(Debug, Clone)]
pub struct Options {
    /// The agent's poll interval for the pump station.
    pub poll_ms: u64,
    /// Appended to the cloud's configuration (notification receivers).
    pub cloud_extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_ms: 100,
            cloud_extra: String::new(),
        }
    }
}

/// Everything running. Field order is drop order: the agent stops before the cloud, the
/// cloud before the broker and the database.
pub struct System {
    pub agent: Option<Agent>,
    pub cloud: Cloud,
    pub site: Site,
    pub broker: fieldlink_testkit::Mosquitto,
    pub postgres: fieldlink_testkit::Postgres,
    agent_config: PathBuf,
    pub dir: tempfile::TempDir,
}

impl System {
    /// Starts everything and waits until the gateway's birth has reached the cloud.
    pub async fn start(options: Options) -> System {
        // Found (or built) before anything runs, so a build does not hold up running services.
        let _ = agent::binary();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let postgres =
            fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
        let url = postgres
            .create_database("e2e")
            .expect("create the cloud's database");
        let broker = fieldlink_testkit::Mosquitto::start().expect("start Mosquitto");
        let site = Site::start().await;
        let cloud = Cloud::start(dir.path(), &url, broker.port(), &options.cloud_extra).await;
        std::fs::create_dir_all(dir.path().join("agent")).expect("the agent's directory");
        let agent_config = agent::write_config(
            &dir.path().join("agent"),
            broker.port(),
            &site::agent_devices(site.modbus_addr(), options.poll_ms),
        );
        let mut system = System {
            agent: None,
            cloud,
            site,
            broker,
            postgres,
            agent_config,
            dir,
        };
        system.start_agent().await;
        system
    }

    /// The agent's state directory: journal, boot counter, command ledger.
    pub fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    /// Starts the agent (again) and waits until the cloud shows the gateway online.
    pub async fn start_agent(&mut self) {
        assert!(self.agent.is_none(), "the agent is already running");
        let log = self.dir.path().join("agent.log");
        self.agent = Some(Agent::start(&self.agent_config, &log));
        self.wait_gateway_online(true).await;
    }

    /// Stops the agent (SIGTERM: it publishes `offline`) and waits until the cloud shows the
    /// gateway offline.
    pub async fn stop_agent(&mut self) {
        let mut agent = self.agent.take().expect("the agent is running");
        let status = agent.stop().await;
        assert!(
            status.success(),
            "the agent exited with {status}:\n{}",
            agent.log_text()
        );
        self.wait_gateway_online(false).await;
    }

    async fn wait_gateway_online(&self, online: bool) {
        let path = format!("/api/v1/gateways/{}", site::GATEWAY);
        let viewer = self.cloud.viewer.clone();
        let what = format!("gateway {} online = {online} in the cloud", site::GATEWAY);
        crate::eventually(&what, Duration::from_secs(30), || {
            let viewer = viewer.clone();
            let path = path.clone();
            async move {
                let r = viewer.get(&path).await;
                (r.status == 200 && r.body["online"] == online).then_some(())
            }
        })
        .await;
    }

    /// The agent's log so far, for failure messages.
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The newest stored reading of the pump's `metric`, if any.
    pub async fn latest(&self, metric: &str) -> Option<f64> {
        let path = format!(
            "/api/v1/gateways/{}/devices/{}/latest",
            site::GATEWAY,
            site::DEVICE
        );
        let r = self.cloud.viewer.get(&path).await;
        let items = r.body.as_array()?.clone();
        items
            .iter()
            .find(|v: &&Value| v["metric"] == metric)
            .and_then(|v| v["reading"]["value"].as_f64())
    }

    /// A query's rows as text (`psql -At`), on the cloud's database.
    pub fn sql(&self, query: &str) -> String {
        self.postgres
            .psql("e2e", query)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
    }
}
