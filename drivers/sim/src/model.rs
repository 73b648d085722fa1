//! The validated model a running simulator serves: units, their tables and their faults.
//!
//! Invariants established here and relied on by the server:
//! - unit ids are unique and in 1..=247;
//! - points of one table never overlap, except several `bit:N` points sharing a register with
//!   distinct bit indices (a status word), and no point extends past address 65,535;
//! - every waveform other than a counter stays inside its point's type after scaling, so encoding
//!   a served value cannot fail for a range reason.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fieldlink_drivers::codec::{self, DataType, TypedValue};
use tokio_modbus::ExceptionCode;

use crate::config::{ConfigError, ExceptionFaultConfig};
use crate::config::{ConstantValue, PointConfig, SimConfig, UnitConfig, WaveformConfig};
use crate::point::{Point, Source};
use crate::table::Table;
use crate::waveform::Waveform;

/// Largest register count the tables address (0..=65,535).
const ADDRESS_SPACE: u32 = 1 << 16;

/// One unit: its tables and its faults.
#[derive(Debug)]
pub(crate) struct Unit {
    pub(crate) id: u8,
    pub(crate) name: Option<String>,
    pub(crate) tables: [TableMap; 4],
    pub(crate) faults: UnitFaults,
}

/// The faults a unit injects.
#[derive(Debug)]
pub(crate) struct UnitFaults {
    pub(crate) delay: Duration,
    pub(crate) silent: bool,
    pub(crate) drop_every: Option<NonZeroU64>,
    pub(crate) exceptions: Vec<ExceptionFault>,
    /// Requests seen by the unit, for `drop_every`.
    pub(crate) requests: AtomicU64,
}

#[derive(Debug, Clone)]
pub(crate) struct ExceptionFault {
    pub(crate) table: Table,
    pub(crate) start: u32,
    pub(crate) end: u32,
    pub(crate) code: ExceptionCode,
}

impl UnitFaults {
    /// The injected exception for a request on `table` at `start..start + count`, if any.
    pub(crate) fn exception_for(
        &self,
        table: Table,
        start: u16,
        count: u16,
    ) -> Option<ExceptionCode> {
        let (start, end) = (u32::from(start), u32::from(start) + u32::from(count));
        self.exceptions
            .iter()
            .find(|f| f.table == table && f.start < end && start < f.end)
            .map(|f| f.code)
    }

    /// Counts a request and says whether it is one the unit drops.
    pub(crate) fn count_and_check_drop(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        self.drop_every
            .is_some_and(|every| n.is_multiple_of(every.get()))
    }
}

/// The points and plain memory of one table of a unit.
#[derive(Debug, Default)]
pub(crate) struct TableMap {
    /// Points by start address. A slot holds one point, or several `bit:N` points of one register.
    slots: BTreeMap<u16, Vec<Point>>,
    /// Plain memory at `0..memory.len()`; bit tables hold 0 or 1 per address.
    memory: Vec<u16>,
}

impl TableMap {
    /// The slot covering `address`: its start and width.
    fn slot_at(&self, address: u16) -> Option<(u16, &Vec<Point>)> {
        let (&start, points) = self.slots.range(..=address).next_back()?;
        let width = points.first().map_or(0, Point::width);
        (u32::from(address) < u32::from(start) + u32::from(width)).then_some((start, points))
    }

    fn slot_words(points: &[Point], elapsed: Duration) -> Result<Vec<u16>, ExceptionCode> {
        let mut words: Vec<u16> = Vec::new();
        for point in points {
            let own = point.words_at(elapsed).map_err(|err| {
                tracing::warn!(point = %point.label, error = %err, "cannot encode the point's value");
                ExceptionCode::ServerDeviceFailure
            })?;
            if words.is_empty() {
                words = own;
            } else {
                for (w, o) in words.iter_mut().zip(own) {
                    *w |= o;
                }
            }
        }
        Ok(words)
    }

    /// Reads `count` registers (or bits, as 0/1) from `start` at time `elapsed`.
    ///
    /// A multi-register point is evaluated once per request, so a partial read of it is a
    /// consistent slice of one value.
    pub(crate) fn read(
        &self,
        start: u16,
        count: u16,
        elapsed: Duration,
    ) -> Result<Vec<u16>, ExceptionCode> {
        let end = u32::from(start) + u32::from(count);
        if end > ADDRESS_SPACE {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let mut out = Vec::with_capacity(usize::from(count));
        let mut address = u32::from(start);
        while address < end {
            let a = address as u16;
            if let Some((slot_start, points)) = self.slot_at(a) {
                let words = Self::slot_words(points, elapsed)?;
                let from = usize::from(a - slot_start);
                let to = (end - u32::from(slot_start)).min(words.len() as u32) as usize;
                out.extend_from_slice(&words[from..to]);
                address = u32::from(slot_start) + to as u32;
            } else if let Some(word) = self.memory.get(usize::from(a)) {
                out.push(*word);
                address += 1;
            } else {
                return Err(ExceptionCode::IllegalDataAddress);
            }
        }
        Ok(out)
    }

    /// Writes `words` (bits as 0/1) from `start`, all or nothing.
    ///
    /// With `enforce` (a Modbus write) a read-only point refuses with exception 2; without it
    /// (a test forcing a value) every point and memory address takes the value.
    pub(crate) fn write(
        &mut self,
        start: u16,
        words: &[u16],
        elapsed: Duration,
        enforce: bool,
    ) -> Result<(), ExceptionCode> {
        let end = u32::from(start) + words.len() as u32;
        if end > ADDRESS_SPACE {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        // First pass: check every address and compute each touched slot's new registers.
        let mut updates: Vec<(u16, Vec<u16>)> = Vec::new();
        let mut address = u32::from(start);
        while address < end {
            let a = address as u16;
            if let Some((slot_start, points)) = self.slot_at(a) {
                if enforce && points.iter().any(|p| !p.writable) {
                    return Err(ExceptionCode::IllegalDataAddress);
                }
                let mut current = Self::slot_words(points, elapsed)?;
                let slot_end = u32::from(slot_start) + current.len() as u32;
                while address < end.min(slot_end) {
                    current[(address - u32::from(slot_start)) as usize] =
                        words[(address - u32::from(start)) as usize];
                    address += 1;
                }
                updates.push((slot_start, current));
            } else if (address as usize) < self.memory.len() {
                address += 1;
            } else {
                return Err(ExceptionCode::IllegalDataAddress);
            }
        }
        // Second pass: apply. Nothing below can fail.
        for (slot_start, new_words) in updates {
            if let Some(points) = self.slots.get_mut(&slot_start) {
                for point in points.iter_mut() {
                    let held = match point.data_type {
                        DataType::Bit(i) => vec![new_words[0] & (1 << i)],
                        _ => new_words.clone(),
                    };
                    point.held = Some(held);
                }
            }
        }
        for (i, word) in words.iter().enumerate() {
            let a = usize::from(start) + i;
            if a < self.memory.len() && self.slot_at(a as u16).is_none() {
                self.memory[a] = *word;
            }
        }
        Ok(())
    }
}

impl TableMap {
    /// Every point, by address.
    pub(crate) fn points(&self) -> impl Iterator<Item = &Point> {
        self.slots.values().flatten()
    }

    /// The points lying wholly inside `start..end`.
    pub(crate) fn points_within(&self, start: u16, end: u32) -> impl Iterator<Item = &Point> {
        self.slots
            .range(start..)
            .take_while(move |(a, _)| u32::from(**a) < end)
            .flat_map(|(_, points)| points)
            .filter(move |p| u32::from(p.address) + u32::from(p.width()) <= end)
    }
}

/// Builds and validates every unit of a configuration.
pub(crate) fn build_units(config: &SimConfig) -> Result<Vec<Unit>, ConfigError> {
    let mut seen: BTreeMap<u8, usize> = BTreeMap::new();
    let mut units = Vec::with_capacity(config.units.len());
    for (index, unit) in config.units.iter().enumerate() {
        let at = format!("units[{index}] (unit {})", unit.id);
        if !(1..=247).contains(&unit.id) {
            return Err(ConfigError::invalid(
                at,
                "unit id must be in 1..=247 (0 is the RTU broadcast address)",
            ));
        }
        if let Some(first) = seen.insert(unit.id, index) {
            return Err(ConfigError::invalid(
                at,
                format!("unit id {} is already used by units[{first}]", unit.id),
            ));
        }
        units.push(build_unit(unit, &at)?);
    }
    Ok(units)
}

fn build_unit(config: &UnitConfig, at: &str) -> Result<Unit, ConfigError> {
    let mut tables: [TableMap; 4] = Default::default();
    for table in Table::ALL {
        let size = config.size.get(table);
        if size > ADDRESS_SPACE {
            return Err(ConfigError::invalid(
                format!("{at}.size.{table}"),
                format!("{size} is over the {ADDRESS_SPACE} addresses of a table"),
            ));
        }
        tables[table.index()].memory = vec![0; size as usize];
    }
    for (index, point) in config.points.iter().enumerate() {
        for copy in 0..point.repeat.max(1) {
            let built = build_point(point, index, copy, at)?;
            insert_point(&mut tables[built.table.index()], built, at)?;
        }
        if point.repeat == 0 {
            return Err(ConfigError::invalid(
                format!("{at}.points[{index}]"),
                "repeat must be at least 1",
            ));
        }
    }
    let faults = build_faults(config, at)?;
    Ok(Unit {
        id: config.id,
        name: config.name.clone(),
        tables,
        faults,
    })
}

fn build_point(
    config: &PointConfig,
    index: usize,
    copy: u16,
    unit_at: &str,
) -> Result<Point, ConfigError> {
    let table = config.table;
    let data_type = config.data_type.unwrap_or(if table.is_bits() {
        DataType::Bool
    } else {
        DataType::U16
    });
    let width = data_type.register_count();
    let address = u32::from(config.address) + u32::from(copy) * u32::from(width);
    let copy_note = if config.repeat > 1 {
        format!(", copy {} of {}", copy + 1, config.repeat)
    } else {
        String::new()
    };
    let label = format!("points[{index}] ({table} {address}{copy_note})");
    let at = format!("{unit_at}.{label}");
    let fail = |message: String| ConfigError::invalid(at.clone(), message);

    data_type.validate().map_err(|e| fail(e.to_string()))?;
    if table.is_bits() && !data_type.fits_bit_table() {
        return Err(fail(format!(
            "{table} points are single bits; type {data_type} needs a register table"
        )));
    }
    if address + u32::from(width) > ADDRESS_SPACE {
        return Err(fail(format!(
            "{data_type} at {address} ends past address 65535"
        )));
    }
    if config.writable && !table.is_writable() {
        return Err(fail(format!(
            "{table} points cannot be written over Modbus; use a coil or holding_register"
        )));
    }
    if !config.scale.is_finite() || config.scale == 0.0 {
        return Err(fail(format!(
            "scale must be a finite non-zero number, got {}",
            config.scale
        )));
    }
    if !config.offset.is_finite() {
        return Err(fail(format!(
            "offset must be finite, got {}",
            config.offset
        )));
    }
    let name = match (&config.name, config.repeat > 1) {
        (Some(name), true) => Some(format!("{name}[{copy}]")),
        (name, _) => name.clone(),
    };
    let mut point = Point {
        label,
        name,
        table,
        address: address as u16,
        data_type,
        order: config.order,
        scale: config.scale,
        offset: config.offset,
        writable: config.writable,
        source: Source::Fixed(Vec::new()),
        held: None,
    };
    point.source = match (&config.waveform, data_type) {
        (
            Some(WaveformConfig::Constant {
                value: ConstantValue::Text(text),
            }),
            DataType::String(_),
        ) => {
            let words = codec::encode(&TypedValue::Str(text.clone()), data_type, config.order)
                .map_err(|e| fail(e.to_string()))?;
            Source::Fixed(words)
        }
        (None, DataType::String(_)) => Source::Fixed(vec![0; usize::from(width)]),
        (Some(_), DataType::String(_)) => return Err(fail(
            "a string point takes a constant text waveform (kind = \"constant\", value = \"...\")"
                .into(),
        )),
        (None, _) => Source::Wave(Waveform::Constant(0.0)),
        (Some(wave), _) => {
            let wave = Waveform::from_config(wave).map_err(|e| fail(format!("waveform: {e}")))?;
            check_range(&point, &wave).map_err(fail)?;
            Source::Wave(wave)
        }
    };
    Ok(point)
}

/// Checks that every value of a bounded waveform encodes in the point's type.
fn check_range(point: &Point, wave: &Waveform) -> Result<(), String> {
    let Some((lo, hi)) = wave.bounds() else {
        return Ok(());
    };
    for value in [lo, hi] {
        point.encode_value(value, false).map_err(|e| {
            format!(
                "waveform reaches {value}, which does not fit {} with scale {} and offset {}: {e}",
                point.data_type, point.scale, point.offset
            )
        })?;
    }
    Ok(())
}

fn insert_point(map: &mut TableMap, point: Point, unit_at: &str) -> Result<(), ConfigError> {
    let start = u32::from(point.address);
    let end = start + u32::from(point.width());
    let is_bit = matches!(point.data_type, DataType::Bit(_));
    for (&other_start, others) in map.slots.range(..end as u16).rev() {
        let Some(first) = others.first() else {
            continue;
        };
        let other_end = u32::from(other_start) + u32::from(first.width());
        if other_end <= start {
            break;
        }
        let shares_register = is_bit
            && other_start == point.address
            && others
                .iter()
                .all(|o| matches!(o.data_type, DataType::Bit(_)))
            && !others.iter().any(|o| o.data_type == point.data_type);
        if shares_register {
            if let Some(slot) = map.slots.get_mut(&other_start) {
                slot.push(point);
            }
            return Ok(());
        }
        return Err(ConfigError::invalid(
            format!("{unit_at}.{}", point.label),
            format!("overlaps {} ({})", first.label, first.data_type),
        ));
    }
    map.slots.insert(point.address, vec![point]);
    Ok(())
}

fn build_faults(config: &UnitConfig, at: &str) -> Result<UnitFaults, ConfigError> {
    let faults = &config.faults;
    let drop_every = match faults.drop_every {
        None => None,
        Some(n) => Some(NonZeroU64::new(n).ok_or_else(|| {
            ConfigError::invalid(format!("{at}.faults.drop_every"), "must be at least 1")
        })?),
    };
    let exceptions = faults
        .exceptions
        .iter()
        .enumerate()
        .map(|(i, e)| build_exception(e, &format!("{at}.faults.exceptions[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(UnitFaults {
        delay: Duration::from_millis(faults.delay_ms),
        silent: faults.silent,
        drop_every,
        exceptions,
        requests: AtomicU64::new(0),
    })
}

fn build_exception(config: &ExceptionFaultConfig, at: &str) -> Result<ExceptionFault, ConfigError> {
    if config.code == 0 || config.code >= 0x80 {
        return Err(ConfigError::invalid(
            at,
            format!("exception code {} must be in 1..=127", config.code),
        ));
    }
    if config.count == 0 {
        return Err(ConfigError::invalid(at, "count must be at least 1"));
    }
    let start = u32::from(config.address);
    let end = start + u32::from(config.count);
    if end > ADDRESS_SPACE {
        return Err(ConfigError::invalid(at, "range ends past address 65535"));
    }
    Ok(ExceptionFault {
        table: config.table,
        start,
        end,
        code: ExceptionCode::new(config.code),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(text: &str) -> Result<Vec<Unit>, ConfigError> {
        build_units(&SimConfig::from_toml_str(text).unwrap())
    }

    const STATUS_WORD: &str = r#"
        [[units]]
        id = 1
        [[units.points]]
        table = "holding_register"
        address = 7
        type = "bit:0"
        writable = true
        waveform = { kind = "constant", value = true }
        [[units.points]]
        table = "holding_register"
        address = 7
        type = "bit:4"
        writable = true
        [[units.points]]
        table = "holding_register"
        address = 8
        writable = true
    "#;

    #[test]
    fn bit_points_share_a_register_and_split_a_write() {
        let mut unit = units(STATUS_WORD).unwrap().remove(0);
        let holding = &mut unit.tables[Table::HoldingRegister.index()];
        assert_eq!(holding.read(7, 1, Duration::ZERO).unwrap(), [0b1]);
        holding
            .write(7, &[0b1001_0000, 5], Duration::ZERO, true)
            .unwrap();
        // Bit 0 cleared, bit 4 set; bit 7 belongs to no point and is not kept.
        assert_eq!(holding.read(7, 2, Duration::ZERO).unwrap(), [0b1_0000, 5]);
        let addresses: Vec<u16> = holding.points_within(7, 9).map(|p| p.address).collect();
        assert_eq!(addresses, [7, 7, 8]);
    }

    #[test]
    fn a_refused_write_changes_nothing() {
        let text = STATUS_WORD.replace(
            "address = 8\n        writable = true",
            "address = 8\n        writable = false",
        );
        let mut unit = units(&text).unwrap().remove(0);
        let holding = &mut unit.tables[Table::HoldingRegister.index()];
        let refused = holding.write(7, &[0, 9], Duration::ZERO, true);
        assert_eq!(refused, Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(holding.read(7, 2, Duration::ZERO).unwrap(), [1, 0]);
        // A forced write (a test setting device state) ignores writability.
        holding.write(7, &[0, 9], Duration::ZERO, false).unwrap();
        assert_eq!(holding.read(7, 2, Duration::ZERO).unwrap(), [0, 9]);
    }

    #[test]
    fn the_same_bit_twice_is_an_overlap() {
        let text = STATUS_WORD.replace("type = \"bit:4\"", "type = \"bit:0\"");
        let err = units(&text).unwrap_err().to_string();
        assert!(
            err.contains("points[1] (holding_register 7): overlaps points[0]"),
            "{err}"
        );
    }
}
