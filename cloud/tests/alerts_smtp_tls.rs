//! Email over STARTTLS: aiosmtpd offering STARTTLS with a test CA's certificate (and refusing
//! mail without it). With `ca_file` naming that CA the mail goes through encrypted; without it
//! the certificate is refused, the attempt is recorded as failed with the reason, and retried.

mod api_support;

use std::sync::Arc;
use std::time::Duration;

use api_support::{eventually, rt};
use fieldlink_cloud::alerts::{AlertEngine, RuleSpec, Severity};
use fieldlink_cloud::notify::{
    EmailReceiver, Notifier, NotifySettings, Outbox, Routing, SmtpSecurity, SmtpSettings,
};
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{PointRow, SeriesKey, Store, StoreSpec, WriteBatch};
use fieldlink_protocol::{Ident, Quality, Value};
use fieldlink_testkit::sinks::SmtpSink;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn mail_goes_over_starttls_to_a_relay_trusted_by_ca_file() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let pki = fieldlink_testkit::tls::TestPki::new(dir.path(), "smtp").unwrap();
        let server = pki.server("relay").unwrap();
        let smtp = SmtpSink::start_tls(&server.server_cert, &server.server_key);
        let spec = StoreSpec::Sqlite {
            path: dir.path().join("cloud.db"),
        };
        let store = Store::open(&spec).await.unwrap();
        store.migrate().await.unwrap();
        let db = Arc::new(RecordsDb::open(&spec).await.unwrap());
        let routing = Routing::new(vec![("mail".into(), Severity::Info)]);
        let engine = AlertEngine::load_with(db.clone(), routing, Arc::new(Default::default()))
            .await
            .unwrap();
        let rule: RuleSpec = serde_json::from_value(serde_json::json!({"name": "hot",
            "metric": "temp", "condition": {"op": "gt", "threshold": 80.0},
            "severity": "critical"}))
        .unwrap();
        engine
            .records()
            .insert_rule("r-hot", &rule, now())
            .await
            .unwrap();
        engine.reload_rules().await.unwrap();
        let key = Arc::new(SeriesKey {
            gateway: Ident::new("gw-1").unwrap(),
            device: Ident::new("boiler").unwrap(),
            metric: Ident::new("temp").unwrap(),
        });
        engine
            .evaluate(&WriteBatch {
                points: vec![PointRow {
                    key,
                    ts_ms: now(),
                    value: Value::Number(90.0),
                    quality: Quality::Good,
                }],
                ..WriteBatch::default()
            })
            .await;

        let settings = |ca_file: Option<std::path::PathBuf>| NotifySettings {
            emails: vec![EmailReceiver {
                name: "mail".into(),
                to: vec!["oncall@plant.example".parse().unwrap()],
                min_severity: Severity::Info,
            }],
            smtp: Some(SmtpSettings {
                host: "localhost".into(),
                port: smtp.port,
                security: SmtpSecurity::Starttls,
                credentials: None,
                from: "alerts@plant.example".parse().unwrap(),
                ca_file,
            }),
            poll_interval: Duration::from_millis(50),
            retry: fieldlink_cloud::notify::RetryPolicy {
                backoff: fieldlink_plumbing::backoff::Schedule::fixed(100, 200),
                max_attempts: 100,
            },
            ..NotifySettings::default()
        };
        let outbox = Outbox::new(db.clone());

        // The system's roots do not know the test CA: refused, recorded, retried.
        let stop = tokio_util::sync::CancellationToken::new();
        let n = Notifier::new(db.clone(), settings(None), "cloud-a").unwrap();
        let run = tokio::spawn(n.run(stop.clone(), Duration::from_secs(5)));
        let failed = eventually(30, "a refused attempt", || async {
            let v = outbox.list(None, None, 10, 0).await.unwrap();
            v.first().filter(|n| !n.attempts.is_empty()).cloned()
        })
        .await;
        stop.cancel();
        run.await.unwrap();
        assert_eq!(failed.status, "pending");
        assert_eq!(failed.attempts[0].outcome, "failed");
        let reason = failed.attempts[0].detail.clone().unwrap_or_default();
        assert!(reason.to_lowercase().contains("certificate"), "{reason}");
        assert!(smtp.messages().is_empty());

        // Trusting the test CA: delivered over STARTTLS.
        let stop = tokio_util::sync::CancellationToken::new();
        let n = Notifier::new(
            db.clone(),
            settings(Some(pki.ca_cert().to_path_buf())),
            "cloud-a",
        )
        .unwrap();
        let run = tokio::spawn(n.run(stop.clone(), Duration::from_secs(5)));
        let done = eventually(30, "the mail delivered", || async {
            let v = outbox.list(None, None, 10, 0).await.unwrap();
            v.first().filter(|n| n.status == "delivered").cloned()
        })
        .await;
        stop.cancel();
        run.await.unwrap();
        let last = done.attempts.last().unwrap();
        assert!(
            last.detail
                .as_deref()
                .unwrap_or_default()
                .starts_with("SMTP 250"),
            "{last:?}"
        );
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1);
        assert!(
            mails[0].contains("FIRING critical: hot on gw-1/boiler/temp"),
            "{}",
            mails[0]
        );
    });
}
