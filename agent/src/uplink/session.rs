//! The uplink's MQTT session as a pure state machine: events in, actions out, no I/O.
//!
//! The adapter in [`super`] owns rumqttc's event loop and the journal. It feeds this machine
//! what happened (a CONNACK, a lost connection, a written publish, a PUBACK, an incoming
//! publish, the passing of time) and carries out the actions it returns, in order. Everything
//! that decides *what* to do lives here and is tested without a broker:
//!
//! ```text
//!            attempt due                CONNACK accepted
//!   Down ───────────────▶ Connecting ───────────────────▶ Up
//!    ▲  ▲                    │ failed, refused,            │ lost, bookkeeping broken
//!    │  └────────────────────┘ or timed out: backoff       │ backoff
//!    └─────────────────────────────────────────────────────┘
//! ```
//!
//! - One attempt at a time, and each runs to its own timeout: nothing else the agent does
//!   abandons it. Every attempt's outcome is reported once, with its duration and cause; every
//!   failure, a timeout included, backs off with jitter.
//! - On every CONNACK, in this order: forget what the last connection left (rumqttc's resend
//!   queue, the window), requeue the journal's in-flight batches, subscribe to commands and flow
//!   control, publish the birth. The journal then resends everything not acknowledged, with new
//!   packet ids, after the birth, so aliased telemetry always follows the birth it names.
//! - On every loss: forget, and back off. Nothing is acknowledged in the journal but on the
//!   PUBACK of the very publish that carried it (see [`super::window`]).
//! - A command is delivered with the connection it came on; its PUBACK is sent only on that
//!   connection (after a reconnect the broker redelivers it instead).

use std::time::Duration;

use fieldlink_buffer::BatchId;
use fieldlink_plumbing::backoff::Backoff;
use tokio::time::Instant;

use super::pace::Pace;
use super::window::{Tag, Window, WindowError};

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not connected; the next attempt starts at `retry_at`.
    Down { retry_at: Instant },
    /// An attempt is under way since `since`.
    Connecting { since: Instant },
    /// Connected (CONNACK accepted) since `since`.
    Up { since: Instant },
}

/// What happened, as the adapter saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// The broker accepted the connection.
    ConnAck {
        session_present: bool,
    },
    /// The broker answered the CONNECT with a refusal.
    Refused {
        code: String,
    },
    /// The attempt or the connection failed.
    Failed {
        cause: String,
    },
    /// rumqttc wrote our next publish with this packet id.
    Written(u16),
    /// rumqttc found this packet id still unacknowledged when it wanted to reuse it.
    AwaitAck(u16),
    PubAck(u16),
    /// A publish from the broker on one of our subscriptions.
    Incoming {
        topic: &'a str,
        pkid: u16,
        payload: &'a [u8],
    },
}

/// How a connection attempt or a connection ended, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Connected {
        attempt: u32,
        took: Duration,
        session_present: bool,
    },
    AttemptFailed {
        attempt: u32,
        took: Duration,
        cause: String,
        retry_in: Duration,
    },
    Lost {
        after: Duration,
        cause: String,
        retry_in: Duration,
    },
    SlowDown {
        points_per_s: u32,
        messages_per_s: u32,
        for_ms: u64,
    },
    ControlUndecodable(String),
    PaceLapsed,
    /// The cloud announced the layouts it reads; telemetry goes out in these versions.
    Layouts(Layouts),
}

/// What the adapter must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a connection attempt and drive it, uninterrupted, for at most `timeout`.
    Connect {
        timeout: Duration,
    },
    /// Forget whatever rumqttc would resend or report from the last connection (which is
    /// gone, or has just been replaced by a new one).
    Forget,
    /// Drop the connection, which can no longer be trusted, then forget as above.
    Drop,
    /// Ask the journal to hand out again every batch in flight.
    Requeue,
    Subscribe(Subscription),
    /// Publish the birth (the adapter encodes it and calls [`Session::queued`]).
    PublishBirth,
    PubAck(u16),
    /// The broker has this batch: delete it from the journal.
    AckBatch(BatchId),
    /// Hand a command to the command task with the connection it came on.
    Deliver {
        payload: Vec<u8>,
        pkid: u16,
        connection: u64,
    },
    Report(Report),
}

/// The topics the session subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    Commands,
    Control,
}

/// The telemetry layout versions the agent writes, by encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layouts {
    pub binary: u8,
    pub json: u8,
}

impl Layouts {
    /// What every cloud since aliasing reads: sent before the cloud says more.
    pub const BASELINE: Layouts = Layouts {
        binary: fieldlink_protocol::binary::VERSION_ALIASED,
        json: 1,
    };

    /// The newest layouts both this agent and a cloud reading `binary` and `json` know, never
    /// below the baseline (a cloud that lists only older layouts still reads those).
    fn agreed(binary: &[u8], json: &[u8]) -> Layouts {
        let newest = |ours: &[u8], theirs: &[u8], baseline: u8| {
            ours.iter()
                .copied()
                .filter(|v| theirs.contains(v))
                .max()
                .unwrap_or(baseline)
        };
        Layouts {
            binary: newest(
                &[fieldlink_protocol::binary::VERSION_PACKED],
                binary,
                Self::BASELINE.binary,
            ),
            json: newest(
                &[fieldlink_protocol::json::VERSION_ALIASED],
                json,
                Self::BASELINE.json,
            ),
        }
    }
}

/// The session's settings.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub connect_timeout: Duration,
    pub max_in_flight: usize,
    pub cmd_topic: String,
    pub control_topic: String,
}

pub struct Session {
    settings: SessionSettings,
    phase: Phase,
    backoff: Backoff,
    /// Attempts since the last CONNACK, the current one included.
    attempt: u32,
    /// Incremented on every CONNACK: a PUBACK for a command is valid only on its connection.
    connection: u64,
    window: Window,
    pace: Option<Pace>,
    /// The newest layouts the cloud said, on this connection, that it reads.
    layouts: Layouts,
}

/// How much the adapter may publish from the journal now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Up to this many more batches, each of at most `max_points` points (None: no bound
    /// beyond the configured batch size).
    Send {
        batches: usize,
        max_points: Option<usize>,
    },
    /// Not now: the window is full or the session is not up.
    Full,
    /// The pace the cloud asked for holds the next batch back until then.
    PacedUntil(Instant),
}

impl Session {
    /// A session that makes its first attempt at `now`.
    pub fn new(settings: SessionSettings, backoff: Backoff, now: Instant) -> Session {
        Session {
            settings,
            phase: Phase::Down { retry_at: now },
            backoff,
            attempt: 0,
            connection: 0,
            window: Window::default(),
            pace: None,
            layouts: Layouts::BASELINE,
        }
    }

    /// The layout versions to write telemetry in: binary version 2 (aliased) and JSON version
    /// 1 (named), which every cloud reads, until the cloud announces on this connection that
    /// it reads newer ones.
    pub fn layouts(&self) -> Layouts {
        self.layouts
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn is_up(&self) -> bool {
        matches!(self.phase, Phase::Up { .. })
    }

    pub fn connection(&self) -> u64 {
        self.connection
    }

    pub fn window(&self) -> &Window {
        &self.window
    }

    /// When [`Session::on_time`] has something to do next (an attempt due, an attempt timing
    /// out), if anything.
    pub fn next_timer(&self) -> Option<Instant> {
        match self.phase {
            Phase::Down { retry_at } => Some(retry_at),
            Phase::Connecting { since } => Some(since + self.settings.connect_timeout),
            Phase::Up { .. } => None,
        }
    }

    /// The passing of time: starts a due attempt, gives up one that ran out of time.
    pub fn on_time(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Down { retry_at } if now >= retry_at => {
                self.attempt = self.attempt.saturating_add(1);
                self.phase = Phase::Connecting { since: now };
                vec![Action::Connect {
                    timeout: self.settings.connect_timeout,
                }]
            }
            Phase::Connecting { since } if now >= since + self.settings.connect_timeout => self
                .attempt_failed(
                    now,
                    format!(
                        "no CONNACK within {} s",
                        self.settings.connect_timeout.as_secs_f64()
                    ),
                ),
            _ => Vec::new(),
        }
    }

    /// What the adapter saw, at `now`.
    pub fn on_event(&mut self, event: Event<'_>, now: Instant) -> Vec<Action> {
        match event {
            Event::ConnAck { session_present } => self.connected(session_present, now),
            Event::Refused { code } => {
                self.attempt_failed(now, format!("the broker refused the connection: {code}"))
            }
            Event::Failed { cause } => match self.phase {
                Phase::Up { since } => self.lost(now, since, cause, false),
                Phase::Connecting { .. } => self.attempt_failed(now, cause),
                Phase::Down { .. } => Vec::new(),
            },
            Event::Written(pkid) => {
                let r = self.window.written(pkid);
                self.bookkeeping(r, now)
            }
            Event::AwaitAck(pkid) => self.bookkeeping(Err(WindowError::Reused(pkid)), now),
            Event::PubAck(pkid) => match self.window.acked(pkid) {
                Some(Tag::Batch(id)) => vec![Action::AckBatch(id)],
                _ => Vec::new(),
            },
            Event::Incoming {
                topic,
                pkid,
                payload,
            } => self.incoming(topic, pkid, payload, now),
        }
    }

    /// A command's delivery is journaled: its PUBACK, if its connection is still the current one.
    pub fn acknowledge(&self, connection: u64, pkid: u16) -> Option<Action> {
        (self.is_up() && connection == self.connection).then_some(Action::PubAck(pkid))
    }

    /// What may be published from the journal now.
    pub fn budget(&mut self, now: Instant) -> (Budget, Vec<Action>) {
        let mut reports = Vec::new();
        if !self.is_up() || self.window.batches() >= self.settings.max_in_flight {
            return (Budget::Full, reports);
        }
        let batches = self.settings.max_in_flight - self.window.batches();
        if self.pace.as_ref().is_some_and(|p| !p.active(now)) {
            self.pace = None;
            reports.push(Action::Report(Report::PaceLapsed));
        }
        let budget = match &mut self.pace {
            None => Budget::Send {
                batches,
                max_points: None,
            },
            Some(p) => {
                let at = p.next_send(now);
                if at > now {
                    Budget::PacedUntil(at)
                } else {
                    Budget::Send {
                        batches: 1,
                        max_points: Some(p.max_batch_points().max(1)),
                    }
                }
            }
        };
        (budget, reports)
    }

    /// A publish was queued with rumqttc: `tag` says what it carries, `points` its telemetry.
    pub fn queued(&mut self, tag: Tag, points: u64, now: Instant) {
        self.window.queued(tag);
        if let (Tag::Batch(_), Some(p)) = (tag, &mut self.pace) {
            p.spend(points, now);
        }
    }

    fn connected(&mut self, session_present: bool, now: Instant) -> Vec<Action> {
        let Phase::Connecting { since } = self.phase else {
            // A CONNACK outside an attempt cannot be trusted to belong to anything we track.
            return self.lost(
                now,
                now,
                "a CONNACK outside a connection attempt".into(),
                true,
            );
        };
        let attempt = self.attempt;
        self.attempt = 0;
        self.backoff.succeed();
        self.connection += 1;
        self.window.clear();
        // The cloud behind this connection may be another (older) one: it must say again.
        self.layouts = Layouts::BASELINE;
        self.phase = Phase::Up { since: now };
        vec![
            Action::Report(Report::Connected {
                attempt,
                took: now.duration_since(since),
                session_present,
            }),
            Action::Forget,
            Action::Requeue,
            Action::Subscribe(Subscription::Commands),
            Action::Subscribe(Subscription::Control),
            Action::PublishBirth,
        ]
    }

    fn attempt_failed(&mut self, now: Instant, cause: String) -> Vec<Action> {
        let took = match self.phase {
            Phase::Connecting { since } => now.duration_since(since),
            _ => Duration::ZERO,
        };
        let retry_in = self.backoff.fail();
        self.window.clear();
        self.phase = Phase::Down {
            retry_at: now + retry_in,
        };
        vec![
            Action::Forget,
            Action::Report(Report::AttemptFailed {
                attempt: self.attempt,
                took,
                cause,
                retry_in,
            }),
        ]
    }

    /// The connection is gone (`drop`: it must be dropped first).
    fn lost(&mut self, now: Instant, since: Instant, cause: String, drop: bool) -> Vec<Action> {
        let retry_in = self.backoff.fail();
        self.window.clear();
        self.phase = Phase::Down {
            retry_at: now + retry_in,
        };
        vec![
            if drop { Action::Drop } else { Action::Forget },
            Action::Report(Report::Lost {
                after: now.duration_since(since),
                cause,
                retry_in,
            }),
        ]
    }

    fn bookkeeping(&mut self, r: Result<(), WindowError>, now: Instant) -> Vec<Action> {
        match (r, self.phase) {
            (Ok(()), _) => Vec::new(),
            (Err(e), Phase::Up { since }) => {
                self.lost(now, since, format!("publish bookkeeping broken: {e}"), true)
            }
            (Err(_), _) => Vec::new(),
        }
    }

    fn incoming(&mut self, topic: &str, pkid: u16, payload: &[u8], now: Instant) -> Vec<Action> {
        if topic == self.settings.cmd_topic {
            // Acknowledged once the command task has journaled it.
            return vec![Action::Deliver {
                payload: payload.to_vec(),
                pkid,
                connection: self.connection,
            }];
        }
        let mut out = Vec::new();
        if topic == self.settings.control_topic {
            match fieldlink_protocol::json::decode::<fieldlink_protocol::Control>(payload) {
                Ok(fieldlink_protocol::Control::SlowDown {
                    points_per_s,
                    messages_per_s,
                    for_ms,
                }) => {
                    if self.pace.is_none() {
                        out.push(Action::Report(Report::SlowDown {
                            points_per_s,
                            messages_per_s,
                            for_ms,
                        }));
                    }
                    self.pace = Some(Pace::new(
                        points_per_s,
                        messages_per_s,
                        Duration::from_millis(for_ms),
                        now,
                    ));
                }
                Ok(fieldlink_protocol::Control::Accepts { binary, json }) => {
                    let layouts = Layouts::agreed(&binary, &json);
                    if layouts != self.layouts {
                        out.push(Action::Report(Report::Layouts(layouts)));
                    }
                    self.layouts = layouts;
                }
                Err(e) => out.push(Action::Report(Report::ControlUndecodable(e.to_string()))),
            }
        }
        if pkid != 0 {
            out.push(Action::PubAck(pkid));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_plumbing::backoff::Schedule;
    use fieldlink_protocol::{json, Control};

    const CMD: &str = "fieldlink/v1/gw/cmd";
    const CONTROL: &str = "fieldlink/v1/gw/control";

    fn session(now: Instant) -> Session {
        Session::new(
            SessionSettings {
                connect_timeout: Duration::from_secs(30),
                max_in_flight: 2,
                cmd_topic: CMD.into(),
                control_topic: CONTROL.into(),
            },
            Backoff::jittered(Schedule::fixed(500, 2_000)),
            now,
        )
    }

    fn batch(n: u64) -> Tag {
        Tag::Batch(BatchId::from_raw(n))
    }

    fn up(s: &mut Session, now: Instant) -> Vec<Action> {
        assert_eq!(
            s.on_time(now),
            vec![Action::Connect {
                timeout: Duration::from_secs(30)
            }]
        );
        s.on_event(
            Event::ConnAck {
                session_present: false,
            },
            now,
        )
    }

    fn retry_in(actions: &[Action]) -> Duration {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Report(Report::AttemptFailed { retry_in, .. })
                | Action::Report(Report::Lost { retry_in, .. }) => Some(*retry_in),
                _ => None,
            })
            .expect("a failure report with its backoff")
    }

    #[test]
    fn a_connack_forgets_requeues_subscribes_then_publishes_the_birth_in_that_order() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert!(matches!(s.on_time(t0)[..], [Action::Connect { .. }]));
        let actions = s.on_event(
            Event::ConnAck {
                session_present: false,
            },
            t0 + Duration::from_millis(300),
        );
        assert_eq!(
            actions,
            vec![
                Action::Report(Report::Connected {
                    attempt: 1,
                    took: Duration::from_millis(300),
                    session_present: false
                }),
                Action::Forget,
                Action::Requeue,
                Action::Subscribe(Subscription::Commands),
                Action::Subscribe(Subscription::Control),
                Action::PublishBirth,
            ]
        );
        assert!(s.is_up());
        assert_eq!(s.connection(), 1);
        assert_eq!(s.next_timer(), None);
    }

    #[test]
    fn an_attempt_is_never_abandoned_before_its_timeout_and_then_backs_off() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert!(matches!(s.on_time(t0)[..], [Action::Connect { .. }]));
        // A slow link: nothing for 29 s is not a failure.
        assert!(s.on_time(t0 + Duration::from_secs(29)).is_empty());
        assert_eq!(s.phase(), Phase::Connecting { since: t0 });
        let failed = s.on_time(t0 + Duration::from_secs(30));
        assert_eq!(failed[0], Action::Forget);
        let Action::Report(Report::AttemptFailed {
            attempt,
            took,
            cause,
            retry_in,
        }) = &failed[1]
        else {
            panic!("{failed:?}")
        };
        assert_eq!((*attempt, *took), (1, Duration::from_secs(30)));
        assert!(cause.contains("no CONNACK within 30 s"), "{cause}");
        assert!((Duration::from_millis(500)..=Duration::from_secs(2)).contains(retry_in));
        // No new attempt before the backoff is over; one at a time after it.
        let t1 = t0 + Duration::from_secs(30);
        assert!(s
            .on_time(t1 + *retry_in - Duration::from_millis(1))
            .is_empty());
        assert!(matches!(
            s.on_time(t1 + *retry_in)[..],
            [Action::Connect { .. }]
        ));
        assert!(
            s.on_time(t1 + *retry_in).is_empty(),
            "one attempt at a time"
        );
    }

    #[test]
    fn every_failure_backs_off_and_is_reported_once_with_its_cause() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let mut now = t0;
        let mut attempts = 0;
        for cause in [
            "connection refused",
            "tls handshake",
            "refused: bad credentials",
        ] {
            s.on_time(now);
            attempts += 1;
            now += Duration::from_millis(100);
            let out = if cause.starts_with("refused") {
                s.on_event(
                    Event::Refused {
                        code: "BadUserNamePassword".into(),
                    },
                    now,
                )
            } else {
                s.on_event(
                    Event::Failed {
                        cause: cause.into(),
                    },
                    now,
                )
            };
            let reports: Vec<_> = out
                .iter()
                .filter(|a| matches!(a, Action::Report(_)))
                .collect();
            assert_eq!(reports.len(), 1, "{out:?}");
            let Action::Report(Report::AttemptFailed { attempt, .. }) = reports[0] else {
                panic!("{out:?}")
            };
            assert_eq!(*attempt, attempts);
            let wait = retry_in(&out);
            assert!(wait >= Duration::from_millis(500));
            now += wait;
        }
        // A success resets the count and the backoff.
        s.on_time(now);
        let out = s.on_event(
            Event::ConnAck {
                session_present: true,
            },
            now,
        );
        assert!(matches!(
            out[0],
            Action::Report(Report::Connected { attempt: 4, .. })
        ));
    }

    #[test]
    fn a_lost_connection_forgets_the_window_and_pubacks_of_it_ack_nothing() {
        let t0 = Instant::now();
        let mut s = session(t0);
        up(&mut s, t0);
        s.queued(batch(1), 10, t0);
        s.queued(batch(2), 10, t0);
        assert_eq!(s.on_event(Event::Written(5), t0), vec![]);
        assert_eq!(s.on_event(Event::Written(6), t0), vec![]);
        assert_eq!(
            s.on_event(Event::PubAck(6), t0),
            vec![Action::AckBatch(BatchId::from_raw(2))]
        );
        let lost = s.on_event(
            Event::Failed {
                cause: "reset by peer".into(),
            },
            t0 + Duration::from_secs(5),
        );
        assert_eq!(lost[0], Action::Forget);
        assert!(matches!(
            &lost[1],
            Action::Report(Report::Lost { after, cause, .. })
                if *after == Duration::from_secs(5) && cause == "reset by peer"
        ));
        assert!(s.window().is_empty());
        // A late PUBACK of the dead connection acknowledges nothing: batch 1 is resent.
        assert_eq!(s.on_event(Event::PubAck(5), t0), vec![]);
        assert!(!s.is_up());
    }

    #[test]
    fn broken_bookkeeping_drops_the_connection() {
        let t0 = Instant::now();
        let mut s = session(t0);
        up(&mut s, t0);
        let out = s.on_event(Event::Written(9), t0);
        assert_eq!(out[0], Action::Drop);
        assert!(matches!(&out[1], Action::Report(Report::Lost { cause, .. })
            if cause.contains("not queued")));
        up(&mut s, t0 + Duration::from_secs(3));
        s.queued(batch(1), 1, t0);
        s.on_event(Event::Written(1), t0);
        let out = s.on_event(Event::AwaitAck(1), t0);
        assert_eq!(out[0], Action::Drop);
    }

    #[test]
    fn commands_carry_their_connection_and_are_acknowledged_only_on_it() {
        let t0 = Instant::now();
        let mut s = session(t0);
        up(&mut s, t0);
        let out = s.on_event(
            Event::Incoming {
                topic: CMD,
                pkid: 3,
                payload: b"{}",
            },
            t0,
        );
        assert_eq!(
            out,
            vec![Action::Deliver {
                payload: b"{}".to_vec(),
                pkid: 3,
                connection: 1
            }]
        );
        assert_eq!(s.acknowledge(1, 3), Some(Action::PubAck(3)));
        s.on_event(Event::Failed { cause: "x".into() }, t0);
        assert_eq!(s.acknowledge(1, 3), None, "not while down");
        up(&mut s, t0 + Duration::from_secs(3));
        assert_eq!(s.acknowledge(1, 3), None, "not on a later connection");
        // Anything else with a packet id is acknowledged at once.
        assert_eq!(
            s.on_event(
                Event::Incoming {
                    topic: "fieldlink/v1/gw/other",
                    pkid: 4,
                    payload: b""
                },
                t0
            ),
            vec![Action::PubAck(4)]
        );
    }

    #[test]
    fn the_window_and_the_cloud_s_pace_bound_what_is_sent() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert_eq!(s.budget(t0).0, Budget::Full, "nothing while down");
        up(&mut s, t0);
        assert_eq!(
            s.budget(t0).0,
            Budget::Send {
                batches: 2,
                max_points: None
            }
        );
        s.queued(batch(1), 100, t0);
        s.queued(batch(2), 100, t0);
        assert_eq!(s.budget(t0).0, Budget::Full, "the window is full");
        for pkid in [1, 2] {
            s.on_event(Event::Written(pkid), t0);
            s.on_event(Event::PubAck(pkid), t0);
        }
        // The cloud asks for 50 points/s for 10 s.
        let request = json::encode(&Control::SlowDown {
            points_per_s: 50,
            messages_per_s: 10,
            for_ms: 10_000,
        })
        .unwrap();
        let out = s.on_event(
            Event::Incoming {
                topic: CONTROL,
                pkid: 8,
                payload: &request,
            },
            t0,
        );
        assert!(matches!(out[0], Action::Report(Report::SlowDown { .. })));
        assert_eq!(out[1], Action::PubAck(8));
        // One batch of a second's worth may go at once, into debt; the next waits for it.
        assert_eq!(
            s.budget(t0).0,
            Budget::Send {
                batches: 1,
                max_points: Some(50)
            }
        );
        s.queued(batch(3), 50, t0);
        let (b, _) = s.budget(t0);
        let Budget::PacedUntil(at) = b else {
            panic!("{b:?}")
        };
        assert_eq!(at, t0 + Duration::from_secs(1));
        // After the request lapses, full speed again, and it is said once.
        let t2 = t0 + Duration::from_secs(11);
        s.on_event(Event::Written(3), t2);
        s.on_event(Event::PubAck(3), t2);
        let (b, reports) = s.budget(t2);
        assert_eq!(reports, vec![Action::Report(Report::PaceLapsed)]);
        assert_eq!(
            b,
            Budget::Send {
                batches: 2,
                max_points: None
            }
        );
        assert!(s.budget(t2).1.is_empty());
        // A control message that does not decode is reported and acknowledged.
        let out = s.on_event(
            Event::Incoming {
                topic: CONTROL,
                pkid: 9,
                payload: b"{\"control\":\"speed_up\"}",
            },
            t2,
        );
        assert!(matches!(
            out[0],
            Action::Report(Report::ControlUndecodable(_))
        ));
        assert_eq!(out[1], Action::PubAck(9));
    }

    #[test]
    fn the_packed_layout_is_used_only_after_this_connections_announcement() {
        let t0 = Instant::now();
        let mut s = session(t0);
        up(&mut s, t0);
        assert_eq!(s.layouts(), Layouts::BASELINE);
        let newest = Layouts {
            binary: fieldlink_protocol::binary::VERSION_PACKED,
            json: fieldlink_protocol::json::VERSION_ALIASED,
        };
        let accepts = json::encode(&Control::accepts_all()).unwrap();
        let out = s.on_event(
            Event::Incoming {
                topic: CONTROL,
                pkid: 3,
                payload: &accepts,
            },
            t0,
        );
        assert_eq!(
            out,
            vec![Action::Report(Report::Layouts(newest)), Action::PubAck(3)]
        );
        assert_eq!(s.layouts(), newest);
        // A cloud that lists only layouts this agent does not write gets the baseline.
        let older = br#"{"control":"accepts","binary":[1,2],"json":[1]}"#;
        s.on_event(
            Event::Incoming {
                topic: CONTROL,
                pkid: 0,
                payload: older,
            },
            t0,
        );
        assert_eq!(s.layouts(), Layouts::BASELINE);
        s.on_event(
            Event::Incoming {
                topic: CONTROL,
                pkid: 0,
                payload: &accepts,
            },
            t0,
        );
        // A new connection may reach another cloud: back to the baseline until it says.
        assert_eq!(s.layouts(), newest);
        s.on_event(
            Event::Failed {
                cause: "reset".into(),
            },
            t0,
        );
        let later = t0 + Duration::from_secs(5);
        up(&mut s, later);
        assert!(s.is_up());
        assert_eq!(s.layouts(), Layouts::BASELINE);
    }
}
