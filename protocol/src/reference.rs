//! The reference telemetry batch of goal A4, shared by the benchmark and the size tests.
//!
//! 1,000 points: 10 energy meters × 10 metrics, polled once a second for 10 seconds, the way
//! an agent emits them (time-major: every device's readings of one cycle, then the next
//! cycle). Each meter is polled 37 ms after the previous one. Values are register counts
//! times the metric's decimal scale, as Modbus meters report them, and vary slowly: a
//! deterministic random walk of at most ±2 counts of the last digit per second (energy only
//! grows). The generator is a fixed xorshift, so the batch is identical on every machine.

use crate::{Birth, DataKind, DeviceInfo, Ident, Point, PointInfo, TelemetryBatch};

/// Metric name, starting value in register counts, and decimal places.
const METRICS: [(&str, i64, i32); 10] = [
    ("voltage_l1", 2_301, 1),
    ("voltage_l2", 2_297, 1),
    ("voltage_l3", 2_305, 1),
    ("current_l1", 1_250, 2),
    ("current_l2", 1_198, 2),
    ("current_l3", 1_302, 2),
    ("power_kw", 8_512, 3),
    ("energy_kwh", 1_234_567, 1),
    ("frequency_hz", 4_998, 2),
    ("power_factor", 95, 2),
];

/// Devices in the reference batch.
pub const DEVICES: usize = 10;
/// Poll cycles in the reference batch.
pub const CYCLES: usize = 10;
/// First timestamp of the reference batch (2023-11-14T22:13:20Z).
pub const T0_MS: i64 = 1_700_000_000_000;

/// The reference batch: 1,000 points over 100 series at a steady 1 s cadence.
pub fn batch() -> TelemetryBatch {
    build(0)
}

/// The reference batch with each poll's timestamp late by 0 to `max_jitter_ms` milliseconds,
/// as when timestamps are taken when a read completes.
pub fn batch_with_jitter(max_jitter_ms: u32) -> TelemetryBatch {
    build(max_jitter_ms)
}

/// The birth of the reference gateway: its 10 meters with their 10 metrics each, in the
/// batch's order, so that the alias table numbers the reference series 0 to 99.
pub fn birth() -> Birth {
    Birth {
        gateway: Ident::new("gw-01").expect("valid name"),
        boot_epoch: 1,
        ts_ms: T0_MS,
        agent_version: "0.1.0".into(),
        config_hash: "5eedf1e1d11c0a4b".into(),
        devices: (1..=DEVICES)
            .map(|d| DeviceInfo {
                name: Ident::new(&format!("meter-{d:02}")).expect("valid name"),
                points: METRICS
                    .iter()
                    .map(|(m, _, _)| PointInfo {
                        name: Ident::new(m).expect("valid name"),
                        unit: None,
                        kind: DataKind::Number,
                        writable: false,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// `batch` cut into one batch per poll cycle (every meter's poll of one second, 100 points),
/// numbered on from `batch.seq`: the shape of an agent publishing at low latency.
pub fn per_cycle(batch: &TelemetryBatch) -> Vec<TelemetryBatch> {
    let mut out: Vec<TelemetryBatch> = (0..CYCLES)
        .map(|c| {
            TelemetryBatch::new(
                batch.gateway.clone(),
                batch.boot_epoch,
                batch.seq + c as u64,
            )
        })
        .collect();
    for p in &batch.points {
        let cycle = ((p.ts_ms - T0_MS) / 1_000).clamp(0, CYCLES as i64 - 1) as usize;
        out[cycle].points.push(p.clone());
    }
    out
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn build(max_jitter_ms: u32) -> TelemetryBatch {
    let mut rng = XorShift(0x5eed_f1e1_d11c);
    let devices: Vec<Ident> = (1..=DEVICES)
        .map(|d| Ident::new(&format!("meter-{d:02}")).expect("valid name"))
        .collect();
    let metrics: Vec<Ident> = METRICS
        .iter()
        .map(|(m, _, _)| Ident::new(m).expect("valid name"))
        .collect();
    let mut counts: Vec<i64> = (0..DEVICES)
        .flat_map(|d| METRICS.iter().map(move |(_, c, _)| c + 3 * d as i64))
        .collect();
    let mut batch = TelemetryBatch::new(Ident::new("gw-01").expect("valid name"), 1, 1);
    for cycle in 0..CYCLES {
        for (d, device) in devices.iter().enumerate() {
            let jitter = if max_jitter_ms == 0 {
                0
            } else {
                (rng.next() % (u64::from(max_jitter_ms) + 1)) as i64
            };
            let ts = T0_MS + 1_000 * cycle as i64 + 37 * d as i64 + jitter;
            for (m, metric) in metrics.iter().enumerate() {
                let count = &mut counts[d * METRICS.len() + m];
                if cycle > 0 {
                    let step = (rng.next() % 5) as i64 - 2;
                    *count += if metric.as_str() == "energy_kwh" {
                        step.abs()
                    } else {
                        step
                    };
                }
                let scale = 10f64.powi(METRICS[m].2);
                batch.points.push(Point::new(
                    device.clone(),
                    metric.clone(),
                    ts,
                    *count as f64 / scale,
                ));
            }
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    #[test]
    fn shape() {
        let b = batch();
        assert_eq!(b.points.len(), 1_000);
        assert_eq!(b.series_count(), 100);
        assert_eq!(b.points[0].ts_ms, T0_MS);
        assert_eq!(b.points[0].value, Value::Number(230.1));
        assert_eq!(b.points[100].ts_ms, T0_MS + 1_000);
        assert_eq!(batch(), batch());
        let j = batch_with_jitter(9);
        assert!(j
            .points
            .iter()
            .zip(&b.points)
            .all(|(a, b)| (0..=9).contains(&(a.ts_ms - b.ts_ms))));
        assert_ne!(j, b);
        let cycles = per_cycle(&j);
        assert_eq!(cycles.len(), CYCLES);
        assert!(cycles
            .iter()
            .all(|c| c.points.len() == DEVICES * METRICS.len()));
        let aliases = crate::SeriesAliases::from_birth(&birth());
        assert_eq!(aliases.len(), 100);
        assert_eq!(
            aliases.alias(&b.points[0].device, &b.points[0].metric),
            Some(0)
        );
    }
}
