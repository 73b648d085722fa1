//! Which stored item goes out next, and what is in flight. Memory only, on purpose.
//!
//! In-flight state need not survive a restart: after a restart everything not acknowledged is
//! pending again, which is exactly what forgetting the in-flight set gives. Keeping it out of the
//! file also makes handing out a batch a pure read.
//!
//! Telemetry ids are split at `boundary`: segments below it were stored before the last
//! reconnect or restart (backlog, sent with the `historical` flag), segments from it on are
//! live. Each side has a read cursor. While both have pending points, the side that has had
//! less than its share of points sent since the boundary moved goes next, with live winning
//! ties, so live points never queue behind hours of backlog and backlog still drains at
//! `backfill_share`.

use std::collections::HashMap;

use crate::batch::{BatchId, RecordClass};

/// What one in-flight batch covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// Segment ids `first..=last`: every segment stored in that range when the batch was read.
    Segments {
        first: i64,
        last: i64,
        points: u64,
    },
    Record {
        id: i64,
    },
}

/// Telemetry regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Region {
    Live,
    Backlog,
}

#[derive(Debug)]
pub(crate) struct DrainState {
    share: f64,
    next_batch: u64,
    in_flight: HashMap<BatchId, Span>,
    boundary: i64,
    backlog_next: i64,
    live_next: i64,
    record_next: [i64; 2],
    live_sent: u64,
    backlog_sent: u64,
}

impl DrainState {
    /// Fresh state: every stored segment (ids below `next_segment_id`) is backlog.
    pub(crate) fn new(share: f64, next_segment_id: i64) -> Self {
        let mut s = DrainState {
            share,
            next_batch: 1,
            in_flight: HashMap::new(),
            boundary: 0,
            backlog_next: 0,
            live_next: 0,
            record_next: [0; 2],
            live_sent: 0,
            backlog_sent: 0,
        };
        s.requeue(next_segment_id);
        s
    }

    /// Forgets everything in flight; all that is stored becomes pending backlog.
    pub(crate) fn requeue(&mut self, next_segment_id: i64) {
        self.in_flight.clear();
        self.boundary = next_segment_id;
        self.backlog_next = 0;
        self.live_next = next_segment_id;
        self.record_next = [0; 2];
        self.live_sent = 0;
        self.backlog_sent = 0;
    }

    /// Telemetry regions in the order to try them.
    pub(crate) fn region_order(&self) -> [Region; 2] {
        let total = (self.live_sent + self.backlog_sent) as f64;
        if (self.backlog_sent as f64) < self.share * total || self.share >= 1.0 {
            [Region::Backlog, Region::Live]
        } else {
            [Region::Live, Region::Backlog]
        }
    }

    /// The id range `[from, to)` still to read in a region.
    pub(crate) fn window(&self, region: Region) -> (i64, i64) {
        match region {
            Region::Backlog => (self.backlog_next, self.boundary),
            Region::Live => (self.live_next, i64::MAX),
        }
    }

    pub(crate) fn record_cursor(&self, class: RecordClass) -> i64 {
        self.record_next[class.index()]
    }

    fn issue(&mut self, span: Span) -> BatchId {
        let id = BatchId(self.next_batch);
        self.next_batch += 1;
        self.in_flight.insert(id, span);
        id
    }

    /// Telemetry `first..=last` from `region` goes out.
    pub(crate) fn take_segments(
        &mut self,
        region: Region,
        first: i64,
        last: i64,
        points: u64,
    ) -> BatchId {
        match region {
            Region::Backlog => {
                self.backlog_next = last + 1;
                self.backlog_sent += points;
            }
            Region::Live => {
                self.live_next = last + 1;
                self.live_sent += points;
            }
        }
        self.issue(Span::Segments {
            first,
            last,
            points,
        })
    }

    /// Moves a region's cursor past ids that turned out to hold nothing usable.
    pub(crate) fn skip_to(&mut self, region: Region, next: i64) {
        match region {
            Region::Backlog => self.backlog_next = self.backlog_next.max(next),
            Region::Live => self.live_next = self.live_next.max(next),
        }
    }

    pub(crate) fn take_record(&mut self, class: RecordClass, id: i64) -> BatchId {
        self.record_next[class.index()] = id + 1;
        self.issue(Span::Record { id })
    }

    /// The batch's span, removing it from flight.
    pub(crate) fn complete(&mut self, id: BatchId) -> Option<Span> {
        self.in_flight.remove(&id)
    }

    /// Puts a batch back in flight after its deletion failed.
    pub(crate) fn restore(&mut self, id: BatchId, span: Span) {
        self.in_flight.insert(id, span);
    }

    pub(crate) fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether telemetry segment `id` belongs to a batch in flight.
    pub(crate) fn segment_in_flight(&self, id: i64) -> bool {
        self.in_flight.values().any(|s| match s {
            Span::Segments { first, last, .. } => (*first..=*last).contains(&id),
            Span::Record { .. } => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_goes_first_then_backlog_gets_its_share() {
        let mut d = DrainState::new(0.5, 100);
        assert_eq!(d.region_order()[0], Region::Live);
        d.take_segments(Region::Live, 100, 100, 1000);
        assert_eq!(d.region_order()[0], Region::Backlog);
        d.take_segments(Region::Backlog, 0, 3, 1000);
        assert_eq!(d.region_order()[0], Region::Live);
        assert_eq!(d.window(Region::Backlog), (4, 100));
        assert_eq!(d.window(Region::Live), (101, i64::MAX));
    }

    #[test]
    fn share_zero_prefers_live_and_share_one_prefers_backlog() {
        let mut d = DrainState::new(0.0, 10);
        d.take_segments(Region::Live, 10, 10, 5);
        assert_eq!(d.region_order()[0], Region::Live);
        let d = DrainState::new(1.0, 10);
        assert_eq!(d.region_order()[0], Region::Backlog);
    }

    #[test]
    fn requeue_forgets_flight_and_moves_the_boundary() {
        let mut d = DrainState::new(0.5, 5);
        let b = d.take_segments(Region::Live, 5, 9, 50);
        assert!(d.segment_in_flight(7));
        d.requeue(10);
        assert!(!d.segment_in_flight(7));
        assert_eq!(d.complete(b), None);
        assert_eq!(d.window(Region::Backlog), (0, 10));
        assert_eq!(d.window(Region::Live), (10, i64::MAX));
    }
}
