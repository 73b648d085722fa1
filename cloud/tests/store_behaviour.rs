//! One behaviour suite, three stores: SQLite, PostgreSQL and the TimescaleDB double, each
//! started fresh by the test. The expected answers come from a model computed here from the
//! points written, so all three are held to the same results.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fieldlink_cloud::store::*;
use fieldlink_protocol::{Ident, Quality, Value};

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn key(g: &str, d: &str, m: &str) -> Arc<SeriesKey> {
    Arc::new(SeriesKey {
        gateway: id(g),
        device: id(d),
        metric: id(m),
    })
}

/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200_000;

/// Numeric points every 97 s over a little more than two days, so buckets of every width see
/// uneven counts, plus a bool and a string series.
fn sample() -> Vec<PointRow> {
    let power = key("gw-1", "meter-1", "power");
    let door = key("gw-1", "meter-1", "door_open");
    let state = key("gw-2", "plc", "state");
    let mut rows = Vec::new();
    for i in 0..2_000i64 {
        rows.push(PointRow {
            key: power.clone(),
            ts_ms: T0 + i * 97_000,
            value: Value::Number(((i * 37) % 101) as f64 * 0.5 - 10.0),
            quality: if i % 50 == 0 {
                Quality::Uncertain
            } else {
                Quality::Good
            },
        });
    }
    for i in 0..10i64 {
        rows.push(PointRow {
            key: door.clone(),
            ts_ms: T0 + i * 60_000,
            value: Value::Bool(i % 3 == 0),
            quality: Quality::Good,
        });
        rows.push(PointRow {
            key: state.clone(),
            ts_ms: T0 + i * 60_000,
            value: Value::Str(format!("mode-{i}")),
            quality: if i == 9 { Quality::Bad } else { Quality::Good },
        });
    }
    rows
}

fn model_buckets(points: &[PointRow], width_ms: i64, from: i64, to: i64) -> Vec<Bucket> {
    let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for p in points.iter().filter(|p| p.ts_ms >= from && p.ts_ms < to) {
        let b = p.ts_ms.div_euclid(width_ms) * width_ms;
        *counts.entry(b).or_default() += 1;
        let g = groups.entry(b).or_default();
        if let Value::Number(v) = p.value {
            g.push(v);
        }
    }
    counts
        .into_iter()
        .map(|(b, count)| {
            let vals = &groups[&b];
            let n = vals.len() as f64;
            Bucket {
                start_ms: b,
                avg: (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / n),
                min: vals.iter().copied().reduce(f64::min),
                max: vals.iter().copied().reduce(f64::max),
                count,
            }
        })
        .collect()
}

fn assert_buckets(what: &str, got: &[Bucket], want: &[Bucket]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: bucket count\n got {got:?}\nwant {want:?}"
    );
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.start_ms, w.start_ms, "{what}");
        assert_eq!(g.count, w.count, "{what} at {}", g.start_ms);
        assert_eq!(g.min, w.min, "{what} at {}", g.start_ms);
        assert_eq!(g.max, w.max, "{what} at {}", g.start_ms);
        match (g.avg, w.avg) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{what} avg {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{what} avg"),
        }
    }
}

async fn behaviour(store: Store) {
    let first = store.migrate().await.expect("migrate");
    assert!(!first.is_empty(), "a fresh database gets every migration");
    assert_eq!(
        store.migrate().await.expect("migrate again"),
        Vec::<i32>::new()
    );

    let points = sample();
    let n = points.len() as u64;
    let batch = WriteBatch {
        points: points.clone(),
        seen: vec![
            (id("gw-1"), T0 + 5),
            (id("gw-2"), T0 + 7),
            (id("gw-1"), T0 + 9),
        ],
        series_meta: vec![SeriesMeta {
            key: (*key("gw-1", "meter-1", "power")).clone(),
            unit: Some("kW".into()),
            writable: false,
        }],
        ..Default::default()
    };
    let out = store.write(batch.clone()).await.expect("write");
    assert_eq!(out.points_inserted, n);
    // The same batch again, as a broker redelivery would bring it: nothing new.
    let out = store.write(batch).await.expect("write again");
    assert_eq!(out.points_inserted, 0);
    assert_eq!(store.count_points().await.unwrap(), n as i64);

    // A batch mixing replayed and new points stores only the new ones.
    let power = key("gw-1", "meter-1", "power");
    let extra = PointRow {
        key: power.clone(),
        ts_ms: T0 + 3 * 86_400_000,
        value: Value::Number(42.0),
        quality: Quality::Good,
    };
    let mixed = WriteBatch {
        points: vec![
            points[0].clone(),
            extra.clone(),
            points[1].clone(),
            extra.clone(),
        ],
        ..Default::default()
    };
    assert_eq!(store.write(mixed).await.unwrap().points_inserted, 1);
    let mut all = points.clone();
    all.push(extra.clone());

    // Registry.
    let power_id = store
        .series_id(&power)
        .await
        .unwrap()
        .expect("power series exists");
    let series = store
        .series_of_device(&id("gw-1"), &id("meter-1"))
        .await
        .unwrap();
    let names: Vec<&str> = series.iter().map(|s| s.key.metric.as_str()).collect();
    assert_eq!(names, ["door_open", "power"]);
    let p = series
        .iter()
        .find(|s| s.key.metric.as_str() == "power")
        .unwrap();
    assert_eq!(p.series_id, power_id);
    assert_eq!(p.unit.as_deref(), Some("kW"));
    assert_eq!(store.devices(&id("gw-2")).await.unwrap(), vec![id("plc")]);
    let gws = store.gateways().await.unwrap();
    assert_eq!(gws.len(), 2);
    assert_eq!(gws[0].last_seen_ms, Some(T0 + 9));
    assert!(!gws[0].online && !gws[0].registered);

    // Births and deaths: the last status wins; metadata from the birth is kept.
    let status = |online, at, epoch: i64, version: Option<&str>| GatewayStatus {
        gateway: id("gw-1"),
        online,
        at_ms: at,
        boot_epoch: Some(epoch),
        agent_version: version.map(str::to_string),
        config_hash: version.map(|_| "abc123".to_string()),
    };
    store
        .write(WriteBatch {
            statuses: vec![status(true, T0 + 100, 5, Some("0.1.0"))],
            series_meta: vec![SeriesMeta {
                key: SeriesKey {
                    gateway: id("gw-1"),
                    device: id("drive"),
                    metric: id("speed_set"),
                },
                unit: Some("rpm".into()),
                writable: true,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let gw1 = store.gateway(&id("gw-1")).await.unwrap().unwrap();
    assert!(gw1.online);
    assert_eq!(gw1.agent_version.as_deref(), Some("0.1.0"));
    assert_eq!(gw1.config_hash.as_deref(), Some("abc123"));
    let drive = store
        .series_of_device(&id("gw-1"), &id("drive"))
        .await
        .unwrap();
    assert_eq!(drive.len(), 1);
    assert!(drive[0].writable);
    assert_eq!(drive[0].unit.as_deref(), Some("rpm"));
    store
        .write(WriteBatch {
            // A late will from the previous boot, then this boot's own death.
            statuses: vec![status(false, T0 + 150, 4, None)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        store.gateway(&id("gw-1")).await.unwrap().unwrap().online,
        "stale will ignored"
    );
    store
        .write(WriteBatch {
            statuses: vec![status(false, T0 + 200, 5, None)],
            ..Default::default()
        })
        .await
        .unwrap();
    let gw1 = store.gateway(&id("gw-1")).await.unwrap().unwrap();
    assert!(!gw1.online);
    assert_eq!(
        gw1.agent_version.as_deref(),
        Some("0.1.0"),
        "a death keeps the version"
    );
    assert!(!store.gateway_known(&id("gw-9")).await.unwrap());
    store.register_gateway(&id("gw-9")).await.unwrap();
    assert!(
        store
            .gateway(&id("gw-9"))
            .await
            .unwrap()
            .unwrap()
            .registered
    );

    // Raw points: values, kinds and qualities come back as written, in [from, to).
    let raw = store
        .raw_points(power_id, T0, T0 + 10 * 97_000, 1_000)
        .await
        .unwrap();
    assert_eq!(raw.len(), 10);
    for (r, p) in raw.iter().zip(&points) {
        assert_eq!(
            (r.ts_ms, &r.value, r.quality),
            (p.ts_ms, &p.value, p.quality)
        );
    }
    assert_eq!(
        store
            .raw_points(power_id, T0, i64::MAX / 4, 7)
            .await
            .unwrap()
            .len(),
        7
    );
    let everything = store
        .raw_points(power_id, i64::MIN, i64::MAX, 100_000)
        .await
        .unwrap();
    assert_eq!(everything.len(), 2_001);
    let door_id = store
        .series_id(&key("gw-1", "meter-1", "door_open"))
        .await
        .unwrap()
        .unwrap();
    let doors = store
        .raw_points(door_id, T0, T0 + 86_400_000, 100)
        .await
        .unwrap();
    assert_eq!(doors.len(), 10);
    assert_eq!(doors[3].value, Value::Bool(true));
    assert_eq!(doors[4].value, Value::Bool(false));
    let state_id = store
        .series_id(&key("gw-2", "plc", "state"))
        .await
        .unwrap()
        .unwrap();
    let states = store
        .raw_points(state_id, T0, T0 + 86_400_000, 100)
        .await
        .unwrap();
    assert_eq!(states[9].value, Value::Str("mode-9".into()));
    assert_eq!(states[9].quality, Quality::Bad);

    // Latest per series.
    let latest = store.latest(&[power_id, state_id, 999_999]).await.unwrap();
    assert_eq!(latest.len(), 2);
    let lp = latest.iter().find(|l| l.series_id == power_id).unwrap();
    assert_eq!(lp.point.ts_ms, extra.ts_ms);
    assert_eq!(lp.point.value, Value::Number(42.0));
    let ls = latest.iter().find(|l| l.series_id == state_id).unwrap();
    assert_eq!(ls.point.value, Value::Str("mode-9".into()));

    // Aggregates against the model, for the fixed widths and odd ones.
    let power_points: Vec<PointRow> = all.iter().filter(|p| p.key == power).cloned().collect();
    let check = |label: &'static str, interval: Interval, from: i64, to: i64| {
        let store = &store;
        let power_points = &power_points;
        async move {
            let w = interval.as_millis();
            let got = store
                .aggregates(power_id, from, to, interval)
                .await
                .unwrap();
            let from_a = from.div_euclid(w) * w;
            let to_a = to.div_euclid(w) * w + if to.rem_euclid(w) == 0 { 0 } else { w };
            assert_buckets(label, &got, &model_buckets(power_points, w, from_a, to_a));
        }
    };
    let end = T0 + 4 * 86_400_000;
    check("1m", Interval::Minute, T0 + 1_000, T0 + 3_600_000).await;
    check("1h", Interval::Hour, T0, end).await;
    check("1d", Interval::Day, T0, end).await;
    check("7m", Interval::Fixed(Duration::from_secs(420)), T0, end).await;
    check(
        "2h",
        Interval::Fixed(Duration::from_secs(7_200)),
        T0 + 1_800_000,
        end,
    )
    .await;

    // The rollup (plain PostgreSQL) recomputes dirty hours; answers stay the same after it,
    // and after late points land in an hour already rolled up.
    store.refresh_rollup().await.unwrap();
    check("1h after refresh", Interval::Hour, T0, end).await;
    check("1d after refresh", Interval::Day, T0, end).await;
    let late = PointRow {
        key: power.clone(),
        ts_ms: T0 + 30_000,
        value: Value::Number(-500.0),
        quality: Quality::Good,
    };
    store
        .write(WriteBatch {
            points: vec![late.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut power_points = power_points;
    power_points.push(late);
    let want = model_buckets(&power_points, 3_600_000, T0, end);
    let got = store
        .aggregates(power_id, T0, end, Interval::Hour)
        .await
        .unwrap();
    assert_buckets("1h with a late point", &got, &want);
    assert_eq!(got[0].min, Some(-500.0));
    store.refresh_rollup().await.unwrap();
    let got = store
        .aggregates(power_id, T0, end, Interval::Hour)
        .await
        .unwrap();
    assert_buckets("1h with a late point, refreshed", &got, &want);

    // Dead letters keep the raw bytes.
    let dl = DeadLetter::new(
        T0,
        "fieldlink/v1/gw-1/telemetry".into(),
        "decode".into(),
        "unexpected end".into(),
        &[0, 159, 146, 150, 255],
    );
    store
        .write(WriteBatch {
            dead_letters: vec![dl.clone()],
            events: vec![GatewayMessage {
                gateway: id("gw-1"),
                received_ms: T0,
                body: serde_json::json!({"kind": "device_down", "device": "meter-1"}),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.dead_letters(10).await.unwrap(), vec![dl]);
    health_and_registration(&store).await;
}

/// Device health reports (newest by epoch and sequence wins, whatever the arrival order), the
/// state derived with the gateway's status, and registering and unregistering.
async fn health_and_registration(store: &Store) {
    use fieldlink_cloud::store::{DeviceState, HealthReport, ReportedState, Unregistered};
    let gw = id("gw-h");
    let report = |state, error: Option<&str>, seq, at_ms| HealthReport {
        gateway: gw.clone(),
        device: id("meter"),
        state,
        error: error.map(str::to_string),
        at_ms,
        boot_epoch: 2,
        seq,
    };
    let status = |online: bool, at_ms| GatewayStatus {
        gateway: gw.clone(),
        online,
        at_ms,
        boot_epoch: Some(2),
        agent_version: online.then(|| "0.1.0".to_string()),
        config_hash: None,
    };
    let out = store
        .write(WriteBatch {
            seen: vec![(gw.clone(), T0)],
            statuses: vec![status(true, T0)],
            health: vec![
                report(ReportedState::Degraded, Some("exception 2"), 2, T0 + 2_000),
                report(ReportedState::Online, None, 1, T0 + 1_000),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(out.device_health.len(), 1, "{:?}", out.device_health);
    let h = &out.device_health[0];
    assert_eq!(
        (h.state, h.since_ms),
        (DeviceState::Degraded, Some(T0 + 2_000))
    );
    assert_eq!(h.last_error.as_deref(), Some("exception 2"));
    let out = store
        .write(WriteBatch {
            seen: vec![(gw.clone(), T0)],
            health: vec![report(ReportedState::Online, None, 3, T0 + 3_000)],
            ..Default::default()
        })
        .await
        .unwrap();
    let h = &out.device_health[0];
    assert_eq!(
        (h.state, h.since_ms),
        (DeviceState::Online, Some(T0 + 3_000))
    );
    assert_eq!(
        (h.last_error.as_deref(), h.last_error_ms),
        (Some("exception 2"), Some(T0 + 2_000)),
        "the last error outlives the recovery"
    );
    let out = store
        .write(WriteBatch {
            statuses: vec![status(false, T0 + 9_000)],
            ..Default::default()
        })
        .await
        .unwrap();
    let h = &out.device_health[0];
    assert_eq!(
        (h.state, h.since_ms, h.reported),
        (
            DeviceState::Unknown,
            Some(T0 + 9_000),
            Some(ReportedState::Online)
        )
    );
    assert_eq!(
        store.device_health(&gw, Some(&id("meter"))).await.unwrap(),
        out.device_health
    );
    assert!(store
        .device_health(&gw, Some(&id("nope")))
        .await
        .unwrap()
        .is_empty());

    // Registering and unregistering.
    let new = id("gw-new");
    assert!(store.register(&new, Some("New one")).await.unwrap());
    assert!(!store.register(&new, None).await.unwrap());
    let info = store.gateway(&new).await.unwrap().unwrap();
    assert_eq!(
        (info.registered, info.name.as_deref()),
        (true, Some("New one"))
    );
    assert!(store.registered_gateways().await.unwrap().contains(&new));
    assert_eq!(store.unregister(&new).await.unwrap(), Unregistered::Deleted);
    assert!(store.gateway(&new).await.unwrap().is_none());
    assert_eq!(
        store.unregister(&gw).await.unwrap(),
        Unregistered::NotRegistered
    );
    assert!(store.register(&gw, None).await.unwrap());
    assert_eq!(store.unregister(&gw).await.unwrap(), Unregistered::Kept);
    assert!(!store.gateway(&gw).await.unwrap().unwrap().registered);
    assert_eq!(store.device_health(&gw, None).await.unwrap().len(), 1);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sqlite_store_behaves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    rt().block_on(async {
        let store = Store::open(&StoreSpec::Sqlite { path }).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        behaviour(store).await;
    });
}

#[test]
fn postgres_store_behaves_on_every_insert_path() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    for (db, path) in [
        ("unnest", InsertPath::Unnest),
        ("copy_staging", InsertPath::CopyStaging),
        ("values_rows", InsertPath::Values),
    ] {
        let url = pg.create_database(db).expect("create database");
        rt().block_on(async {
            let spec = StoreSpec::Postgres {
                url,
                timescale: TimescaleMode::Auto,
                insert_path: path,
                // Small enough that the sample takes several statements.
                statement_rows: 700,
            };
            let store = Store::open(&spec).await.unwrap();
            assert_eq!(store.backend(), Backend::Postgres);
            behaviour(store).await;
        });
    }
}

#[test]
fn timescale_store_behaves() {
    let ts = fieldlink_testkit::Timescale::start().expect("start the TimescaleDB double");
    let url = ts.url();
    rt().block_on(async {
        // The double drops connections on protocol messages over about 64 KiB.
        let spec = StoreSpec::Postgres {
            url,
            timescale: TimescaleMode::Require,
            insert_path: InsertPath::Unnest,
            statement_rows: 500,
        };
        let store = Store::open(&spec).await.unwrap();
        assert_eq!(store.backend(), Backend::Timescale);
        behaviour(store).await;
    });
}
