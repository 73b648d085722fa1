//! The WebSocket's hold on a token, with a real client against the real server (issue 14,
//! findings 7 and 8, and the token out of the URL): a revoked token's connections close — by
//! this instance at once, and by a revocation elsewhere on the shared database within the
//! check interval; subscriptions are capped per connection and per token with an error frame;
//! the token travels as a subprotocol (or a header), never in the URL.

mod api_support;

use std::time::{Duration, Instant};

use api_support::{request, rt, serve, ws_request, Served};
use fieldlink_cloud::api::ApiSettings;
use fieldlink_cloud::auth::{Role, TokenStore};
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::StoreSpec;
use fieldlink_cloud::ws::WsSettings;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &Served, token: &str) -> Ws {
    let (ws, resp) =
        tokio_tungstenite::connect_async(ws_request(&format!("ws://{}/api/v1/ws", s.addr), token))
            .await
            .expect("the WebSocket connects");
    // The server names the protocol, never the token back.
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("fieldlink.v1")
    );
    ws
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn subscribe(ws: &mut Ws, sub: Value) -> Value {
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();
    next_json(ws).await
}

/// Waits for the server's close frame; returns its code, reason and how long it took.
async fn closed(ws: &mut Ws) -> (CloseCode, String, Duration) {
    let started = Instant::now();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("closed within 10 s");
        match m {
            Some(Ok(Message::Close(Some(f)))) => {
                return (f.code, f.reason.to_string(), started.elapsed())
            }
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                panic!("closed without the reason")
            }
            Some(Ok(_)) => {}
        }
    }
}

fn sqlite(dir: &tempfile::TempDir) -> StoreSpec {
    StoreSpec::Sqlite {
        path: dir.path().join("cloud.db"),
    }
}

#[test]
fn a_revoked_tokens_websockets_close_here_at_once_and_from_elsewhere_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sqlite(&dir);
    rt().block_on(async {
        let s = serve(&spec, ApiSettings::default()).await;
        let admin = api_support::token(&s, Role::Admin).await;
        let (info, viewer) = s.state.tokens.create("dash", Role::Viewer).await.unwrap();
        let mut a = connect(&s, &viewer).await;
        let mut b = connect(&s, &viewer).await;
        assert_eq!(
            subscribe(&mut a, json!({"type": "subscribe", "topic": "alerts"})).await["type"],
            "subscribed"
        );
        let auth = format!("Bearer {admin}");
        let r = request(
            s.addr,
            "DELETE",
            &format!("/api/v1/tokens/{}", info.token_id),
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 204);
        for ws in [&mut a, &mut b] {
            let (code, reason, took) = closed(ws).await;
            assert_eq!(
                (code, reason.as_str()),
                (CloseCode::Policy, "token revoked")
            );
            println!("revoked through this instance's API: closed after {took:?}");
        }

        // Revoked by someone else on the same database (another instance, or
        // `fieldlink-cloud token revoke`): seen by the periodic check.
        let (info, viewer) = s.state.tokens.create("dash 2", Role::Viewer).await.unwrap();
        let mut c = connect(&s, &viewer).await;
        let elsewhere = TokenStore::new(std::sync::Arc::new(RecordsDb::open(&spec).await.unwrap()));
        assert!(elsewhere.revoke(&info.token_id).await.unwrap());
        let (code, reason, took) = closed(&mut c).await;
        assert_eq!(
            (code, reason.as_str()),
            (CloseCode::Policy, "token revoked")
        );
        println!("revoked elsewhere: closed after {took:?}");
        assert_eq!(s.state.counters.ws_closed_revoked.get(), 3);
        // And it cannot connect again.
        let e = tokio_tungstenite::connect_async(ws_request(
            &format!("ws://{}/api/v1/ws", s.addr),
            &viewer,
        ))
        .await;
        match e {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status().as_u16(), 401)
            }
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    });
}

#[test]
fn subscriptions_are_capped_per_connection_and_per_token() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let settings = ApiSettings {
            websocket: WsSettings {
                max_subscriptions_per_connection: 3,
                max_subscriptions_per_token: 5,
                ..WsSettings::default()
            },
            ..ApiSettings::default()
        };
        let s = serve(&sqlite(&dir), settings).await;
        let t = api_support::token(&s, Role::Viewer).await;
        let other = s
            .state
            .tokens
            .create("other", Role::Viewer)
            .await
            .unwrap()
            .1;
        let sub = |g: &str| json!({"type": "subscribe", "topic": "telemetry", "gateway": g});

        let mut a = connect(&s, &t).await;
        for g in ["g1", "g2", "g3"] {
            assert_eq!(subscribe(&mut a, sub(g)).await["type"], "subscribed");
        }
        // A repeat holds nothing more.
        assert_eq!(subscribe(&mut a, sub("g1")).await["type"], "subscribed");
        let r = subscribe(&mut a, sub("g4")).await;
        assert_eq!(
            (r["type"].as_str(), r["code"].as_str(), r["limit"].as_u64()),
            (Some("error"), Some("too_many_subscriptions"), Some(3)),
            "{r}"
        );
        // The connection stays open and usable.
        assert_eq!(
            subscribe(&mut a, json!({"type": "unsubscribe", "topic": "alerts"})).await["type"],
            "unsubscribed"
        );

        let mut b = connect(&s, &t).await;
        for g in ["g1", "g2"] {
            assert_eq!(subscribe(&mut b, sub(g)).await["type"], "subscribed");
        }
        let r = subscribe(&mut b, sub("g3")).await;
        assert_eq!(
            (r["code"].as_str(), r["limit"].as_u64()),
            (Some("too_many_subscriptions"), Some(5)),
            "{r}"
        );

        // Another token has its own allowance.
        let mut c = connect(&s, &other).await;
        assert_eq!(subscribe(&mut c, sub("g1")).await["type"], "subscribed");

        // A filter part that is no identifier is refused, and costs nothing.
        let r = subscribe(&mut c, sub(&"x".repeat(65))).await;
        assert_eq!(r["code"], "bad_filter", "{r}");

        // Unsubscribing, and closing, give the token's allowance back.
        assert_eq!(
            subscribe(&mut a, json!({"type": "unsubscribe", "topic": "telemetry"})).await["type"],
            "unsubscribed"
        );
        assert_eq!(subscribe(&mut b, sub("g3")).await["type"], "subscribed");
        drop(b);
        // The server sees the close a moment later: retry until the share is back.
        let mut d = connect(&s, &t).await;
        let mut took = 0;
        for g in ["h1", "h2", "h3"] {
            for _ in 0..50 {
                let r = subscribe(&mut d, sub(g)).await;
                if r["type"] == "subscribed" {
                    took += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert_eq!(
            took, 3,
            "the closed connection's subscriptions were not given back"
        );
        assert!(s.state.counters.ws_subscriptions_refused.get() >= 2);
    });
}

#[test]
fn the_token_is_read_from_a_header_or_a_subprotocol_never_the_url() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = serve(&sqlite(&dir), ApiSettings::default()).await;
        let t = api_support::token(&s, Role::Viewer).await;
        match tokio_tungstenite::connect_async(format!("ws://{}/api/v1/ws?token={t}", s.addr)).await
        {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status().as_u16(), 401);
                let body =
                    String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into_owned();
                assert!(body.contains("fieldlink.bearer."), "{body}");
            }
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{}/api/v1/ws", s.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("a header still works for clients that can set one");
        assert_eq!(
            subscribe(&mut ws, json!({"type": "subscribe", "topic": "alerts"})).await["type"],
            "subscribed"
        );
        let mut ws = connect(&s, &t).await;
        assert_eq!(
            subscribe(&mut ws, json!({"type": "subscribe", "topic": "alerts"})).await["type"],
            "subscribed"
        );
    });
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Regression (finding 7): 10,000 subscribes on one connection added 304 MB. At the default
/// cap, 256 are held and the rest refused; the resident growth of this process (server and
/// client) is printed for the record.
#[test]
fn ten_thousand_subscribes_hold_only_the_default_cap() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = serve(&sqlite(&dir), ApiSettings::default()).await;
        let t = api_support::token(&s, Role::Viewer).await;
        let mut ws = connect(&s, &t).await;
        let before = rss_kib();
        let (mut held, mut refused) = (0, 0);
        for i in 0..10_000 {
            let r = subscribe(
                &mut ws,
                json!({"type": "subscribe", "topic": "telemetry", "gateway": format!("gw-{i}"),
                    "device": "meter", "metric": "power"}),
            )
            .await;
            match (r["type"].as_str(), r["code"].as_str()) {
                (Some("subscribed"), _) => held += 1,
                (Some("error"), Some("too_many_subscriptions")) => refused += 1,
                other => panic!("{other:?}: {r}"),
            }
        }
        assert_eq!((held, refused), (256, 9_744));
        println!(
            "10,000 subscribes: 256 held, 9,744 refused; RSS {} -> {} KiB",
            before,
            rss_kib()
        );
    });
}
