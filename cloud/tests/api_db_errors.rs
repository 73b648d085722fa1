//! Database errors as the API reports them, from a real PostgreSQL and a real SQLite file: the
//! database refusing a value is a 422 with a code (regression: a NUL character in a gateway
//! name reached PostgreSQL and came back as 503 "the database did not answer"), a constraint a
//! 409, and only a database that cannot be reached, or does not answer in time, is a 503.

mod api_support;

use std::sync::Arc;

use api_support::rt;
use fieldlink_cloud::api::ApiError;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{Classify, Failure, Store, StoreSpec};

async fn migrated(spec: &StoreSpec) -> Arc<RecordsDb> {
    let store = Store::open(spec).await.expect("open store");
    store.migrate().await.expect("migrate");
    Arc::new(RecordsDb::open(spec).await.expect("open api db"))
}

const INSERT: &str = "INSERT INTO api_tokens (token_id, name, role, hash, created_at) \
                      VALUES ($1, $2, 'viewer', $3, 0)";

#[test]
fn postgres_refusing_a_value_is_422_and_a_lost_connection_503() {
    let mut pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL");
    let url = pg.create_database("dberrors").expect("create database");
    rt().block_on(async {
        let spec = StoreSpec::postgres(url, fieldlink_cloud::store::TimescaleMode::Off);
        let db = migrated(&spec).await;

        let e = db
            .execute(INSERT, vec!["t1".into(), "a\0b".into(), "h1".into()])
            .await
            .unwrap_err();
        assert!(
            matches!(e.failure(), Failure::Refused { ref code } if code.starts_with("22")),
            "{e}: {:?}",
            e.failure()
        );
        let api = ApiError::database(e);
        assert_eq!(api.status, 422);
        assert_eq!(api.body.code, "refused_by_database");

        db.execute(INSERT, vec!["t1".into(), "n".into(), "h1".into()])
            .await
            .unwrap();
        let e = db
            .execute(INSERT, vec!["t1".into(), "n".into(), "h2".into()])
            .await
            .unwrap_err();
        assert_eq!(
            e.failure(),
            Failure::Conflict {
                code: "23505".into()
            }
        );
        assert_eq!(ApiError::database(e).status, 409);

        let e = db
            .query("SELECT no_such_column FROM api_tokens", vec![])
            .await
            .unwrap_err();
        let api = ApiError::database(e);
        assert_eq!(api.status, 500);
        assert_eq!(api.body.code, "database_error");
        assert!(api.body.message.contains("42703"), "{}", api.body.message);

        // A call the database does not answer in time is unavailable (and the connection is
        // replaced, so the next call is answered).
        let mut slow = RecordsDb::open(&spec).await.unwrap();
        slow.set_timeout(std::time::Duration::from_millis(300));
        let e = slow.query("SELECT pg_sleep(5)", vec![]).await.unwrap_err();
        assert_eq!(e.failure(), Failure::Unavailable, "{e}");
        assert_eq!(ApiError::database(e).status, 503);
        assert_eq!(slow.query("SELECT 1", vec![]).await.unwrap().len(), 1);

        pg.stop();
        let e = db.query("SELECT 1", vec![]).await.unwrap_err();
        assert_eq!(e.failure(), Failure::Unavailable, "{e}");
        let api = ApiError::database(e);
        assert_eq!(
            (api.status.as_u16(), api.body.code.as_str()),
            (503, "unavailable")
        );
        // Reconnecting to a server that is gone is unavailable too, not internal.
        let e = db.query("SELECT 1", vec![]).await.unwrap_err();
        assert_eq!(e.failure(), Failure::Unavailable, "{e}");
    });
}

#[test]
fn sqlite_constraint_is_409() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("c.db"),
    };
    rt().block_on(async {
        let db = migrated(&spec).await;
        db.execute(INSERT, vec!["t1".into(), "n".into(), "h1".into()])
            .await
            .unwrap();
        let e = db
            .execute(INSERT, vec!["t1".into(), "n".into(), "h2".into()])
            .await
            .unwrap_err();
        assert!(matches!(e.failure(), Failure::Conflict { .. }), "{e}");
        assert_eq!(ApiError::database(e).status, 409);
    });
}

/// On PostgreSQL a records handle keeps several connections: a call waiting on a lock holds up
/// its own connection only, and the calls beside it (alert checks, command expiry, API reads)
/// are answered meanwhile. With one connection every one of them would queue behind it.
#[test]
fn a_call_waiting_on_a_lock_holds_up_only_its_own_connection() {
    let pg = fieldlink_testkit::Postgres::start().expect("start PostgreSQL");
    let url = pg.create_database("pool").expect("create database");
    rt().block_on(async {
        let spec = StoreSpec::postgres(url.clone(), fieldlink_cloud::store::TimescaleMode::Off);
        let db = migrated(&spec).await;
        let (holder, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect the lock holder");
        tokio::spawn(connection);
        holder
            .execute("SELECT pg_advisory_lock(7)", &[])
            .await
            .unwrap();
        let waiting = tokio::spawn({
            let db = db.clone();
            // A count: the records layer reads integers and text, not the lock's void.
            async move {
                db.query(
                    "SELECT count(*) FROM (SELECT pg_advisory_lock(7)) AS l",
                    vec![],
                )
                .await
            }
        });
        // Until the server shows the records handle's call waiting for the lock.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let row = holder
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                    &[],
                )
                .await
                .unwrap();
            if row.get::<_, i64>(0) == 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the call never waited"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        for i in 0..3 * fieldlink_cloud::records::PG_CONNECTIONS {
            assert_eq!(db.query("SELECT 1", vec![]).await.unwrap().len(), 1);
            db.execute(
                INSERT,
                vec![format!("t{i}").into(), "n".into(), format!("h{i}").into()],
            )
            .await
            .unwrap();
        }
        assert!(!waiting.is_finished(), "the lock is still held");
        holder
            .execute("SELECT pg_advisory_unlock(7)", &[])
            .await
            .unwrap();
        assert_eq!(waiting.await.unwrap().unwrap().len(), 1);
    });
}

/// A stored value the code cannot read is an error naming the table and the column (a 500),
/// never a silent default: an alert whose severity is not one the code knows was shown as
/// `info`, and a NULL time as 1970.
#[test]
fn an_unreadable_stored_value_is_named_not_defaulted() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("rows.db"),
    };
    rt().block_on(async {
        let db = migrated(&spec).await;
        let alerts = fieldlink_cloud::alerts::AlertRecords::new(db.clone());
        db.execute(
            "INSERT INTO alerts (alert_id, rule_id, gateway, device, metric, severity, status, \
             started_at, updated_at, last_value, kind) \
             VALUES ('a-1', 'r-1', 'gw-1', 'boiler', 'temp', 'critical', 'active', 1000, 2000, \
             '85.5', 'value')",
            vec![],
        )
        .await
        .unwrap();
        let a = alerts.alert("a-1").await.unwrap().expect("stored");
        assert_eq!((a.started_at_ms, a.last_value), (1000, Some(85.5)));

        // Each change breaks one column of the stored alert; reading it names that column.
        let read_after = |sql: &'static str| {
            let (db, alerts) = (db.clone(), alerts.clone());
            async move {
                db.execute(sql, vec![]).await.unwrap();
                alerts.alert("a-1").await.unwrap_err()
            }
        };
        let e = read_after("UPDATE alerts SET severity = 'apocalyptic'").await;
        assert_eq!(
            e.to_string(),
            "alerts.severity: cannot read \"apocalyptic\""
        );
        assert_eq!(e.failure(), Failure::Internal { code: None });
        assert_eq!(ApiError::database(e).status, 500);
        let e = read_after("UPDATE alerts SET severity = 'critical', last_value = 'warm'").await;
        assert_eq!(e.to_string(), "alerts.last_value: cannot read \"warm\"");
        // An integer column holding text.
        let e = read_after("UPDATE alerts SET last_value = NULL, updated_at = 'yesterday'").await;
        assert_eq!(
            e.to_string(),
            "alerts.updated_at: expected an integer, found text"
        );
    });
}
