//! A value rule: a condition that fires, a separate clear condition (hysteresis), how long the
//! condition must hold before the alert fires, and how often a still-firing alert repeats its
//! notification.

/// When a value is alarming.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Condition {
    Gt {
        threshold: f64,
    },
    Ge {
        threshold: f64,
    },
    Lt {
        threshold: f64,
    },
    Le {
        threshold: f64,
    },
    Eq {
        threshold: f64,
    },
    Ne {
        threshold: f64,
    },
    /// Below `low` or above `high`.
    OutsideRange {
        low: f64,
        high: f64,
    },
}

/// What one observation means for an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The condition holds.
    Fire,
    /// The condition does not hold, but the value has not crossed the clear threshold: a
    /// firing alert stays firing, a pending one is cancelled.
    Band,
    /// The value is back on the safe side of the clear threshold.
    Clear,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("{0} must be finite")]
    NotFinite(&'static str),
    #[error("clear must be on the safe side of the threshold: {0}")]
    ClearOnWrongSide(String),
    #[error("low must be below high")]
    EmptyRange,
}

/// A rule on the values of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueRule {
    pub condition: Condition,
    /// Hysteresis: for `>`/`>=` the value must fall below `clear` to resolve; for `<`/`<=` rise
    /// above it; for outside-range come back inside `[low + clear, high - clear]` (`clear` is
    /// then a margin). Absent: the alert resolves as soon as the condition stops holding.
    /// `==` and `!=` take no clear threshold.
    pub clear: Option<f64>,
    /// How long (ms) the condition must hold before the alert fires; 0 fires at once.
    pub hold_ms: i64,
    /// How often (ms) a firing, unacknowledged alert notifies again; `None`: once.
    pub repeat_ms: Option<i64>,
}

impl ValueRule {
    /// Refuses rules that would flap or never resolve.
    pub fn validate(&self) -> Result<(), RuleError> {
        let finite = |x: f64, what| {
            if x.is_finite() {
                Ok(())
            } else {
                Err(RuleError::NotFinite(what))
            }
        };
        use Condition::*;
        match self.condition {
            Gt { threshold } | Ge { threshold } => {
                finite(threshold, "threshold")?;
                if let Some(c) = self.clear {
                    finite(c, "clear")?;
                    if c > threshold {
                        return Err(RuleError::ClearOnWrongSide(format!(
                            "{c} is above the threshold {threshold}"
                        )));
                    }
                }
            }
            Lt { threshold } | Le { threshold } => {
                finite(threshold, "threshold")?;
                if let Some(c) = self.clear {
                    finite(c, "clear")?;
                    if c < threshold {
                        return Err(RuleError::ClearOnWrongSide(format!(
                            "{c} is below the threshold {threshold}"
                        )));
                    }
                }
            }
            Eq { threshold } | Ne { threshold } => {
                finite(threshold, "threshold")?;
                if self.clear.is_some() {
                    return Err(RuleError::ClearOnWrongSide(
                        "== and != take no clear threshold".into(),
                    ));
                }
            }
            OutsideRange { low, high } => {
                finite(low, "low")?;
                finite(high, "high")?;
                if low >= high {
                    return Err(RuleError::EmptyRange);
                }
                if let Some(m) = self.clear {
                    finite(m, "clear")?;
                    if m < 0.0 || 2.0 * m > high - low {
                        return Err(RuleError::ClearOnWrongSide(format!(
                            "a margin of {m} leaves nothing inside {low}..{high}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn fires(&self, v: f64) -> bool {
        use Condition::*;
        match self.condition {
            Gt { threshold } => v > threshold,
            Ge { threshold } => v >= threshold,
            Lt { threshold } => v < threshold,
            Le { threshold } => v <= threshold,
            Eq { threshold } => v == threshold,
            Ne { threshold } => v != threshold,
            OutsideRange { low, high } => v < low || v > high,
        }
    }

    fn clears(&self, v: f64) -> bool {
        use Condition::*;
        match (self.condition, self.clear) {
            (_, None) => !self.fires(v),
            (Gt { .. } | Ge { .. }, Some(c)) => v < c,
            (Lt { .. } | Le { .. }, Some(c)) => v > c,
            (OutsideRange { low, high }, Some(m)) => v >= low + m && v <= high - m,
            (Eq { .. } | Ne { .. }, Some(_)) => !self.fires(v),
        }
    }

    /// What a value means. A NaN neither fires nor clears.
    pub fn signal(&self, v: f64) -> Signal {
        if self.fires(v) {
            Signal::Fire
        } else if self.clears(v) {
            Signal::Clear
        } else {
            Signal::Band
        }
    }
}

/// The signal of a no-data or gateway-offline rule: silent for at least `after_ms` fires, any
/// sign of life clears.
pub fn silence_signal(last_seen_ms: Option<i64>, now_ms: i64, after_ms: i64) -> Signal {
    match last_seen_ms {
        Some(t) if now_ms - t < after_ms => Signal::Clear,
        _ => Signal::Fire,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(threshold: f64, clear: Option<f64>) -> ValueRule {
        ValueRule {
            condition: Condition::Gt { threshold },
            clear,
            hold_ms: 0,
            repeat_ms: None,
        }
    }

    #[test]
    fn signals_with_and_without_hysteresis() {
        let r = gt(80.0, Some(75.0));
        assert_eq!(r.signal(81.0), Signal::Fire);
        assert_eq!(r.signal(80.0), Signal::Band);
        assert_eq!(r.signal(75.0), Signal::Band);
        assert_eq!(r.signal(74.9), Signal::Clear);
        let r = gt(80.0, None);
        assert_eq!(r.signal(80.0), Signal::Clear);
        let r = ValueRule {
            condition: Condition::OutsideRange {
                low: 10.0,
                high: 20.0,
            },
            clear: Some(1.0),
            hold_ms: 0,
            repeat_ms: None,
        };
        assert_eq!(r.signal(9.0), Signal::Fire);
        assert_eq!(r.signal(10.5), Signal::Band);
        assert_eq!(r.signal(15.0), Signal::Clear);
        assert_eq!(r.signal(21.0), Signal::Fire);
        let r = ValueRule {
            condition: Condition::Le { threshold: 5.0 },
            clear: Some(7.0),
            hold_ms: 0,
            repeat_ms: None,
        };
        assert_eq!(r.signal(5.0), Signal::Fire);
        assert_eq!(r.signal(6.0), Signal::Band);
        assert_eq!(r.signal(7.5), Signal::Clear);
    }

    #[test]
    fn rules_that_could_not_resolve_are_refused() {
        assert!(gt(80.0, Some(75.0)).validate().is_ok());
        assert!(gt(80.0, Some(85.0)).validate().is_err());
        assert!(gt(f64::NAN, None).validate().is_err());
        let r = ValueRule {
            condition: Condition::OutsideRange {
                low: 10.0,
                high: 20.0,
            },
            clear: Some(6.0),
            hold_ms: 0,
            repeat_ms: None,
        };
        assert!(r.validate().is_err());
    }

    #[test]
    fn silence() {
        assert_eq!(silence_signal(None, 1_000, 500), Signal::Fire);
        assert_eq!(silence_signal(Some(600), 1_000, 500), Signal::Clear);
        assert_eq!(silence_signal(Some(500), 1_000, 500), Signal::Fire);
    }
}
