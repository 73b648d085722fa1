//! A database that cannot be reached is named by its host and port, never with the password of
//! the connection string: at start (`migrate`, `serve`), in readiness after it went away, and
//! on the API's and the fan-out's own connections; an API client is not told the address.

use std::process::{Command, Stdio};

use fieldlink_cloud::api::ApiError;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::pg_channel::NotifySender;
use fieldlink_cloud::store::{PgStore, StoreSpec, TimescaleMode};
use fieldlink_testkit::{free_port, Postgres};

const PASSWORD: &str = "s3cret-Passw0rd";

fn url_nobody_answers() -> (String, String) {
    let port = free_port();
    (
        format!("postgres://fieldlink:{PASSWORD}@127.0.0.1:{port}/fieldlink"),
        format!("127.0.0.1:{port}"),
    )
}

#[test]
fn migrate_and_serve_name_the_unreachable_database_by_host_and_port() {
    let (url, target) = url_nobody_answers();
    for command in ["migrate", "serve"] {
        let out = Command::new(env!("CARGO_BIN_EXE_fieldlink-cloud"))
            .arg(command)
            .env_remove("FIELDLINK_CLOUD_CONFIG")
            .env("FIELDLINK_CLOUD__DATABASE__URL", &url)
            .env("FIELDLINK_CLOUD__HTTP__LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot connect to the database at {target}")),
            "{command}: {stderr}"
        );
        assert!(!stderr.contains(PASSWORD), "{command}: {stderr}");
    }
}

#[tokio::test]
async fn the_apis_and_the_fanouts_connections_name_it_too() {
    let (url, target) = url_nobody_answers();
    let spec = StoreSpec::Postgres {
        url: url.clone(),
        timescale: TimescaleMode::Off,
        insert_path: Default::default(),
        statement_rows: 100,
    };
    let e = match RecordsDb::open(&spec).await {
        Ok(_) => panic!("the API's database opened with nobody listening"),
        Err(e) => e,
    };
    assert!(e.to_string().contains(&target), "{e}");
    assert!(!e.to_string().contains(PASSWORD), "{e}");
    // An API client is told the database did not answer, not where it lives.
    let api = ApiError::database(e);
    assert_eq!(api.status, 503);
    assert!(!api.body.message.contains(&target), "{}", api.body.message);
    let e = NotifySender::new(&url)
        .send("fieldlink", &["x".to_string()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&target), "{e}");
    assert!(!e.to_string().contains(PASSWORD), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_a_database_that_went_away() {
    let mut pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .unwrap()
        .expect("postgres");
    let target = format!("127.0.0.1:{}", pg.port());
    let store = PgStore::connect(&pg.url(), TimescaleMode::Off)
        .await
        .unwrap();
    store.ping().await.unwrap();
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    // The broken connection, then the reconnect that finds nobody listening.
    for _ in 0..2 {
        let e = store.ping().await.unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("cannot connect to the database at {target}")),
            "{e}"
        );
    }
    drop(pg);
}
