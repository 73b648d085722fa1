//! The aliased binary telemetry decoder (version 2) on arbitrary bytes after a valid header
//! naming the reference birth, so that the fuzzer spends its time in the runs and columns
//! rather than on the birth check. Whatever decodes must be valid and must survive a round
//! trip through the aliased encoder.
#![no_main]

use fieldlink_protocol::{binary, reference, Message, SeriesAliases};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let aliases = SeriesAliases::from_birth(&reference::birth());
    let hash = aliases.config_hash().as_bytes();
    let mut payload = vec![binary::MAGIC, binary::VERSION_ALIASED, 0, 1, 1, 2, b'g', b'w'];
    payload.push(hash.len() as u8);
    payload.extend_from_slice(hash);
    payload.extend_from_slice(&aliases.check().to_le_bytes());
    payload.extend_from_slice(data);
    if let Ok(batch) = binary::decode_aliased(&payload, &aliases) {
        assert_eq!(batch.validate(), Ok(()));
        let bytes = binary::encode_aliased(&batch, &aliases).expect("a decoded batch encodes");
        let again = binary::decode_aliased(&bytes, &aliases).expect("an encoded batch decodes");
        assert_eq!(again, batch.in_series_order());
    }
});
