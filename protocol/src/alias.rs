//! Series aliases: small integers for the series a birth announces.
//!
//! A gateway's birth lists its devices and each device's points. Numbering those series in
//! the birth's order (device by device, point by point, from 0) gives both sides the same
//! table without sending it: the agent derives it from the birth it published on the
//! connection, the cloud from the birth it stored. The aliased binary telemetry form then
//! names a series by its alias instead of by its device and metric names, which on a batch of
//! one poll cycle is most of the payload.
//!
//! A batch in the aliased form carries the birth's `config_hash` and the table's
//! [`check`](SeriesAliases::check) (FNV-1a, 32 bits, over the names in table order), so a
//! decoder holding another birth refuses it with a typed error instead of misreading it.

use std::collections::HashMap;

use crate::{Birth, Ident};

/// The alias table of one birth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesAliases {
    config_hash: String,
    check: u32,
    series: Vec<(Ident, Ident)>,
    index: HashMap<(Ident, Ident), u32>,
}

/// What an aliased payload says about the birth it was written against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BirthRef {
    pub config_hash: String,
    pub check: u32,
}

impl SeriesAliases {
    /// The table of `birth`: alias `i` is the `i`-th point in device order, then point order.
    pub fn from_birth(birth: &Birth) -> SeriesAliases {
        let series: Vec<(Ident, Ident)> = birth
            .devices
            .iter()
            .flat_map(|d| d.points.iter().map(|p| (d.name.clone(), p.name.clone())))
            .collect();
        let mut index = HashMap::with_capacity(series.len());
        for (i, key) in series.iter().enumerate() {
            // A valid birth has no duplicates; with one, the first alias wins on both sides.
            index.entry(key.clone()).or_insert(i as u32);
        }
        SeriesAliases {
            check: table_check(&series),
            config_hash: birth.config_hash.clone(),
            series,
            index,
        }
    }

    /// The birth's configuration hash, written in every aliased payload.
    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }

    /// FNV-1a (32 bits) over `device 0x00 metric 0x00` of every series in alias order.
    pub fn check(&self) -> u32 {
        self.check
    }

    /// The reference an aliased payload carries.
    pub fn birth_ref(&self) -> BirthRef {
        BirthRef {
            config_hash: self.config_hash.clone(),
            check: self.check,
        }
    }

    /// Whether a payload written against `r` can be read with this table.
    pub fn matches(&self, r: &BirthRef) -> bool {
        r.check == self.check && r.config_hash == self.config_hash
    }

    /// Number of aliases.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The alias of a series, if the birth announced it.
    pub fn alias(&self, device: &Ident, metric: &Ident) -> Option<u32> {
        // Keys are owned pairs; the lookup clones two short identifiers per series, once per
        // series of a batch, not per point.
        self.index.get(&(device.clone(), metric.clone())).copied()
    }

    /// The series an alias stands for.
    pub fn series(&self, alias: u64) -> Option<&(Ident, Ident)> {
        usize::try_from(alias).ok().and_then(|i| self.series.get(i))
    }
}

fn table_check(series: &[(Ident, Ident)]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (d, m) in series {
        for b in d
            .as_str()
            .bytes()
            .chain([0])
            .chain(m.as_str().bytes())
            .chain([0])
        {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{DataKind, DeviceInfo, PointInfo};

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }

    pub(crate) fn birth(devices: &[(&str, &[&str])]) -> Birth {
        birth_with("9f2c4e", devices)
    }

    /// A birth of gateway `gw` with config hash `hash`; every point a number.
    pub(crate) fn birth_with(hash: &str, devices: &[(&str, &[&str])]) -> Birth {
        Birth {
            gateway: id("gw"),
            boot_epoch: 1,
            ts_ms: 0,
            agent_version: "0.1.0".into(),
            config_hash: hash.into(),
            devices: devices
                .iter()
                .map(|(d, ps)| DeviceInfo {
                    name: id(d),
                    points: ps
                        .iter()
                        .map(|p| PointInfo {
                            name: id(p),
                            unit: None,
                            kind: DataKind::Number,
                            writable: false,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn aliases_follow_the_birth_order() {
        let a = SeriesAliases::from_birth(&birth(&[("m1", &["v", "i"]), ("m2", &["v"])]));
        assert_eq!(a.len(), 3);
        assert_eq!(a.alias(&id("m1"), &id("v")), Some(0));
        assert_eq!(a.alias(&id("m1"), &id("i")), Some(1));
        assert_eq!(a.alias(&id("m2"), &id("v")), Some(2));
        assert_eq!(a.alias(&id("m2"), &id("i")), None);
        assert_eq!(a.series(2), Some(&(id("m2"), id("v"))));
        assert_eq!(a.series(3), None);
        assert_eq!(a.series(u64::MAX), None);
        assert_eq!(a.config_hash(), "9f2c4e");
    }

    #[test]
    fn the_check_tells_tables_apart() {
        let a = SeriesAliases::from_birth(&birth(&[("m1", &["v", "i"])]));
        let b = SeriesAliases::from_birth(&birth(&[("m1", &["i", "v"])]));
        let c = SeriesAliases::from_birth(&birth(&[("m1v", &["i"])]));
        assert_ne!(a.check(), b.check());
        assert_ne!(a.check(), c.check());
        assert!(a.matches(&a.birth_ref()));
        assert!(!a.matches(&b.birth_ref()));
        // FNV-1a 32 of "m1\0v\0m1\0i\0", so that other implementations can check theirs.
        assert_eq!(a.check(), fnv(b"m1\0v\0m1\0i\0"));
    }

    fn fnv(bytes: &[u8]) -> u32 {
        bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    }
}
