//! The CLI's tables escape what the database holds (issue 14, finding 6: `token list` printed
//! names raw, so a name could clear the screen or forge a line). Names with control characters
//! are written straight into the store, as an older version or a direct write could have left
//! them (the API refuses them now), then listed by the real binary.

mod api_support;

use std::process::Command;
use std::sync::Arc;

use api_support::rt;
use fieldlink_cloud::auth::{Role, TokenStore};
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::{Store, StoreSpec};
use fieldlink_protocol::Ident;

const EVIL: &str = "evil\u{1b}[2J\u{1b}[31m\nadmin token created\tfor\u{202e}you";

fn list(db: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldlink-cloud"))
        .env_remove("FIELDLINK_CLOUD_CONFIG")
        .env("FIELDLINK_CLOUD__DATABASE__SQLITE_PATH", db)
        .args(args)
        .output()
        .expect("run fieldlink-cloud");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn assert_escaped(table: &str, rows: usize) {
    assert!(!table.contains('\u{1b}'), "raw escape in {table:?}");
    assert!(!table.contains('\u{202e}'), "raw override in {table:?}");
    assert_eq!(table.lines().count(), rows, "{table:?}");
    assert!(
        table.contains("evil\\u{1b}[2J\\u{1b}[31m\\nadmin token created\\tfor\\u{202e}you"),
        "{table:?}"
    );
}

#[test]
fn token_and_gateway_lists_escape_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.db");
    let spec = StoreSpec::Sqlite { path: path.clone() };
    rt().block_on(async {
        let store = Store::open(&spec).await.unwrap();
        store.migrate().await.unwrap();
        let tokens = TokenStore::new(Arc::new(RecordsDb::open(&spec).await.unwrap()));
        tokens.create("ops", Role::Operator).await.unwrap();
        tokens.create(EVIL, Role::Admin).await.unwrap();
        store
            .register(&Ident::new("gw-1").unwrap(), Some(EVIL))
            .await
            .unwrap();
    });
    let tokens = list(&path, &["token", "list"]);
    assert_escaped(&tokens, 2);
    // Each row still has its five columns.
    assert!(
        tokens.lines().all(|l| l.split('\t').count() == 5),
        "{tokens:?}"
    );
    let gateways = list(&path, &["gateway", "list"]);
    assert_escaped(&gateways, 1);
    assert_eq!(gateways.split('\t').count(), 5, "{gateways:?}");
}
