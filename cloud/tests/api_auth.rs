//! Auth: each role against each route class (401 without a valid token, 403 below the class's
//! role), revocation, the token CLI, CORS.

mod api_support;

use api_support::*;
use fieldlink_cloud::api::ApiSettings;
use fieldlink_cloud::auth::cli::{self, TokenCommand};
use fieldlink_cloud::auth::{Cors, Role};
use fieldlink_cloud::store::StoreSpec;
use serde_json::json;

/// One route of each class: (method, path, least role).
const CLASSES: &[(&str, &str, Role)] = &[
    ("GET", "/api/v1/gateways", Role::Viewer),
    ("GET", "/api/v1/dead-letters", Role::Viewer),
    ("GET", "/api/v1/tokens", Role::Admin),
];

#[test]
fn each_role_against_each_route_class() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    rt().block_on(async {
        let s = serve(&spec, ApiSettings::default()).await;
        let mut tokens = Vec::new();
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            tokens.push((role, token(&s, role).await));
        }
        for &(method, path, least) in CLASSES {
            let r = request(s.addr, method, path, &[], None).await;
            assert_eq!(r.status, 401, "{path} without a token");
            assert_eq!(r.json()["code"], "unauthorized");
            let r = request(
                s.addr,
                method,
                path,
                &[("Authorization", "Bearer flk_00")],
                None,
            )
            .await;
            assert_eq!(r.status, 401, "{path} with an unknown token");
            let r = request(
                s.addr,
                method,
                path,
                &[("Authorization", "Basic YTpi")],
                None,
            )
            .await;
            assert_eq!(r.status, 401, "{path} with another scheme");
            for (role, secret) in &tokens {
                let auth = format!("Bearer {secret}");
                let r = request(s.addr, method, path, &[("Authorization", &auth)], None).await;
                if *role >= least {
                    assert_eq!(r.status, 200, "{role} on {path}: {:?}", r.json());
                } else {
                    assert_eq!(r.status, 403, "{role} on {path}");
                    assert_eq!(r.json()["code"], "forbidden");
                }
            }
        }
        // Creating and revoking tokens is admin-only too.
        let body = json!({"name": "dashboard", "role": "viewer"});
        for (role, secret) in &tokens {
            let auth = format!("Bearer {secret}");
            let r = request(
                s.addr,
                "POST",
                "/api/v1/tokens",
                &[("Authorization", &auth)],
                Some(&body),
            )
            .await;
            let want = if *role == Role::Admin { 201 } else { 403 };
            assert_eq!(r.status, want, "{role} creating a token");
        }
        // The document is public: a dashboard developer reads it before holding a token.
        let r = request(s.addr, "GET", "/api/v1/openapi.json", &[], None).await;
        assert_eq!(r.status, 200);
    });
}

#[test]
fn a_revoked_token_is_refused_at_once_and_only_hashes_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.db");
    let spec = StoreSpec::Sqlite { path: path.clone() };
    rt().block_on(async {
        let s = serve(&spec, ApiSettings::default()).await;
        let admin = token(&s, Role::Admin).await;
        let auth = format!("Bearer {admin}");
        let r = request(
            s.addr,
            "POST",
            "/api/v1/tokens",
            &[("Authorization", &auth)],
            Some(&json!({"name": "kiosk", "role": "viewer"})),
        )
        .await;
        assert_eq!(r.status, 201);
        let created = r.json();
        let secret = created["token"].as_str().unwrap().to_string();
        let id = created["info"]["token_id"].as_str().unwrap().to_string();
        assert_eq!(get(s.addr, "/api/v1/gateways", &secret).await.status, 200);

        let r = request(
            s.addr,
            "DELETE",
            &format!("/api/v1/tokens/{id}"),
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 204);
        assert_eq!(get(s.addr, "/api/v1/gateways", &secret).await.status, 401);
        let r = request(
            s.addr,
            "DELETE",
            &format!("/api/v1/tokens/{id}"),
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 404, "revoking twice");
        let listed = get(s.addr, "/api/v1/tokens", &admin).await.json();
        let kiosk = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["token_id"] == id.as_str())
            .unwrap();
        assert!(kiosk["revoked_at"].is_string());
        assert!(
            !listed.to_string().contains(&secret[4..]),
            "secrets are never listed"
        );

        // Bad bodies get the JSON error shape.
        let r = request(
            s.addr,
            "POST",
            "/api/v1/tokens",
            &[("Authorization", &auth)],
            Some(&json!({"name": "x", "role": "root"})),
        )
        .await;
        assert_eq!(r.status, 422);
        assert_eq!(r.json()["code"], "bad_request");
        drop(s);

        let conn = rusqlite::Connection::open(&path).unwrap();
        let stored: Vec<String> = conn
            .prepare("SELECT hash FROM api_tokens")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(stored.len(), 2);
        assert!(stored
            .iter()
            .all(|h| h.len() == 64 && !h.starts_with("flk_")));
        assert!(!stored.contains(&secret));
    });
}

#[test]
fn token_cli_creates_lists_and_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    rt().block_on(async {
        let mut out = Vec::new();
        cli::run(
            &spec,
            TokenCommand::Create {
                name: "ops".into(),
                role: Role::Operator,
            },
            &mut out,
        )
        .await
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let secret = text.lines().next().unwrap().to_string();
        assert!(secret.starts_with("flk_"));
        let id = text
            .split("token id ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string();

        let s = serve(&spec, ApiSettings::default()).await;
        assert_eq!(get(s.addr, "/api/v1/gateways", &secret).await.status, 200);
        assert_eq!(get(s.addr, "/api/v1/tokens", &secret).await.status, 403);

        let mut out = Vec::new();
        cli::run(&spec, TokenCommand::List, &mut out).await.unwrap();
        let listed = String::from_utf8(out).unwrap();
        assert!(listed.contains(&id) && listed.contains("operator") && listed.contains("valid"));
        assert!(!listed.contains(&secret));

        let mut out = Vec::new();
        cli::run(
            &spec,
            TokenCommand::Revoke {
                token_id: id.clone(),
            },
            &mut out,
        )
        .await
        .unwrap();
        assert_eq!(get(s.addr, "/api/v1/gateways", &secret).await.status, 401);
        assert!(cli::run(
            &spec,
            TokenCommand::Revoke { token_id: id },
            &mut Vec::new()
        )
        .await
        .is_err());
    });
}

#[test]
fn cors_answers_preflights_for_allowed_origins_only() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    rt().block_on(async {
        let settings = ApiSettings {
            cors: Cors {
                allowed_origins: vec!["https://dash.example".into()],
            },
            ..ApiSettings::default()
        };
        let s = serve(&spec, settings).await;
        let r = preflight(s.addr, "https://dash.example").await;
        assert_eq!(
            r.status, 204,
            "a preflight carries no token and must not meet auth"
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://dash.example")
        );
        assert!(r
            .header("access-control-allow-headers")
            .unwrap()
            .contains("authorization"));
        let r = preflight(s.addr, "https://evil.example").await;
        assert_eq!(r.header("access-control-allow-origin"), None);

        let viewer = token(&s, Role::Viewer).await;
        let auth = format!("Bearer {viewer}");
        let r = request(
            s.addr,
            "GET",
            "/api/v1/gateways",
            &[("Authorization", &auth), ("Origin", "https://dash.example")],
            None,
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://dash.example")
        );
        // A 401 carries the header too, so the browser shows the dashboard the real error.
        let r = request(
            s.addr,
            "GET",
            "/api/v1/gateways",
            &[("Origin", "https://dash.example")],
            None,
        )
        .await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://dash.example")
        );
    });
}

async fn preflight(addr: std::net::SocketAddr, origin: &str) -> Response {
    request(
        addr,
        "OPTIONS",
        "/api/v1/gateways",
        &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
        None,
    )
    .await
}
