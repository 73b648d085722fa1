//! Isolation (issue 14, goal R5): what one gateway in the wrong hands can do to the others.
//!
//! Each test starts a fleet (`fieldlink_e2e::fleet`): two honest gateways, real agents polling
//! their own simulated meter every 100 ms, publishing through the broker into the cloud
//! binary; and an attacker holding the valid credentials of a third registered gateway,
//! `mallory`. Each finding of the issue runs twice: on Mosquitto with the shipped
//! configuration and ACL (mutual TLS, a password per client, the cloud on PostgreSQL) and on
//! the cloud's embedded broker (SQLite). While the attack runs, the honest gateways keep
//! publishing, and every test holds the same four bounds:
//!
//! - (a) their ingest lag stays under 2 s (see `fieldlink_e2e::hostile` for how it is measured);
//! - (b) every reading their simulators served up to the end of the attack is stored exactly
//!   once (waiting up to 20 s after the attack for stragglers);
//! - (c) the cloud process's resident memory stays under 256 MiB;
//! - (d) the attack shows in the cloud's `/metrics` and API, as each test states.
//!
//! A failure names the finding and lists every bound it broke with the figures measured. The
//! flood tests take the machine for themselves (a lock), the others run two at a time.

use std::future::Future;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use fieldlink_e2e::fleet::{metric_sum, BrokerKind, Fleet, ATTACKER, CLOUD_CLIENT_ID, HONEST};
use fieldlink_e2e::hostile::{
    check_delivery, check_newest_layouts, flood, gateway_online_within, mib, payload,
    response_size, Attacker, LagProbe, Verdict,
};

/// Flood tests take it for writing: their load would distort the others' lag.
static MACHINE: RwLock<()> = RwLock::new(());

/// How long the readings of the honest gateways may take to be complete after an attack.
const STRAGGLERS: Duration = Duration::from_secs(20);
const DEAD_LETTERS: &str = "fieldlink_cloud_dead_letters_total";

fn shared<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let _turn = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    fieldlink_e2e::runtime().block_on(test());
}

fn exclusive<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let _turn = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    fieldlink_e2e::runtime().block_on(test());
}

/// The fleet, its probe, and a second of honest traffic before the attack.
async fn setup(kind: BrokerKind) -> (Fleet, LagProbe) {
    let fleet = Fleet::start(kind).await;
    let probe = LagProbe::start(&fleet).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    (fleet, probe)
}

/// Bounds (a), (b) and (c) over the attack `[start, end]`, then fails with everything found.
async fn conclude(fleet: &Fleet, probe: &LagProbe, start: SystemTime, mut v: Verdict) {
    let end = SystemTime::now();
    v.figure(format!(
        "attack window {:.1} s",
        end.duration_since(start).unwrap_or_default().as_secs_f64()
    ));
    // Delivery first: it waits for late readings, whose lag then counts in full.
    check_delivery(fleet, end, STRAGGLERS, &mut v).await;
    check_newest_layouts(fleet, &mut v);
    probe.judge(start, end, &mut v);
    v.finish(&fleet.logs_tail());
}

fn name(finding: &str, kind: BrokerKind) -> String {
    let broker = match kind {
        BrokerKind::Mosquitto => "Mosquitto (shipped configuration and ACL), PostgreSQL",
        BrokerKind::Embedded => "embedded broker, SQLite",
    };
    format!("{finding} [{broker}]")
}

async fn attacker(fleet: &Fleet, client_id: &str, v: &mut Verdict) -> Attacker {
    let a = Attacker::connect(&fleet.endpoint(ATTACKER), client_id, false);
    v.check(
        a.connected(Duration::from_secs(10)).await,
        format!(
            "the attacker could not connect with mallory's valid credentials: {:?}",
            a.counts()
        ),
    );
    a
}

/// Whether the dead-letter list names `topic` (newest 100).
async fn dead_letter_listed(fleet: &Fleet, topic: &str) -> bool {
    let r = fleet.viewer.get("/api/v1/dead-letters?limit=100").await;
    r.body["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|d| d["topic"] == topic))
}

// ---- finding 1: one oversized publish --------------------------------------------------------

async fn oversized(kind: BrokerKind) {
    let (fleet, probe) = setup(kind).await;
    let mut v = Verdict::new(name("finding 1 (one 1.5 MiB publish)", kind));
    let before = metric_sum(&fleet.metrics().await, DEAD_LETTERS, &[]);
    let start = SystemTime::now();
    let a = attacker(&fleet, "fieldlink-mallory", &mut v).await;
    a.publish(ATTACKER, "telemetry", false, payload::junk(1536 * 1024, 1))
        .await;
    // The honest gateways publish on for 10 s with the message at the broker.
    let sent = std::time::Instant::now();
    let acked = a.pubacks_at_least(1, Duration::from_secs(8)).await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(sent.elapsed())).await;
    let counts = a.counts();
    v.figure(format!("attacker: {counts:?}"));
    drop(a);
    let metrics = fleet.metrics().await;
    let counted = metric_sum(&metrics, DEAD_LETTERS, &[]) - before;
    let listed = dead_letter_listed(&fleet, "fieldlink/v1/mallory/telemetry").await;
    v.figure(format!(
        "broker acknowledged it: {}; dead letters counted since: {counted}; listed: {listed}",
        acked > 0
    ));
    // (d): a message the broker took must reach the cloud as a counted dead letter; a broker
    // that refuses it (its packet size limit closes the connection) never acknowledges it.
    if acked > 0 {
        v.check(
            counted >= 1.0 && listed,
            format!(
                "the broker acknowledged the oversized publish, but the cloud shows no dead \
                 letter for it ({DEAD_LETTERS} +{counted}, listed: {listed})"
            ),
        );
    }
    let (down, checks) = probe.not_ready(start, SystemTime::now());
    v.figure(format!(
        "/health/ready not 200 in {down} of {checks} checks"
    ));
    v.check(
        down == 0,
        format!("/health/ready was not 200 in {down} checks during the attack"),
    );
    conclude(&fleet, &probe, start, v).await;
}

#[test]
fn finding_1_oversized_publish_mosquitto() {
    shared(|| oversized(BrokerKind::Mosquitto));
}

#[test]
fn finding_1_oversized_publish_embedded() {
    shared(|| oversized(BrokerKind::Embedded));
}

// ---- finding 2: aliases of a birth the cloud never saw ---------------------------------------

async fn unknown_birth(kind: BrokerKind) {
    let (fleet, probe) = setup(kind).await;
    let mut v = Verdict::new(name(
        "finding 2 (aliased telemetry of an unseen birth)",
        kind,
    ));
    let metrics = fleet.metrics().await;
    let before = metric_sum(&metrics, DEAD_LETTERS, &[("reason", "unknown_birth")]);
    let start = SystemTime::now();
    let a = attacker(&fleet, "fieldlink-mallory", &mut v).await;
    // Never published: the cloud cannot resolve these aliases.
    let birth = payload::birth(ATTACKER, 1, "00000000deadbeef");
    let sample = payload::aliased(&birth, 1);
    v.figure(format!("aliased message: {} bytes", sample.len()));
    let mut seq = 0;
    for _round in 0..4 {
        for _ in 0..30 {
            seq += 1;
            a.publish(ATTACKER, "telemetry", false, payload::aliased(&birth, seq))
                .await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    v.figure(format!("attacker sent {seq}: {:?}", a.counts()));
    drop(a);
    let end_of_attack = SystemTime::now();
    check_delivery(&fleet, end_of_attack, STRAGGLERS, &mut v).await;
    // (d) once the honest readings are in (or the wait gave up): the cloud must account for
    // them, as dead letters (`unknown_birth`) or as parked messages (a metric named `park…`).
    let metrics = fleet.metrics().await;
    let dead = metric_sum(&metrics, DEAD_LETTERS, &[("reason", "unknown_birth")]) - before;
    let parked: Vec<String> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("park"))
        .filter(|l| {
            l.rsplit_once(' ')
                .and_then(|(_, x)| x.parse::<f64>().ok())
                .is_some_and(|x| x > 0.0)
        })
        .map(str::to_owned)
        .collect();
    v.figure(format!(
        "unknown_birth dead letters +{dead}; parking metrics {parked:?}"
    ));
    v.check(
        dead >= 1.0 || !parked.is_empty(),
        format!(
            "{seq} aliased messages of an unseen birth show nowhere in /metrics (no \
             unknown_birth dead letter, no parking metric)"
        ),
    );
    probe.judge(start, end_of_attack, &mut v);
    v.finish(&fleet.logs_tail());
}

#[test]
fn finding_2_aliases_of_an_unseen_birth_mosquitto() {
    shared(|| unknown_birth(BrokerKind::Mosquitto));
}

#[test]
fn finding_2_aliases_of_an_unseen_birth_embedded() {
    shared(|| unknown_birth(BrokerKind::Embedded));
}

// ---- finding 3: another client's id ----------------------------------------------------------

async fn takeover(kind: BrokerKind) {
    let (fleet, probe) = setup(kind).await;
    let mut v = Verdict::new(name(
        "finding 3 (the cloud's and another gateway's client id)",
        kind,
    ));
    let start = SystemTime::now();
    let victim_id = format!("fieldlink-{}", HONEST[0]);
    for client_id in [CLOUD_CLIENT_ID, victim_id.as_str()] {
        let mut accepted = 0;
        let tries = 5;
        for _ in 0..tries {
            // A persistent session: the way to take over the victim's queue.
            let a = Attacker::connect(&fleet.endpoint(ATTACKER), client_id, true);
            if a.connected(Duration::from_secs(2)).await {
                accepted += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            drop(a);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        v.figure(format!(
            "as {client_id:?}: {accepted} of {tries} connections accepted"
        ));
    }
    let (down, checks) = probe.not_ready(start, SystemTime::now());
    v.figure(format!(
        "/health/ready not 200 in {down} of {checks} checks"
    ));
    // (d): the cloud's session is its own; were it taken over, readiness says so.
    v.check(
        down == 0,
        format!(
            "the cloud lost its broker session: /health/ready not 200 in {down} of {checks} \
             checks"
        ),
    );
    v.check(
        gateway_online_within(&fleet, HONEST[0], true, Duration::from_secs(5)).await,
        format!("{} is not shown online after the attack", HONEST[0]),
    );
    conclude(&fleet, &probe, start, v).await;
}

#[test]
fn finding_3_client_id_takeover_mosquitto() {
    shared(|| takeover(BrokerKind::Mosquitto));
}

#[test]
fn finding_3_client_id_takeover_embedded() {
    shared(|| takeover(BrokerKind::Embedded));
}

// ---- finding 4: a boot counter that went backwards -------------------------------------------

async fn boot_backwards(kind: BrokerKind) {
    let (fleet, probe) = setup(kind).await;
    let mut v = Verdict::new(name("finding 4 (boot counter lower than the last)", kind));
    let start = SystemTime::now();
    let a = attacker(&fleet, "fieldlink-mallory", &mut v).await;
    let old = payload::birth(ATTACKER, 7, "0123456789abcdef");
    a.publish(ATTACKER, "status", true, payload::online(&old))
        .await;
    v.check(
        gateway_online_within(&fleet, ATTACKER, true, Duration::from_secs(10)).await,
        "mallory's first birth (boot 7) did not show it online".into(),
    );
    a.publish(ATTACKER, "status", true, payload::offline(ATTACKER, 7))
        .await;
    v.check(
        gateway_online_within(&fleet, ATTACKER, false, Duration::from_secs(10)).await,
        "mallory's death (boot 7) did not show it offline".into(),
    );
    // The state directory was wiped: the counter starts again at 1.
    let wiped = payload::birth(ATTACKER, 1, "0123456789abcdef");
    a.publish(ATTACKER, "status", true, payload::online(&wiped))
        .await;
    let online = gateway_online_within(&fleet, ATTACKER, true, Duration::from_secs(5)).await;
    let view = fleet.gateway(ATTACKER).await;
    v.figure(format!("mallory after the boot-1 birth: {view}"));
    // (d): the API shows the gateway as it is.
    v.check(
        online,
        format!("a birth with boot counter 1 after boot 7 left mallory offline for 5 s: {view}"),
    );
    drop(a);
    conclude(&fleet, &probe, start, v).await;
}

#[test]
fn finding_4_boot_counter_backwards_mosquitto() {
    shared(|| boot_backwards(BrokerKind::Mosquitto));
}

#[test]
fn finding_4_boot_counter_backwards_embedded() {
    shared(|| boot_backwards(BrokerKind::Embedded));
}

// ---- finding 5: 200 large dead letters, then one list request ---------------------------------
//
// The attack sent 200 × 1 MB; both brokers now close a client sending a packet over
// 264 KiB (the agreed size limit, finding 1), so the largest payloads that still reach the
// cloud are sent instead: a little over the protocol's 256 KiB each, all dead letters.

/// Over the protocol's payload limit, under the brokers' packet limit.
const LARGE: usize = fieldlink_protocol::limits::MAX_PAYLOAD_BYTES + 2_000;

/// A dead-letter page may not exceed this: the list is bounded in bytes as well as rows.
const MAX_DEAD_LETTER_PAGE: u64 = 8 << 20;

async fn dead_letters(kind: BrokerKind) {
    let (fleet, probe) = setup(kind).await;
    let mut v = Verdict::new(name("finding 5 (200 large dead letters)", kind));
    let metrics = fleet.metrics().await;
    let before = metric_sum(&metrics, DEAD_LETTERS, &[]);
    let shed_before = metric_sum(&metrics, QUOTA_MESSAGES, &[("outcome", "dropped")]);
    let start = SystemTime::now();
    let a = attacker(&fleet, "fieldlink-mallory", &mut v).await;
    let sent = std::time::Instant::now();
    for i in 0..200u8 {
        a.publish(ATTACKER, "telemetry", false, payload::junk(LARGE, i))
            .await;
    }
    let acked = a.pubacks_at_least(200, Duration::from_secs(60)).await;
    v.figure(format!(
        "200 publishes of {LARGE} bytes: {acked} acknowledged in {:.1} s",
        sent.elapsed().as_secs_f64()
    ));
    drop(a);
    // Let ingest take them in before reading the list.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let asked = std::time::Instant::now();
    let page = response_size(
        fleet.cloud.http,
        &fleet.viewer.token,
        "/api/v1/dead-letters?limit=1000",
        Duration::from_secs(60),
    )
    .await;
    v.figure(format!(
        "GET /api/v1/dead-letters?limit=1000: {page:?} (status, body bytes) in {:.1} s",
        asked.elapsed().as_secs_f64()
    ));
    match page {
        Some((status, bytes)) => {
            v.check(
                status == 200,
                format!("the dead-letter list answered {status}"),
            );
            v.check(
                bytes <= MAX_DEAD_LETTER_PAGE,
                format!(
                    "one dead-letter list response was {} (bound {})",
                    mib(bytes),
                    mib(MAX_DEAD_LETTER_PAGE)
                ),
            );
        }
        None => v.check(
            false,
            "the dead-letter list did not answer within 60 s".into(),
        ),
    }
    // (d): every refused message counted (a dead letter, or a drop over the gateway's quota:
    // 200 MB in seconds is a flood), and listed.
    let metrics = fleet.metrics().await;
    let dead = metric_sum(&metrics, DEAD_LETTERS, &[]) - before;
    let shed = metric_sum(&metrics, QUOTA_MESSAGES, &[("outcome", "dropped")]) - shed_before;
    let counted = dead + shed;
    let listed = dead_letter_listed(&fleet, "fieldlink/v1/mallory/telemetry").await;
    v.figure(format!(
        "dead letters counted +{dead}, dropped over quota +{shed}; listed: {listed}"
    ));
    v.check(
        counted >= acked as f64 && listed,
        format!(
            "{acked} refused messages, but {DEAD_LETTERS} grew by {counted} (listed: {listed})"
        ),
    );
    // Each one counted once: more means the broker sent them again, because ingest lost its
    // session (an acknowledgement out of the broker's order closes it on the embedded broker).
    v.check(
        counted <= acked as f64,
        format!(
            "{acked} refused messages were counted {counted} times: the broker redelivered them"
        ),
    );
    conclude(&fleet, &probe, start, v).await;
}

#[test]
fn finding_5_dead_letter_flood_mosquitto() {
    shared(|| dead_letters(BrokerKind::Mosquitto));
}

#[test]
fn finding_5_dead_letter_flood_embedded() {
    shared(|| dead_letters(BrokerKind::Embedded));
}

// ---- fair share: one gateway at 50× a normal gateway's rate ----------------------------------

const FLOOD_TIMES: u64 = 50;
const QUOTA_MESSAGES: &str = "fieldlink_cloud_quota_messages_total";
const SLOW_DOWNS: &str = "fieldlink_cloud_quota_slow_downs_total";

async fn flooding(kind: BrokerKind) {
    let (fleet, probe) = setup(kind).await;
    let mut v = Verdict::new(name(
        "fair share (one gateway at 50× the normal rate)",
        kind,
    ));
    let start = SystemTime::now();
    let a = attacker(&fleet, "fieldlink-mallory", &mut v).await;
    let f = flood(&a, ATTACKER, FLOOD_TIMES, Duration::from_secs(10)).await;
    v.figure(format!(
        "flood: {} messages, {} points in {:.1} s ({:.0} messages/s, {:.0} points/s); {:?}",
        f.messages,
        f.points,
        f.elapsed.as_secs_f64(),
        f.messages_per_s(),
        f.points_per_s(),
        a.counts()
    ));
    drop(a);
    // (d): the flood is shed and counted: the gateway's view in the API carries what was
    // dropped of it, /metrics the drops and the slow-down requests.
    let metrics = fleet.metrics().await;
    let dropped = metric_sum(&metrics, QUOTA_MESSAGES, &[("outcome", "dropped")]);
    let asked = metric_sum(&metrics, SLOW_DOWNS, &[]);
    let view = fleet.gateway(ATTACKER).await;
    let flagged = view["quota_dropped_messages"].as_i64().unwrap_or(0);
    v.figure(format!(
        "{QUOTA_MESSAGES}{{outcome=\"dropped\"}} {dropped}; {SLOW_DOWNS} {asked}; \
         quota_dropped_messages of {ATTACKER} in the API {flagged}"
    ));
    v.check(
        dropped > 0.0 && asked > 0.0,
        format!("/metrics: {dropped} messages dropped over quota, {asked} slow-downs sent"),
    );
    v.check(
        flagged > 0,
        format!("GET /api/v1/gateways/{ATTACKER} carries no quota drops: {view}"),
    );
    conclude(&fleet, &probe, start, v).await;
}

#[test]
fn flood_at_50x_the_normal_rate_mosquitto() {
    exclusive(|| flooding(BrokerKind::Mosquitto));
}

#[test]
fn flood_at_50x_the_normal_rate_embedded() {
    exclusive(|| flooding(BrokerKind::Embedded));
}
