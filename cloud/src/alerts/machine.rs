//! One alert's lifecycle for one series (or gateway): inactive → pending → active →
//! acknowledged → resolved (back to inactive), driven by [`Signal`]s and the time.
//!
//! - `Fire` starts `pending`; the alert becomes `active` (notify) once the condition has held
//!   for the rule's hold time. A `Band` or `Clear` while pending cancels it silently.
//! - An active or acknowledged alert resolves (notify) only on `Clear`: a value in the band
//!   between the threshold and the clear threshold keeps it firing, so a value hovering at the
//!   threshold produces one notification, not one per crossing.
//! - An active alert repeats its notification every `repeat_ms` while it keeps firing;
//!   acknowledging it stops the repeats.
//! - An operator may resolve by hand; the next `Fire` starts a new alert.

use super::rule::Signal;

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending { since_ms: i64 },
    Active { since_ms: i64, notified_ms: i64 },
    Acknowledged { since_ms: i64 },
}

impl AlertState {
    /// The stored form: (state, since_ms, notified_ms).
    pub fn to_row(self) -> (&'static str, Option<i64>, Option<i64>) {
        match self {
            AlertState::Inactive => ("inactive", None, None),
            AlertState::Pending { since_ms } => ("pending", Some(since_ms), None),
            AlertState::Active {
                since_ms,
                notified_ms,
            } => ("active", Some(since_ms), Some(notified_ms)),
            AlertState::Acknowledged { since_ms } => ("acknowledged", Some(since_ms), None),
        }
    }

    /// Reads the stored form back; an unknown state reads as inactive.
    pub fn from_row(state: &str, since_ms: Option<i64>, notified_ms: Option<i64>) -> AlertState {
        let since_ms = since_ms.unwrap_or(0);
        match state {
            "pending" => AlertState::Pending { since_ms },
            "active" => AlertState::Active {
                since_ms,
                notified_ms: notified_ms.unwrap_or(since_ms),
            },
            "acknowledged" => AlertState::Acknowledged { since_ms },
            _ => AlertState::Inactive,
        }
    }

    /// The alert's status as the API shows it.
    pub fn status(self) -> &'static str {
        match self {
            AlertState::Inactive => "resolved",
            AlertState::Pending { .. } => "pending",
            AlertState::Active { .. } => "active",
            AlertState::Acknowledged { .. } => "acknowledged",
        }
    }
}

/// A change worth storing; `notify` says whether receivers are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Pending,
    /// Cancelled before it fired: stored, not notified.
    Cancelled,
    Fired,
    Repeated,
    Acknowledged,
    Resolved {
        by_hand: bool,
    },
}

impl Transition {
    /// The name stored in `alert_transitions`.
    pub fn name(self) -> &'static str {
        match self {
            Transition::Pending => "pending",
            Transition::Cancelled => "cancelled",
            Transition::Fired => "active",
            Transition::Repeated => "repeated",
            Transition::Acknowledged => "acknowledged",
            Transition::Resolved { by_hand: false } => "resolved",
            Transition::Resolved { by_hand: true } => "resolved_by_hand",
        }
    }

    /// The event receivers are told of, for the transitions that notify.
    pub fn event(self) -> Option<&'static str> {
        match self {
            Transition::Fired => Some("fired"),
            Transition::Repeated => Some("repeated"),
            Transition::Resolved { .. } => Some("resolved"),
            _ => None,
        }
    }

    pub fn notify(self) -> bool {
        matches!(
            self,
            Transition::Fired | Transition::Repeated | Transition::Resolved { .. }
        )
    }
}

/// The state of one alert and the timing parts of its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertMachine {
    pub state: AlertState,
    pub hold_ms: i64,
    pub repeat_ms: Option<i64>,
}

impl AlertMachine {
    pub fn new(hold_ms: i64, repeat_ms: Option<i64>) -> AlertMachine {
        AlertMachine {
            state: AlertState::Inactive,
            hold_ms: hold_ms.max(0),
            repeat_ms: repeat_ms.filter(|r| *r > 0),
        }
    }

    /// Applies one observation at `now_ms`.
    pub fn observe(&mut self, signal: Signal, now_ms: i64) -> Option<Transition> {
        self.observe_since(signal, now_ms, now_ms)
    }

    /// Applies one observation at `now_ms` of a condition known to have held since
    /// `since_ms` (a gateway offline since its will): an inactive alert starts pending from
    /// then, or fires at once when the hold has already passed.
    pub fn observe_since(
        &mut self,
        signal: Signal,
        since_ms: i64,
        now_ms: i64,
    ) -> Option<Transition> {
        use AlertState::*;
        match (self.state, signal) {
            (Inactive, Signal::Fire) if now_ms - since_ms.min(now_ms) >= self.hold_ms => {
                self.state = Active {
                    since_ms: now_ms,
                    notified_ms: now_ms,
                };
                Some(Transition::Fired)
            }
            (Inactive, Signal::Fire) => {
                self.state = Pending {
                    since_ms: since_ms.min(now_ms),
                };
                Some(Transition::Pending)
            }
            (Inactive, _) => None,
            (Pending { since_ms }, Signal::Fire) if now_ms - since_ms >= self.hold_ms => {
                self.state = Active {
                    since_ms: now_ms,
                    notified_ms: now_ms,
                };
                Some(Transition::Fired)
            }
            (Pending { .. }, Signal::Fire) => None,
            (Pending { .. }, _) => {
                self.state = Inactive;
                Some(Transition::Cancelled)
            }
            (Active { .. } | Acknowledged { .. }, Signal::Clear) => {
                self.state = Inactive;
                Some(Transition::Resolved { by_hand: false })
            }
            (
                Active {
                    since_ms,
                    notified_ms,
                },
                Signal::Fire,
            ) => match self.repeat_ms {
                Some(every) if now_ms - notified_ms >= every => {
                    self.state = Active {
                        since_ms,
                        notified_ms: now_ms,
                    };
                    Some(Transition::Repeated)
                }
                _ => None,
            },
            (Active { .. } | Acknowledged { .. }, _) => None,
        }
    }

    /// An operator acknowledged the alert: no more repeats until it resolves.
    pub fn acknowledge(&mut self) -> Option<Transition> {
        match self.state {
            AlertState::Active { since_ms, .. } => {
                self.state = AlertState::Acknowledged { since_ms };
                Some(Transition::Acknowledged)
            }
            _ => None,
        }
    }

    /// An operator resolved the alert by hand.
    pub fn resolve(&mut self) -> Option<Transition> {
        match self.state {
            AlertState::Active { .. } | AlertState::Acknowledged { .. } => {
                self.state = AlertState::Inactive;
                Some(Transition::Resolved { by_hand: true })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rule::{Condition, ValueRule};
    use super::*;
    use proptest::prelude::*;

    fn rule(hold_ms: i64, repeat_ms: Option<i64>) -> ValueRule {
        ValueRule {
            condition: Condition::Gt { threshold: 80.0 },
            clear: Some(75.0),
            hold_ms,
            repeat_ms,
        }
    }

    fn run(r: &ValueRule, values: &[(i64, f64)]) -> Vec<Transition> {
        let mut m = AlertMachine::new(r.hold_ms, r.repeat_ms);
        values
            .iter()
            .filter_map(|(t, v)| m.observe(r.signal(*v), *t))
            .collect()
    }

    #[test]
    fn fires_after_the_hold_and_resolves_below_clear() {
        let r = rule(2_000, None);
        let t = run(
            &r,
            &[
                (0, 70.0),
                (1_000, 85.0),
                (2_000, 86.0),
                (3_000, 87.0),
                (4_000, 78.0),
                (5_000, 74.0),
            ],
        );
        assert_eq!(
            t,
            [
                Transition::Pending,
                Transition::Fired,
                Transition::Resolved { by_hand: false }
            ]
        );
    }

    #[test]
    fn a_short_spike_is_cancelled_while_pending() {
        let r = rule(5_000, None);
        let t = run(&r, &[(0, 90.0), (1_000, 79.0), (2_000, 90.0)]);
        assert_eq!(
            t,
            [
                Transition::Pending,
                Transition::Cancelled,
                Transition::Pending
            ]
        );
    }

    #[test]
    fn repeats_until_acknowledged_then_resolves_by_hand() {
        let r = rule(0, Some(10_000));
        let mut m = AlertMachine::new(r.hold_ms, r.repeat_ms);
        assert_eq!(m.observe(r.signal(90.0), 0), Some(Transition::Fired));
        assert_eq!(m.observe(r.signal(90.0), 5_000), None);
        assert_eq!(
            m.observe(r.signal(90.0), 10_000),
            Some(Transition::Repeated)
        );
        assert_eq!(m.acknowledge(), Some(Transition::Acknowledged));
        assert_eq!(m.observe(r.signal(90.0), 30_000), None);
        assert_eq!(m.resolve(), Some(Transition::Resolved { by_hand: true }));
        assert_eq!(m.resolve(), None);
        assert_eq!(m.observe(r.signal(90.0), 40_000), Some(Transition::Fired));
    }

    #[test]
    fn a_condition_known_since_earlier_counts_from_then() {
        let mut m = AlertMachine::new(60_000, None);
        assert_eq!(
            m.observe_since(Signal::Fire, 1_000, 31_000),
            Some(Transition::Pending)
        );
        assert_eq!(m.state, AlertState::Pending { since_ms: 1_000 });
        assert_eq!(m.observe_since(Signal::Fire, 1_000, 50_000), None);
        assert_eq!(
            m.observe_since(Signal::Fire, 1_000, 61_000),
            Some(Transition::Fired)
        );
        let mut m = AlertMachine::new(60_000, None);
        assert_eq!(
            m.observe_since(Signal::Fire, 0, 90_000),
            Some(Transition::Fired),
            "already silent for longer than the hold"
        );
        for st in [
            AlertState::Inactive,
            AlertState::Pending { since_ms: 5 },
            AlertState::Active {
                since_ms: 5,
                notified_ms: 9,
            },
            AlertState::Acknowledged { since_ms: 7 },
        ] {
            let (s, a, b) = st.to_row();
            assert_eq!(AlertState::from_row(s, a, b), st);
        }
    }

    proptest! {
        /// A value hovering anywhere above the clear threshold, crossing the firing threshold
        /// as often as it likes, fires once and never resolves: no flapping.
        #[test]
        fn a_hovering_value_does_not_flap(
            values in proptest::collection::vec(75.0f64..85.0, 1..200),
            hold_ms in 0i64..3_000,
        ) {
            let r = rule(hold_ms, None);
            let mut series: Vec<(i64, f64)> = vec![(0, 90.0), (hold_ms, 90.0)];
            series.extend(values.iter().enumerate().map(|(i, v)| (hold_ms + 1 + i as i64 * 100, *v)));
            let t = run(&r, &series);
            let fired = t.iter().filter(|x| **x == Transition::Fired).count();
            let resolved = t.iter().filter(|x| matches!(x, Transition::Resolved { .. })).count();
            prop_assert_eq!(fired, 1, "{:?}", t);
            prop_assert_eq!(resolved, 0, "{:?}", t);
        }

        /// Over any sequence, notifications alternate fired/resolved (repeats aside) and the
        /// alert fires at most once per excursion from below clear to above the threshold.
        #[test]
        fn fired_and_resolved_alternate(
            values in proptest::collection::vec(60.0f64..100.0, 1..300),
            hold_ms in 0i64..2_000,
        ) {
            let r = rule(hold_ms, None);
            let series: Vec<(i64, f64)> = values.iter().enumerate().map(|(i, v)| (i as i64 * 500, *v)).collect();
            let t = run(&r, &series);
            let mut firing = false;
            for x in &t {
                match x {
                    Transition::Fired => { prop_assert!(!firing); firing = true; }
                    Transition::Resolved { .. } => { prop_assert!(firing); firing = false; }
                    _ => {}
                }
            }
            let mut excursions = 0;
            let mut armed = true;
            for (_, v) in &series {
                if armed && *v > 80.0 { excursions += 1; armed = false; }
                if *v < 75.0 { armed = true; }
            }
            let fired = t.iter().filter(|x| **x == Transition::Fired).count();
            prop_assert!(fired <= excursions, "{} fired for {} excursions", fired, excursions);
        }
    }
}
