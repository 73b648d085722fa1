//! Writing a point by name with a typed value.
//!
//! The value goes through the point map in reverse: inverse scale and offset, a range check for
//! the point's type, encoding in its word order. Coils take a single-coil write; one register a
//! single-register write; wider types one multiple-register write, so a 32-bit value is never
//! half written. A bit of a register is written with a mask write (function 22), falling back to
//! read-modify-write for devices that do not implement it. With `read_back` the point is read
//! again and the write only counts as done if the device holds what was written.

use fieldlink_protocol::Value;

use crate::codec::{decode, encode, DataType, TypedValue};
use crate::modbus::connector::Connector;
use crate::modbus::error::{ExceptionCode, LinkError};
use crate::modbus::link::{ModbusLink, Op};
use crate::pointmap::{ModbusPoint, Table, ValueError};

/// Why a write was not done.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("no device {0:?}")]
    UnknownDevice(String),
    #[error("device {device:?} has no point {point:?}")]
    UnknownPoint { device: String, point: String },
    #[error("point {0:?} is not writable")]
    NotWritable(String),
    #[error("device {0:?} is a serial-line sensor; it takes no writes")]
    ReadOnlyDevice(String),
    #[error("value refused: {0}")]
    Value(#[from] ValueError),
    #[error("device answered {}", crate::modbus::describe_exception(*.0))]
    Exception(ExceptionCode),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("read back {read:?} after writing {written:?}")]
    ReadBackMismatch {
        written: TypedValue,
        read: TypedValue,
    },
    #[error("the device's acquisition task has stopped")]
    Stopped,
}

/// A write that was done.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// The raw value written.
    pub raw: TypedValue,
    /// The engineering value read back, when the point asks for read-back.
    pub read_back: Option<Value>,
}

/// Checks and encodes a write without touching the device: what [`write_point`] would send.
pub fn plan_write(point: &ModbusPoint, value: &Value) -> Result<(TypedValue, Op), WriteError> {
    if !point.writable {
        return Err(WriteError::NotWritable(point.name.to_string()));
    }
    let raw = point.raw_for(value)?;
    let op = match (point.table, point.data_type, &raw) {
        (Table::Coil, _, TypedValue::Bool(b)) => Op::WriteCoils {
            start: point.address,
            bits: vec![*b],
        },
        (Table::HoldingRegister, DataType::Bit(i), TypedValue::Bool(b)) => Op::MaskWrite {
            address: point.address,
            and: !(1u16 << i),
            or: u16::from(*b) << i,
        },
        _ => Op::WriteRegisters {
            start: point.address,
            words: encode(&raw, point.data_type, point.order).map_err(ValueError::from)?,
        },
    };
    Ok((raw, op))
}

/// Writes `value` to `point` of unit `unit`; see the module docs.
pub async fn write_point<C: Connector>(
    link: &mut ModbusLink<C>,
    unit: u8,
    point: &ModbusPoint,
    value: &Value,
) -> Result<WriteOutcome, WriteError> {
    let (raw, op) = plan_write(point, value)?;
    match link.call(unit, op.clone()).await? {
        Ok(_) => {}
        Err(ExceptionCode::IllegalFunction) if matches!(op, Op::MaskWrite { .. }) => {
            read_modify_write(link, unit, point, &op).await?;
        }
        Err(e) => return Err(WriteError::Exception(e)),
    }
    let read_back = if point.read_back {
        let words = link
            .read(unit, point.table, point.address, point.count())
            .await?
            .map_err(WriteError::Exception)?;
        let got = decode(&words, point.data_type, point.order).map_err(ValueError::from)?;
        if got != raw {
            return Err(WriteError::ReadBackMismatch {
                written: raw,
                read: got,
            });
        }
        Some(point.engineering(&got)?)
    } else {
        None
    };
    Ok(WriteOutcome { raw, read_back })
}

async fn read_modify_write<C: Connector>(
    link: &mut ModbusLink<C>,
    unit: u8,
    point: &ModbusPoint,
    op: &Op,
) -> Result<(), WriteError> {
    let Op::MaskWrite { address, and, or } = *op else {
        return Ok(());
    };
    let current = link
        .read(unit, Table::HoldingRegister, address, 1)
        .await?
        .map_err(WriteError::Exception)?;
    let word = (current[0] & and) | (or & !and);
    tracing::debug!(point = %point.name, address, "mask write refused, read-modify-write");
    link.call(
        unit,
        Op::WriteRegisters {
            start: address,
            words: vec![word],
        },
    )
    .await?
    .map_err(WriteError::Exception)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fieldlink_protocol::Ident;

    use super::*;
    use crate::codec::{CodecError, WordOrder};

    fn point(table: Table, data_type: DataType, scale: f64, writable: bool) -> ModbusPoint {
        ModbusPoint {
            name: Ident::new("sp").unwrap(),
            unit: None,
            table,
            address: 40,
            data_type,
            order: WordOrder::Cdab,
            scale,
            offset: 0.0,
            writable,
            read_back: true,
            poll_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn chooses_the_function_by_table_and_width() {
        let (_, op) = plan_write(
            &point(Table::Coil, DataType::Bool, 1.0, true),
            &Value::Bool(true),
        )
        .unwrap();
        assert_eq!(
            op,
            Op::WriteCoils {
                start: 40,
                bits: vec![true]
            }
        );
        let (raw, op) = plan_write(
            &point(Table::HoldingRegister, DataType::U32, 0.01, true),
            &Value::Number(700.0),
        )
        .unwrap();
        assert_eq!(raw, TypedValue::U32(70_000));
        assert_eq!(
            op,
            Op::WriteRegisters {
                start: 40,
                words: vec![0x1170, 0x0001]
            }
        );
        let (_, op) = plan_write(
            &point(Table::HoldingRegister, DataType::Bit(2), 1.0, true),
            &Value::Bool(true),
        )
        .unwrap();
        assert_eq!(
            op,
            Op::MaskWrite {
                address: 40,
                and: 0xFFFB,
                or: 0x0004
            }
        );
    }

    #[test]
    fn refuses_read_only_points_and_out_of_range_values() {
        assert!(matches!(
            plan_write(
                &point(Table::HoldingRegister, DataType::U16, 1.0, false),
                &Value::Number(1.0)
            ),
            Err(WriteError::NotWritable(_))
        ));
        assert!(matches!(
            plan_write(
                &point(Table::HoldingRegister, DataType::I16, 0.1, true),
                &Value::Number(4000.0)
            ),
            Err(WriteError::Value(ValueError::Codec(
                CodecError::OutOfRange { .. }
            )))
        ));
    }
}
