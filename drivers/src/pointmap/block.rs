//! Point blocks: one entry of the map standing for a run of consecutive points.
//!
//! An entry with `count` is a block: `count` points alike in all but name and address, the
//! first at `address`, each next one `stride` registers (or bits) further, named by the
//! entry's [`NamePattern`]. Expansion happens during validation, so everything after it sees
//! ordinary points; the checks here are the ones that concern the run as a whole (it fits the
//! address space, its points do not overlap one another, its names differ), reported once at the
//! entry's path rather than once per point.

use crate::codec::DataType;
use crate::pointmap::config::PointConfig;
use crate::pointmap::pattern::NamePattern;
use crate::pointmap::validate::Errors;
use crate::pointmap::PointMapErrorKind as K;

/// One point of an entry: its name and address.
pub(super) struct Member {
    pub name: String,
    pub address: u16,
}

/// The points entry `p` stands for, given its first address and type: one for a plain point,
/// `count` for a block, none when the block's own keys are wrong (reported at `path`).
pub(super) fn members(
    p: &PointConfig,
    address: u16,
    data_type: DataType,
    path: &str,
    errors: &mut Errors,
) -> Vec<Member> {
    let Some(count) = p.count else {
        for (key, set) in [
            ("stride", p.stride.is_some()),
            ("number_from", p.number_from.is_some()),
        ] {
            if set {
                errors.push(path, K::BlockOnly(key));
            }
        }
        return vec![Member {
            name: p.name.clone(),
            address,
        }];
    };
    let before = errors.len();
    let pattern = NamePattern::parse(&p.name)
        .map_err(|e| errors.push(path, K::NamePattern(e)))
        .ok();
    if count == 0 {
        errors.push(path, K::Zero("count"));
    }
    if count > 1 && pattern.as_ref().is_some_and(|p| !p.has_placeholder()) {
        errors.push(path, K::NoPlaceholder { count });
    }
    let width = data_type.register_count();
    let stride = p.stride.unwrap_or(width);
    if stride < width {
        errors.push(
            path,
            K::StrideTooShort {
                stride,
                data_type,
                width,
            },
        );
    }
    let last = u64::from(address) + u64::from(count.saturating_sub(1)) * u64::from(stride);
    if last + u64::from(width) > 65_536 {
        errors.push(path, K::BlockPastEnd { count, last });
    }
    let Some(pattern) = pattern.filter(|_| errors.len() == before) else {
        return Vec::new();
    };
    let first = u64::from(p.number_from.unwrap_or(0));
    (0..u64::from(count))
        .map(|i| {
            // Fits: the run was checked to end within the address space.
            let address = (u64::from(address) + i * u64::from(stride)) as u16;
            Member {
                name: pattern.render(first + i, u32::from(address)),
                address,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(json: &str) -> PointConfig {
        serde_json::from_str(json).expect("test entry parses")
    }

    fn expand(json: &str, address: u16, data_type: DataType) -> (Vec<(String, u16)>, Vec<String>) {
        let mut errors = Errors::default();
        let m = members(&block(json), address, data_type, "b", &mut errors);
        (
            m.into_iter().map(|m| (m.name, m.address)).collect(),
            errors.messages(),
        )
    }

    #[test]
    fn a_block_expands_with_stride_numbering_and_addresses() {
        let (m, e) = expand(
            r#"{"name": "v{n}_at{address:03}", "count": 3, "number_from": 1}"#,
            10,
            DataType::F32,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            m,
            [
                ("v1_at010".into(), 10),
                ("v2_at012".into(), 12),
                ("v3_at014".into(), 14)
            ]
        );
        let (m, _) = expand(
            r#"{"name": "s{n}", "count": 2, "stride": 10}"#,
            0,
            DataType::U16,
        );
        assert_eq!(m, [("s0".into(), 0), ("s1".into(), 10)]);
        // A run that ends exactly at the last address fits.
        let (m, e) = expand(r#"{"name": "t{n}", "count": 2}"#, 65_532, DataType::U32);
        assert!(e.is_empty() && m.len() == 2, "{e:?}");
        // A plain point is its own single member.
        let (m, e) = expand(r#"{"name": "voltage"}"#, 7, DataType::U16);
        assert!(e.is_empty());
        assert_eq!(m, [("voltage".into(), 7)]);
    }

    #[test]
    fn block_mistakes_are_reported_once_at_the_entry() {
        for (json, address, data_type, wanted) in [
            (
                r#"{"name": "x{n}", "count": 0}"#,
                0,
                DataType::U16,
                "b: count must be greater than zero",
            ),
            (
                r#"{"name": "x", "count": 2}"#,
                0,
                DataType::U16,
                "b: the name has no `{n}` or `{address}`",
            ),
            (
                r#"{"name": "x{i}", "count": 2}"#,
                0,
                DataType::U16,
                "b: name pattern: `{i}` is not a placeholder",
            ),
            (
                r#"{"name": "x{n}", "count": 2, "stride": 1}"#,
                0,
                DataType::U32,
                "b: stride 1 is less than the 2 registers a u32 spans",
            ),
            (
                r#"{"name": "x{n}", "count": 101}"#,
                65_436,
                DataType::U16,
                "b: the block's 101 points run past address 65535 (the last would start at 65536)",
            ),
            (
                r#"{"name": "x", "stride": 2}"#,
                0,
                DataType::U16,
                "b: `stride` applies to blocks only",
            ),
            (
                r#"{"name": "x", "number_from": 2}"#,
                0,
                DataType::U16,
                "b: `number_from` applies to blocks only",
            ),
        ] {
            let (m, e) = expand(json, address, data_type);
            assert_eq!(e.len(), 1, "{json}: {e:?}");
            assert!(e[0].starts_with(wanted), "{json}: {e:?}");
            if json.contains("count") {
                assert!(m.is_empty(), "{json}: a wrong block yields no points");
            }
        }
    }
}
