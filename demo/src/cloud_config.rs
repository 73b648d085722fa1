//! The cloud's settings for the demo: the embedded broker on the port chosen at start, the
//! embedded SQLite store in the data directory, HTTP where the dashboard is served. Everything
//! else is the cloud's default configuration.

use std::net::SocketAddr;
use std::path::Path;

use fieldlink_cloud::config::{ConfigError, RawConfig, Settings};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "cloud.db";

/// The cloud's validated settings for a demo in `data_dir`.
pub fn settings(
    data_dir: &Path,
    broker: SocketAddr,
    http: SocketAddr,
) -> Result<Settings, ConfigError> {
    let mut raw = RawConfig::default();
    raw.database.url = None;
    raw.database.sqlite_path = data_dir.join(DATABASE_FILE).display().to_string();
    raw.mqtt.url = None;
    raw.mqtt.embedded_listen = broker.to_string();
    raw.mqtt.client_id = "fieldlink-demo-cloud".into();
    raw.http.listen = http.to_string();
    Settings::from_raw(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_cloud::config::BrokerSettings;
    use fieldlink_cloud::store::StoreSpec;

    #[test]
    fn embedded_broker_and_sqlite_in_the_data_directory() {
        let broker: SocketAddr = "127.0.0.1:41883".parse().unwrap();
        let http: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let s = settings(Path::new("/tmp/demo"), broker, http).unwrap();
        assert_eq!(s.broker, BrokerSettings::Embedded { listen: broker });
        assert_eq!(s.http_listen, http);
        match s.store {
            StoreSpec::Sqlite { path } => assert_eq!(path, Path::new("/tmp/demo/cloud.db")),
            other => panic!("expected the SQLite store, got {other:?}"),
        }
    }
}
