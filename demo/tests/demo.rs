//! The demo binary end to end: it starts from an empty data directory, readings from the
//! simulator reach the cloud's store through a real agent and the embedded broker, SIGINT
//! stops it cleanly, and a second start with the same directory continues with the same data.

mod support;

use fieldlink_cloud::store::{Store, StoreSpec};
use fieldlink_protocol::{Ident, Value};
use support::{http_get, Demo, PATIENCE};

fn ident(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

async fn open_store(demo: &Demo) -> Store {
    Store::open(&StoreSpec::Sqlite {
        path: demo.data_dir().join("cloud.db"),
    })
    .await
    .unwrap()
}

/// The latest stored number of `device`/`metric`, with its unit, once there is one.
async fn latest_number(store: &Store, device: &str, metric: &str) -> Option<(f64, Option<String>)> {
    let series = store
        .series_of_device(&ident(fieldlink_demo::GATEWAY_ID), &ident(device))
        .await
        .ok()?;
    let info = series
        .into_iter()
        .find(|s| s.key.metric.as_str() == metric)?;
    let latest = store.latest(&[info.series_id]).await.ok()?;
    match &latest.first()?.point.value {
        Value::Number(n) => Some((*n, info.unit)),
        Value::Bool(b) => Some((f64::from(u8::from(*b)), info.unit)),
        Value::Str(_) => None,
    }
}

async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_flow_end_to_end_and_a_second_start_continues() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // First start, from nothing.
    let demo = Demo::start(&data);
    assert!(demo.banner().contains("Fieldlink demo is running."));
    let store = open_store(&demo).await;

    let (volts, unit) = wait_for("a voltage reading in the store", || {
        latest_number(&store, "energy-meter", "voltage_l1")
    })
    .await;
    assert_eq!(unit.as_deref(), Some("V"));
    // site.toml: a sine of amplitude 3 around 230 V, served as f32.
    assert!((227.0..=233.0).contains(&volts), "voltage_l1 = {volts}");

    let (setpoint, unit) = wait_for("the pump's speed setpoint", || {
        latest_number(&store, "pump", "speed_setpoint")
    })
    .await;
    assert_eq!((setpoint, unit.as_deref()), (1450.0, Some("rpm")));

    let (temperature, _) = wait_for("a climate temperature", || {
        latest_number(&store, "climate", "temperature")
    })
    .await;
    assert!(
        (18.5..=23.5).contains(&temperature),
        "temperature = {temperature}"
    );

    if fieldlink_demo::pty::socat_available() {
        assert!(demo.banner().contains("weather station on"));
        let (pressure, unit) = wait_for("a weather station reading over the pty", || {
            latest_number(&store, "weather", "pressure")
        })
        .await;
        assert_eq!(unit.as_deref(), Some("hPa"));
        assert!(
            (1009.0..=1015.0).contains(&pressure),
            "pressure = {pressure}"
        );
    } else {
        assert!(demo
            .banner()
            .contains("weather station skipped: socat is not installed"));
    }

    let gateway = store
        .gateway(&ident(fieldlink_demo::GATEWAY_ID))
        .await
        .unwrap()
        .expect("the demo gateway is registered");
    assert!(gateway.online);

    // The same readings through the REST API, with the operator token the demo printed.
    let token = demo.token();
    let (status, body) = http_get(
        demo.dashboard(),
        "/api/v1/gateways/demo-gw/devices/energy-meter/latest",
        &token,
    );
    assert_eq!(status, 200, "{body}");
    let latest: serde_json::Value = serde_json::from_str(&body).unwrap();
    let voltage = latest
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["metric"] == "voltage_l1")
        .expect("voltage_l1 in the latest values");
    assert_eq!(voltage["unit"], "V");
    let volts = voltage["reading"]["value"].as_f64().unwrap();
    assert!((227.0..=233.0).contains(&volts), "voltage_l1 = {volts}");
    let (status, _) = http_get(demo.dashboard(), "/api/v1/gateways", "flk_wrong");
    assert_eq!(status, 401);
    let (status, page) = http_get(demo.dashboard(), "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("<title>Fieldlink</title>"));

    let stopped = demo.interrupt();
    assert!(stopped.success, "first run: {}", stopped.output);
    assert!(stopped.output.contains("Fieldlink demo stopped."));

    let gateway = store
        .gateway(&ident(fieldlink_demo::GATEWAY_ID))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !gateway.online,
        "the agent's offline status reached the cloud"
    );
    let first_run_points = store.count_points().await.unwrap();
    assert!(first_run_points > 0);
    let first_run_series = store
        .series_of_device(&ident(fieldlink_demo::GATEWAY_ID), &ident("energy-meter"))
        .await
        .unwrap();
    let voltage = first_run_series
        .iter()
        .find(|s| s.key.metric.as_str() == "voltage_l1")
        .unwrap()
        .series_id;
    let first_run_voltages = store
        .raw_points(voltage, 0, i64::MAX, 1_000_000)
        .await
        .unwrap();

    // Second start, same directory: the old data stays, new data joins it.
    let demo = Demo::start(&data);
    assert_eq!(demo.token(), token, "the operator token is kept");
    wait_for("new points after the restart", || async {
        let n = store.count_points().await.ok()?;
        (n > first_run_points).then_some(())
    })
    .await;
    let stopped = demo.interrupt();
    assert!(stopped.success, "second run: {}", stopped.output);

    let series = store
        .series_of_device(&ident(fieldlink_demo::GATEWAY_ID), &ident("energy-meter"))
        .await
        .unwrap();
    let again = series
        .iter()
        .find(|s| s.key.metric.as_str() == "voltage_l1")
        .unwrap();
    assert_eq!(again.series_id, voltage, "the same series continues");
    let voltages = store
        .raw_points(voltage, 0, i64::MAX, 1_000_000)
        .await
        .unwrap();
    assert!(voltages.len() > first_run_voltages.len());
    assert_eq!(
        &voltages[..first_run_voltages.len()],
        &first_run_voltages[..],
        "the first run's readings are kept as they were"
    );
}

#[test]
fn the_shipped_agent_configuration_passes_check_config() {
    // `fieldlink-agent check-config FILE` is `config::load(FILE)` plus a printed summary.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.toml");
    let config = fieldlink_agent::config::load(&path).unwrap();
    assert_eq!(config.gateway.as_str(), fieldlink_demo::GATEWAY_ID);
    let summary = fieldlink_agent::summary::summary(&config);
    for device in ["energy-meter", "climate", "pump", "weather"] {
        assert!(
            summary.contains(device),
            "{device} missing from:\n{summary}"
        );
    }
}

#[test]
fn the_site_configuration_is_valid() {
    let config = fieldlink_sim::SimConfig::from_toml_str(fieldlink_demo::SITE_TOML).unwrap();
    config.validate().unwrap();
    let sim = fieldlink_sim::Simulator::from_config(config).unwrap();
    assert_eq!(sim.unit_ids(), [1, 2, 3]);
    assert!(sim.line_sensor(fieldlink_demo::site::WEATHER).is_some());
}
