//! Issue 14, finding 5: dead letters are bounded, on SQLite and on real PostgreSQL.
//!
//! - A row keeps at most the configured prefix of its payload, with the whole payload's size
//!   and SHA-256; a gateway's rows past its cap are deleted oldest first in the writing
//!   transaction (and counted by the outcome), other gateways' rows untouched; rows past their
//!   age are deleted by the store's expiry and by ingest's periodic upkeep.
//! - A database made by the previous version (migrations before 0210, rows with whole payloads)
//!   migrates forward: sizes recorded, hashes where the database can compute them, payloads cut
//!   to 4 KiB, gateways taken from the topic.
//! - The API's pages are bounded in bytes as well as rows, and a cursor walks all of them.

mod api_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use api_support::{get, serve, token};
use fieldlink_cloud::api::ApiSettings;
use fieldlink_cloud::auth::Role;
use fieldlink_cloud::metrics::Metrics;
use fieldlink_cloud::store::*;
use fieldlink_testkit::Postgres;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

const T0: i64 = 1_704_067_200_000;

fn letter(gw: &str, at: i64, payload: &[u8]) -> DeadLetter {
    DeadLetter::new(
        at,
        format!("fieldlink/v1/{gw}/telemetry"),
        "decode".into(),
        "not a batch".into(),
        payload,
    )
}

fn sha(payload: &[u8]) -> Option<[u8; 32]> {
    Some(sha2::Sha256::digest(payload).into())
}

async fn bounds(mut store: Store) {
    store.migrate().await.unwrap();
    store.set_dead_letter_limits(DeadLetterLimits {
        payload_bytes: 16,
        per_gateway: 3,
        retention: Duration::from_secs(86_400),
    });
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let out = store
        .write(WriteBatch {
            dead_letters: vec![letter("gw-2", T0, b"short")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(out.dead_letters_dropped, 0);
    // Five from gw-1 in two transactions: the cap keeps its newest three.
    let mut dropped = 0;
    for range in [0..2i64, 2..5] {
        let out = store
            .write(WriteBatch {
                dead_letters: range.map(|i| letter("gw-1", T0 + i, &big)).collect(),
                ..Default::default()
            })
            .await
            .unwrap();
        dropped += out.dead_letters_dropped;
    }
    assert_eq!(dropped, 2);
    let page = store.dead_letter_page(None, 0, 100).await.unwrap();
    let got: Vec<(&str, i64)> = page
        .iter()
        .map(|d| (d.letter.topic.as_str(), d.letter.received_ms))
        .collect();
    assert_eq!(
        got,
        vec![
            ("fieldlink/v1/gw-1/telemetry", T0 + 4),
            ("fieldlink/v1/gw-1/telemetry", T0 + 3),
            ("fieldlink/v1/gw-1/telemetry", T0 + 2),
            ("fieldlink/v1/gw-2/telemetry", T0),
        ]
    );
    let newest = &page[0].letter;
    assert_eq!(newest.payload, big[..16]);
    assert_eq!(newest.size, 10_000);
    assert_eq!(newest.sha256, sha(&big));
    let short = &page[3].letter;
    assert_eq!(
        (short.payload.as_slice(), short.size, short.sha256),
        (&b"short"[..], 5, sha(b"short"))
    );
    // The cursor continues below an id, the offset skips.
    let below = store
        .dead_letter_page(Some(page[1].id), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        below.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![page[2].id, page[3].id]
    );
    let skipped = store.dead_letter_page(None, 3, 100).await.unwrap();
    assert_eq!(skipped.len(), 1);
    // Age: only rows received before the limit go.
    assert_eq!(store.expire_dead_letters(T0 + 3).await.unwrap(), 2);
    let left = store.dead_letters(100).await.unwrap();
    assert_eq!(
        left.iter().map(|d| d.received_ms).collect::<Vec<_>>(),
        vec![T0 + 4, T0 + 3]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    })
    .await
    .unwrap();
    bounds(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_on_postgres() {
    let pg = Postgres::start().expect("start postgres (package postgresql)");
    let url = pg.create_database("dl").unwrap();
    let store = Store::open(&StoreSpec::postgres(url, TimescaleMode::Off))
        .await
        .unwrap();
    bounds(store).await;
}

/// The migration files of `dir` before version 0210 for `flavour` ("sqlite", or "plain" for
/// PostgreSQL without TimescaleDB), in order: (version, name, sql).
fn previous_version(dir: &str, flavour: &str) -> Vec<(i32, String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            !name.ends_with(".timescale.sql") && (flavour == "plain" || !name.contains(".plain."))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            let (num, name) = stem.split_once('_').unwrap();
            let version: i32 = num.parse().unwrap();
            (version < 210).then(|| {
                let name = name.trim_end_matches(".plain").to_string();
                (version, name, std::fs::read_to_string(&p).unwrap())
            })
        })
        .collect()
}

const OLD_TOPIC: &str = "fieldlink/v1/gw-old/telemetry";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_of_the_previous_version_migrates_forward() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.db");
    let old: Vec<u8> = vec![7u8; 100_000];
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
             mode TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        for (version, name, sql) in previous_version("sqlite", "sqlite") {
            conn.execute_batch(&sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 'sqlite', 0)",
                rusqlite::params![version, name],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, reason, detail, payload)
             VALUES (?1, ?2, 'decode', 'old', ?3)",
            rusqlite::params![T0, OLD_TOPIC, old],
        )
        .unwrap();
    }
    let store = Store::open(&StoreSpec::Sqlite { path }).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), vec![210]);
    let rows = store.dead_letter_page(None, 0, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    let d = &rows[0].letter;
    assert_eq!((d.payload.len(), d.size, d.sha256), (4_096, 100_000, None));
    assert_eq!(DeadLetter::gateway_bucket(&d.topic), "gw-old");
    // The migrated row counts against its gateway's cap like a new one.
    let mut store = store;
    store.set_dead_letter_limits(DeadLetterLimits {
        per_gateway: 1,
        ..Default::default()
    });
    let out = store
        .write(WriteBatch {
            dead_letters: vec![letter("gw-old", T0 + 1, b"new")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(out.dead_letters_dropped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_of_the_previous_version_migrates_forward() {
    let pg = Postgres::start().expect("start postgres (package postgresql)");
    let url = pg.create_database("old").unwrap();
    let old: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
    {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                 mode text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .unwrap();
        for (version, name, sql) in previous_version("postgres", "plain") {
            client.batch_execute(&sql).await.unwrap();
            client
                .execute(
                    "INSERT INTO schema_migrations (version, name, mode) VALUES ($1, $2, 'postgres')",
                    &[&version, &name],
                )
                .await
                .unwrap();
        }
        client
            .execute(
                "INSERT INTO dead_letters (received_at, topic, reason, detail, payload)
                 VALUES (now(), $1, 'decode', 'old', $2)",
                &[&OLD_TOPIC, &old],
            )
            .await
            .unwrap();
    }
    let store = Store::open(&StoreSpec::postgres(url, TimescaleMode::Auto))
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    assert_eq!(store.migrate().await.unwrap(), vec![210]);
    let rows = store.dead_letter_page(None, 0, 10).await.unwrap();
    let d = &rows[0].letter;
    assert_eq!((d.payload.len(), d.size), (4_096, 100_000));
    assert_eq!(d.payload, old[..4_096]);
    assert_eq!(d.sha256, sha(&old));
    assert_eq!(DeadLetter::gateway_bucket(&d.topic), "gw-old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pages_are_bounded_in_bytes_and_a_cursor_walks_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    let s = serve(&spec, ApiSettings::default()).await;
    // Written by ingest's store with the largest prefix: 64 KiB kept per row.
    let mut writer = Store::open(&spec).await.unwrap();
    writer.set_dead_letter_limits(DeadLetterLimits {
        payload_bytes: DeadLetter::MAX_PREFIX_BYTES,
        ..Default::default()
    });
    let payload = vec![0xabu8; 1_000_000];
    for i in 0..50 {
        writer
            .write(WriteBatch {
                dead_letters: vec![letter("gw-1", T0 + i, &payload)],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let t = token(&s, Role::Viewer).await;
    let mut path = "/api/v1/dead-letters?limit=1000".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = get(s.addr, &path, &t).await;
        assert_eq!(r.status, 200);
        // 1 MiB of payload (2 MiB of hex) and one row's worth more at most.
        assert!(
            r.body.len() < 2 * (1 << 20) + 3 * 65_536,
            "{}",
            r.body.len()
        );
        let v = r.json();
        let items = v["items"].as_array().unwrap();
        assert!(!items.is_empty() && items.len() <= 16, "{}", items.len());
        for it in items {
            assert_eq!(it["payload_size"], 1_000_000);
            assert_eq!(it["payload_truncated"], true);
            assert_eq!(it["payload_hex"].as_str().unwrap().len(), 2 * 65_536);
            seen.push(it["id"].as_i64().unwrap());
        }
        pages += 1;
        match v["next_before"].as_i64() {
            Some(b) => path = format!("/api/v1/dead-letters?limit=1000&before={b}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 50);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    assert!(pages >= 4, "{pages} pages");
}

#[tokio::test(start_paused = true)]
async fn ingest_upkeep_deletes_dead_letters_past_their_age_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000;
    store
        .write(WriteBatch {
            dead_letters: vec![
                letter("gw-1", now - 8 * day, b"old"),
                letter("gw-1", now - day, b"recent"),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::new());
    let stop = CancellationToken::new();
    let task = tokio::spawn(fieldlink_cloud::ingest::upkeep::expire_dead_letters(
        store.clone(),
        Duration::from_secs(7 * 86_400),
        metrics.clone(),
        stop.clone(),
    ));
    // The first pass runs at start.
    for _ in 0..200 {
        if store.dead_letters(10).await.unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = store.dead_letters(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].payload, b"recent");
    // A row that ages while the service runs goes at a later pass.
    store
        .write(WriteBatch {
            dead_letters: vec![letter("gw-1", now - 7 * day - 1, b"aged")],
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(fieldlink_cloud::ingest::upkeep::EXPIRY_INTERVAL).await;
    for _ in 0..200 {
        if store.dead_letters(10).await.unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.dead_letters(10).await.unwrap().len(), 1);
    assert!(metrics
        .render()
        .contains("fieldlink_cloud_dead_letters_dropped_total{reason=\"age\"} 2"));
    stop.cancel();
    task.await.unwrap();
}
