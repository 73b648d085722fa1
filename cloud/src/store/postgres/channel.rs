//! PostgreSQL's LISTEN/NOTIFY on connections of their own, for the live fan-out between cloud
//! instances (the payloads and what they mean are `crate::ws::fanout`'s business).
//!
//! Neither side touches the store's connection: a notification never waits behind a write and
//! a write never waits behind a notification.
//!
//! What PostgreSQL guarantees, and what is built on it:
//! - A notification reaches only the sessions that are listening when its transaction
//!   commits. What is sent while a listener is reconnecting is never delivered to it: the
//!   listener reports each loss and, once listening again, how long it was not
//!   ([`ListenerEvent`]).
//! - The notifications of one transaction are delivered together, in the order they were sent,
//!   and transactions in commit order. [`NotifySender::send`] sends a list in one statement, so
//!   its payloads arrive in order and never interleaved with another sender's.
//! - A payload must be shorter than 8,000 bytes ([`MAX_PAYLOAD_BYTES`]); a longer one fails the
//!   whole statement.
//! - Identical payloads on one channel within one transaction are delivered once; payloads that
//!   carry a sequence number are never identical.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use fieldlink_plumbing::backoff::{Backoff, Schedule};
use futures::StreamExt;
use tokio_postgres::{AsyncMessage, Client, Statement};
use tokio_util::sync::CancellationToken;

/// Why a send failed or a listening connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Unreachable(#[from] super::Unreachable),
    #[error("{0} took longer than {1:?}")]
    Timeout(&'static str, Duration),
    #[error("the connection closed")]
    Closed,
}

/// Longest notification payload PostgreSQL accepts, in bytes (its limit is "shorter than
/// 8000").
pub const MAX_PAYLOAD_BYTES: usize = 7_999;

/// How long one send may take before its connection is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an idle listening connection is checked, and how long the check may take: a
/// connection that died without closing (a network cut) is noticed within their sum.
const HEARTBEAT: Duration = Duration::from_secs(10);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnection backoff of the listener: jittered, the ceiling doubled after each failed
/// attempt, reset once listening.
const RECONNECT: Schedule = Schedule::fixed(100, 5_000);

/// Sends notifications on a connection of its own, reconnecting on the next send after the
/// connection closed.
pub struct NotifySender {
    url: String,
    conn: Option<(Client, Statement)>,
}

impl NotifySender {
    /// Connects lazily, on the first send.
    pub fn new(url: &str) -> NotifySender {
        NotifySender {
            url: url.to_string(),
            conn: None,
        }
    }

    /// Sends every payload on `channel` in one statement (one transaction), in order. On an
    /// error the connection is dropped, and the next send opens a new one; whether any of the
    /// payloads went out is then unknown.
    pub async fn send(&mut self, channel: &str, payloads: &[String]) -> Result<(), ChannelError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let r = tokio::time::timeout(SEND_TIMEOUT, self.send_now(channel, payloads)).await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(ChannelError::Timeout("sending notifications", SEND_TIMEOUT))
            }
        }
    }

    async fn send_now(&mut self, channel: &str, payloads: &[String]) -> Result<(), ChannelError> {
        if self.conn.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            self.conn = None;
            let (client, connection) = super::connect(&self.url).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "notifying connection ended");
                }
            });
            let statement = client
                .prepare("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .await?;
            self.conn = Some((client, statement));
        }
        let (client, statement) = self.conn.as_ref().expect("connected just above");
        client.execute(statement, &[&channel, &payloads]).await?;
        Ok(())
    }
}

/// What the listening connection reports to its handler.
#[derive(Debug)]
pub enum ListenerEvent<'a> {
    /// `LISTEN` is in place. `gap` is how long nothing was listened to, from the moment the
    /// previous connection was found lost; `None` the first time.
    Listening { gap: Option<Duration> },
    /// The connection failed or was lost. `first` is true for the failure that began a gap
    /// and false for failed attempts to reconnect during it.
    Lost {
        error: &'a ChannelError,
        first: bool,
    },
    /// A notification on the channel, from any session (this process's too).
    Notification { payload: &'a str },
}

/// Listens on `channel` on a connection of its own until `stop` fires; reconnects with
/// exponential backoff whenever the connection is lost. `on` runs on this task for every
/// event, so it must not wait: notifications queue on the connection while it runs.
pub async fn listen(
    url: &str,
    channel: &str,
    stop: CancellationToken,
    mut on: impl FnMut(ListenerEvent<'_>),
) {
    let mut lost_at: Option<Instant> = None;
    let mut backoff = Backoff::jittered(RECONNECT);
    let mut ever = false;
    loop {
        let mut listened = false;
        let r = session(url, channel, &stop, &mut |ev| {
            if let ListenerEvent::Listening { .. } = ev {
                listened = true;
                // Failures before the first LISTEN are no gap: nothing was listened to yet.
                let since = lost_at.take();
                let gap = ever.then(|| since.map(|t| t.elapsed()).unwrap_or_default());
                ever = true;
                on(ListenerEvent::Listening { gap });
            } else {
                on(ev);
            }
        })
        .await;
        let error = match r {
            Ok(()) => return,
            Err(e) => e,
        };
        if listened {
            backoff.succeed();
        }
        let first = lost_at.is_none();
        lost_at.get_or_insert_with(Instant::now);
        on(ListenerEvent::Lost {
            error: &error,
            first,
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff.fail()) => {}
        }
    }
}

type Ping<'a> = Pin<
    Box<
        dyn Future<
                Output = Result<
                    Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error>,
                    tokio::time::error::Elapsed,
                >,
            > + Send
            + 'a,
    >,
>;

/// One connection: connect, `LISTEN`, then pass notifications on until the connection ends
/// (an error) or `stop` fires (`Ok`).
async fn session(
    url: &str,
    channel: &str,
    stop: &CancellationToken,
    on: &mut impl FnMut(ListenerEvent<'_>),
) -> Result<(), ChannelError> {
    let (client, mut connection) = tokio::select! {
        _ = stop.cancelled() => return Ok(()),
        c = super::connect(url) => c?,
    };
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    // The connection is driven only by polling `messages`, so the LISTEN and every heartbeat
    // run while it is polled.
    let listen_sql = format!("LISTEN \"{}\"", channel.replace('"', "\"\""));
    let listen = client.batch_execute(&listen_sql);
    tokio::pin!(listen);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = &mut listen => { r?; break; }
            m = messages.next() => {
                if let Some(n) = notification(m)? {
                    on(ListenerEvent::Notification { payload: n.payload() });
                }
            }
        }
    }
    on(ListenerEvent::Listening { gap: None });
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    let mut ping: Option<Ping<'_>> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = messages.next() => {
                if let Some(n) = notification(m)? {
                    on(ListenerEvent::Notification { payload: n.payload() });
                }
            }
            _ = beat.tick(), if ping.is_none() => {
                ping = Some(Box::pin(tokio::time::timeout(
                    HEARTBEAT_TIMEOUT,
                    client.simple_query("SELECT 1"),
                )));
            }
            r = async { ping.as_mut().expect("guarded by is_some").await }, if ping.is_some() => {
                ping = None;
                match r {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => return Err(ChannelError::Timeout("the heartbeat", HEARTBEAT_TIMEOUT)),
                }
            }
        }
    }
}

/// A message off the listening connection: a notification to pass on, nothing, or the end.
fn notification(
    m: Option<Result<AsyncMessage, tokio_postgres::Error>>,
) -> Result<Option<tokio_postgres::Notification>, ChannelError> {
    match m {
        Some(Ok(AsyncMessage::Notification(n))) => Ok(Some(n)),
        Some(Ok(AsyncMessage::Notice(notice))) => {
            tracing::debug!(notice = %notice, "notice on the listening connection");
            Ok(None)
        }
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(ChannelError::from(e)),
        None => Err(ChannelError::Closed),
    }
}
