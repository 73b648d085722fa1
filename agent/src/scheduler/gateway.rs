//! The gateway's own health as ordinary points of the `_gateway` device.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fieldlink_buffer::Stats;
use fieldlink_drivers::DeviceCounters;
use fieldlink_protocol::{DataKind, DeviceInfo, Ident, Point, PointInfo};

use crate::uplink::UplinkStats;

/// The device name of self-telemetry.
pub const GATEWAY_DEVICE: &str = "_gateway";

/// Fixed metrics of `_gateway`, with units.
pub const METRICS: [(&str, &str); 10] = [
    ("journal.depth_points", "points"),
    ("journal.depth_records", "records"),
    ("journal.oldest_age_s", "s"),
    ("journal.file_bytes", "bytes"),
    ("dropped_points_total", "points"),
    ("rss_bytes", "bytes"),
    ("cpu_percent", "%"),
    ("uptime_s", "s"),
    ("uplink.connected", "bool"),
    ("uplink.connects_total", "connects"),
];

/// The metric carrying a device's error count.
pub fn errors_metric(device: &str) -> Option<Ident> {
    Ident::new(&format!("errors.{device}")).ok()
}

/// `_gateway` as announced in the birth message.
pub fn device_info(devices: &[Ident]) -> DeviceInfo {
    let mut points: Vec<PointInfo> = METRICS
        .iter()
        .filter_map(|(m, unit)| {
            Some(PointInfo {
                name: Ident::new(m).ok()?,
                unit: Some((*unit).to_owned()),
                kind: DataKind::Number,
                writable: false,
            })
        })
        .collect();
    points.extend(devices.iter().filter_map(|d| {
        Some(PointInfo {
            name: errors_metric(d.as_str())?,
            unit: Some("errors".into()),
            kind: DataKind::Number,
            writable: false,
        })
    }));
    DeviceInfo {
        name: Ident::new(GATEWAY_DEVICE).expect("a valid identifier"),
        points,
    }
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// User plus system CPU time of this process.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may contain spaces, closed by the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // /proc reports clock ticks of USER_HZ, which Linux fixes at 100 on every architecture.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Takes self-telemetry samples; remembers the previous CPU time for the percentage.
pub struct SelfTelemetry {
    started: Instant,
    last_cpu: Option<(Instant, Duration)>,
}

impl SelfTelemetry {
    pub fn new() -> SelfTelemetry {
        SelfTelemetry {
            started: Instant::now(),
            last_cpu: cpu_time().map(|c| (Instant::now(), c)),
        }
    }

    /// One sample at `ts_ms`. `dropped` is every point dropped so far, for any reason.
    pub fn sample(
        &mut self,
        ts_ms: i64,
        stats: Option<&Stats>,
        dropped: u64,
        counters: &[(Ident, Arc<DeviceCounters>)],
        uplink: &UplinkStats,
    ) -> Vec<Point> {
        let dev = Ident::new(GATEWAY_DEVICE).expect("a valid identifier");
        let mut out = Vec::new();
        let mut push = |metric: &str, v: f64| {
            if let Ok(m) = Ident::new(metric) {
                out.push(Point::new(dev.clone(), m, ts_ms, v));
            }
        };
        if let Some(s) = stats {
            push("journal.depth_points", s.telemetry.count as f64);
            push(
                "journal.depth_records",
                (s.acks.count + s.events.count) as f64,
            );
            let oldest = [s.telemetry, s.events, s.acks]
                .iter()
                .filter_map(|d| d.oldest_age_ms)
                .max()
                .unwrap_or(0);
            push("journal.oldest_age_s", oldest as f64 / 1000.0);
            push("journal.file_bytes", s.file_bytes as f64);
        }
        push("dropped_points_total", dropped as f64);
        if let Some(rss) = rss_bytes() {
            push("rss_bytes", rss as f64);
        }
        if let Some(cpu) = cpu_time() {
            let now = Instant::now();
            if let Some((at, before)) = self.last_cpu {
                let wall = now.duration_since(at).as_secs_f64();
                if wall > 0.0 {
                    let used = cpu.saturating_sub(before).as_secs_f64();
                    push("cpu_percent", (used / wall * 1000.0).round() / 10.0);
                }
            }
            self.last_cpu = Some((now, cpu));
        }
        push("uptime_s", self.started.elapsed().as_secs() as f64);
        let connected = uplink.connected.load(Ordering::Relaxed);
        push("uplink.connected", if connected { 1.0 } else { 0.0 });
        push(
            "uplink.connects_total",
            uplink.connects.load(Ordering::Relaxed) as f64,
        );
        for (name, c) in counters {
            if let Some(m) = errors_metric(name.as_str()) {
                let errors = DeviceCounters::get(&c.exceptions_total)
                    + DeviceCounters::get(&c.link_errors_total)
                    + DeviceCounters::get(&c.garbage_lines_total);
                out.push(Point::new(dev.clone(), m, ts_ms, errors as f64));
            }
        }
        out
    }
}

impl Default for SelfTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_readable() {
        assert!(rss_bytes().unwrap() > 0);
        assert!(cpu_time().is_some());
        let mut s = SelfTelemetry::new();
        let c = vec![(
            Ident::new("m1").unwrap(),
            Arc::new(DeviceCounters::default()),
        )];
        let pts = s.sample(1, None, 7, &c, &UplinkStats::default());
        let names: Vec<&str> = pts.iter().map(|p| p.metric.as_str()).collect();
        assert!(names.contains(&"rss_bytes") && names.contains(&"errors.m1"));
        assert!(pts.iter().all(|p| p.device.as_str() == GATEWAY_DEVICE));
        let info = device_info(&[Ident::new("m1").unwrap()]);
        assert_eq!(info.points.len(), METRICS.len() + 1);
    }
}
