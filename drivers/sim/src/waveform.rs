//! Waveforms: a point's engineering value as a pure function of time.
//!
//! A waveform is evaluated when a request is served, at the time elapsed since the simulator's
//! [`crate::Clock`] started. Nothing depends on how often it is evaluated, so a test can compute
//! the ground truth of any served value from the served-at time with [`Waveform::value_at`].

use std::f64::consts::TAU;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::WaveformConfig;

/// A validated waveform.
#[derive(Debug)]
pub enum Waveform {
    Constant(f64),
    Counter {
        start: f64,
        increment: f64,
        interval: f64,
    },
    Ramp {
        min: f64,
        max: f64,
        period: f64,
    },
    Sine {
        offset: f64,
        amplitude: f64,
        period: f64,
        phase_rad: f64,
    },
    RandomWalk(RandomWalk),
    Step {
        values: Vec<f64>,
        interval: f64,
    },
}

impl Waveform {
    /// Checks a configured waveform; the error says which parameter is wrong.
    ///
    /// A `constant` with a text or boolean value is not a numeric waveform: the caller handles
    /// those before asking for a [`Waveform`].
    pub fn from_config(config: &WaveformConfig) -> Result<Waveform, String> {
        use crate::config::ConstantValue;
        Ok(match config {
            WaveformConfig::Constant { value } => match value {
                ConstantValue::Number(v) => Waveform::Constant(finite("value", *v)?),
                ConstantValue::Bool(b) => Waveform::Constant(if *b { 1.0 } else { 0.0 }),
                ConstantValue::Text(_) => {
                    return Err("a text constant only fits a string point".into())
                }
            },
            WaveformConfig::Counter {
                start,
                increment,
                interval_s,
            } => Waveform::Counter {
                start: finite("start", *start)?,
                increment: finite("increment", *increment)?,
                interval: positive("interval_s", *interval_s)?,
            },
            WaveformConfig::Ramp { min, max, period_s } => {
                let (min, max) = (finite("min", *min)?, finite("max", *max)?);
                if min >= max {
                    return Err(format!("ramp min {min} must be below max {max}"));
                }
                Waveform::Ramp {
                    min,
                    max,
                    period: positive("period_s", *period_s)?,
                }
            }
            WaveformConfig::Sine {
                offset,
                amplitude,
                period_s,
                phase_deg,
            } => Waveform::Sine {
                offset: finite("offset", *offset)?,
                amplitude: finite("amplitude", *amplitude)?,
                period: positive("period_s", *period_s)?,
                phase_rad: finite("phase_deg", *phase_deg)?.to_radians(),
            },
            WaveformConfig::RandomWalk {
                start,
                max_step,
                min,
                max,
                interval_s,
                seed,
            } => {
                let (min, max) = (finite("min", *min)?, finite("max", *max)?);
                let start = finite("start", *start)?;
                if min >= max {
                    return Err(format!("random walk min {min} must be below max {max}"));
                }
                if !(min..=max).contains(&start) {
                    return Err(format!(
                        "random walk start {start} is outside {min}..={max}"
                    ));
                }
                let max_step = finite("max_step", *max_step)?;
                if max_step < 0.0 || max_step > max - min {
                    return Err(format!(
                        "random walk max_step {max_step} must be in 0..={}",
                        max - min
                    ));
                }
                Waveform::RandomWalk(RandomWalk::new(
                    start,
                    max_step,
                    min,
                    max,
                    positive("interval_s", *interval_s)?,
                    *seed,
                ))
            }
            WaveformConfig::Step { values, interval_s } => {
                if values.is_empty() {
                    return Err("step needs at least one value".into());
                }
                for v in values {
                    finite("values", *v)?;
                }
                Waveform::Step {
                    values: values.clone(),
                    interval: positive("interval_s", *interval_s)?,
                }
            }
        })
    }

    /// The value at `elapsed` after the simulator's time zero.
    pub fn value_at(&self, elapsed: Duration) -> f64 {
        let t = elapsed.as_secs_f64();
        match self {
            Waveform::Constant(v) => *v,
            Waveform::Counter {
                start,
                increment,
                interval,
            } => start + increment * (t / interval).floor(),
            Waveform::Ramp { min, max, period } => min + (max - min) * (t / period).fract(),
            Waveform::Sine {
                offset,
                amplitude,
                period,
                phase_rad,
            } => offset + amplitude * (TAU * t / period + phase_rad).sin(),
            Waveform::RandomWalk(walk) => walk.value_at_step((t / walk.interval).floor() as u64),
            Waveform::Step { values, interval } => {
                let step = (t / interval).floor() as u64;
                values[(step % values.len() as u64) as usize]
            }
        }
    }

    /// The smallest and largest value the waveform can take, `None` for a counter, which grows
    /// without bound (and wraps in integer types).
    pub fn bounds(&self) -> Option<(f64, f64)> {
        match self {
            Waveform::Constant(v) => Some((*v, *v)),
            Waveform::Counter { .. } => None,
            Waveform::Ramp { min, max, .. } => Some((*min, *max)),
            Waveform::Sine {
                offset, amplitude, ..
            } => Some((offset - amplitude.abs(), offset + amplitude.abs())),
            Waveform::RandomWalk(walk) => Some((walk.min, walk.max)),
            Waveform::Step { values, .. } => Some(
                values
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                        (lo.min(*v), hi.max(*v))
                    }),
            ),
        }
    }

    /// Whether the waveform only takes whole values, so integer types need no rounding.
    pub(crate) fn is_counter(&self) -> bool {
        matches!(self, Waveform::Counter { .. })
    }
}

/// A seeded random walk, reflected at its bounds.
///
/// Step `k`'s move is derived from `(seed, k)` alone, so the value after `k` steps is fixed by
/// the seed. The last evaluated step is cached so that evaluating at increasing times costs one
/// step per interval, not one per interval since the start.
#[derive(Debug)]
pub struct RandomWalk {
    start: f64,
    max_step: f64,
    min: f64,
    max: f64,
    interval: f64,
    seed: u64,
    cache: Mutex<(u64, f64)>,
}

impl RandomWalk {
    fn new(start: f64, max_step: f64, min: f64, max: f64, interval: f64, seed: u64) -> Self {
        RandomWalk {
            start,
            max_step,
            min,
            max,
            interval,
            seed,
            cache: Mutex::new((0, start)),
        }
    }

    /// The value after `step` moves.
    pub fn value_at_step(&self, step: u64) -> f64 {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (mut k, mut value) = if cache.0 <= step {
            *cache
        } else {
            (0, self.start)
        };
        while k < step {
            k += 1;
            value = self.reflect(value + self.move_of(k));
        }
        *cache = (k, value);
        value
    }

    /// The move of step `k`, uniform in `-max_step..max_step`.
    fn move_of(&self, k: u64) -> f64 {
        let bits = mix64(self.seed ^ mix64(k));
        let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
        (unit * 2.0 - 1.0) * self.max_step
    }

    fn reflect(&self, v: f64) -> f64 {
        if v > self.max {
            self.max - (v - self.max)
        } else if v < self.min {
            self.min + (self.min - v)
        } else {
            v
        }
    }
}

/// A 64-bit integer hash with good avalanche (the splitmix64 finaliser).
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn finite(name: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{name} must be a finite number, got {v}"))
    }
}

fn positive(name: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "{name} must be a positive number of seconds, got {v}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn wave(toml_text: &str) -> Waveform {
        let config: WaveformConfig = toml::from_str(toml_text).unwrap();
        Waveform::from_config(&config).unwrap()
    }

    #[test]
    fn counter_steps_once_per_interval() {
        let w = wave("kind = 'counter'\nstart = 10\nincrement = 5\ninterval_s = 2");
        assert_eq!(w.value_at(at(0.0)), 10.0);
        assert_eq!(w.value_at(at(1.9)), 10.0);
        assert_eq!(w.value_at(at(2.0)), 15.0);
        assert_eq!(w.value_at(at(9.0)), 30.0);
        assert_eq!(w.bounds(), None);
    }

    #[test]
    fn ramp_is_a_sawtooth() {
        let w = wave("kind = 'ramp'\nmin = 0\nmax = 100\nperiod_s = 10");
        assert_eq!(w.value_at(at(0.0)), 0.0);
        assert_eq!(w.value_at(at(5.0)), 50.0);
        assert_eq!(w.value_at(at(12.5)), 25.0);
    }

    #[test]
    fn sine_has_its_offset_amplitude_and_phase() {
        let w = wave("kind = 'sine'\noffset = 230\namplitude = 10\nperiod_s = 4\nphase_deg = 90");
        assert!((w.value_at(at(0.0)) - 240.0).abs() < 1e-9);
        assert!((w.value_at(at(2.0)) - 220.0).abs() < 1e-9);
        assert_eq!(w.bounds(), Some((220.0, 240.0)));
    }

    #[test]
    fn step_cycles_through_its_values() {
        let w = wave("kind = 'step'\nvalues = [1, 5, 3]\ninterval_s = 1");
        let seen: Vec<f64> = (0..7).map(|s| w.value_at(at(s as f64 + 0.5))).collect();
        assert_eq!(seen, [1.0, 5.0, 3.0, 1.0, 5.0, 3.0, 1.0]);
        assert_eq!(w.bounds(), Some((1.0, 5.0)));
    }

    #[test]
    fn random_walk_depends_on_the_seed_only_and_stays_in_bounds() {
        let text = "kind = 'random_walk'\nstart = 50\nmax_step = 7\nmin = 0\nmax = 100\ninterval_s = 1\nseed = 42";
        let forward = wave(text);
        let path: Vec<f64> = (0..500).map(|s| forward.value_at(at(s as f64))).collect();
        assert!(path.iter().all(|v| (0.0..=100.0).contains(v)));
        assert!(path.windows(2).all(|w| (w[1] - w[0]).abs() <= 7.0 + 1e-9));
        assert!(path.windows(2).any(|w| w[0] != w[1]));

        // Evaluated backwards, out of order, by a fresh instance: the same path.
        let other = wave(text);
        for s in (0..500).rev().step_by(37) {
            assert_eq!(other.value_at(at(s as f64)), path[s]);
        }
        let reseeded = wave(&text.replace("seed = 42", "seed = 43"));
        let differs = (1..500).any(|s| reseeded.value_at(at(s as f64)) != path[s]);
        assert!(differs);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (text, needle) in [
            ("kind = 'ramp'\nmin = 5\nmax = 5\nperiod_s = 1", "min 5 must be below max 5"),
            ("kind = 'sine'\namplitude = 1\nperiod_s = 0", "period_s"),
            ("kind = 'counter'\ninterval_s = -1", "interval_s"),
            ("kind = 'step'\nvalues = []\ninterval_s = 1", "at least one value"),
            (
                "kind = 'random_walk'\nstart = 200\nmax_step = 1\nmin = 0\nmax = 100\ninterval_s = 1",
                "start 200",
            ),
        ] {
            let config: WaveformConfig = toml::from_str(text).unwrap();
            let err = Waveform::from_config(&config).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
