//! Choosing and recognising a telemetry encoding.
//!
//! A payload says by itself which encoding it is: binary payloads start with
//! [`binary::MAGIC`], which can never start JSON, so a receiver needs no side channel (MQTT 3.1.1
//! has no content-type property) and JSON stays accepted from any tool.

use crate::error::{DecodeError, EncodeError};
use crate::limits::MAX_PAYLOAD_BYTES;
use crate::{binary, json, BirthRef, SeriesAliases, TelemetryBatch};

/// The two encodings of a telemetry batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    /// Readable JSON (`json` module), accepted from any tool.
    Json,
    /// The compact form (`binary` module), the default between Fieldlink programs.
    #[default]
    Binary,
}

/// Which encoding `payload` is in, judged by its first byte.
pub fn detect(payload: &[u8]) -> Result<Encoding, DecodeError> {
    match payload.first() {
        None => Err(DecodeError::Empty),
        Some(&binary::MAGIC) => Ok(Encoding::Binary),
        Some(_) => {
            json::check_json_payload(payload)?;
            Ok(Encoding::Json)
        }
    }
}

/// Writes `batch` in `encoding`, after validating it.
pub fn encode_telemetry(
    batch: &TelemetryBatch,
    encoding: Encoding,
) -> Result<Vec<u8>, EncodeError> {
    match encoding {
        Encoding::Json => json::encode(batch),
        Encoding::Binary => binary::encode(batch),
    }
}

/// [`encode_telemetry`], naming the series of a birth by their aliases in the binary
/// encoding (version 2; JSON names series here: its aliased form, [`json::encode_aliased`],
/// is sent only where it was announced).
pub fn encode_telemetry_aliased(
    batch: &TelemetryBatch,
    encoding: Encoding,
    aliases: &SeriesAliases,
) -> Result<Vec<u8>, EncodeError> {
    match encoding {
        Encoding::Json => json::encode(batch),
        Encoding::Binary => binary::encode_aliased(batch, aliases),
    }
}

/// Reads a telemetry batch in either encoding and validates it. A binary payload in the
/// aliased form is refused with `BinaryError::NeedsBirth`: see
/// [`decode_telemetry_aliased`] and [`binary::birth_ref`].
pub fn decode_telemetry(payload: &[u8]) -> Result<TelemetryBatch, DecodeError> {
    decode_telemetry_with(payload, None)
}

/// [`decode_telemetry`], resolving aliases with the table of the birth the payload names.
pub fn decode_telemetry_aliased(
    payload: &[u8],
    aliases: &SeriesAliases,
) -> Result<TelemetryBatch, DecodeError> {
    decode_telemetry_with(payload, Some(aliases))
}

fn decode_telemetry_with(
    payload: &[u8],
    aliases: Option<&SeriesAliases>,
) -> Result<TelemetryBatch, DecodeError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    match (detect(payload)?, aliases) {
        (Encoding::Binary, None) => binary::decode(payload),
        (Encoding::Binary, Some(a)) => binary::decode_aliased(payload, a),
        (Encoding::Json, None) => json::decode(payload),
        (Encoding::Json, Some(a)) => json::decode_aliased(payload, a),
    }
}

/// The birth a telemetry payload in an aliased form (binary versions 2 and 3, JSON version 2)
/// was written against, or `None` when it names every series.
pub fn telemetry_birth_ref(payload: &[u8]) -> Result<Option<BirthRef>, DecodeError> {
    match detect(payload)? {
        Encoding::Binary => binary::birth_ref(payload),
        Encoding::Json => json::birth_ref(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ident, Point};

    #[test]
    fn one_entry_point_reads_both() {
        let mut b = TelemetryBatch::new(Ident::new("g").unwrap(), 1, 2);
        let (d, m) = (Ident::new("d").unwrap(), Ident::new("m").unwrap());
        b.points.push(Point::new(d.clone(), m.clone(), 10, 1.5));
        b.points.push(Point::new(d, m, 20, 2.5));
        for enc in [Encoding::Json, Encoding::Binary] {
            let bytes = encode_telemetry(&b, enc).unwrap();
            assert_eq!(detect(&bytes).unwrap(), enc);
            assert_eq!(decode_telemetry(&bytes).unwrap(), b);
        }
    }

    #[test]
    fn unknown_first_bytes_are_named() {
        assert!(matches!(decode_telemetry(b""), Err(DecodeError::Empty)));
        assert!(matches!(
            decode_telemetry(b"\x00abc"),
            Err(DecodeError::UnknownEncoding(0))
        ));
        assert!(matches!(
            decode_telemetry(b"\xef\xbb\xbf{}"),
            Err(DecodeError::UnknownEncoding(0xef))
        ));
        assert!(matches!(
            decode_telemetry(b"  \"text\""),
            Err(DecodeError::UnknownEncoding(b'"'))
        ));
    }
}
