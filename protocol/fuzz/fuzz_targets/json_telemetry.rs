//! The telemetry decoder on arbitrary bytes, JSON or not. Whatever decodes must be valid and
//! must survive a round trip through both encodings.
#![no_main]

use fieldlink_protocol::{decode_telemetry, encode_telemetry, Encoding, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = decode_telemetry(data) {
        assert_eq!(batch.validate(), Ok(()));
        for enc in [Encoding::Json, Encoding::Binary] {
            let bytes = encode_telemetry(&batch, enc).expect("a decoded batch encodes");
            let again = decode_telemetry(&bytes).expect("an encoded batch decodes");
            assert_eq!(again, batch.in_series_order());
        }
    }
});
