//! Turning a [`PointMapConfig`] into a [`PointMap`], collecting every mistake with its path.
//!
//! Templates are applied and blocks expanded here ([`template`], [`block`]), so a mistake is
//! named where it was written: `templates[meter].points[r{n}]` for a template's block,
//! `devices[meter-1].points[voltage]` for a device's own point.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use fieldlink_protocol::Ident;
use regex_lite::Regex;

use crate::codec::DataType;
use crate::pointmap::block::{self, Member};
use crate::pointmap::config::{
    LineFormatConfig, PointConfig, PointMapConfig, Table, TransportConfig,
};
use crate::pointmap::template::{self, Entry, Resolved};
use crate::pointmap::{
    Device, DeviceKind, InvalidPointMap, LineFormat, LinePoint, ModbusDevice, ModbusLink,
    ModbusPoint, PointMap, PointMapError, PointMapErrorKind as K, SerialSettings,
};

/// The largest number of registers one read returns, hence the longest point.
const MAX_POINT_REGISTERS: u16 = 125;

/// The mistakes found so far, in the order found.
#[derive(Default)]
pub(super) struct Errors(Vec<PointMapError>);

impl Errors {
    pub(super) fn push(&mut self, path: &str, kind: K) {
        self.0.push(PointMapError {
            path: path.to_owned(),
            kind,
        });
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    pub(super) fn messages(&self) -> Vec<String> {
        self.0.iter().map(|e| e.to_string()).collect()
    }

    /// Each mistake once: a template's are met again by every device that uses it.
    fn into_distinct(self) -> Vec<PointMapError> {
        let mut seen = HashSet::new();
        self.0
            .into_iter()
            .filter(|e| seen.insert(e.to_string()))
            .collect()
    }
}

pub(super) fn point_map(config: &PointMapConfig) -> Result<PointMap, InvalidPointMap> {
    let mut errors = Errors::default();
    let templates = template::index(&config.templates, &mut errors);
    let mut devices = Vec::new();
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for d in &config.devices {
        let path = format!("devices[{}]", d.name);
        if seen.insert(d.name.as_str(), ()).is_some() {
            errors.push(&path, K::DuplicateDevice);
        }
        let resolved = template::resolve(d, &templates, &path, &mut errors);
        if let Some(device) = device(&d.name, &d.transport, &resolved, &path, &mut errors) {
            devices.push(device);
        }
    }
    check_buses(config, &mut errors);
    if errors.0.is_empty() {
        Ok(PointMap { devices })
    } else {
        Err(InvalidPointMap {
            errors: errors.into_distinct(),
        })
    }
}

fn device(
    name: &str,
    transport: &TransportConfig,
    d: &Resolved<'_>,
    path: &str,
    errors: &mut Errors,
) -> Option<Device> {
    let before = errors.len();
    let name = Ident::new(name).map_err(|e| errors.push(path, K::BadName(e)));
    let kind = match transport {
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
            DeviceKind::Modbus(modbus_device(d, link, unit, errors))
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
            DeviceKind::Modbus(modbus_device(d, link, unit, errors))
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
            let points = line_points(&d.entries, &format, errors);
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
    (errors.len() == before).then(|| Device {
        name,
        poll_interval: Duration::from_millis(d.poll_interval_ms),
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

/// Where a validated point was written, for errors found once all points are known.
struct Origin<'a> {
    path: &'a str,
    /// Whether the entry is a block, so that errors also name the point of it.
    block: bool,
}

impl Origin<'_> {
    fn push(&self, point: &str, kind: K, errors: &mut Errors) {
        let kind = if self.block {
            K::InBlock {
                point: point.to_owned(),
                kind: Box::new(kind),
            }
        } else {
            kind
        };
        errors.push(self.path, kind);
    }
}

/// The point names of one device and where each was defined.
#[derive(Default)]
struct PointNames {
    seen: HashMap<String, String>,
}

impl PointNames {
    /// Takes `name` for a point of the entry at `origin`: reports a name that is no identifier
    /// or already taken, and returns the identifier when it is one.
    fn claim(&mut self, name: &str, origin: &Origin<'_>, errors: &mut Errors) -> Option<Ident> {
        match self.seen.get(name) {
            Some(first) if first == origin.path && !origin.block => {
                origin.push(name, K::DuplicatePoint, errors)
            }
            Some(first) => origin.push(
                name,
                K::DuplicateOf {
                    first: first.clone(),
                },
                errors,
            ),
            None => {
                self.seen.insert(name.to_owned(), origin.path.to_owned());
            }
        }
        Ident::new(name)
            .map_err(|e| origin.push(name, K::BadName(e), errors))
            .ok()
    }
}

fn check_scale(p: &PointConfig, path: &str, errors: &mut Errors) {
    if p.scale == 0.0 || !p.scale.is_finite() || !p.offset.is_finite() {
        errors.push(
            path,
            K::BadScale {
                scale: p.scale,
                offset: p.offset,
            },
        );
    }
}

fn modbus_device(
    d: &Resolved<'_>,
    link: ModbusLink,
    unit_id: u8,
    errors: &mut Errors,
) -> ModbusDevice {
    let mut names = PointNames::default();
    let mut points = Vec::new();
    let mut origins = Vec::new();
    for Entry { path, point: p } in &d.entries {
        let origin = Origin {
            path,
            block: p.count.is_some(),
        };
        // A plain point's name is taken whatever else is wrong with it, so a duplicate is
        // reported along with the rest; a block's names are known once it has expanded.
        let plain_name = (!origin.block).then(|| names.claim(&p.name, &origin, errors));
        let before = errors.len();
        check_scale(p, path, errors);
        if p.field.is_some() {
            errors.push(path, K::NotApplicable("field", "Modbus"));
        }
        let table = p
            .table
            .ok_or_else(|| errors.push(path, K::Missing("table")));
        let address = p
            .address
            .ok_or_else(|| errors.push(path, K::Missing("address")));
        let data_type = match p.data_type.as_deref() {
            // A bit table holds single bits; a register table's natural unit is one u16.
            None if p.table.is_some_and(|t| t.is_bits()) => Ok(DataType::Bool),
            None => Ok(DataType::U16),
            Some(s) => s
                .parse::<DataType>()
                .map_err(|e| errors.push(path, K::DataType(e))),
        };
        if p.poll_interval_ms == Some(0) {
            errors.push(path, K::Zero("poll_interval_ms"));
        }
        let (Ok(table), Ok(address), Ok(data_type)) = (table, address, data_type) else {
            continue;
        };
        let count = data_type.register_count();
        if count > MAX_POINT_REGISTERS {
            errors.push(path, K::TooLong { data_type, count });
        } else if !origin.block && u32::from(address) + u32::from(count) > 65_536 {
            errors.push(path, K::PastEnd { address, count });
        }
        if table.is_bits() && !data_type.fits_bit_table() {
            errors.push(path, K::NotABit { table, data_type });
        }
        if p.writable && !table.is_writable() {
            errors.push(path, K::ReadOnlyTable(table));
        }
        let numeric = !matches!(
            data_type,
            DataType::Bool | DataType::Bit(_) | DataType::String(_)
        );
        if !numeric && (p.scale != 1.0 || p.offset != 0.0) {
            errors.push(path, K::ScaleOnNonNumber(data_type));
        }
        let members = block::members(p, address, data_type, path, errors);
        if errors.len() > before {
            continue;
        }
        for Member { name, address } in members {
            let name = match &plain_name {
                Some(plain) => plain.clone(),
                // The names of a block share their pattern: one that is no identifier is
                // reported for the first point it spoils, not for all of them.
                None if Ident::validate(&name).is_err() => {
                    names.claim(&name, &origin, errors);
                    break;
                }
                None => names.claim(&name, &origin, errors),
            };
            let Some(name) = name else {
                continue;
            };
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
                poll_interval: Duration::from_millis(
                    p.poll_interval_ms.unwrap_or(d.poll_interval_ms),
                ),
            });
            origins.push(Origin {
                path,
                block: origin.block,
            });
        }
    }
    check_overlapping_writes(&points, &origins, errors);
    check_overlapping_blocks(&points, &origins, errors);
    ModbusDevice {
        link,
        unit_id,
        max_gap: d.max_gap,
        points,
    }
}

/// Two writable points that share a register (or the same bit of one) would let a write to one
/// silently change the other.
fn check_overlapping_writes(points: &[ModbusPoint], origins: &[Origin<'_>], errors: &mut Errors) {
    let mut writable: Vec<usize> = (0..points.len()).filter(|&i| points[i].writable).collect();
    writable.sort_by_key(|&i| (points[i].table, points[i].address));
    for (k, &i) in writable.iter().enumerate() {
        let a = &points[i];
        for &j in &writable[k + 1..] {
            let b = &points[j];
            if b.table != a.table || u32::from(b.address) >= a.end() {
                break;
            }
            let distinct_bits = matches!(
                (a.data_type, b.data_type),
                (DataType::Bit(x), DataType::Bit(y)) if x != y && a.address == b.address
            );
            if !distinct_bits {
                origins[j].push(
                    b.name.as_str(),
                    K::OverlappingWrite {
                        other: a.name.to_string(),
                    },
                    errors,
                );
            }
        }
    }
}

/// Two blocks reading the same register are a slip (a count or an address off), never a
/// layout: reported once per pair of blocks, at the later one.
fn check_overlapping_blocks(points: &[ModbusPoint], origins: &[Origin<'_>], errors: &mut Errors) {
    let mut owner: HashMap<(Table, u16), &str> = HashMap::new();
    let mut reported: HashSet<(&str, &str)> = HashSet::new();
    for (p, origin) in points.iter().zip(origins).filter(|(_, o)| o.block) {
        for address in p.address..=(p.end() - 1) as u16 {
            match owner.get(&(p.table, address)) {
                Some(&other) if other != origin.path => {
                    if reported.insert((other, origin.path)) {
                        errors.push(
                            origin.path,
                            K::BlocksOverlap {
                                address,
                                other: other.to_owned(),
                            },
                        );
                    }
                }
                Some(_) => {}
                None => {
                    owner.insert((p.table, address), origin.path);
                }
            }
        }
    }
}

fn line_points(entries: &[Entry<'_>], format: &LineFormat, errors: &mut Errors) -> Vec<LinePoint> {
    let mut names = PointNames::default();
    let mut out = Vec::new();
    for Entry { path, point: p } in entries {
        let origin = Origin { path, block: false };
        let name = names.claim(&p.name, &origin, errors);
        check_scale(p, path, errors);
        for (field, set) in [
            ("table", p.table.is_some()),
            ("address", p.address.is_some()),
            ("type", p.data_type.is_some()),
            ("writable", p.writable),
            ("poll_interval_ms", p.poll_interval_ms.is_some()),
            ("count", p.count.is_some()),
            ("stride", p.stride.is_some()),
            ("number_from", p.number_from.is_some()),
        ] {
            if set {
                errors.push(path, K::NotApplicable(field, "serial-line"));
            }
        }
        let field = p.field.clone().unwrap_or_else(|| p.name.clone());
        if let LineFormat::Regex(re) = format {
            if !re.capture_names().any(|n| n == Some(field.as_str())) {
                errors.push(path, K::NoSuchGroup(field.clone()));
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
        // Unicode property classes are not part of the pattern language: refused, not ignored.
        let msgs = messages(
            r#"{"devices": [{"name": "wx", "transport": {"kind": "serial_line", "port": "/dev/x",
                "format": {"kind": "regex", "pattern": "id=(?P<id>\\p{L}+)"}}}]}"#,
        );
        assert_eq!(msgs.len(), 1, "{msgs:#?}");
        assert!(
            msgs[0].starts_with("devices[wx].transport: regular expression"),
            "{msgs:#?}"
        );
    }

    fn modbus(map: &PointMap, device: &str) -> ModbusDevice {
        match &map.device(device).expect("device exists").kind {
            DeviceKind::Modbus(m) => m.clone(),
            DeviceKind::SerialLine(_) => panic!("{device} is not Modbus"),
        }
    }

    #[test]
    fn templates_give_points_and_settings_that_devices_extend_and_override() {
        let map = parse(&format!(
            r#"{{"templates": [{{"name": "meter", "poll_interval_ms": 500, "max_gap": 0,
                  "points": [
                    {{"name": "hr_{{n}}", "count": 10, "number_from": 1, "table": "holding_register",
                      "address": 100, "unit": "kW", "scale": 0.1}},
                    {{"name": "energy", "table": "input_register", "address": 0, "type": "u32"}}
                  ]}}],
                "devices": [
                  {{"name": "m1", "template": "meter", {TCP}}},
                  {{"name": "m2", "template": "meter", "poll_interval_ms": 2000, "timeout_ms": 300, {TCP},
                    "points": [{{"name": "relay", "table": "coil", "address": 0, "writable": true}}]}},
                  {{"name": "plain", {TCP}}}
                ]}}"#
        ))
        .unwrap();
        let m1 = modbus(&map, "m1");
        assert_eq!(m1.points.len(), 11);
        assert_eq!(m1.max_gap, 0);
        let hr: Vec<(&str, u16)> = m1.points[..10]
            .iter()
            .map(|p| (p.name.as_str(), p.address))
            .collect();
        assert_eq!(hr[0], ("hr_1", 100));
        assert_eq!(hr[9], ("hr_10", 109));
        assert!(m1.points[..10]
            .iter()
            .all(|p| p.unit.as_deref() == Some("kW")
                && p.scale == 0.1
                && p.poll_interval == Duration::from_millis(500)));
        assert_eq!(
            map.device("m1").unwrap().poll_interval,
            Duration::from_millis(500)
        );
        assert_eq!(map.device("m1").unwrap().timeout, Duration::from_secs(1));

        let m2 = modbus(&map, "m2");
        assert_eq!(m2.points.len(), 12);
        assert!(m2.point("relay").unwrap().writable);
        assert_eq!(
            m2.point("hr_3").unwrap().poll_interval,
            Duration::from_secs(2)
        );
        let d2 = map.device("m2").unwrap();
        assert_eq!(
            (d2.poll_interval, d2.timeout),
            (Duration::from_secs(2), Duration::from_millis(300))
        );
        // No template: the defaults, as before templates existed.
        let plain = map.device("plain").unwrap();
        assert_eq!(plain.poll_interval, Duration::from_secs(1));
        assert_eq!(modbus(&map, "plain").max_gap, 8);
    }

    #[test]
    fn template_and_block_conflicts_name_both_places_and_the_point() {
        let msgs = messages(&format!(
            r#"{{"templates": [
                  {{"name": "meter", "points": [
                    {{"name": "r{{n}}", "count": 100, "table": "holding_register", "address": 0}},
                    {{"name": "bad", "table": "holding_register", "address": 0, "type": "float"}}
                  ]}},
                  {{"name": "meter", "timeout_ms": 0}}
                ],
                "devices": [
                  {{"name": "m1", "template": "meter", {TCP}, "points": [
                    {{"name": "r7", "table": "input_register", "address": 0}},
                    {{"name": "w{{address}}", "count": 10, "table": "holding_register", "address": 95}},
                    {{"name": "s {{n}}", "count": 2, "table": "input_register", "address": 10}},
                    {{"name": "c{{n}}", "count": 4, "table": "coil", "address": 0, "writable": true}},
                    {{"name": "relay", "table": "coil", "address": 2, "writable": true}}
                  ]}},
                  {{"name": "m2", "template": "meter", {TCP}}},
                  {{"name": "m3", "template": "metre", {TCP}}}
                ]}}"#
        ));
        for e in [
            "templates[meter]: a template of this name is already defined",
            "templates[meter]: timeout_ms must be greater than zero",
            "devices[m1].points[r7]: a point of this name is already defined at templates[meter].points[r{n}]",
            "devices[m1].points[w{address}]: the block's points share address 95 with those of block templates[meter].points[r{n}]",
            "devices[m1].points[s {n}]: block point \"s 0\": name is not a valid identifier",
            "devices[m1].points[relay]: writable point overlaps writable point \"c2\"",
            "devices[m3].template: no template \"metre\" (defined: meter)",
        ] {
            assert!(
                msgs.iter().any(|m| m.starts_with(e)),
                "missing {e:?} in {msgs:#?}"
            );
        }
        // A mistake in a template is reported once, not once per device using it.
        let bad: Vec<&String> = msgs
            .iter()
            .filter(|m| m.starts_with("templates[meter].points[bad]"))
            .collect();
        assert_eq!(bad.len(), 1, "{msgs:#?}");
        // The block's invalid names are reported once, at its first point.
        assert_eq!(msgs.iter().filter(|m| m.contains("\"s 1\"")).count(), 0);
        assert_eq!(msgs.len(), 8, "{msgs:#?}");
    }

    #[test]
    fn a_block_colliding_with_a_point_names_the_expanded_point() {
        let msgs = messages(&format!(
            r#"{{"devices": [{{"name": "plc", {TCP}, "points": [
                {{"name": "hr_5", "table": "holding_register", "address": 500}},
                {{"name": "hr_{{n}}", "count": 10, "table": "holding_register", "address": 0, "writable": true}},
                {{"name": "flag", "table": "holding_register", "address": 3, "writable": true}}
            ]}}]}}"#
        ));
        assert_eq!(
            msgs,
            [
                "devices[plc].points[hr_{n}]: block point \"hr_5\": a point of this name is already defined at devices[plc].points[hr_5]",
                "devices[plc].points[flag]: writable point overlaps writable point \"hr_3\"",
            ]
        );
        let msgs = messages(&format!(
            r#"{{"devices": [{{"name": "plc", {TCP}, "points": [
                {{"name": "w{{n}}", "count": 10, "table": "holding_register", "address": 0, "writable": true}},
                {{"name": "v{{n}}", "count": 2, "table": "holding_register", "address": 9, "writable": true,
                  "stride": 5}}
            ]}}]}}"#
        ));
        assert!(
            msgs.iter().any(|m| m == "devices[plc].points[v{n}]: block point \"v0\": writable point overlaps writable point \"w9\""),
            "{msgs:#?}"
        );
        let msgs = messages(
            r#"{"devices": [{"name": "wx", "transport": {"kind": "serial_line", "port": "/dev/x",
                "format": {"kind": "key_value"}}, "points": [{"name": "t{n}", "count": 2}]}]}"#,
        );
        assert!(
            msgs.iter()
                .any(|m| m
                    == "devices[wx].points[t{n}]: `count` does not apply to serial-line devices"),
            "{msgs:#?}"
        );
    }
}
