//! Report-by-exception: which readings are worth sending.
//!
//! Every reading is taken; a point under an on-change policy is only journaled when its value
//! moved by more than the deadband since the last value *sent* (not the last value read, so a
//! slow drift is still reported once it adds up), when its quality changed, or when nothing was
//! sent for `max_silence`. The first reading of a point is always sent.

use std::collections::HashMap;
use std::time::Duration;

use fieldlink_protocol::{Point, Quality, Value};

/// How one point is reported.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPolicy {
    /// `false`: every reading is sent.
    pub on_change: bool,
    pub deadband_abs: f64,
    /// Percent of the magnitude of the last value sent.
    pub deadband_pct: f64,
    pub max_silence: Option<Duration>,
}

impl Default for ReportPolicy {
    fn default() -> Self {
        ReportPolicy {
            on_change: false,
            deadband_abs: 0.0,
            deadband_pct: 0.0,
            max_silence: Some(Duration::from_secs(300)),
        }
    }
}

impl ReportPolicy {
    /// Whether `new` differs enough from `last` to be sent.
    pub fn changed(&self, last: &Value, new: &Value) -> bool {
        match (last, new) {
            (Value::Number(a), Value::Number(b)) => {
                let delta = (b - a).abs();
                if self.deadband_abs == 0.0 && self.deadband_pct == 0.0 {
                    return delta > 0.0;
                }
                let pct_band = a.abs() * self.deadband_pct / 100.0;
                (self.deadband_abs > 0.0 && delta > self.deadband_abs)
                    || (self.deadband_pct > 0.0 && delta > pct_band)
            }
            (a, b) => a != b,
        }
    }
}

/// Policies by device and point, with the default underneath.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportRules {
    default: ReportPolicy,
    devices: HashMap<String, ReportPolicy>,
    points: HashMap<(String, String), ReportPolicy>,
}

impl ReportRules {
    pub fn new(default: ReportPolicy) -> ReportRules {
        ReportRules {
            default,
            ..ReportRules::default()
        }
    }

    pub fn insert(&mut self, device: &str, point: Option<&str>, policy: ReportPolicy) {
        match point {
            Some(p) => {
                self.points.insert((device.into(), p.into()), policy);
            }
            None => {
                self.devices.insert(device.into(), policy);
            }
        }
    }

    /// The policy in force for a point.
    pub fn policy(&self, device: &str, point: &str) -> &ReportPolicy {
        self.points
            .get(&(device.to_owned(), point.to_owned()))
            .or_else(|| self.devices.get(device))
            .unwrap_or(&self.default)
    }

    /// Whether any point reports on change (otherwise the filter is a pass-through).
    pub fn any_on_change(&self) -> bool {
        self.default.on_change
            || self.devices.values().any(|p| p.on_change)
            || self.points.values().any(|p| p.on_change)
    }
}

struct LastSent {
    value: Value,
    quality: Quality,
    ts_ms: i64,
}

/// The filter's memory: the last value sent per series.
#[derive(Default)]
pub struct ReportFilter {
    last: HashMap<(String, String), LastSent>,
    /// Readings taken but not sent because they had not changed.
    pub suppressed: u64,
}

impl ReportFilter {
    /// Keeps the points of `points` that must be sent, in order.
    pub fn retain(&mut self, rules: &ReportRules, points: &mut Vec<Point>) {
        if !rules.any_on_change() {
            return;
        }
        let before = points.len();
        points.retain(|p| {
            let policy = rules.policy(p.device.as_str(), p.metric.as_str());
            if !policy.on_change {
                return true;
            }
            let key = (p.device.to_string(), p.metric.to_string());
            let send = match self.last.get(&key) {
                None => true,
                Some(last) => {
                    last.quality != p.quality
                        || policy.changed(&last.value, &p.value)
                        || policy.max_silence.is_some_and(|s| {
                            p.ts_ms.saturating_sub(last.ts_ms) >= s.as_millis() as i64
                        })
                }
            };
            if send {
                self.last.insert(
                    key,
                    LastSent {
                        value: p.value.clone(),
                        quality: p.quality,
                        ts_ms: p.ts_ms,
                    },
                );
            }
            send
        });
        self.suppressed += (before - points.len()) as u64;
    }

    /// Forgets everything (after a configuration change), so every point is sent once again.
    pub fn reset(&mut self) {
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_protocol::Ident;

    fn pt(metric: &str, ts: i64, v: f64) -> Point {
        Point::new(Ident::new("d").unwrap(), Ident::new(metric).unwrap(), ts, v)
    }

    fn rules(abs: f64, pct: f64, silence_s: u64) -> ReportRules {
        ReportRules::new(ReportPolicy {
            on_change: true,
            deadband_abs: abs,
            deadband_pct: pct,
            max_silence: Some(Duration::from_secs(silence_s)),
        })
    }

    fn sent(f: &mut ReportFilter, r: &ReportRules, p: Point) -> bool {
        let mut v = vec![p];
        f.retain(r, &mut v);
        !v.is_empty()
    }

    #[test]
    fn absolute_deadband_compares_with_the_last_value_sent() {
        let r = rules(1.0, 0.0, 3600);
        let mut f = ReportFilter::default();
        assert!(sent(&mut f, &r, pt("m", 0, 10.0)), "first reading");
        assert!(!sent(&mut f, &r, pt("m", 1, 10.6)));
        assert!(!sent(&mut f, &r, pt("m", 2, 11.0)), "exactly the band");
        assert!(sent(&mut f, &r, pt("m", 3, 11.2)), "drift adds up");
        assert!(!sent(&mut f, &r, pt("m", 4, 10.5)));
        assert_eq!(f.suppressed, 3);
    }

    #[test]
    fn percent_deadband_and_max_silence() {
        let r = rules(0.0, 10.0, 60);
        let mut f = ReportFilter::default();
        assert!(sent(&mut f, &r, pt("m", 0, 200.0)));
        assert!(!sent(&mut f, &r, pt("m", 1000, 219.0)));
        assert!(sent(&mut f, &r, pt("m", 2000, 221.0)));
        assert!(!sent(&mut f, &r, pt("m", 61_000, 221.0)));
        assert!(sent(&mut f, &r, pt("m", 62_000, 221.0)), "silent for 60 s");
    }

    #[test]
    fn quality_change_and_other_kinds_are_changes() {
        let r = rules(5.0, 0.0, 3600);
        let mut f = ReportFilter::default();
        assert!(sent(&mut f, &r, pt("m", 0, 1.0)));
        assert!(sent(
            &mut f,
            &r,
            pt("m", 1, 1.0).with_quality(Quality::Uncertain)
        ));
        let b = |ts, v: bool| Point::new(Ident::new("d").unwrap(), Ident::new("b").unwrap(), ts, v);
        assert!(sent(&mut f, &r, b(0, true)));
        assert!(!sent(&mut f, &r, b(1, true)));
        assert!(sent(&mut f, &r, b(2, false)));
    }

    #[test]
    fn rules_layer_point_over_device_over_default() {
        let mut r = ReportRules::new(ReportPolicy::default());
        let dev = ReportPolicy {
            on_change: true,
            ..ReportPolicy::default()
        };
        r.insert("d", None, dev.clone());
        let point = ReportPolicy {
            deadband_abs: 2.0,
            ..dev.clone()
        };
        r.insert("d", Some("p"), point.clone());
        assert_eq!(r.policy("d", "p"), &point);
        assert_eq!(r.policy("d", "q"), &dev);
        assert_eq!(r.policy("e", "p"), &ReportPolicy::default());
        let mut f = ReportFilter::default();
        let mut v = vec![pt("x", 0, 1.0)];
        f.retain(&ReportRules::default(), &mut v);
        assert_eq!(v.len(), 1, "no on-change rule: pass-through");
    }
}
