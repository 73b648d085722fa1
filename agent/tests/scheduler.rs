//! The scheduler against a real journal: report-by-exception filters what is committed, health
//! changes become events, a hand-over returns only once its readings are committed, and
//! everything handed over before a stop is committed.

use std::sync::Arc;
use std::time::Duration;

use fieldlink_agent::clock::ClockGuard;
use fieldlink_agent::events::Outbox;
use fieldlink_agent::health::Liveness;
use fieldlink_agent::scheduler::{Active, ReportPolicy, ReportRules, Scheduler};
use fieldlink_buffer::{BatchBody, BatchLimits, Journal, JournalConfig, RecordClass};
use fieldlink_drivers::{hand_over, DriverEvent, HealthEvent, HealthState, Readings, Receipt};
use fieldlink_protocol::{json, Event, EventKind, Ident, Point};
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn readings(device: &str, ts: i64, values: &[(&str, f64)]) -> DriverEvent {
    let mut r = Readings::new(id(device));
    r.points = values
        .iter()
        .map(|(m, v)| Point::new(id(device), id(m), ts, *v))
        .collect();
    DriverEvent::Readings(r, Receipt::detached())
}

#[tokio::test]
async fn deadbands_filter_commits_and_health_becomes_events() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(JournalConfig::new(dir.path().join("j.db")))
        .await
        .unwrap();
    let mut rules = ReportRules::new(ReportPolicy::default());
    rules.insert(
        "meter",
        Some("volts"),
        ReportPolicy {
            on_change: true,
            deadband_abs: 1.0,
            deadband_pct: 0.0,
            max_silence: None,
        },
    );
    let (_active_tx, active_rx) = watch::channel(Arc::new(Active {
        rules,
        counters: Vec::new(),
    }));
    let (tx, rx) = mpsc::channel(8);
    let liveness = Liveness::new(Duration::from_secs(60));
    let wake = Arc::new(Notify::new());
    let scheduler = Scheduler {
        events: rx,
        active: active_rx,
        journal: journal.clone(),
        outbox: Outbox::new(journal.clone(), id("gw"), 7),
        uplink_wake: wake.clone(),
        uplink: Arc::default(),
        self_telemetry_every: Duration::from_secs(3600),
        clock: ClockGuard::new(0, 1000),
        heartbeat: liveness.register("poll"),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(stop.clone()));
    let t = 1_700_000_000_000;
    tx.send(readings("meter", t, &[("volts", 230.0), ("amps", 5.0)]))
        .await
        .unwrap();
    tx.send(readings(
        "meter",
        t + 1000,
        &[("volts", 230.4), ("amps", 5.0)],
    ))
    .await
    .unwrap();
    tx.send(readings(
        "meter",
        t + 2000,
        &[("volts", 231.5), ("amps", 5.1)],
    ))
    .await
    .unwrap();
    tx.send(DriverEvent::Health(HealthEvent {
        device: id("meter"),
        state: HealthState::Offline,
        last_error: Some("timeout".into()),
        ts_ms: t,
    }))
    .await
    .unwrap();
    stop.cancel();
    task.await.unwrap();

    let mut volts = Vec::new();
    let mut amps = Vec::new();
    let mut events = Vec::new();
    while let Some(b) = journal.next_batch(BatchLimits::default()).await.unwrap() {
        match b.body {
            BatchBody::Telemetry { points, .. } => {
                for p in points {
                    let v = match p.value {
                        fieldlink_protocol::Value::Number(x) => x,
                        _ => panic!(),
                    };
                    match p.metric.as_str() {
                        "volts" => volts.push(v),
                        _ => amps.push(v),
                    }
                }
            }
            BatchBody::Record { class, payload, .. } => {
                assert_eq!(class, RecordClass::Event);
                events.push(json::decode::<Event>(&payload).unwrap());
            }
        }
    }
    assert_eq!(volts, vec![230.0, 231.5], "0.4 V is inside the 1 V band");
    assert_eq!(amps, vec![5.0, 5.0, 5.1], "no rule: every reading");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].boot_epoch, 7);
    assert!(matches!(&events[0].kind, EventKind::DeviceDown { error, .. } if error == "timeout"));
}

/// The drivers poll again only when `hand_over` returns; by then the poll must be in the
/// journal, or a SIGKILL could lose polls the drivers consider delivered.
#[tokio::test]
async fn a_hand_over_returns_once_its_readings_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(JournalConfig::new(dir.path().join("j.db")))
        .await
        .unwrap();
    let (_active_tx, active_rx) = watch::channel(Arc::new(Active::default()));
    let (tx, rx) = mpsc::channel(1);
    let liveness = Liveness::new(Duration::from_secs(60));
    let scheduler = Scheduler {
        events: rx,
        active: active_rx,
        journal: journal.clone(),
        outbox: Outbox::new(journal.clone(), id("gw"), 1),
        uplink_wake: Arc::new(Notify::new()),
        uplink: Arc::default(),
        self_telemetry_every: Duration::from_secs(3600),
        clock: ClockGuard::new(0, 1000),
        heartbeat: liveness.register("poll"),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(stop.clone()));
    let t = 1_700_000_000_000;
    for poll in 0..20i64 {
        let mut r = Readings::new(id("meter"));
        r.points = (0..5)
            .map(|m| Point::new(id("meter"), id(&format!("m{m}")), t + poll * 1000, m as f64))
            .collect();
        hand_over(&tx, r).await.unwrap();
        let depth = journal.stats().await.unwrap().telemetry.count;
        assert_eq!(
            depth,
            5 * (poll as u64 + 1),
            "poll {poll} handed over, not committed"
        );
    }
    stop.cancel();
    task.await.unwrap();
}
