//! Bytes per point and encode/decode throughput of both telemetry encodings on the reference
//! batch (goal A4), with the alternatives that were measured to choose the binary design.
//!
//! Run with `cargo bench -p fieldlink-protocol`. Sizes are exact and machine-independent.
//! Throughput depends on the machine, so each figure is also given as a ratio to a baseline
//! measured in the same run: serde_json writing and reading the plain list of points with
//! derived serde code. The protocol's figures include full validation of the batch; the
//! baseline only validates identifiers (in `Ident`'s deserializer).

use std::hint::black_box;
use std::time::{Duration, Instant};

use fieldlink_protocol::binary::{self, EncodeOptions, NumberCoding};
use fieldlink_protocol::{json, reference, Point, SeriesAliases, TelemetryBatch, Value};
use miniz_oxide::deflate::compress_to_vec;
use miniz_oxide::inflate::decompress_to_vec;
use serde_json::{Map, Value as Json};

fn main() {
    let steady = reference::batch();
    let jitter = reference::batch_with_jitter(9);
    println!(
        "reference batch: {} points, {} series, 1 s cadence",
        steady.points.len(),
        steady.series_count()
    );
    println!();
    println!(
        "{:<58} {:>9} {:>9}",
        "bytes per point", "steady", "jitter 0-9 ms"
    );
    for (name, f) in size_alternatives() {
        let a = f(&steady) as f64 / steady.points.len() as f64;
        let b = f(&jitter) as f64 / jitter.points.len() as f64;
        println!("{name:<58} {a:>9.2} {b:>11.2}");
    }
    println!();
    per_cycle(&steady, &jitter);
    println!();
    throughput(&steady);
}

/// The same readings sent as one batch per poll cycle (100 points), as an agent publishing at
/// low latency does: the named form repeats the names in every batch, the aliased form does
/// not.
fn per_cycle(steady: &TelemetryBatch, jitter: &TelemetryBatch) {
    let aliases = SeriesAliases::from_birth(&reference::birth());
    let per_point = |b: &TelemetryBatch, f: &SizeOf<'_>| {
        let bytes: usize = reference::per_cycle(b).iter().map(f).sum();
        bytes as f64 / b.points.len() as f64
    };
    let rows: [(&str, &SizeOf<'_>); 3] = [
        ("binary, named (version 1)", &|b| {
            binary::encode(b).unwrap().len()
        }),
        ("binary, aliased (version 2)", &|b| {
            binary::encode_aliased(b, &aliases).unwrap().len()
        }),
        ("JSON", &|b| json::encode(b).unwrap().len()),
    ];
    println!(
        "{:<58} {:>9} {:>9}",
        "bytes per point, one batch per poll cycle", "steady", "jitter 0-9 ms"
    );
    for (name, f) in rows {
        let a = per_point(steady, f);
        let b = per_point(jitter, f);
        println!("{name:<58} {a:>9.2} {b:>11.2}");
    }
}

type SizeOf<'a> = dyn Fn(&TelemetryBatch) -> usize + 'a;
type SizeFn = Box<SizeOf<'static>>;

fn size_alternatives() -> Vec<(&'static str, SizeFn)> {
    let bin = |o: EncodeOptions| move |b: &TelemetryBatch| binary::encode_with(b, o).unwrap();
    let opts = |share_timestamps, numbers| EncodeOptions {
        share_timestamps,
        numbers,
    };
    vec![
        (
            "binary: chosen (decimal deltas, shared dod timestamps)",
            Box::new(move |b| bin(EncodeOptions::default())(b).len()),
        ),
        (
            "binary: numbers as XOR (Gorilla-style, byte aligned)",
            Box::new(move |b| bin(opts(true, NumberCoding::Xor))(b).len()),
        ),
        (
            "binary: numbers as raw f64",
            Box::new(move |b| bin(opts(true, NumberCoding::Raw))(b).len()),
        ),
        (
            "binary: timestamps not shared between series",
            Box::new(move |b| bin(opts(false, NumberCoding::Auto))(b).len()),
        ),
        (
            "binary: raw f64, timestamps not shared",
            Box::new(move |b| bin(opts(false, NumberCoding::Raw))(b).len()),
        ),
        (
            "binary chosen + deflate level 6",
            Box::new(move |b| compress_to_vec(&binary::encode(b).unwrap(), 6).len()),
        ),
        (
            "binary chosen + deflate level 10",
            Box::new(move |b| compress_to_vec(&binary::encode(b).unwrap(), 10).len()),
        ),
        (
            "binary XOR + deflate level 6",
            Box::new(move |b| compress_to_vec(&bin(opts(true, NumberCoding::Xor))(b), 6).len()),
        ),
        (
            "JSON: chosen (grouped by device and timestamps)",
            Box::new(|b| json::encode(b).unwrap().len()),
        ),
        (
            "JSON chosen + deflate level 6",
            Box::new(|b| compress_to_vec(&json::encode(b).unwrap(), 6).len()),
        ),
        (
            "JSON: flat list of points (serde derive)",
            Box::new(|b| flat_json(b).len()),
        ),
        (
            "JSON: per device and timestamp (ThingsBoard style)",
            Box::new(|b| per_timestamp_json(b).len()),
        ),
    ]
}

/// The obvious JSON form: `{"gateway":…,"points":[{"device":…,"metric":…,"ts_ms":…,"value":…}]}`.
fn flat_json(b: &TelemetryBatch) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Flat<'a> {
        gateway: &'a str,
        boot_epoch: u64,
        seq: u64,
        points: &'a [Point],
    }
    serde_json::to_vec(&Flat {
        gateway: b.gateway.as_str(),
        boot_epoch: b.boot_epoch,
        seq: b.seq,
        points: &b.points,
    })
    .unwrap()
}

/// `{"meter-01":[{"ts":…,"values":{"voltage_l1":230.1,…}},…],…}`: values grouped under one
/// timestamp per device, as ThingsBoard's gateway sends them.
fn per_timestamp_json(b: &TelemetryBatch) -> Vec<u8> {
    let mut devices: Map<String, Json> = Map::new();
    for p in &b.points {
        let rows = devices
            .entry(p.device.to_string())
            .or_insert_with(|| Json::Array(Vec::new()))
            .as_array_mut()
            .unwrap();
        if rows.last().and_then(|r| r["ts"].as_i64()) != Some(p.ts_ms) {
            rows.push(serde_json::json!({"ts": p.ts_ms, "values": {}}));
        }
        let value = match &p.value {
            Value::Number(x) => serde_json::json!(x),
            Value::Bool(x) => serde_json::json!(x),
            Value::Str(x) => serde_json::json!(x),
        };
        rows.last_mut().unwrap()["values"]
            .as_object_mut()
            .unwrap()
            .insert(p.metric.to_string(), value);
    }
    serde_json::to_vec(&devices).unwrap()
}

/// Time of one call: the fastest of 20 rounds of about 50 ms each. The machine is shared, so
/// the fastest round is the best estimate of the uncontended cost; the median would mostly
/// measure the neighbours.
fn time<R>(mut f: impl FnMut() -> R) -> Duration {
    black_box(f());
    (0..20)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed() < Duration::from_millis(50) {
                black_box(f());
                n += 1;
            }
            start.elapsed() / n
        })
        .min()
        .unwrap_or_default()
}

fn throughput(b: &TelemetryBatch) {
    let points = b.points.len() as f64;
    let rate = |d: Duration| points / d.as_secs_f64();
    let bin = binary::encode(b).unwrap();
    let js = json::encode(b).unwrap();
    let flat = flat_json(b);
    let deflated = compress_to_vec(&bin, 6);
    let aliases = SeriesAliases::from_birth(&reference::birth());
    let aliased = binary::encode_aliased(b, &aliases).unwrap();

    let base_enc = rate(time(|| flat_json(black_box(b))));
    let base_dec = rate(time(|| {
        #[derive(serde::Deserialize)]
        struct Flat {
            #[allow(dead_code)]
            points: Vec<Point>,
        }
        serde_json::from_slice::<Flat>(black_box(&flat)).unwrap()
    }));
    let rows = [
        (
            "encode binary",
            rate(time(|| binary::encode(black_box(b)).unwrap())),
            base_enc,
        ),
        (
            "decode binary",
            rate(time(|| binary::decode(black_box(&bin)).unwrap())),
            base_dec,
        ),
        (
            "encode binary, aliased",
            rate(time(|| {
                binary::encode_aliased(black_box(b), &aliases).unwrap()
            })),
            base_enc,
        ),
        (
            "decode binary, aliased",
            rate(time(|| {
                binary::decode_aliased(black_box(&aliased), &aliases).unwrap()
            })),
            base_dec,
        ),
        (
            "encode JSON",
            rate(time(|| json::encode(black_box(b)).unwrap())),
            base_enc,
        ),
        (
            "decode JSON",
            rate(time(|| {
                json::decode::<TelemetryBatch>(black_box(&js)).unwrap()
            })),
            base_dec,
        ),
        (
            "encode binary + deflate 6",
            rate(time(|| {
                compress_to_vec(&binary::encode(black_box(b)).unwrap(), 6)
            })),
            base_enc,
        ),
        (
            "inflate + decode binary",
            rate(time(|| {
                binary::decode(&decompress_to_vec(black_box(&deflated)).unwrap()).unwrap()
            })),
            base_dec,
        ),
        ("baseline: serde_json write flat points", base_enc, base_enc),
        ("baseline: serde_json read flat points", base_dec, base_dec),
    ];
    println!(
        "{:<42} {:>14} {:>12}",
        "throughput (validation included)", "points/s", "× baseline"
    );
    for (name, r, base) in rows {
        println!("{name:<42} {r:>14.0} {:>12.2}", r / base);
    }
}
