//! An alert through the whole chain: a rule created over REST; the simulated temperature
//! moved across the limit through the simulator's own control path; the real agent reads it
//! over Modbus, journals it and publishes it through Mosquitto; the cloud stores it in
//! PostgreSQL and evaluates the rule. Asserted: the alert goes pending, fires only after the
//! rule's hold time, shows on REST and on the WebSocket, and reaches a webhook receiver and an
//! SMTP sink (aiosmtpd); a temperature hovering between the clear threshold and the limit
//! (crossing the limit again and again) does not flap; back to normal it resolves, and both
//! receivers get the resolution. Transitions are counted in the database.

use std::time::{Duration, Instant};

use fieldlink_e2e::site::{DEVICE, GATEWAY, START_TEMP};
use fieldlink_e2e::system::Options;
use fieldlink_e2e::ws::Feed;
use fieldlink_e2e::{eventually, runtime, System};
use fieldlink_testkit::sinks::{SmtpSink, WebhookSink};
use serde_json::{json, Value};

const LIMIT: f64 = 80.0;
const CLEAR: f64 = 75.0;
const HOLD: Duration = Duration::from_secs(1);
const PATIENCE: Duration = Duration::from_secs(30);

fn receivers(hook: &WebhookSink, smtp: &SmtpSink) -> String {
    format!(
        r#"
[[notifications.webhook]]
name = "hook"
url = "{hook}"

[[notifications.email]]
name = "mail"
to = ["On Call <oncall@plant.example>"]
min_severity = "critical"

[notifications.smtp]
host = "127.0.0.1"
port = {smtp}
security = "none"
from = "Fieldlink <alerts@plant.example>"
"#,
        hook = hook.url(),
        smtp = smtp.port,
    )
}

fn is_alert(m: &Value, rule: &str, status: &str) -> bool {
    m["type"] == "alert" && m["alert"]["rule_id"] == rule && m["alert"]["status"] == status
}

/// Sets the temperature and waits until the cloud has stored it, so the rule has seen it.
async fn move_to(sys: &System, celsius: f64) {
    sys.site.set_temp(celsius);
    eventually(&format!("temp {celsius} stored"), PATIENCE, || async {
        (sys.latest("temp").await == Some(celsius)).then_some(())
    })
    .await;
}

/// The notifications of `rule` listed over REST: `(receiver, event)` sorted, once every one
/// of them is delivered.
async fn delivered(sys: &System, rule: &str, count: usize) -> Vec<(String, String)> {
    eventually(
        &format!("{count} notifications delivered"),
        PATIENCE,
        || async {
            let page = sys
                .cloud
                .operator
                .expect("GET", "/api/v1/notifications?limit=100", None, 200)
                .await;
            let mine: Vec<&Value> = page["items"]
                .as_array()?
                .iter()
                .filter(|n| n["rule_id"] == rule)
                .collect();
            let done = mine.len() == count && mine.iter().all(|n| n["status"] == "delivered");
            let mut pairs: Vec<(String, String)> = mine
                .iter()
                .map(|n| {
                    (
                        n["receiver"].as_str().unwrap_or_default().to_string(),
                        n["event"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            pairs.sort();
            done.then_some(pairs)
        },
    )
    .await
}

#[test]
fn value_alert_fires_notifies_does_not_flap_and_resolves() {
    let smtp = SmtpSink::start();
    runtime().block_on(async {
        let hook = WebhookSink::start();
        let mut sys = System::start(Options {
            poll_ms: 100,
            cloud_extra: receivers(&hook, &smtp),
        })
        .await;
        eventually("the start temperature stored", PATIENCE, || async {
            (sys.latest("temp").await == Some(START_TEMP)).then_some(())
        })
        .await;

        let rule = sys
            .cloud
            .admin
            .expect(
                "POST",
                "/api/v1/alert-rules",
                Some(&json!({
                    "name": "pump too hot", "gateway": GATEWAY, "device": DEVICE,
                    "metric": "temp", "condition": {"op": "gt", "threshold": LIMIT},
                    "clear": CLEAR, "hold_secs": HOLD.as_secs(), "severity": "critical"
                })),
                201,
            )
            .await;
        let rule_id = rule["rule_id"].as_str().expect("a rule id").to_string();
        let feed = Feed::connect(
            sys.cloud.http,
            &sys.cloud.viewer_token,
            &[json!({"topic": "alerts", "gateway": GATEWAY})],
        )
        .await;

        // Across the limit: pending at once, active only after the hold time.
        let crossed = Instant::now();
        sys.site.set_temp(85.0);
        feed.wait_for("the alert pending", PATIENCE, |m| {
            is_alert(m, &rule_id, "pending")
        })
        .await;
        let active = feed
            .wait_for("the alert active", PATIENCE, |m| {
                is_alert(m, &rule_id, "active")
            })
            .await;
        assert!(
            active.at.duration_since(crossed) >= HOLD,
            "fired {:?} after the crossing, before the {HOLD:?} hold time",
            active.at.duration_since(crossed)
        );
        assert_eq!(
            active.message["alert"]["last_value"], 85.0,
            "{}",
            active.message
        );
        let (alerts, open) = alerts_of_rule(&sys, &rule_id).await;
        assert_eq!(open.len(), 1, "{alerts}");
        assert_eq!(
            (
                open[0]["status"].as_str(),
                open[0]["device"].as_str(),
                open[0]["metric"].as_str()
            ),
            (Some("active"), Some(DEVICE), Some("temp")),
            "{alerts}"
        );
        assert_eq!(
            delivered(&sys, &rule_id, 2).await,
            [
                ("hook".into(), "fired".into()),
                ("mail".into(), "fired".into())
            ]
        );
        let fired = hook.received();
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].body["rule_name"], "pump too hot");
        assert_eq!(fired[0].body["alert"]["severity"], "critical");
        let mails = eventually("the firing mail", PATIENCE, || async {
            let m = smtp.messages();
            (!m.is_empty()).then_some(m)
        })
        .await;
        assert!(
            mails[0].contains(&format!(
                "FIRING critical: pump too hot on {GATEWAY}/{DEVICE}/temp"
            )),
            "{mails:?}"
        );
        assert!(mails[0].contains("oncall@plant.example"), "{mails:?}");

        // Hovering: in the band between clear and limit, over the limit now and then. Each
        // value is stored (so evaluated) before the next.
        for t in [79.0, 82.0, 77.0, 81.0, 76.0, 83.0, 78.0, 80.5, 75.5] {
            move_to(&sys, t).await;
        }
        assert_eq!(
            feed.alert_statuses(&rule_id),
            ["pending", "active"],
            "no flapping"
        );

        // Back to normal: resolved.
        move_to(&sys, START_TEMP).await;
        let resolved = feed
            .wait_for("the alert resolved", PATIENCE, |m| {
                is_alert(m, &rule_id, "resolved")
            })
            .await;
        assert_eq!(resolved.message["alert"]["last_value"], START_TEMP);
        assert_eq!(
            feed.alert_statuses(&rule_id),
            ["pending", "active", "resolved"]
        );
        assert_eq!(
            delivered(&sys, &rule_id, 4).await,
            [
                ("hook".into(), "fired".into()),
                ("hook".into(), "resolved".into()),
                ("mail".into(), "fired".into()),
                ("mail".into(), "resolved".into()),
            ]
        );
        assert_eq!(hook.events_of(&rule_id), ["fired", "resolved"]);
        let mails = eventually("the resolved mail", PATIENCE, || async {
            let m = smtp.messages();
            (m.len() >= 2).then_some(m)
        })
        .await;
        assert_eq!(mails.len(), 2, "{mails:?}");
        assert!(
            mails
                .iter()
                .any(|m| m.contains("RESOLVED critical: pump too hot")),
            "{mails:?}"
        );

        // REST: one alert for the rule, resolved; the database holds exactly its three
        // transitions.
        let (alerts, mine) = alerts_of_rule(&sys, &rule_id).await;
        assert_eq!(mine.len(), 1, "{alerts}");
        assert_eq!(mine[0]["status"], "resolved", "{alerts}");
        let transitions = sys.sql(&format!(
            "SELECT t.transition FROM alert_transitions t JOIN alerts a USING (alert_id) \
             WHERE a.rule_id = '{rule_id}' ORDER BY t.at, t.transition"
        ));
        assert_eq!(
            transitions.lines().collect::<Vec<_>>(),
            ["pending", "active", "resolved"]
        );
        sys.cloud.stop().await;
    });
}

/// The gateway's alerts over REST (the whole answer, for messages) and those of `rule_id`.
async fn alerts_of_rule(sys: &System, rule_id: &str) -> (Value, Vec<Value>) {
    let alerts = sys
        .cloud
        .viewer
        .expect(
            "GET",
            &format!("/api/v1/alerts?gateway={GATEWAY}"),
            None,
            200,
        )
        .await;
    let mine = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule_id"] == rule_id)
        .cloned()
        .collect();
    (alerts, mine)
}
