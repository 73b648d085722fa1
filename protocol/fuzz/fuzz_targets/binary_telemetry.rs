//! The binary telemetry decoder on arbitrary bytes (the magic byte is prepended so that the
//! fuzzer spends its time past the first check). Whatever decodes must be valid and must
//! survive a round trip through both encodings.
#![no_main]

use fieldlink_protocol::{binary, decode_telemetry, encode_telemetry, Encoding, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(binary::MAGIC);
    payload.extend_from_slice(data);
    if let Ok(batch) = binary::decode(&payload) {
        assert_eq!(batch.validate(), Ok(()));
        for enc in [Encoding::Binary, Encoding::Json] {
            let bytes = encode_telemetry(&batch, enc).expect("a decoded batch encodes");
            let again = decode_telemetry(&bytes).expect("an encoded batch decodes");
            assert_eq!(again, batch.in_series_order());
        }
    }
});
