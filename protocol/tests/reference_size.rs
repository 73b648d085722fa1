//! Goal A4 on the reference batch: at most 4 bytes per point binary, 12 JSON. Sizes are
//! deterministic, so this guards the design against regressions.

use fieldlink_protocol::{
    decode_telemetry, decode_telemetry_aliased, encode_telemetry, encode_telemetry_aliased,
    reference, Encoding, SeriesAliases,
};

fn bytes_per_point(enc: Encoding, max_jitter_ms: u32) -> f64 {
    let b = if max_jitter_ms == 0 {
        reference::batch()
    } else {
        reference::batch_with_jitter(max_jitter_ms)
    };
    let bytes = encode_telemetry(&b, enc).unwrap();
    assert_eq!(decode_telemetry(&bytes).unwrap(), b.in_series_order());
    bytes.len() as f64 / b.points.len() as f64
}

#[test]
fn reference_batch_meets_goal_a4() {
    let bin = bytes_per_point(Encoding::Binary, 0);
    let json = bytes_per_point(Encoding::Json, 0);
    assert!(bin <= 4.0, "binary {bin} bytes/point");
    assert!(json <= 12.0, "JSON {json} bytes/point");
}

#[test]
fn jittered_timestamps_stay_within_goal_a4() {
    assert!(bytes_per_point(Encoding::Binary, 9) <= 4.0);
    assert!(bytes_per_point(Encoding::Json, 9) <= 12.0);
}

/// The reference batch sent as one batch per poll cycle (100 points each), the way the agent
/// publishes at low latency: names dominate the named form, aliases take them out.
fn per_cycle_bytes_per_point(max_jitter_ms: u32, aliased: bool) -> f64 {
    let b = reference::batch_with_jitter(max_jitter_ms);
    let aliases = SeriesAliases::from_birth(&reference::birth());
    let mut bytes = 0;
    for poll in reference::per_cycle(&b) {
        let payload = if aliased {
            encode_telemetry_aliased(&poll, Encoding::Binary, &aliases).unwrap()
        } else {
            encode_telemetry(&poll, Encoding::Binary).unwrap()
        };
        let back = if aliased {
            decode_telemetry_aliased(&payload, &aliases).unwrap()
        } else {
            decode_telemetry(&payload).unwrap()
        };
        assert_eq!(back, poll.in_series_order());
        bytes += payload.len();
    }
    bytes as f64 / b.points.len() as f64
}

#[test]
fn per_cycle_batches_meet_goal_a4_with_aliases() {
    for jitter in [0, 9] {
        let named = per_cycle_bytes_per_point(jitter, false);
        let aliased = per_cycle_bytes_per_point(jitter, true);
        println!("jitter 0-{jitter} ms: named {named:.2}, aliased {aliased:.2} bytes/point");
        assert!(named > 4.0, "named {named} bytes/point");
        assert!(aliased <= 4.0, "aliased {aliased} bytes/point");
    }
}
