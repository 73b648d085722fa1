//! The served OpenAPI document against the served API, by an independent client: schemathesis
//! (PyPI, pinned in `scripts/requirements-test.txt`) reads `/api/v1/openapi.json` from a running
//! `fieldlink-cloud serve`, generates requests from it (valid ones and invalid ones, at the
//! edges of every parameter and body schema), sends them with an admin token, and fails on any
//! server error (5xx) and on any answer the document does not describe (status code, content
//! type, body schema).
//!
//! The cloud holds data first (a gateway's birth, telemetry, a dead letter, an alert rule that
//! fired, a command), and the document's examples name that data, so the read routes answer
//! with content and not only with empty lists and 404s.
//!
//! On SQLite and on PostgreSQL. `FIELDLINK_SCHEMATHESIS_EXAMPLES` sets the examples per
//! operation (default 25). The gating run is derandomized (`--generation-deterministic`: every
//! example derives from the document, no seed is used; three runs generated the same 1,610 and
//! 35 cases), so CI gives the same answer every time; `FIELDLINK_SCHEMATHESIS_SEED=random`
//! lets schemathesis pick a fresh seed (printed in its report), and a number replays one.

mod api_support;
mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use api_support::{get, post, request, rt};
use common::{now_ms, publish_all, wait_for, CloudProcess};
use fieldlink_protocol::{encode_telemetry, Encoding, Ident, Point, TelemetryBatch};
use serde_json::{json, Value};

/// What every response is checked for.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance";

const BIRTH: &str = r#"{"state":"online","gateway":"gw-1","boot_epoch":1,"ts_ms":0,
    "agent_version":"0.1.0","config_hash":"abc","devices":[
    {"name":"meter-1","points":[{"name":"power","unit":"kW","kind":"number","writable":true},
        {"name":"state","kind":"str"}]},
    {"name":"pump","points":[{"name":"running","kind":"bool"}]}]}"#;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

/// `--seed` and `--generation-deterministic` as `FIELDLINK_SCHEMATHESIS_SEED` asks; never
/// hypothesis' example database (deterministic mode implies none).
fn seed_args() -> Vec<String> {
    let no_database = ["--generation-database".to_string(), "none".to_string()];
    match std::env::var("FIELDLINK_SCHEMATHESIS_SEED").ok().as_deref() {
        Some("random") => no_database.to_vec(),
        Some(n) => [vec!["--seed".into(), n.to_string()], no_database.to_vec()].concat(),
        None => vec!["--generation-deterministic".into()],
    }
}

fn examples() -> u32 {
    std::env::var("FIELDLINK_SCHEMATHESIS_EXAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
}

/// `fieldlink-cloud` with these `FIELDLINK_CLOUD__…` settings.
fn cloud_command(settings: &[(&str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fieldlink-cloud"));
    c.env_remove("FIELDLINK_CLOUD_CONFIG")
        .env("RUST_LOG", "warn");
    for (k, v) in settings {
        c.env(format!("FIELDLINK_CLOUD__{k}"), v);
    }
    c
}

/// An admin token, created the way an operator bootstraps one: `fieldlink-cloud token create`.
fn admin_token(settings: &[(&str, String)]) -> String {
    let out = cloud_command(settings)
        .args([
            "token",
            "create",
            "--name",
            "schemathesis",
            "--role",
            "admin",
        ])
        .output()
        .expect("run fieldlink-cloud token create");
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    assert!(token.starts_with("flk_"), "token create printed {text:?}");
    token
}

/// A gateway's traffic: its birth, readings of numbers, strings and booleans in both
/// encodings, and a payload that is no telemetry at all (a dead letter).
fn traffic(rows: i64, seq0: u64, value: f64) -> Vec<(String, Vec<u8>)> {
    let t0 = now_ms() - 60_000;
    let mut msgs = vec![(
        "fieldlink/v1/gw-1/status".to_string(),
        BIRTH.as_bytes().to_vec(),
    )];
    for seq in 0..rows as u64 {
        let ts = t0 + seq as i64 * 1_000;
        let mut b = TelemetryBatch::new(id("gw-1"), 1, seq0 + seq);
        b.points.push(Point::new(
            id("meter-1"),
            id("power"),
            ts,
            value + seq as f64 / 4.0,
        ));
        b.points.push(Point::new(
            id("meter-1"),
            id("state"),
            ts,
            if seq % 2 == 0 { "ok" } else { "warn" },
        ));
        b.points
            .push(Point::new(id("pump"), id("running"), ts, seq % 3 == 0));
        let enc = if seq % 2 == 0 {
            Encoding::Binary
        } else {
            Encoding::Json
        };
        msgs.push((
            "fieldlink/v1/gw-1/telemetry".to_string(),
            encode_telemetry(&b, enc).unwrap(),
        ));
    }
    msgs.push((
        "fieldlink/v1/gw-1/telemetry".to_string(),
        b"\x00not telemetry".to_vec(),
    ));
    msgs
}

/// Fills the running cloud with what the read routes show.
async fn seed(api: SocketAddr, mqtt_port: u16, token: &str) {
    publish_all("127.0.0.1", mqtt_port, "gw-1-seed", traffic(20, 1, 1.0)).await;
    wait_for("readings stored", 60, || async {
        let r = get(api, "/api/v1/gateways/gw-1/devices/meter-1/latest", token).await;
        let n = r.json().as_array().map_or(0, Vec::len);
        (r.status == 200 && n == 2)
            .then_some(())
            .ok_or(format!("{} {n} latest values", r.status))
    })
    .await;

    let rule = json!({"name": "high power", "gateway": "gw-1", "device": "meter-1",
        "metric": "power", "condition": {"op": "gt", "threshold": 50}, "clear": 40,
        "severity": "warning"});
    let r = post(api, "/api/v1/alert-rules", token, &rule).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let offline = json!({"name": "gateway offline", "kind": "gateway_offline",
        "gateway": "gw-1", "silent_secs": 60, "severity": "critical", "receivers": []});
    let r = post(api, "/api/v1/alert-rules", token, &offline).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    publish_all("127.0.0.1", mqtt_port, "gw-1-seed", traffic(5, 100, 90.0)).await;
    wait_for("the value rule to fire", 60, || async {
        let r = get(api, "/api/v1/alerts?status=active", token).await;
        let n = r.json()["items"].as_array().map_or(0, Vec::len);
        (n > 0)
            .then_some(())
            .ok_or(format!("{} {n} alerts", r.status))
    })
    .await;

    let r = post(
        api,
        "/api/v1/gateways/gw-1/commands",
        token,
        &json!({"kind": {"command": "ping"}, "idempotency_key": "seed-1"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// Runs schemathesis on the operations `selection` picks (`--include-…`/`--exclude-…`
/// options) of the API on `api`; panics with its report when it finds failures, or when the
/// token did not open the operations (a run of 401s tests nothing).
fn schemathesis(api: SocketAddr, token: &str, selection: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let n = examples().to_string();
    let started = std::time::Instant::now();
    let out = Command::new("python3")
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("http://{api}/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &n])
        .args(["--workers", "1", "--request-timeout", "10"])
        .args(["--generation-allow-x00", "true"])
        .arg("--no-color")
        .args(seed_args())
        .args(selection)
        .stdin(Stdio::null())
        .output()
        .expect("run python3 -m schemathesis.cli (pip install -r scripts/requirements-test.txt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "schemathesis is not installed (pip install -r scripts/requirements-test.txt): {stderr}"
    );
    println!(
        "schemathesis {selection:?} took {:.0} s:\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?}; its report is above):\n{stderr}",
        out.status.code()
    );
    assert!(
        !stdout.contains("Authentication failed"),
        "operations answered only 401/403: the token was refused or revoked mid-run:\n{stdout}"
    );
    // A run that tested nothing would also exit 0.
    assert!(
        stdout.contains(" passed") && !stdout.contains(" 0 passed"),
        "schemathesis tested nothing:\n{stdout}\n{stderr}"
    );
}

/// Text with a NUL character, which PostgreSQL cannot store, or another control character, in
/// every place a request carries text: a 422 `invalid_text` that names the field, never a
/// database error (regression: a gateway name with U+0000 was a 503 "the database did not
/// answer").
async fn control_characters_in_text_are_refused(api: SocketAddr, token: &str) {
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    let rule = |name: &str, receivers: Value| {
        json!({"name": name, "metric": "power", "condition": {"op": "gt", "threshold": 1},
            "severity": "info", "receivers": receivers})
    };
    let cases: Vec<(&str, String, Option<Value>, &str)> = vec![
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(json!({"name": "a\u{0}b", "role": "viewer"})),
            "name",
        ),
        ("DELETE", "/api/v1/tokens/t%00".into(), None, "token_id"),
        ("GET", "/api/v1/commands/c%00".into(), None, "command_id"),
        (
            "POST",
            "/api/v1/gateways/gw-1/commands".into(),
            Some(json!({"kind": {"command": "ping"}, "idempotency_key": "k\u{0}"})),
            "idempotency_key",
        ),
        (
            "POST",
            "/api/v1/alert-rules".into(),
            Some(rule("r\u{0}", Value::Null)),
            "name",
        ),
        (
            "POST",
            "/api/v1/alert-rules".into(),
            Some(rule("r", json!(["x\u{0}"]))),
            "receivers[0]",
        ),
        (
            "PUT",
            "/api/v1/alert-rules/r%00".into(),
            Some(rule("r", Value::Null)),
            "rule_id",
        ),
        ("DELETE", "/api/v1/alert-rules/r%00".into(), None, "rule_id"),
        (
            "POST",
            "/api/v1/alerts/a%00/acknowledge".into(),
            None,
            "alert_id",
        ),
        (
            "POST",
            "/api/v1/alerts/a%00/resolve".into(),
            None,
            "alert_id",
        ),
        ("GET", "/api/v1/alerts?gateway=g%00".into(), None, "gateway"),
        (
            "POST",
            "/api/v1/gateways".into(),
            Some(json!({"gateway": "gw-9", "name": "a\u{0}b"})),
            "name",
        ),
        (
            "POST",
            "/api/v1/gateways".into(),
            Some(json!({"gateway": "gw-9", "name": "\u{1b}[2Jadmin token created"})),
            "name",
        ),
        (
            "POST",
            "/api/v1/gateways".into(),
            Some(json!({"gateway": "gw\u{0}"})),
            "gateway",
        ),
        ("DELETE", "/api/v1/gateways/gw%00".into(), None, "gateway"),
        (
            "GET",
            "/api/v1/gateways/gw-1/devices/m%1b/latest".into(),
            None,
            "device",
        ),
        (
            "GET",
            "/api/v1/series/1/points?from=2024%00".into(),
            None,
            "from",
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(json!({"name": "line\nforged", "role": "viewer"})),
            "name",
        ),
        (
            "POST",
            "/api/v1/gateways/gw-1/commands".into(),
            Some(json!({"kind": {"command": "apply_config",
                "config": {"toml": "[a]\nb = 1\u{0}"}}})),
            "kind.config.toml",
        ),
        (
            "GET",
            "/api/v1/notifications?alert_id=a%00".into(),
            None,
            "alert_id",
        ),
    ];
    for (method, path, body, field) in cases {
        let r = request(api, method, &path, &h, body.as_ref()).await;
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 422, "{method} {path}: {text}");
        assert_eq!(r.json()["code"], "invalid_text", "{method} {path}: {text}");
        let message = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(
            message.starts_with(&format!("{field}: ")) && message.contains("control characters"),
            "{method} {path}: {message}"
        );
    }
}

async fn scenario(database: (&str, String), label: &str) {
    let broker = fieldlink_testkit::Mosquitto::start().expect("start mosquitto");
    let settings = vec![
        database,
        ("MQTT__URL", broker.url()),
        ("MQTT__CLIENT_ID", format!("cloud-schemathesis-{label}")),
        ("ALERTS__CHECK_INTERVAL_MS", "500".to_string()),
    ];
    let token = admin_token(&settings);
    let mut cloud = CloudProcess::serve(&settings);
    cloud.ready().await;
    let api: SocketAddr = format!("127.0.0.1:{}", cloud.http).parse().unwrap();
    seed(api, broker.port(), &token).await;
    control_characters_in_text_are_refused(api, &token).await;
    // Every operation but revoking a token, then that one alone: it may revoke the very token
    // the run uses, after which every answer would be a 401.
    tokio::task::block_in_place(|| {
        schemathesis(api, &token, &["--exclude-operation-id", "revoke_token"]);
        schemathesis(api, &token, &["--include-operation-id", "revoke_token"]);
    });
    // Still serving after everything it was sent.
    assert_eq!(
        common::http_get(cloud.http, "/health/live")
            .await
            .unwrap()
            .0,
        200
    );
}

#[test]
fn the_api_matches_its_document_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.db").display().to_string();
    rt().block_on(scenario(("DATABASE__SQLITE_PATH", path), "sqlite"));
}

#[test]
fn the_api_matches_its_document_on_postgres() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("schemathesis").expect("create database");
    rt().block_on(scenario(("DATABASE__URL", url), "postgres"));
}
