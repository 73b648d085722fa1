//! The classifier's side of parked telemetry: when to park, when to look for parked batches
//! whose birth is now known or whose wait is over, and which parked rows are already on their
//! way to the writer.
//!
//! The store holds the truth (see `crate::store::parked`); this keeps only what bounds the
//! work: a per-gateway count, so one gateway naming births that never come is dead-lettered
//! past `max_per_gateway` instead of filling the table, and the ids handed to the writer and
//! not yet committed, so a scan while a commit is in flight does not hand them over twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fieldlink_protocol::Ident;

use crate::store::ParkedGroup;

/// How often the store is scanned while something is parked.
pub(super) const SCAN_BUSY: Duration = Duration::from_millis(250);
/// How often it is scanned otherwise: another instance may have parked a batch whose birth
/// this one has.
pub(super) const SCAN_IDLE: Duration = Duration::from_secs(5);
/// A parked row handed to the writer is handed again only if it is still parked this long
/// after: its commit failed or was lost.
const IN_FLIGHT: Duration = Duration::from_secs(30);
/// Rows read per group and scan.
pub(super) const ROWS_PER_SCAN: i64 = 500;

pub(super) struct Parking {
    per_gateway: HashMap<Ident, i64>,
    max_per_gateway: i64,
    in_flight: HashMap<i64, Instant>,
    next_scan: Instant,
    busy: bool,
}

impl Parking {
    pub fn new(max_per_gateway: usize) -> Parking {
        Parking {
            per_gateway: HashMap::new(),
            max_per_gateway: max_per_gateway as i64,
            in_flight: HashMap::new(),
            // Rows may be left from before a restart: look at once.
            next_scan: Instant::now(),
            busy: true,
        }
    }

    /// Whether `gateway` may park one more message; counts it if so.
    pub fn admit(&mut self, gateway: &Ident) -> bool {
        let n = self.per_gateway.entry(gateway.clone()).or_insert(0);
        if *n >= self.max_per_gateway {
            return false;
        }
        *n += 1;
        if !self.busy {
            self.busy = true;
            self.next_scan = Instant::now() + SCAN_BUSY;
        }
        true
    }

    pub fn max_per_gateway(&self) -> i64 {
        self.max_per_gateway
    }

    /// Whether a scan is due at `now`; if so, the next one is scheduled.
    pub fn scan_due(&mut self, now: Instant) -> bool {
        if now < self.next_scan {
            return false;
        }
        // Until the scan reports back (a failed one retries soon).
        self.next_scan = now + SCAN_BUSY;
        true
    }

    /// Takes a scan's view of the store: the per-gateway counts, and whether anything waits.
    pub fn scanned(&mut self, groups: &[ParkedGroup], now: Instant) {
        self.per_gateway.clear();
        for g in groups {
            *self.per_gateway.entry(g.gateway.clone()).or_insert(0) += g.messages;
        }
        self.busy = !groups.is_empty();
        self.next_scan = now + if self.busy { SCAN_BUSY } else { SCAN_IDLE };
        self.in_flight
            .retain(|_, at| now.duration_since(*at) < IN_FLIGHT);
    }

    /// Whether the row `id` should be handed to the writer now; marks it handed if so.
    pub fn hand_over(&mut self, id: i64, now: Instant) -> bool {
        match self.in_flight.get(&id) {
            Some(_) => false,
            None => {
                self.in_flight.insert(id, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(gw: &str, messages: i64) -> ParkedGroup {
        ParkedGroup {
            gateway: Ident::new(gw).unwrap(),
            config_hash: "h".into(),
            table_check: 1,
            messages,
            oldest_ms: 0,
        }
    }

    #[test]
    fn a_gateway_parks_at_most_its_share_as_counted_by_the_last_scan() {
        let mut p = Parking::new(3);
        let (a, b) = (Ident::new("a").unwrap(), Ident::new("b").unwrap());
        assert!(p.admit(&a) && p.admit(&a) && p.admit(&a));
        assert!(!p.admit(&a), "the fourth is refused");
        assert!(p.admit(&b), "another gateway is not affected");
        // The store says one of a's was resolved meanwhile.
        p.scanned(&[group("a", 2), group("b", 1)], Instant::now());
        assert!(p.admit(&a));
        assert!(!p.admit(&a));
    }

    #[test]
    fn scans_are_frequent_only_while_something_is_parked() {
        let mut p = Parking::new(10);
        let t0 = Instant::now();
        assert!(
            p.scan_due(t0),
            "the first scan looks for rows left from before"
        );
        p.scanned(&[], t0);
        assert!(!p.scan_due(t0 + SCAN_BUSY));
        assert!(p.scan_due(t0 + SCAN_BUSY + SCAN_IDLE));
        p.admit(&Ident::new("a").unwrap());
        let t1 = Instant::now();
        assert!(p.scan_due(t1 + SCAN_BUSY));
    }

    #[test]
    fn a_row_is_handed_over_again_only_after_its_commit_had_time() {
        let t0 = Instant::now();
        let mut p = Parking::new(10);
        assert!(p.hand_over(7, t0));
        assert!(!p.hand_over(7, t0));
        p.scanned(&[group("a", 1)], t0 + Duration::from_secs(1));
        assert!(!p.hand_over(7, t0 + Duration::from_secs(1)));
        p.scanned(&[group("a", 1)], t0 + IN_FLIGHT);
        assert!(p.hand_over(7, t0 + IN_FLIGHT));
    }
}
