//! What the gateway measures, as announced in its birth message and checked by commands.

use fieldlink_drivers::pointmap::{Device, DeviceKind, ModbusPoint};
use fieldlink_drivers::{DataType, PointMap};
use fieldlink_protocol::{DataKind, DeviceInfo, Ident, PointInfo};

/// The value type a Modbus point yields.
pub fn modbus_kind(p: &ModbusPoint) -> DataKind {
    match p.data_type {
        DataType::Bool | DataType::Bit(_) => DataKind::Bool,
        DataType::String(_) => DataKind::Str,
        _ => DataKind::Number,
    }
}

/// `(name, unit, kind, writable)` of every point of a device.
pub fn device_points(d: &Device) -> Vec<(Ident, Option<String>, DataKind, bool)> {
    match &d.kind {
        DeviceKind::Modbus(m) => m
            .points
            .iter()
            .map(|p| (p.name.clone(), p.unit.clone(), modbus_kind(p), p.writable))
            .collect(),
        DeviceKind::SerialLine(s) => s
            .points
            .iter()
            .map(|p| (p.name.clone(), p.unit.clone(), DataKind::Number, false))
            .collect(),
    }
}

/// The devices and points for a birth message.
pub fn devices(map: &PointMap) -> Vec<DeviceInfo> {
    map.devices
        .iter()
        .map(|d| DeviceInfo {
            name: d.name.clone(),
            points: device_points(d)
                .into_iter()
                .map(|(name, unit, kind, writable)| PointInfo {
                    name,
                    unit,
                    kind,
                    writable,
                })
                .collect(),
        })
        .collect()
}
