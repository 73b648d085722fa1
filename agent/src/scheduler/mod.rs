//! Acquisition → journal: the loop that turns driver output into committed readings.
//!
//! The drivers' station tasks poll each device on its own schedule (a fixed grid of
//! `interval` steps from start; a poll that overruns skips the missed steps instead of bunching
//! them) and hand every poll's readings to this loop on one bounded channel. For each poll the
//! scheduler:
//! 1. holds the readings if the wall clock is not plausible yet ([`crate::clock`]),
//! 2. applies report-by-exception ([`report`]),
//! 3. appends what is left to the journal in one commit, and only then confirms the poll's
//!    receipt: the station that read it does not poll again before that, so every poll cycle
//!    is committed before the next one is taken (a slow disk slows the stations down instead of
//!    buffering readings in memory, and a SIGKILL loses at most the one poll per link that was
//!    read and not yet committed),
//! 4. wakes the uplink.
//!
//! Health changes become events. Every `self_telemetry_interval` the `_gateway` device's points
//! are journaled like any reading ([`gateway`]), and a growing drop count becomes a
//! `telemetry_dropped` event.

mod gateway;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fieldlink_buffer::{Journal, JournalError, Wait};
use fieldlink_drivers::{DeviceCounters, DriverEvent, HealthEvent, HealthState, Readings};
use fieldlink_protocol::limits::MAX_TEXT_LEN;
use fieldlink_protocol::{EventKind, Ident, Point};
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

pub use gateway::{device_info as gateway_device_info, GATEWAY_DEVICE};
pub use report::{ReportFilter, ReportPolicy, ReportRules};

use crate::clock::{wall_ms, ClockGuard};
use crate::events::Outbox;
use crate::health::Heartbeat;
use crate::uplink::UplinkStats;

/// What the scheduler needs to know about the configuration in force; replaced on reload.
#[derive(Debug, Clone, Default)]
pub struct Active {
    pub rules: ReportRules,
    pub counters: Vec<(Ident, Arc<DeviceCounters>)>,
}

/// The scheduler's inputs and settings.
pub struct Scheduler {
    pub events: mpsc::Receiver<DriverEvent>,
    pub active: watch::Receiver<Arc<Active>>,
    pub journal: Journal,
    pub outbox: Outbox,
    pub uplink_wake: Arc<Notify>,
    /// The uplink's connection figures, for self-telemetry.
    pub uplink: Arc<UplinkStats>,
    pub self_telemetry_every: Duration,
    pub clock: ClockGuard,
    pub heartbeat: Heartbeat,
}

/// The scheduler's running figures.
#[derive(Default)]
struct Totals {
    /// Points lost before reaching the journal (append errors other than disk full).
    lost: u64,
    /// Last drop total reported in an event (journaled: a refused event leaves this behind,
    /// so the next one, once there is room, covers every drop).
    reported_drops: u64,
    /// The journal refused the last append for lack of space: logged once per spell.
    full: bool,
}

impl Scheduler {
    /// Runs until `cancel`; then drains what the stations already handed over and returns.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut filter = ReportFilter::default();
        let mut totals = Totals::default();
        // Drops counted in earlier runs were reported then.
        if let Ok(s) = self.journal.stats().await {
            totals.reported_drops = s.dropped.total();
        }
        let mut selft = gateway::SelfTelemetry::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut next_self = Instant::now() + self.self_telemetry_every;
        let mut active = self.active.borrow().clone();
        loop {
            self.heartbeat.beat();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                changed = self.active.changed() => {
                    if changed.is_ok() {
                        active = self.active.borrow_and_update().clone();
                        filter.reset();
                    }
                }
                ev = self.events.recv() => match ev {
                    Some(DriverEvent::Readings(r, receipt)) => {
                        self.readings(r, &active, &mut filter, &mut totals).await;
                        receipt.confirm();
                    }
                    Some(DriverEvent::Health(h)) => self.health(h).await,
                    None => break,
                },
                _ = tick.tick() => {
                    let released = self.clock.release(wall_ms(), Instant::now());
                    if !released.is_empty() {
                        tracing::info!(points = released.len(), "clock is set; held readings re-stamped");
                        self.append(released, &mut totals).await;
                    }
                    if Instant::now() >= next_self {
                        next_self += self.self_telemetry_every;
                        if next_self <= Instant::now() {
                            next_self = Instant::now() + self.self_telemetry_every;
                        }
                        self.self_telemetry(&mut selft, &active, &mut totals).await;
                    }
                }
            }
        }
        // Whatever the stations already handed over (readings and health changes) is committed
        // before the journal closes.
        while let Ok(ev) = self.events.try_recv() {
            match ev {
                DriverEvent::Readings(r, receipt) => {
                    self.readings(r, &active, &mut filter, &mut totals).await;
                    receipt.confirm();
                }
                DriverEvent::Health(h) => self.health(h).await,
            }
        }
    }

    async fn readings(
        &mut self,
        r: Readings,
        active: &Active,
        filter: &mut ReportFilter,
        totals: &mut Totals,
    ) {
        if r.points.is_empty() {
            return;
        }
        let mut points = self.clock.admit(r.points, wall_ms(), Instant::now());
        filter.retain(&active.rules, &mut points);
        self.append(points, totals).await;
    }

    async fn append(&mut self, points: Vec<Point>, totals: &mut Totals) {
        if points.is_empty() {
            return;
        }
        let n = points.len() as u64;
        match self.journal.append_points(points, Wait::Commit).await {
            Ok(_) => {
                if std::mem::take(&mut totals.full) {
                    tracing::info!("journal has room again: readings are stored");
                }
                self.uplink_wake.notify_one()
            }
            // Counted by the journal under `disk_full`; reported with the next drop event that
            // can be journaled. One line per spell here, a summary every self-telemetry tick.
            Err(JournalError::DiskFull) => {
                if !std::mem::replace(&mut totals.full, true) {
                    tracing::error!(
                        points = n,
                        "journal full: readings dropped until space returns"
                    );
                }
            }
            Err(e) => {
                totals.lost += n;
                tracing::error!(points = n, error = %e, "readings not journaled");
            }
        }
    }

    async fn health(&mut self, h: HealthEvent) {
        let error = h
            .last_error
            .map(|mut e| {
                if e.len() > MAX_TEXT_LEN {
                    let mut cut = MAX_TEXT_LEN;
                    while !e.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    e.truncate(cut);
                }
                e
            })
            .unwrap_or_default();
        tracing::info!(device = %h.device, state = ?h.state, error = %error, "device health");
        let kind = match h.state {
            HealthState::Online => EventKind::DeviceUp { device: h.device },
            HealthState::Degraded => EventKind::DeviceDegraded {
                device: h.device,
                error,
            },
            HealthState::Offline => EventKind::DeviceDown {
                device: h.device,
                error,
            },
        };
        self.outbox.event_or_log(kind).await;
        self.uplink_wake.notify_one();
    }

    async fn self_telemetry(
        &mut self,
        selft: &mut gateway::SelfTelemetry,
        active: &Active,
        totals: &mut Totals,
    ) {
        let stats = self.journal.stats().await.ok();
        let journal_drops = stats.as_ref().map_or(0, |s| s.dropped.total());
        let dropped = journal_drops + totals.lost + self.clock.dropped;
        if dropped > totals.reported_drops {
            let event = EventKind::TelemetryDropped {
                points: dropped - totals.reported_drops,
                oldest_ts_ms: None,
                newest_ts_ms: None,
            };
            match self.outbox.event(event).await {
                Ok(()) => totals.reported_drops = dropped,
                // Not journaled (disk full): the count stays unreported and the next tick's event
                // carries it together with whatever is dropped meanwhile.
                Err(e) => {
                    tracing::warn!(error = %e, unreported_points = dropped - totals.reported_drops,
                    "journal full: drop event deferred until space returns")
                }
            }
        }
        let ts = wall_ms();
        if !self.clock.is_sane(ts) {
            return;
        }
        let points = selft.sample(ts, stats.as_ref(), dropped, &active.counters, &self.uplink);
        self.append(points, totals).await;
    }
}
