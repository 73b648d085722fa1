//! LISTEN/NOTIFY on a real PostgreSQL, as the live fan-out uses it:
//! - a list of payloads sent in one statement arrives whole and in order; 7,999 bytes is the
//!   longest payload PostgreSQL takes, one byte more fails the statement and nothing of it is
//!   delivered;
//! - a listener started while the database is down reports failures but no gap (nothing was
//!   listened to yet), then listens; after a restart it reports one loss, one gap, and
//!   listens again; a sender reconnects on its own.

mod api_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_support::{eventually, rt};
use fieldlink_cloud::store::pg_channel::{self, ListenerEvent, NotifySender, MAX_PAYLOAD_BYTES};
use tokio_util::sync::CancellationToken;

/// What a listener reported, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Listening { gap: bool },
    Lost { first: bool },
    Payload(String),
}

fn start_listener(url: String, stop: CancellationToken) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = seen.clone();
    tokio::spawn(async move {
        pg_channel::listen(&url, "test_live", stop, |ev| {
            into.lock().unwrap().push(match ev {
                ListenerEvent::Listening { gap } => Seen::Listening { gap: gap.is_some() },
                ListenerEvent::Lost { first, .. } => Seen::Lost { first },
                ListenerEvent::Notification { payload } => Seen::Payload(payload.to_string()),
            })
        })
        .await
    });
    seen
}

fn payloads(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|s| match s {
            Seen::Payload(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn payloads_in_order_the_size_limit_and_gaps_across_restarts() {
    let mut pg =
        fieldlink_testkit::Postgres::start().expect("start PostgreSQL (package postgresql)");
    let url = pg.create_database("channel").unwrap();
    pg.stop();
    rt().block_on(async {
        let stop = CancellationToken::new();
        let seen = start_listener(url.clone(), stop.clone());
        eventually(10, "failures while the database is down", || async {
            (seen.lock().unwrap().len() >= 2).then_some(())
        })
        .await;
        tokio::task::block_in_place(|| pg.restart()).unwrap();
        eventually(30, "listening", || async {
            seen.lock()
                .unwrap()
                .contains(&Seen::Listening { gap: false })
                .then_some(())
        })
        .await;
        {
            let s = seen.lock().unwrap();
            let (last, before) = s.split_last().unwrap();
            assert_eq!(*last, Seen::Listening { gap: false });
            assert_eq!(before[0], Seen::Lost { first: true });
            assert!(before[1..]
                .iter()
                .all(|e| *e == Seen::Lost { first: false }));
        }

        let mut sender = NotifySender::new(&url);
        let sent: Vec<String> = (0..50).map(|i| format!("payload {i}")).collect();
        sender.send("test_live", &sent).await.unwrap();
        let longest = "x".repeat(MAX_PAYLOAD_BYTES);
        sender
            .send("test_live", std::slice::from_ref(&longest))
            .await
            .unwrap();
        let too_long = ["before".to_string(), "x".repeat(MAX_PAYLOAD_BYTES + 1)];
        assert!(sender.send("test_live", &too_long).await.is_err());
        sender
            .send("test_live", &["after".to_string()])
            .await
            .unwrap();
        let mut want = sent.clone();
        want.push(longest);
        want.push("after".into());
        let got = eventually(10, "every payload", || async {
            let p = payloads(&seen);
            (p.len() >= want.len()).then_some(p)
        })
        .await;
        assert_eq!(got, want, "in order; nothing of the failed statement");

        // A restart: one loss, then listening again with a gap; the sender reconnects.
        tokio::task::block_in_place(|| pg.restart()).unwrap();
        eventually(30, "listening again", || async {
            seen.lock()
                .unwrap()
                .contains(&Seen::Listening { gap: true })
                .then_some(())
        })
        .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Err(e) = sender.send("test_live", &["again".to_string()]).await {
            assert!(
                std::time::Instant::now() < deadline,
                "the sender did not reconnect: {e}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eventually(10, "a payload after the restart", || async {
            payloads(&seen).contains(&"again".to_string()).then_some(())
        })
        .await;
        let events: Vec<Seen> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| !matches!(s, Seen::Payload(_)))
            .cloned()
            .collect();
        let after_first = events
            .iter()
            .position(|e| *e == Seen::Listening { gap: false })
            .unwrap();
        let restart = &events[after_first + 1..];
        assert_eq!(restart[0], Seen::Lost { first: true }, "{events:?}");
        assert_eq!(
            restart.last(),
            Some(&Seen::Listening { gap: true }),
            "{events:?}"
        );
        assert!(
            restart[1..restart.len() - 1]
                .iter()
                .all(|e| *e == Seen::Lost { first: false }),
            "{events:?}"
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| **e == Seen::Listening { gap: true })
                .count(),
            1
        );
        stop.cancel();
    });
}
