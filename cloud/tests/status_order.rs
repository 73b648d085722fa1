//! Issue 14, finding 4: the order of births and deaths, on SQLite and real PostgreSQL.
//!
//! A birth is proof of a new session: it applies when its boot epoch is newer, or when it
//! arrived after the stored status, so a gateway whose counter went backwards (state wiped,
//! image restored) is online again with its next birth, and its devices' reports count again.
//! A death applies only to the stored session or a newer one, and only when it arrived after
//! the stored status: a late will (of an older session, or one received before the birth it
//! would override) never marks a newer session offline.

use fieldlink_cloud::store::*;
use fieldlink_protocol::Ident;
use fieldlink_testkit::Postgres;

const T0: i64 = 1_704_067_200_000;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn status(online: bool, at: i64, epoch: i64) -> GatewayStatus {
    GatewayStatus {
        gateway: id("gw-1"),
        online,
        at_ms: at,
        boot_epoch: Some(epoch),
        agent_version: online.then(|| "0.3.0".to_string()),
        config_hash: online.then(|| "h1".to_string()),
    }
}

fn report(at: i64, epoch: i64, seq: i64, state: ReportedState) -> HealthReport {
    HealthReport {
        gateway: id("gw-1"),
        device: id("meter"),
        state,
        error: None,
        at_ms: at,
        boot_epoch: epoch,
        seq,
    }
}

/// Applies one status and returns whether the gateway is online afterwards.
async fn apply(store: &Store, s: GatewayStatus) -> bool {
    store
        .write(WriteBatch {
            statuses: vec![s],
            ..Default::default()
        })
        .await
        .unwrap();
    let g = store.gateway(&id("gw-1")).await.unwrap().unwrap();
    g.online
}

async fn meter(store: &Store) -> DeviceState {
    store
        .device_health(&id("gw-1"), Some(&id("meter")))
        .await
        .unwrap()[0]
        .state
}

async fn order(store: Store) {
    store.migrate().await.unwrap();
    // A long-lived gateway at boot 7 with a device report of that boot.
    assert!(apply(&store, status(true, T0, 7)).await);
    store
        .write(WriteBatch {
            health: vec![report(T0 + 1, 7, 40, ReportedState::Offline)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(meter(&store).await, DeviceState::Offline);
    assert!(!apply(&store, status(false, T0 + 10, 7)).await);

    // Its state directory wiped: boot 1. Its birth brings it online (regression: it stayed
    // offline, the birth ignored as older than boot 7).
    assert!(apply(&store, status(true, T0 + 20, 1)).await);
    // The new boot's device reports count, though their (epoch, seq) is below the old ones.
    store
        .write(WriteBatch {
            health: vec![report(T0 + 21, 1, 1, ReportedState::Online)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(meter(&store).await, DeviceState::Online);

    // Stale deaths: the old boot's will received before the birth (committed late, by another
    // instance), and this boot's will received before the birth: neither overrides it.
    assert!(apply(&store, status(false, T0 + 15, 7)).await);
    assert!(apply(&store, status(false, T0 + 19, 1)).await);
    // This boot's own death, received later, does.
    assert!(!apply(&store, status(false, T0 + 30, 1)).await);

    // The next boot, and the previous boot's will arriving after its birth: ignored.
    assert!(apply(&store, status(true, T0 + 40, 2)).await);
    assert!(apply(&store, status(false, T0 + 50, 1)).await);
    // A birth of a newer boot wins even when it was received a little earlier than the stored
    // status (instances' clocks differ); a death of a newer boot whose birth never came too,
    // when it arrived later.
    assert!(apply(&store, status(true, T0 + 35, 3)).await);
    assert!(!apply(&store, status(false, T0 + 60, 4)).await);
    // The same birth redelivered, and the same death: no change.
    assert!(!apply(&store, status(false, T0 + 60, 4)).await);
    assert!(apply(&store, status(true, T0 + 70, 4)).await);
    assert!(apply(&store, status(true, T0 + 70, 4)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_order_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    })
    .await
    .unwrap();
    order(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_order_on_postgres() {
    let pg = Postgres::start().expect("start postgres (package postgresql)");
    let url = pg.create_database("order").unwrap();
    let store = Store::open(&StoreSpec::postgres(url, TimescaleMode::Off))
        .await
        .unwrap();
    order(store).await;
}
