//! The REST read routes against the SQLite and PostgreSQL stores: what ingest committed is what
//! the API serves, with pagination, RFC 3339 times and JSON errors; the served OpenAPI document
//! lists every route.

mod api_support;

use std::sync::Arc;

use api_support::*;
use fieldlink_cloud::api::ApiSettings;
use fieldlink_cloud::auth::Role;
use fieldlink_cloud::store::{
    DeadLetter, GatewayStatus, PointRow, SeriesKey, SeriesMeta, StoreSpec, TimescaleMode,
    WriteBatch,
};
use fieldlink_protocol::{Ident, Quality, Value};

/// 2023-11-14T22:13:20Z
const T0: i64 = 1_700_000_000_000;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn sample() -> WriteBatch {
    let key = Arc::new(SeriesKey {
        gateway: id("gw-1"),
        device: id("meter"),
        metric: id("power"),
    });
    WriteBatch {
        statuses: vec![GatewayStatus {
            gateway: id("gw-1"),
            online: true,
            at_ms: T0,
            boot_epoch: Some(1),
            agent_version: Some("0.1.0".into()),
            config_hash: Some("cafe".into()),
        }],
        series_meta: vec![SeriesMeta {
            key: (*key).clone(),
            unit: Some("kW".into()),
            writable: true,
        }],
        seen: vec![(id("gw-1"), T0 + 10_000)],
        points: (0..10)
            .map(|i| PointRow {
                key: key.clone(),
                ts_ms: T0 + i * 1_000,
                value: Value::Number(i as f64),
                quality: Quality::Good,
            })
            .collect(),
        dead_letters: vec![DeadLetter::new(
            T0,
            "fieldlink/v1/gw-1/telemetry".into(),
            "decode".into(),
            "not a batch".into(),
            &[0xde, 0xad],
        )],
        ..WriteBatch::default()
    }
}

async fn behaviour(spec: StoreSpec) {
    let s = serve(&spec, ApiSettings::default()).await;
    s.state.store.write(sample()).await.expect("write sample");
    let t = token(&s, Role::Viewer).await;
    let a = s.addr;

    let gws = get(a, "/api/v1/gateways", &t).await.json();
    assert_eq!(gws["items"][0]["gateway"], "gw-1", "{gws}");
    assert_eq!(gws["items"][0]["online"], true);
    assert_eq!(gws["items"][0]["agent_version"], "0.1.0");
    assert!(gws["items"][0]["last_seen"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(gws["next_offset"].is_null());
    let one = get(a, "/api/v1/gateways/gw-1", &t).await;
    assert_eq!(one.status, 200);
    for (path, status) in [
        ("/api/v1/gateways?limit=0", 400),
        ("/api/v1/gateways?limit=abc", 400),
        ("/api/v1/gateways/nope", 404),
        ("/api/v1/gateways/bad%20id", 400),
        ("/api/v1/gateways/nope/devices", 404),
        ("/api/v1/series/1/points?from=yesterday", 400),
        ("/api/v1/series/x/points", 400),
        ("/api/v1/series/1/aggregates?from=2023-11-14T22:13:20Z&to=2023-11-14T22:13:30Z&interval=1w", 400),
        ("/api/v1/nothing-here", 404),
    ] {
        let r = get(a, path, &t).await;
        assert_eq!(r.status, status, "{path}");
        let body = r.json();
        assert!(body["code"].is_string() && body["message"].is_string(), "{path}: {body}");
    }

    let devices = get(a, "/api/v1/gateways/gw-1/devices", &t).await.json();
    assert_eq!(devices["items"][0]["device"], "meter", "{devices}");
    assert_eq!(devices["items"][0]["gateway"], "gw-1");
    // Nothing reported its health: unknown, since nobody knows when.
    assert_eq!(devices["items"][0]["state"], "unknown");
    assert!(devices["items"][0]["since"].is_null());
    assert_eq!(devices["items"].as_array().unwrap().len(), 1);
    let series = get(a, "/api/v1/gateways/gw-1/devices/meter/series", &t)
        .await
        .json();
    assert_eq!(series[0]["metric"], "power");
    assert_eq!(series[0]["unit"], "kW");
    assert_eq!(series[0]["writable"], true);
    let sid = series[0]["series_id"].as_i64().unwrap();

    let latest = get(a, "/api/v1/gateways/gw-1/devices/meter/latest", &t)
        .await
        .json();
    assert_eq!(latest[0]["reading"]["value"], 9.0, "{latest}");
    assert_eq!(latest[0]["reading"]["time"], "2023-11-14T22:13:29Z");
    assert_eq!(latest[0]["reading"]["quality"], "good");

    // Follow the cursor four points at a time.
    let mut values = Vec::new();
    let mut path = format!("/api/v1/series/{sid}/points?limit=4");
    let mut pages = 0;
    loop {
        let p = get(a, &path, &t).await.json();
        pages += 1;
        for r in p["items"].as_array().unwrap() {
            values.push(r["value"].as_f64().unwrap());
        }
        match p["next_from"].as_str() {
            Some(next) => path = format!("/api/v1/series/{sid}/points?limit=4&from={next}"),
            None => break,
        }
    }
    assert_eq!(values, (0..10).map(|i| i as f64).collect::<Vec<_>>());
    assert_eq!(pages, 3);
    let window = get(
        a,
        &format!(
            "/api/v1/series/{sid}/points?from=2023-11-14T22:13:22Z&to=2023-11-14T22:13:25%2B00:00"
        ),
        &t,
    )
    .await
    .json();
    assert_eq!(window["items"].as_array().unwrap().len(), 3, "{window}");
    assert_eq!(window["items"][0]["time"], "2023-11-14T22:13:22Z");

    let aggs = get(
        a,
        &format!("/api/v1/series/{sid}/aggregates?from=2023-11-14T22:13:20Z&to=2023-11-14T22:13:30Z&interval=5s"),
        &t,
    )
    .await
    .json();
    assert_eq!(aggs.as_array().unwrap().len(), 2, "{aggs}");
    assert_eq!(aggs[0]["count"], 5);
    assert_eq!(aggs[0]["avg"], 2.0);
    assert_eq!(aggs[1]["min"], 5.0);
    assert_eq!(aggs[1]["max"], 9.0);
    assert_eq!(aggs[1]["start"], "2023-11-14T22:13:25Z");

    let dead = get(a, "/api/v1/dead-letters?limit=1", &t).await.json();
    assert_eq!(dead["items"][0]["reason"], "decode");
    assert_eq!(dead["items"][0]["payload_hex"], "dead");
    assert!(dead["next_offset"].is_null());
}

#[test]
fn rest_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    rt().block_on(behaviour(spec));
}

#[test]
fn rest_on_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("api_rest").expect("create database");
    rt().block_on(behaviour(StoreSpec::postgres(url, TimescaleMode::Off)));
}

#[test]
fn the_served_document_lists_every_route_with_bearer_auth() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    rt().block_on(async {
        let s = serve(&spec, ApiSettings::default()).await;
        let doc = request(s.addr, "GET", "/api/v1/openapi.json", &[], None)
            .await
            .json();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/api/v1/alert-rules",
                "/api/v1/alert-rules/{rule_id}",
                "/api/v1/alerts",
                "/api/v1/alerts/{alert_id}/acknowledge",
                "/api/v1/alerts/{alert_id}/resolve",
                "/api/v1/commands/{command_id}",
                "/api/v1/dead-letters",
                "/api/v1/gateways",
                "/api/v1/gateways/{gateway}",
                "/api/v1/gateways/{gateway}/commands",
                "/api/v1/gateways/{gateway}/devices",
                "/api/v1/gateways/{gateway}/devices/{device}",
                "/api/v1/gateways/{gateway}/devices/{device}/latest",
                "/api/v1/gateways/{gateway}/devices/{device}/series",
                "/api/v1/notification-receivers",
                "/api/v1/notifications",
                "/api/v1/series/{series_id}/aggregates",
                "/api/v1/series/{series_id}/points",
                "/api/v1/tokens",
                "/api/v1/tokens/{token_id}",
            ]
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        // Every documented operation answers 401 without a token: the document's routes are
        // the served routes.
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                let concrete = path
                    .replace("{gateway}", "gw-1")
                    .replace("{device}", "meter")
                    .replace("{series_id}", "1")
                    .replace("{token_id}", "x")
                    .replace("{command_id}", "c-1")
                    .replace("{rule_id}", "r-1")
                    .replace("{alert_id}", "a-1");
                let r = request(s.addr, &method.to_uppercase(), &concrete, &[], None).await;
                assert_eq!(r.status, 401, "{method} {path}");
            }
        }
    });
}
