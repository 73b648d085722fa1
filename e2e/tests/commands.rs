//! Commands through the whole chain: created over REST, stored in PostgreSQL, published by the
//! cloud through Mosquitto, journaled and executed by the real agent as a Modbus write to the
//! simulator, acknowledged back; each status pushed on the WebSocket.
//! - Online: the write lands in the simulator's register and the WebSocket shows
//!   pending → sent → received → executed.
//! - Offline (the agent stopped): a command stays pending, and is delivered and executed when
//!   the agent comes back; a command whose expiry passes meanwhile becomes `expired` and never
//!   runs: the simulator sees one write only, and the agent's ledger never took its id.

use std::time::Duration;

use fieldlink_e2e::site::{DEVICE, GATEWAY};
use fieldlink_e2e::system::Options;
use fieldlink_e2e::ws::{is_command, Feed};
use fieldlink_e2e::{runtime, System};
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(30);

fn write_setpoint(value: u16, expires_in_secs: Option<u64>) -> Value {
    let mut body = json!({
        "kind": {"command": "write_point", "device": DEVICE, "point": "setpoint", "value": value}
    });
    if let Some(s) = expires_in_secs {
        body["expires_in_secs"] = json!(s);
    }
    body
}

async fn create(sys: &System, body: &Value) -> Value {
    sys.cloud
        .operator
        .expect(
            "POST",
            &format!("/api/v1/gateways/{GATEWAY}/commands"),
            Some(body),
            201,
        )
        .await
}

async fn command(sys: &System, id: &str) -> Value {
    sys.cloud
        .viewer
        .expect("GET", &format!("/api/v1/commands/{id}"), None, 200)
        .await
}

async fn commands_feed(sys: &System) -> Feed {
    Feed::connect(
        sys.cloud.http,
        &sys.cloud.viewer_token,
        &[json!({"topic": "commands", "gateway": GATEWAY})],
    )
    .await
}

#[test]
fn write_point_lands_in_the_simulator_and_is_executed() {
    runtime().block_on(async {
        let mut sys = System::start(Options::default()).await;
        let feed = commands_feed(&sys).await;
        assert_eq!(sys.site.setpoint(), 0);

        let created = create(&sys, &write_setpoint(1234, None)).await;
        let id = created["command_id"].as_str().unwrap().to_string();
        feed.wait_for("the command executed", PATIENCE, |m| {
            is_command(m, &id, "executed")
        })
        .await;
        assert_eq!(sys.site.setpoint(), 1234, "the register the command wrote");
        assert_eq!(sys.site.write_requests(), 1);
        assert_eq!(
            feed.command_statuses(&id),
            ["pending", "sent", "received", "executed"]
        );
        let done = command(&sys, &id).await;
        assert_eq!(done["status"], "executed", "{done}");
        assert_eq!(done["result"], 1234.0, "the value read back: {done}");

        // The written value comes back as telemetry too.
        fieldlink_e2e::eventually("the setpoint reported", PATIENCE, || async {
            (sys.latest("setpoint").await == Some(1234.0)).then_some(())
        })
        .await;
        sys.cloud.stop().await;
    });
}

#[test]
fn offline_gateway_gets_queued_commands_and_never_expired_ones() {
    runtime().block_on(async {
        let mut sys = System::start(Options::default()).await;
        let feed = commands_feed(&sys).await;
        sys.stop_agent().await;

        let queued = create(&sys, &write_setpoint(4321, None)).await;
        let queued_id = queued["command_id"].as_str().unwrap().to_string();
        assert_eq!(queued["status"], "pending", "{queued}");
        let expiring = create(&sys, &write_setpoint(999, Some(1))).await;
        let expiring_id = expiring["command_id"].as_str().unwrap().to_string();
        assert_eq!(expiring["status"], "pending", "{expiring}");

        feed.wait_for("the short-lived command expired", PATIENCE, |m| {
            is_command(m, &expiring_id, "expired")
        })
        .await;
        assert_eq!(command(&sys, &queued_id).await["status"], "pending");
        assert_eq!(sys.site.write_requests(), 0);

        // Back online: the queued command is delivered and executed, the expired one is not.
        sys.start_agent().await;
        feed.wait_for("the queued command executed", PATIENCE, |m| {
            is_command(m, &queued_id, "executed")
        })
        .await;
        assert_eq!(
            feed.command_statuses(&queued_id),
            ["pending", "sent", "received", "executed"]
        );
        assert_eq!(sys.site.setpoint(), 4321);

        // A command sent after both and executed: everything before it has been handled.
        let marker = create(&sys, &json!({"kind": {"command": "ping"}})).await;
        let marker_id = marker["command_id"].as_str().unwrap().to_string();
        feed.wait_for("the ping executed", PATIENCE, |m| {
            is_command(m, &marker_id, "executed")
        })
        .await;
        assert_eq!(
            sys.site.write_requests(),
            1,
            "only the queued command wrote"
        );
        assert_eq!(sys.site.setpoint(), 4321);
        assert_eq!(feed.command_statuses(&expiring_id), ["pending", "expired"]);
        assert_eq!(command(&sys, &expiring_id).await["status"], "expired");
        let ledger = std::fs::read_to_string(sys.agent_dir().join("commands.ledger"))
            .expect("the agent's command ledger");
        assert!(ledger.contains(&queued_id), "{ledger}");
        assert!(
            !ledger.contains(&expiring_id),
            "the agent took the expired command: {ledger}"
        );
        sys.cloud.stop().await;
    });
}
