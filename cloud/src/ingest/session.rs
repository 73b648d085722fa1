//! Noticing that another client took over the cloud's broker session.
//!
//! MQTT 3.1.1 lets a broker hold one connection per client id: when a second client connects
//! with the cloud's id, the broker closes the cloud's connection without a word (a v5 broker
//! would say "session taken over"; rumqttc's v4 client hears only the end of the stream). When
//! the cloud reconnects it takes the id back and the other client is closed in turn, so a client
//! that retries keeps both off the broker by turns, and with a persistent session of its own it
//! receives the messages meant for the cloud in between.
//!
//! The signal this module reads: **the broker ended an established connection, the very next
//! connection attempt was accepted at once, and the process's other connection to the same
//! broker (the command service's, [`SiblingCloses`]) was not ended with it.** A network outage
//! also ends the connection, but then the next attempt fails; a broker restart ends every
//! connection at once, the command service's too (a restart quicker than the first retry is
//! otherwise indistinguishable); a broker that stays up and closes only this connection had no
//! reason to but another client with its id (or an operator kicking it).
//! One such close is logged (WARN); [`TAKEN_OVER_AFTER`] of them within [`TAKEOVER_WINDOW`] are
//! reported as "session taken over" on `/health/ready` (ERROR in the log) until the window has
//! passed without another.
//!
//! The durable protection is the broker's: `docs/DEPLOY.md` ties each client id to its user, so
//! a gateway's credentials cannot connect under the cloud's id at all.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long a close counts towards a takeover.
pub const TAKEOVER_WINDOW: Duration = Duration::from_secs(60);

/// Closes within the window that are reported as a takeover.
pub const TAKEN_OVER_AFTER: usize = 2;

/// A reconnect accepted within this time of the close is "at once" (the event loop's first
/// retry comes after 100 ms).
pub const AT_ONCE: Duration = Duration::from_secs(3);

/// Closes of the two connections this far apart are one event (a broker restart).
pub const TOGETHER: Duration = Duration::from_secs(2);

/// When another connection of this process to the broker (the command service's) last ended,
/// recorded by its event loop.
#[derive(Debug, Clone, Default)]
pub struct SiblingCloses(Arc<Mutex<Option<Instant>>>);

impl SiblingCloses {
    /// The other connection just ended.
    pub fn record(&self) {
        if let Ok(mut t) = self.0.lock() {
            *t = Some(Instant::now());
        }
    }

    pub fn last(&self) -> Option<Instant> {
        self.0.lock().ok().and_then(|t| *t)
    }
}

/// What a successful connection tells about the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing unusual.
    Fine,
    /// The broker closed the last connection and accepted this one at once: another client
    /// probably connected with this client id. `count` such closes in the window.
    Kicked { count: usize },
}

/// Watches the connection's life for takeovers; fed by the event loop, read by readiness.
#[derive(Debug, Default)]
pub struct SessionWatch {
    /// When the broker ended the last established connection, if it did.
    closed_by_broker: Option<Instant>,
    kicks: VecDeque<Instant>,
}

impl SessionWatch {
    /// The broker ended an established connection (end of stream or reset).
    pub fn closed_by_broker(&mut self, now: Instant) {
        self.closed_by_broker = Some(now);
    }

    /// A connection attempt failed: whatever ended the last connection, the broker is not
    /// simply accepting us again.
    pub fn connect_failed(&mut self) {
        self.closed_by_broker = None;
    }

    /// A connection was accepted. `sibling_closed` is when the process's other connection to
    /// the broker last ended, if it did.
    pub fn connected(&mut self, now: Instant, sibling_closed: Option<Instant>) -> Verdict {
        self.expire(now);
        let Some(closed) = self.closed_by_broker.take() else {
            return Verdict::Fine;
        };
        if now.duration_since(closed) > AT_ONCE {
            return Verdict::Fine;
        }
        let together = |t: Instant| {
            let gap = if t > closed { t - closed } else { closed - t };
            gap <= TOGETHER
        };
        if sibling_closed.is_some_and(together) {
            // Both connections ended at once: the broker restarted or the network broke.
            return Verdict::Fine;
        }
        self.kicks.push_back(now);
        Verdict::Kicked {
            count: self.kicks.len(),
        }
    }

    /// Closes counted in the window ending `now`.
    #[cfg(test)]
    pub fn recent_kicks(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.kicks.len()
    }

    /// When the last counted close leaves the window.
    pub fn clears_at(&self) -> Option<Instant> {
        self.kicks.back().map(|k| *k + TAKEOVER_WINDOW)
    }

    fn expire(&mut self, now: Instant) {
        while self
            .kicks
            .front()
            .is_some_and(|k| now.duration_since(*k) >= TAKEOVER_WINDOW)
        {
            self.kicks.pop_front();
        }
    }
}

/// What is wrong with the broker connection besides being down, for `/health/ready`: a text,
/// current until a time.
#[derive(Debug, Clone, Default)]
pub struct BrokerProblem(Arc<Mutex<Option<(String, Instant)>>>);

impl BrokerProblem {
    /// Reports `text` until `until`.
    pub fn set(&self, text: String, until: Instant) {
        if let Ok(mut p) = self.0.lock() {
            *p = Some((text, until));
        }
    }

    /// The problem, while it is current.
    pub fn current(&self) -> Option<String> {
        let now = Instant::now();
        let p = self.0.lock().ok()?;
        match &*p {
            Some((text, until)) if now < *until => Some(text.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn closes_followed_by_an_accepted_reconnect_count_as_takeovers_for_a_minute() {
        let mut w = SessionWatch::default();
        assert_eq!(w.connected(Instant::now(), None), Verdict::Fine);
        // The broker closes us and takes us back 100 ms later: once, then twice.
        w.closed_by_broker(Instant::now());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(
            w.connected(Instant::now(), None),
            Verdict::Kicked { count: 1 }
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        w.closed_by_broker(Instant::now());
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(
            w.connected(Instant::now(), None),
            Verdict::Kicked { count: 2 }
        );
        assert_eq!(w.recent_kicks(Instant::now()), 2);
        // A minute after the last one, nothing is left.
        tokio::time::advance(TAKEOVER_WINDOW).await;
        assert_eq!(w.recent_kicks(Instant::now()), 0);
        assert_eq!(w.connected(Instant::now(), None), Verdict::Fine);
    }

    #[tokio::test(start_paused = true)]
    async fn a_broker_that_went_away_is_no_takeover() {
        let mut w = SessionWatch::default();
        // Closed, then refused (a restart): the accepted connection after it is fine.
        w.closed_by_broker(Instant::now());
        w.connect_failed();
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(w.connected(Instant::now(), None), Verdict::Fine);
        // Closed, and taken back only much later (a long outage with no refusal seen).
        w.closed_by_broker(Instant::now());
        tokio::time::advance(AT_ONCE + Duration::from_millis(1)).await;
        assert_eq!(w.connected(Instant::now(), None), Verdict::Fine);
        assert_eq!(w.recent_kicks(Instant::now()), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_that_ends_both_connections_is_no_takeover() {
        let mut w = SessionWatch::default();
        let sibling = SiblingCloses::default();
        w.closed_by_broker(Instant::now());
        sibling.record();
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(w.connected(Instant::now(), sibling.last()), Verdict::Fine);
        // The sibling's close long before ours is another event.
        tokio::time::advance(Duration::from_secs(30)).await;
        w.closed_by_broker(Instant::now());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(
            w.connected(Instant::now(), sibling.last()),
            Verdict::Kicked { count: 1 }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_problem_is_reported_until_its_time() {
        let p = BrokerProblem::default();
        assert_eq!(p.current(), None);
        p.set("taken over".into(), Instant::now() + Duration::from_secs(5));
        assert_eq!(p.current().as_deref(), Some("taken over"));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(p.current(), None);
    }
}
