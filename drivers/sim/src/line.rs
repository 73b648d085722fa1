//! Serial-line sensors: a device that writes one text line per interval, such as a weather
//! station printing `T=21.4 H=55 P=1013.2`, or one printing JSON lines.
//!
//! Field values come from the same waveforms as registers, on the simulator's clock, and every
//! line written is kept in a bounded log (the `served_log` capacity) with the time its values
//! were taken, so a test can check what a parser made of each line.

use std::collections::{BTreeSet, VecDeque};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{ConfigError, LineEnding, LineFormat, LineSensorConfig, SimConfig};
use crate::error::ServeError;
use crate::rtu::SerialSettings;
use crate::waveform::Waveform;

/// Most digits after the decimal point a field may ask for.
const MAX_DECIMALS: u8 = 9;

/// A configured serial-line sensor. Cloning is cheap; clones share counters and log.
#[derive(Debug, Clone)]
pub struct LineSensor {
    inner: Arc<SensorInner>,
}

#[derive(Debug)]
struct SensorInner {
    name: String,
    path: Option<PathBuf>,
    baud: u32,
    interval: Duration,
    format: LineFormat,
    ending: LineEnding,
    garbage_every: Option<NonZeroU64>,
    fields: Vec<Field>,
    clock: Clock,
    log_capacity: usize,
    log: Mutex<VecDeque<WrittenLine>>,
    lines_written: AtomicU64,
}

#[derive(Debug)]
struct Field {
    key: String,
    decimals: usize,
    wave: Waveform,
}

/// One line a sensor wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLine {
    /// 1 for the first line written.
    pub seq: u64,
    /// The bytes written, line ending included.
    pub bytes: Vec<u8>,
    /// Whether this was an injected garbage line.
    pub garbage: bool,
    /// Time since the simulator's epoch at which the values were taken.
    pub elapsed: Duration,
}

/// A running sensor. Dropping it stops the sensor and closes the device.
#[derive(Debug)]
pub struct LineSensorHandle {
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl LineSensorHandle {
    /// Stops writing and waits for the device to be closed.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for LineSensorHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl LineSensor {
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The device path from the configuration, if it names one.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The configured baud rate.
    pub fn baud(&self) -> u32 {
        self.inner.baud
    }

    /// Lines written so far, garbage lines included.
    pub fn lines_written(&self) -> u64 {
        self.inner.lines_written.load(Ordering::Relaxed)
    }

    /// The lines written, oldest first, up to the log capacity.
    pub fn written_log(&self) -> Vec<WrittenLine> {
        let log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect()
    }

    /// The line with sequence number `seq` (1-based) if its values were taken at `elapsed`.
    pub fn render_at(&self, seq: u64, elapsed: Duration) -> WrittenLine {
        let inner = &self.inner;
        let garbage = inner
            .garbage_every
            .is_some_and(|every| seq.is_multiple_of(every.get()));
        let mut bytes = if garbage {
            match inner.format {
                LineFormat::KeyValue => {
                    let mut b = format!("~~ noise #{seq} ").into_bytes();
                    b.extend_from_slice(&[0xFF, 0xFE, b'=', b'=']);
                    b
                }
                LineFormat::Json => format!("{{\"broken\": {seq}, ").into_bytes(),
            }
        } else {
            let values = inner.fields.iter().map(|f| {
                (
                    f.key.as_str(),
                    format!("{:.*}", f.decimals, f.wave.value_at(elapsed)),
                )
            });
            match inner.format {
                LineFormat::KeyValue => values
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .into_bytes(),
                LineFormat::Json => {
                    let members: Vec<String> =
                        values.map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", members.join(",")).into_bytes()
                }
            }
        };
        bytes.extend_from_slice(inner.ending.as_str().as_bytes());
        WrittenLine {
            seq,
            bytes,
            garbage,
            elapsed,
        }
    }

    /// Opens the device now (so a wrong path fails here) and writes lines on a spawned task.
    /// Must be called in a tokio runtime.
    pub fn start(&self, settings: SerialSettings) -> Result<LineSensorHandle, ServeError> {
        let port = settings.open()?;
        let shutdown = CancellationToken::new();
        let sensor = self.clone();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { sensor.write_lines(port, &settings, token).await });
        Ok(LineSensorHandle {
            shutdown,
            task: Some(task),
        })
    }

    /// Opens the device and writes one line per interval until `shutdown` is cancelled.
    pub async fn run(
        &self,
        settings: SerialSettings,
        shutdown: CancellationToken,
    ) -> Result<(), ServeError> {
        let port = settings.open()?;
        self.write_lines(port, &settings, shutdown).await
    }

    async fn write_lines<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        mut port: W,
        settings: &SerialSettings,
        shutdown: CancellationToken,
    ) -> Result<(), ServeError> {
        let inner = &self.inner;
        tracing::info!(sensor = %inner.name, path = %settings.path.display(), "line sensor writing");
        let mut ticks = tokio::time::interval(inner.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            seq += 1;
            let line = self.render_at(seq, inner.clock.elapsed());
            let written = async {
                port.write_all(&line.bytes).await?;
                port.flush().await
            };
            written.await.map_err(|source| ServeError::WriteSerial {
                path: settings.path.clone(),
                source,
            })?;
            inner.lines_written.fetch_add(1, Ordering::Relaxed);
            if inner.log_capacity > 0 {
                let mut log = inner.log.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() == inner.log_capacity {
                    log.pop_front();
                }
                log.push_back(line);
            }
        }
    }
}

/// Builds and validates the configured sensors on `clock`.
pub(crate) fn build_sensors(
    config: &SimConfig,
    clock: Clock,
) -> Result<Vec<LineSensor>, ConfigError> {
    let mut names = BTreeSet::new();
    config
        .line_sensors
        .iter()
        .enumerate()
        .map(|(i, sensor)| {
            let at = format!("line_sensors[{i}] ({})", sensor.name);
            if !names.insert(sensor.name.as_str()) {
                return Err(ConfigError::invalid(at, "sensor name is used twice"));
            }
            build_sensor(sensor, &at, clock, config.served_log.capacity)
        })
        .collect()
}

fn build_sensor(
    config: &LineSensorConfig,
    at: &str,
    clock: Clock,
    log_capacity: usize,
) -> Result<LineSensor, ConfigError> {
    if config.name.is_empty() {
        return Err(ConfigError::invalid(at, "name must not be empty"));
    }
    if !(config.interval_s.is_finite() && config.interval_s > 0.0) {
        return Err(ConfigError::invalid(
            at,
            format!(
                "interval_s must be a positive number of seconds, got {}",
                config.interval_s
            ),
        ));
    }
    if config.fields.is_empty() {
        return Err(ConfigError::invalid(
            at,
            "a sensor needs at least one field",
        ));
    }
    let garbage_every = match config.garbage_every {
        None => None,
        Some(n) => Some(
            NonZeroU64::new(n)
                .ok_or_else(|| ConfigError::invalid(at, "garbage_every must be at least 1"))?,
        ),
    };
    let mut keys = BTreeSet::new();
    let mut fields = Vec::with_capacity(config.fields.len());
    for (i, field) in config.fields.iter().enumerate() {
        let field_at = format!("{at}.fields[{i}] ({})", field.key);
        let plain = |c: char| c.is_ascii_graphic() && !matches!(c, '=' | '"' | '\\');
        if field.key.is_empty() || !field.key.chars().all(plain) {
            return Err(ConfigError::invalid(
                field_at,
                "key must be printable ASCII without spaces, '=', '\"' or '\\'",
            ));
        }
        if !keys.insert(field.key.as_str()) {
            return Err(ConfigError::invalid(field_at, "key is used twice"));
        }
        if field.decimals > MAX_DECIMALS {
            return Err(ConfigError::invalid(
                field_at,
                format!("decimals must be at most {MAX_DECIMALS}"),
            ));
        }
        let wave = Waveform::from_config(&field.waveform)
            .map_err(|e| ConfigError::invalid(field_at, format!("waveform: {e}")))?;
        fields.push(Field {
            key: field.key.clone(),
            decimals: usize::from(field.decimals),
            wave,
        });
    }
    Ok(LineSensor {
        inner: Arc::new(SensorInner {
            name: config.name.clone(),
            path: config.path.clone(),
            baud: config.baud,
            interval: Duration::from_secs_f64(config.interval_s),
            format: config.format,
            ending: config.line_ending,
            garbage_every,
            fields,
            clock,
            log_capacity,
            log: Mutex::new(VecDeque::new()),
            lines_written: AtomicU64::new(0),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(extra: &str, format: &str) -> LineSensor {
        let text = format!(
            r#"
            [[line_sensors]]
            name = "weather"
            interval_s = 1
            format = "{format}"
            {extra}
            [[line_sensors.fields]]
            key = "T"
            decimals = 1
            waveform = {{ kind = "constant", value = 21.44 }}
            [[line_sensors.fields]]
            key = "H"
            waveform = {{ kind = "step", values = [55, 60], interval_s = 10 }}
            "#
        );
        let config = SimConfig::from_toml_str(&text).unwrap();
        build_sensors(&config, Clock::new()).unwrap().remove(0)
    }

    #[test]
    fn key_value_lines_carry_the_waveform_values() {
        let s = sensor("", "key_value");
        let line = s.render_at(1, Duration::from_secs(12));
        assert_eq!(line.bytes, b"T=21.4 H=60\n");
        assert!(!line.garbage);
    }

    #[test]
    fn json_lines_with_crlf() {
        let s = sensor("line_ending = \"crlf\"", "json");
        let line = s.render_at(1, Duration::ZERO);
        assert_eq!(line.bytes, b"{\"T\":21.4,\"H\":55}\r\n");
    }

    #[test]
    fn every_nth_line_is_garbage() {
        let s = sensor("garbage_every = 3", "key_value");
        let garbage: Vec<bool> = (1..=6)
            .map(|n| s.render_at(n, Duration::ZERO).garbage)
            .collect();
        assert_eq!(garbage, [false, false, true, false, false, true]);
        let line = s.render_at(3, Duration::ZERO);
        assert!(std::str::from_utf8(&line.bytes).is_err());
        assert!(line.bytes.ends_with(b"\n"));
    }

    #[test]
    fn a_bad_key_is_named() {
        let text = r#"
            [[line_sensors]]
            name = "weather"
            interval_s = 1
            [[line_sensors.fields]]
            key = "T C"
            waveform = { kind = "constant", value = 1 }
        "#;
        let config = SimConfig::from_toml_str(text).unwrap();
        let err = build_sensors(&config, Clock::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line_sensors[0] (weather).fields[0] (T C)"),
            "{err}"
        );
    }
}
