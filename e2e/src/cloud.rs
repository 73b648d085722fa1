//! `fieldlink-cloud`'s service in this process (`service::serve`, configured from a TOML file
//! as the binary would be), on PostgreSQL and an external broker, with a token of each role.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fieldlink_cloud::auth::{Role, TokenStore};
use fieldlink_cloud::config::{load_raw, Settings};
use fieldlink_cloud::records::RecordsDb;
use tokio_util::sync::CancellationToken;

use crate::http::Api;

/// A running cloud; stop it with [`Cloud::stop`] (dropping only cancels it).
pub struct Cloud {
    pub http: SocketAddr,
    pub admin: Api,
    pub operator: Api,
    pub viewer: Api,
    /// The viewer's raw token, for the WebSocket.
    pub viewer_token: String,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), fieldlink_cloud::service::ServiceError>>>,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Cloud {
    /// Writes `dir/cloud.toml` for PostgreSQL at `database_url` and Mosquitto on `broker_port`,
    /// with short timers (alerts checked every 200 ms, notifications polled every 100 ms,
    /// commands checked for expiry every 100 ms) and `extra` appended (receivers), then serves.
    pub async fn start(dir: &Path, database_url: &str, broker_port: u16, extra: &str) -> Cloud {
        let file = dir.join("cloud.toml");
        std::fs::write(
            &file,
            format!(
                r#"
[database]
url = "{database_url}"
timescale = "off"

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
client_id = "cloud-e2e"

[http]
listen = "127.0.0.1:0"

[alerts]
check_interval_ms = 200

[notifications]
retry_initial_ms = 100
retry_max_secs = 1
poll_interval_ms = 100
attempt_timeout_secs = 5
{extra}
"#
            ),
        )
        .expect("write the cloud configuration");
        let raw = load_raw(Some(&file), Vec::new()).expect("the cloud configuration parses");
        let mut settings = Settings::from_raw(raw).expect("the cloud configuration is valid");
        settings.commands.expiry_check = Duration::from_millis(100);
        let store = settings.store.clone();
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(fieldlink_cloud::service::serve(
            settings,
            stop.clone(),
            Some(tx),
        ));
        let http = match rx.await {
            Ok(running) => running.http,
            Err(_) => panic!("the cloud stopped before serving: {:?}", task.await),
        };
        let db = RecordsDb::open(&store)
            .await
            .expect("open the API database");
        let tokens = TokenStore::new(Arc::new(db));
        let token = |role| {
            let tokens = tokens.clone();
            async move {
                tokens
                    .create(&format!("e2e {role}"), role)
                    .await
                    .expect("create a token")
                    .1
            }
        };
        let admin = token(Role::Admin).await;
        let operator = token(Role::Operator).await;
        let viewer = token(Role::Viewer).await;
        Cloud {
            http,
            admin: Api::new(http, &admin),
            operator: Api::new(http, &operator),
            viewer: Api::new(http, &viewer),
            viewer_token: viewer,
            stop,
            task: Some(task),
        }
    }

    /// Stops the service and waits until it has drained; panics if it failed.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("the cloud task")
                .expect("the cloud stopped cleanly");
        }
    }
}
