//! Turning a [`PointMapConfig`] into a [`PointMap`], collecting every mistake with its path.

use std::collections::HashMap;
use std::time::Duration;

use fieldlink_protocol::Ident;
use regex::Regex;

use crate::codec::DataType;
use crate::pointmap::config::{
    DeviceConfig, LineFormatConfig, PointConfig, PointMapConfig, TransportConfig,
};
use crate::pointmap::{
    Device, DeviceKind, InvalidPointMap, LineFormat, LinePoint, ModbusDevice, ModbusLink,
    ModbusPoint, PointMap, PointMapError, PointMapErrorKind as K, SerialSettings,
};

/// The largest number of registers one read returns, hence the longest point.
const MAX_POINT_REGISTERS: u16 = 125;

struct Errors(Vec<PointMapError>);

impl Errors {
    fn push(&mut self, path: &str, kind: K) {
        self.0.push(PointMapError {
            path: path.to_owned(),
            kind,
        });
    }
}

pub(super) fn point_map(config: &PointMapConfig) -> Result<PointMap, InvalidPointMap> {
    let mut errors = Errors(Vec::new());
    let mut devices = Vec::new();
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for d in &config.devices {
        let path = format!("devices[{}]", d.name);
        if seen.insert(d.name.as_str(), ()).is_some() {
            errors.push(&path, K::DuplicateDevice);
        }
        if let Some(device) = device(d, &path, &mut errors) {
            devices.push(device);
        }
    }
    check_buses(config, &mut errors);
    if errors.0.is_empty() {
        Ok(PointMap { devices })
    } else {
        Err(InvalidPointMap { errors: errors.0 })
    }
}

fn device(d: &DeviceConfig, path: &str, errors: &mut Errors) -> Option<Device> {
    let before = errors.0.len();
    let name = Ident::new(&d.name).map_err(|e| errors.push(path, K::BadName(e)));
    if d.poll_interval_ms == 0 {
        errors.push(path, K::Zero("poll_interval_ms"));
    }
    if d.timeout_ms == 0 {
        errors.push(path, K::Zero("timeout_ms"));
    }
    let poll_interval = Duration::from_millis(d.poll_interval_ms);
    let kind = match &d.transport {
        TransportConfig::Tcp {
            host,
            port,
            unit_id,
        } => {
            if host.trim().is_empty() {
                errors.push(&format!("{path}.transport"), K::EmptyHost);
            }
            let unit = u8::try_from(*unit_id).unwrap_or_else(|_| {
                errors.push(
                    &format!("{path}.transport.unit_id"),
                    K::TcpUnitId { unit_id: *unit_id },
                );
                0
            });
            let link = ModbusLink::Tcp {
                host: host.clone(),
                port: *port,
            };
            DeviceKind::Modbus(modbus_device(d, link, unit, path, errors))
        }
        TransportConfig::Rtu {
            port,
            line,
            unit_id,
            turnaround_us,
        } => {
            let tpath = format!("{path}.transport");
            serial_settings(port, line, &tpath, errors);
            let unit = match u8::try_from(*unit_id) {
                Ok(u) if (1..=247).contains(&u) => u,
                _ => {
                    errors.push(
                        &format!("{tpath}.unit_id"),
                        K::RtuUnitId { unit_id: *unit_id },
                    );
                    1
                }
            };
            let link = ModbusLink::Rtu {
                port: port.clone(),
                line: *line,
                turnaround: Duration::from_micros(*turnaround_us),
            };
            DeviceKind::Modbus(modbus_device(d, link, unit, path, errors))
        }
        TransportConfig::SerialLine {
            port,
            line,
            framing,
            max_line_len,
            format,
        } => {
            let tpath = format!("{path}.transport");
            serial_settings(port, line, &tpath, errors);
            if *max_line_len == 0 {
                errors.push(&tpath, K::Zero("max_line_len"));
            }
            let format = match format {
                LineFormatConfig::Regex { pattern } => match Regex::new(pattern) {
                    Ok(re) => LineFormat::Regex(re),
                    Err(e) => {
                        errors.push(&tpath, K::Regex(e.to_string()));
                        LineFormat::KeyValue
                    }
                },
                LineFormatConfig::KeyValue => LineFormat::KeyValue,
                LineFormatConfig::JsonLines => LineFormat::JsonLines,
            };
            let points = line_points(d, &format, path, errors);
            DeviceKind::SerialLine(crate::pointmap::SerialLineDevice {
                port: port.clone(),
                line: *line,
                framing: *framing,
                max_line_len: *max_line_len,
                format,
                points,
            })
        }
    };
    let name = name.ok()?;
    (errors.0.len() == before).then(|| Device {
        name,
        poll_interval,
        timeout: Duration::from_millis(d.timeout_ms),
        kind,
    })
}

fn serial_settings(port: &str, line: &SerialSettings, path: &str, errors: &mut Errors) {
    if port.trim().is_empty() {
        errors.push(path, K::Serial("path is empty".into()));
    }
    if line.baud == 0 {
        errors.push(path, K::Zero("baud"));
    }
    if !(5..=8).contains(&line.data_bits) {
        errors.push(
            path,
            K::Serial(format!("data_bits {} is not 5..=8", line.data_bits)),
        );
    }
    if !(1..=2).contains(&line.stop_bits) {
        errors.push(
            path,
            K::Serial(format!("stop_bits {} is not 1 or 2", line.stop_bits)),
        );
    }
}

fn point_names<'a>(
    points: &'a [PointConfig],
    path: &str,
    errors: &mut Errors,
) -> Vec<(String, Option<Ident>, &'a PointConfig)> {
    let mut seen = HashMap::new();
    points
        .iter()
        .map(|p| {
            let ppath = format!("{path}.points[{}]", p.name);
            if seen.insert(p.name.as_str(), ()).is_some() {
                errors.push(&ppath, K::DuplicatePoint);
            }
            let name = Ident::new(&p.name)
                .map_err(|e| errors.push(&ppath, K::BadName(e)))
                .ok();
            if p.scale == 0.0 || !p.scale.is_finite() || !p.offset.is_finite() {
                errors.push(
                    &ppath,
                    K::BadScale {
                        scale: p.scale,
                        offset: p.offset,
                    },
                );
            }
            (ppath, name, p)
        })
        .collect()
}

fn modbus_device(
    d: &DeviceConfig,
    link: ModbusLink,
    unit_id: u8,
    path: &str,
    errors: &mut Errors,
) -> ModbusDevice {
    let mut points = Vec::new();
    for (ppath, name, p) in point_names(&d.points, path, errors) {
        if p.field.is_some() {
            errors.push(&ppath, K::NotApplicable("field", "Modbus"));
        }
        let table = p
            .table
            .ok_or_else(|| errors.push(&ppath, K::Missing("table")));
        let address = p
            .address
            .ok_or_else(|| errors.push(&ppath, K::Missing("address")));
        let data_type = match p.data_type.as_deref() {
            // A bit table holds single bits; a register table's natural unit is one u16.
            None if p.table.is_some_and(|t| t.is_bits()) => Ok(DataType::Bool),
            None => Ok(DataType::U16),
            Some(s) => s
                .parse::<DataType>()
                .map_err(|e| errors.push(&ppath, K::DataType(e))),
        };
        if p.poll_interval_ms == Some(0) {
            errors.push(&ppath, K::Zero("poll_interval_ms"));
        }
        let (Some(name), Ok(table), Ok(address), Ok(data_type)) = (name, table, address, data_type)
        else {
            continue;
        };
        let count = data_type.register_count();
        if count > MAX_POINT_REGISTERS {
            errors.push(&ppath, K::TooLong { data_type, count });
        } else if u32::from(address) + u32::from(count) > 65_536 {
            errors.push(&ppath, K::PastEnd { address, count });
        }
        if table.is_bits() && !data_type.fits_bit_table() {
            errors.push(&ppath, K::NotABit { table, data_type });
        }
        if p.writable && !table.is_writable() {
            errors.push(&ppath, K::ReadOnlyTable(table));
        }
        let numeric = !matches!(
            data_type,
            DataType::Bool | DataType::Bit(_) | DataType::String(_)
        );
        if !numeric && (p.scale != 1.0 || p.offset != 0.0) {
            errors.push(&ppath, K::ScaleOnNonNumber(data_type));
        }
        points.push(ModbusPoint {
            name,
            unit: p.unit.clone(),
            table,
            address,
            data_type,
            order: p.order,
            scale: p.scale,
            offset: p.offset,
            writable: p.writable,
            read_back: p.read_back,
            poll_interval: Duration::from_millis(p.poll_interval_ms.unwrap_or(d.poll_interval_ms)),
        });
    }
    check_overlapping_writes(&points, path, errors);
    ModbusDevice {
        link,
        unit_id,
        max_gap: d.max_gap,
        points,
    }
}

/// Two writable points that share a register (or the same bit of one) would let a write to one
/// silently change the other.
fn check_overlapping_writes(points: &[ModbusPoint], path: &str, errors: &mut Errors) {
    let mut writable: Vec<&ModbusPoint> = points.iter().filter(|p| p.writable).collect();
    writable.sort_by_key(|p| (p.table, p.address));
    for (i, a) in writable.iter().enumerate() {
        for b in &writable[i + 1..] {
            if b.table != a.table || u32::from(b.address) >= a.end() {
                break;
            }
            let distinct_bits = matches!(
                (a.data_type, b.data_type),
                (DataType::Bit(x), DataType::Bit(y)) if x != y && a.address == b.address
            );
            if !distinct_bits {
                errors.push(
                    &format!("{path}.points[{}]", b.name),
                    K::OverlappingWrite {
                        other: a.name.to_string(),
                    },
                );
            }
        }
    }
}

fn line_points(
    d: &DeviceConfig,
    format: &LineFormat,
    path: &str,
    errors: &mut Errors,
) -> Vec<LinePoint> {
    let mut out = Vec::new();
    for (ppath, name, p) in point_names(&d.points, path, errors) {
        for (field, set) in [
            ("table", p.table.is_some()),
            ("address", p.address.is_some()),
            ("type", p.data_type.is_some()),
            ("writable", p.writable),
            ("poll_interval_ms", p.poll_interval_ms.is_some()),
        ] {
            if set {
                errors.push(&ppath, K::NotApplicable(field, "serial-line"));
            }
        }
        let field = p.field.clone().unwrap_or_else(|| p.name.clone());
        if let LineFormat::Regex(re) = format {
            if !re.capture_names().any(|n| n == Some(field.as_str())) {
                errors.push(&ppath, K::NoSuchGroup(field.clone()));
            }
        }
        if let Some(name) = name {
            out.push(LinePoint {
                name,
                unit: p.unit.clone(),
                field,
                scale: p.scale,
                offset: p.offset,
            });
        }
    }
    out
}

/// Devices on one serial port share a bus: same line settings, distinct unit ids.
fn check_buses(config: &PointMapConfig, errors: &mut Errors) {
    let mut buses: HashMap<&str, (&str, &SerialSettings, HashMap<u16, &str>)> = HashMap::new();
    for d in &config.devices {
        let (port, line, unit) = match &d.transport {
            TransportConfig::Rtu {
                port,
                line,
                unit_id,
                ..
            } => (port.as_str(), line, Some(*unit_id)),
            TransportConfig::SerialLine { port, line, .. } => (port.as_str(), line, None),
            TransportConfig::Tcp { .. } => continue,
        };
        let path = format!("devices[{}].transport", d.name);
        let bus = buses
            .entry(port)
            .or_insert_with(|| (d.name.as_str(), line, HashMap::new()));
        if bus.0 == d.name {
            if let Some(u) = unit {
                bus.2.insert(u, d.name.as_str());
            }
            continue;
        }
        if bus.1 != line {
            errors.push(
                &path,
                K::BusSettingsDiffer {
                    other: bus.0.to_owned(),
                },
            );
        }
        match unit {
            None => errors.push(
                &path,
                K::Serial(format!("{port} is already used by device {:?}", bus.0)),
            ),
            Some(u) => {
                if let Some(other) = bus.2.insert(u, d.name.as_str()) {
                    errors.push(
                        &path,
                        K::DuplicateUnit {
                            unit_id: u,
                            other: other.to_owned(),
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<PointMap, InvalidPointMap> {
        let config: PointMapConfig = serde_json::from_str(json).expect("config parses");
        PointMap::from_config(&config)
    }

    fn messages(json: &str) -> Vec<String> {
        parse(json)
            .expect_err("map should be invalid")
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    const TCP: &str =
        r#""transport": {"kind": "tcp", "host": "127.0.0.1", "port": 502, "unit_id": 1}"#;

    #[test]
    fn a_valid_map_validates_with_defaults() {
        let map = parse(&format!(
            r#"{{"devices": [{{"name": "meter-1", {TCP}, "points": [
                {{"name": "voltage", "unit": "V", "table": "holding_register", "address": 0,
                  "type": "f32", "order": "CDAB", "scale": 0.1}},
                {{"name": "relay", "table": "coil", "address": 3, "type": "bool", "writable": true}},
                {{"name": "count", "table": "input_register", "address": 10, "poll_interval_ms": 5000}},
                {{"name": "running", "table": "coil", "address": 4}},
                {{"name": "alarm", "table": "discrete_input", "address": 0}}
            ]}}]}}"#
        ))
        .unwrap();
        let DeviceKind::Modbus(m) = &map.devices[0].kind else {
            panic!("not modbus")
        };
        assert_eq!(m.points.len(), 5);
        assert_eq!(m.point("count").unwrap().data_type, DataType::U16);
        // Regression: a bit-table point without a type was taken as u16 and then refused.
        assert_eq!(m.point("running").unwrap().data_type, DataType::Bool);
        assert_eq!(m.point("alarm").unwrap().data_type, DataType::Bool);
        assert_eq!(
            m.point("count").unwrap().poll_interval,
            Duration::from_secs(5)
        );
        assert_eq!(
            m.point("voltage").unwrap().poll_interval,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn errors_name_device_and_point() {
        let msgs = messages(&format!(
            r#"{{"devices": [{{"name": "meter-1", {TCP}, "points": [
                {{"name": "voltage", "table": "holding_register", "address": 65535, "type": "f32"}},
                {{"name": "temp", "table": "holding_register", "address": 1, "type": "float"}},
                {{"name": "flag", "table": "holding_register", "address": 2, "type": "bit:16"}},
                {{"name": "label", "table": "holding_register", "address": 3, "type": "string:0"}},
                {{"name": "temp", "table": "holding_register", "address": 9}}
            ]}}]}}"#
        ));
        let expect = [
            "devices[meter-1].points[voltage]: address 65535 + 2 registers runs past 65535",
            "devices[meter-1].points[temp]: unknown data type \"float\"",
            "devices[meter-1].points[flag]: bit index 16 is over 15",
            "devices[meter-1].points[label]: a string of 0 registers holds nothing",
            "devices[meter-1].points[temp]: a point of this name is already defined on the device",
        ];
        for e in expect {
            assert!(
                msgs.iter().any(|m| m.starts_with(e)),
                "missing {e:?} in {msgs:#?}"
            );
        }
        assert_eq!(msgs.len(), expect.len(), "{msgs:#?}");
    }

    #[test]
    fn overlapping_writes_are_refused_but_distinct_bits_are_not() {
        let msgs = messages(&format!(
            r#"{{"devices": [{{"name": "plc", {TCP}, "points": [
                {{"name": "a", "table": "holding_register", "address": 10, "type": "u32", "writable": true}},
                {{"name": "b", "table": "holding_register", "address": 11, "writable": true}},
                {{"name": "c", "table": "holding_register", "address": 11, "type": "u32"}},
                {{"name": "bit0", "table": "holding_register", "address": 20, "type": "bit:0", "writable": true}},
                {{"name": "bit1", "table": "holding_register", "address": 20, "type": "bit:1", "writable": true}},
                {{"name": "bit1b", "table": "holding_register", "address": 20, "type": "bit:1", "writable": true}}
            ]}}]}}"#
        ));
        assert!(msgs
            .iter()
            .any(|m| m == "devices[plc].points[b]: writable point overlaps writable point \"a\""));
        assert!(msgs
            .iter()
            .any(|m| m.starts_with("devices[plc].points[bit1b]: writable")));
        assert_eq!(msgs.len(), 2, "{msgs:#?}");
    }

    #[test]
    fn table_type_and_transport_mistakes() {
        let msgs = messages(
            r#"{"devices": [
              {"name": "d1", "transport": {"kind": "rtu", "port": "/dev/ttyS0", "unit_id": 0},
               "points": [
                 {"name": "x", "table": "coil", "address": 0, "type": "u16"},
                 {"name": "y", "table": "input_register", "address": 0, "writable": true},
                 {"name": "z", "table": "holding_register", "address": 0, "type": "bool", "scale": 2},
                 {"name": "w", "table": "holding_register", "address": 0, "type": "string:126"},
                 {"name": "bad/name", "table": "holding_register", "address": 0}
               ]},
              {"name": "d2", "transport": {"kind": "rtu", "port": "/dev/ttyS0", "baud": 19200, "unit_id": 5}},
              {"name": "d3", "transport": {"kind": "rtu", "port": "/dev/ttyS0", "unit_id": 0}},
              {"name": "d2", "transport": {"kind": "tcp", "host": ""}}
            ]}"#,
        );
        for e in [
            "devices[d1].transport.unit_id: unit id 0 is not a slave address",
            "devices[d1].points[x]: a coil holds single bits",
            "devices[d1].points[y]: a input_register cannot be written",
            "devices[d1].points[z]: scale and offset apply to numbers only",
            "devices[d1].points[w]: string:126 spans 126 registers",
            "devices[d1].points[bad/name]: name is not a valid identifier",
            "devices[d2].transport: serial settings differ from device \"d1\"",
            "devices[d3].transport: unit id 0 already polled on this bus by device \"d1\"",
            "devices[d2]: a device of this name is already defined",
            "devices[d2].transport: the host is empty",
        ] {
            assert!(
                msgs.iter().any(|m| m.starts_with(e)),
                "missing {e:?} in {msgs:#?}"
            );
        }
    }

    #[test]
    fn serial_line_points_and_regex_groups() {
        let ok = parse(
            r#"{"devices": [{"name": "wx", "transport": {"kind": "serial_line", "port": "/dev/ttyUSB0",
                "baud": 4800, "framing": "crlf",
                "format": {"kind": "regex", "pattern": "T=(?P<temp>[-0-9.]+) H=(?P<hum>[0-9.]+)"}},
               "points": [{"name": "temperature", "unit": "C", "field": "temp"}, {"name": "hum"}]}]}"#,
        )
        .unwrap();
        let DeviceKind::SerialLine(s) = &ok.devices[0].kind else {
            panic!("not a serial line")
        };
        assert_eq!(s.points[0].field, "temp");
        assert_eq!(s.points[1].field, "hum");

        let msgs = messages(
            r#"{"devices": [{"name": "wx", "transport": {"kind": "serial_line", "port": "/dev/ttyUSB0",
                "format": {"kind": "regex", "pattern": "T=(?P<temp>[-0-9.]+)"}},
               "points": [{"name": "rain", "address": 3}]}]}"#,
        );
        assert!(msgs
            .iter()
            .any(|m| m
                == "devices[wx].points[rain]: `address` does not apply to serial-line devices"));
        assert!(msgs
            .iter()
            .any(|m| m == "devices[wx].points[rain]: regular expression has no named group \"rain\" for the point"));
        let msgs = messages(
            r#"{"devices": [{"name": "wx", "transport": {"kind": "serial_line", "port": "/dev/x",
                "format": {"kind": "regex", "pattern": "(?P<a>"}}}]}"#,
        );
        assert!(msgs[0].starts_with("devices[wx].transport: regular expression"));
    }
}
