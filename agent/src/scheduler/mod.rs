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
//! `telemetry_dropped` event; so it does as soon as room returns after the journal was full.
//! What the events cover is recorded by the journal with each event, so every drop is reported
//! once, across restarts too. A full journal is logged once when it fills, once when room
//! returns and every [`FULL_SUMMARY_EVERY`] in between.

mod gateway;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fieldlink_buffer::{Journal, JournalError, Wait};
use fieldlink_drivers::{DeviceCounters, DriverEvent, HealthEvent, HealthState, Readings, Receipt};
use fieldlink_protocol::{clip_text, EventKind, Ident, Point};
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

pub use crate::report::{ReportFilter, ReportPolicy, ReportRules};
pub use gateway::{device_info as gateway_device_info, GATEWAY_DEVICE};

use crate::clock::{wall_ms, ClockGuard};
use crate::events::{Outbox, OutboxError};
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
    /// The journal's drop total that drop events cover. Durable: recorded by the journal in
    /// the commit of each drop event, and read back at start, so drops not yet reported when
    /// the agent stopped (a refused event, a full disk) are reported after the restart.
    journal_reported: u64,
    /// Of the drops counted here in memory (`lost` and the clock guard's), how many drop
    /// events covered. Those counts start from zero at each start.
    memory_reported: u64,
    /// The journal refused the last append for lack of space: logged once when a spell starts
    /// and once when it ends, with a summary every [`FULL_SUMMARY_EVERY`] while it lasts.
    full: bool,
    /// Readings refused in the current full spell.
    refused_in_spell: u64,
    /// When the next summary of a full spell is due.
    next_full_summary: Option<Instant>,
    /// Room returned: report the drops of the spell at the next tick rather than at the next
    /// self-telemetry.
    report_due: bool,
}

/// Points at most in one journal commit of polls that were waiting together.
const GROUP_MAX_POINTS: usize = 10_000;

/// How often a journal that stays full is summed up in the log.
const FULL_SUMMARY_EVERY: Duration = Duration::from_secs(60);

impl Scheduler {
    /// Runs until `cancel`; then drains what the stations already handed over and returns.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut filter = ReportFilter::default();
        let mut totals = Totals::default();
        // What earlier runs reported; the rest is reported with the first drop event.
        if let Ok(s) = self.journal.stats().await {
            totals.journal_reported = s.drops_reported;
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
                        let health = self
                            .readings_waiting(r, receipt, &active, &mut filter, &mut totals)
                            .await;
                        if let Some(h) = health {
                            self.health(h).await;
                        }
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
                    if std::mem::take(&mut totals.report_due) {
                        self.report_drops(&mut totals).await;
                    }
                    if totals.full && totals.next_full_summary.is_some_and(|t| Instant::now() >= t) {
                        totals.next_full_summary = Some(Instant::now() + FULL_SUMMARY_EVERY);
                        tracing::warn!(refused_points = totals.refused_in_spell,
                            "journal still full: readings dropped until space returns");
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
        let points = self.admit(r, active, filter);
        self.append(points, totals).await;
    }

    fn admit(&mut self, r: Readings, active: &Active, filter: &mut ReportFilter) -> Vec<Point> {
        if r.points.is_empty() {
            return Vec::new();
        }
        let mut points = self.clock.admit(r.points, wall_ms(), Instant::now());
        filter.retain(&active.rules, &mut points);
        points
    }

    /// Journals `first` together with every poll already waiting behind it, in one commit:
    /// stations polled at the same moment would otherwise each wait for the commits of those
    /// ahead of them. Stops at a health change, which is returned to be handled after the
    /// readings that came before it, and at [`GROUP_MAX_POINTS`].
    async fn readings_waiting(
        &mut self,
        first: Readings,
        receipt: Receipt,
        active: &Active,
        filter: &mut ReportFilter,
        totals: &mut Totals,
    ) -> Option<HealthEvent> {
        let mut points = self.admit(first, active, filter);
        let mut receipts = vec![receipt];
        let mut health = None;
        while points.len() < GROUP_MAX_POINTS {
            match self.events.try_recv() {
                Ok(DriverEvent::Readings(r, receipt)) => {
                    points.extend(self.admit(r, active, filter));
                    receipts.push(receipt);
                }
                Ok(DriverEvent::Health(h)) => {
                    health = Some(h);
                    break;
                }
                Err(_) => break,
            }
        }
        self.append(points, totals).await;
        for r in receipts {
            r.confirm();
        }
        health
    }

    async fn append(&mut self, points: Vec<Point>, totals: &mut Totals) {
        if points.is_empty() {
            return;
        }
        let n = points.len() as u64;
        match self.journal.append_points(points, Wait::Commit).await {
            Ok(_) => {
                if std::mem::take(&mut totals.full) {
                    tracing::info!(
                        refused_points = std::mem::take(&mut totals.refused_in_spell),
                        "journal has room again: readings are stored"
                    );
                    totals.next_full_summary = None;
                    totals.report_due = true;
                }
                self.uplink_wake.notify_one()
            }
            // Counted by the journal under `disk_full` (durably, even while full); reported in
            // one drop event once there is room again. One line when the spell starts, one when
            // it ends, a summary every FULL_SUMMARY_EVERY in between.
            Err(JournalError::DiskFull) => {
                totals.refused_in_spell += n;
                if !std::mem::replace(&mut totals.full, true) {
                    totals.next_full_summary = Some(Instant::now() + FULL_SUMMARY_EVERY);
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
        let error = h.last_error.map(clip_text).unwrap_or_default();
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

    /// Journals one drop event covering every drop not yet reported, if there is any; returns
    /// the journal's statistics and the drop total they were read with.
    async fn report_drops(
        &mut self,
        totals: &mut Totals,
    ) -> (Option<fieldlink_buffer::Stats>, u64) {
        let stats = self.journal.stats().await.ok();
        let journal_drops = stats
            .as_ref()
            .map_or(totals.journal_reported, |s| s.dropped.total());
        let memory_drops = totals.lost + self.clock.dropped;
        let unreported = journal_drops.saturating_sub(totals.journal_reported)
            + memory_drops.saturating_sub(totals.memory_reported);
        if unreported > 0 {
            let event = EventKind::TelemetryDropped {
                points: unreported,
                oldest_ts_ms: None,
                newest_ts_ms: None,
            };
            match self.outbox.drop_report(event, journal_drops).await {
                Ok(()) => {
                    totals.journal_reported = journal_drops;
                    totals.memory_reported = memory_drops;
                }
                // Still full: the count stays unreported (durably) and the event after room
                // returns carries it with whatever is dropped meanwhile. The spell's own lines
                // say the journal is full.
                Err(OutboxError::Journal(JournalError::DiskFull)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, unreported_points = unreported,
                        "drop event not journaled; the next one carries its count")
                }
            }
        }
        (stats, journal_drops + memory_drops)
    }

    async fn self_telemetry(
        &mut self,
        selft: &mut gateway::SelfTelemetry,
        active: &Active,
        totals: &mut Totals,
    ) {
        let (stats, dropped) = self.report_drops(totals).await;
        let ts = wall_ms();
        if !self.clock.is_sane(ts) {
            return;
        }
        let points = selft.sample(ts, stats.as_ref(), dropped, &active.counters, &self.uplink);
        self.append(points, totals).await;
    }
}
