//! Goal A4 on the reference batch: at most 4 bytes per point binary, 12 JSON. Sizes are
//! deterministic, so this guards the design against regressions.

use fieldlink_protocol::{decode_telemetry, encode_telemetry, reference, Encoding};

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
