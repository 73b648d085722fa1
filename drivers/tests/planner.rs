//! Property tests of the read planner: coverage, limits, minimality, and the split fallback.

use std::collections::BTreeSet;

use fieldlink_drivers::plan::{PlanItem, PlanLimits, ReadPlan, MAX_READ_BITS, MAX_READ_REGISTERS};
use fieldlink_drivers::pointmap::Table;
use proptest::prelude::*;

fn table() -> impl Strategy<Value = Table> {
    prop::sample::select(vec![
        Table::Coil,
        Table::DiscreteInput,
        Table::InputRegister,
        Table::HoldingRegister,
    ])
}

/// Any points a valid map can hold: bit tables take one bit per point, register points up to
/// 125 registers, all inside the address space; overlaps and duplicates allowed.
fn any_items() -> impl Strategy<Value = Vec<PlanItem>> {
    prop::collection::vec(
        (table(), any::<u16>(), 1u16..=125, prop::bool::weighted(0.7)),
        0..300,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(index, (table, address, count, short))| {
                let count = if table.is_bits() {
                    1
                } else if short {
                    count % 4 + 1
                } else {
                    count
                };
                let address = address.min((65_536 - u32::from(count)) as u16);
                PlanItem {
                    index,
                    table,
                    address,
                    count,
                }
            })
            .collect()
    })
}

/// Points in one table that never partly overlap: each occupies its own registers, or shares
/// exactly the range of the point before it (two bits of one register).
fn disjoint_items() -> impl Strategy<Value = (Vec<PlanItem>, Table)> {
    (
        table(),
        prop::collection::vec((0u16..40, 1u16..=4, prop::bool::weighted(0.15)), 1..120),
    )
        .prop_map(|(table, raw)| {
            let mut items: Vec<PlanItem> = Vec::new();
            let mut next = 0u16;
            for (index, (gap, count, same)) in raw.into_iter().enumerate() {
                let count = if table.is_bits() { 1 } else { count };
                let prev = items.last().copied();
                let item = match prev {
                    Some(p) if same => PlanItem { index, ..p },
                    _ => {
                        let address = next + gap;
                        next = address + count;
                        PlanItem {
                            index,
                            table,
                            address,
                            count,
                        }
                    }
                };
                items.push(item);
            }
            (items, table)
        })
}

fn check_covers_exactly_once(items: &[PlanItem], plan: &ReadPlan, limits: PlanLimits) {
    let mut seen = vec![0usize; items.len()];
    for r in plan.requests() {
        let end = u32::from(r.start) + u32::from(r.count);
        assert!(end <= 65_536, "{r:?} runs past the address space");
        assert!(r.count >= 1);
        let limit = if r.table.is_bits() {
            limits.max_bits
        } else {
            limits.max_registers
        };
        assert!(r.count <= limit, "{r:?} is over the limit {limit}");
        for p in &r.items {
            seen[p.index] += 1;
            assert_eq!(
                *p, items[p.index],
                "item changed on its way through the plan"
            );
            assert_eq!(p.table, r.table);
            assert!(p.address >= r.start);
            assert!(u32::from(p.address) + u32::from(p.count) <= end);
        }
    }
    for (i, n) in seen.iter().enumerate() {
        assert_eq!(*n, 1, "item {i} is covered {n} times");
    }
}

/// The fewest requests any plan reading the points in address order can use, by exhaustive
/// dynamic programming over where each request ends.
fn fewest_requests(items: &[PlanItem], limits: PlanLimits) -> usize {
    let mut sorted = items.to_vec();
    sorted.sort_by_key(|p| (p.table, p.address, p.index));
    let n = sorted.len();
    let mut best = vec![usize::MAX; n + 1];
    best[0] = 0;
    for j in 0..n {
        if best[j] == usize::MAX {
            continue;
        }
        let start = u32::from(sorted[j].address);
        let mut end = start + u32::from(sorted[j].count);
        for i in j..n {
            let p = sorted[i];
            let p_end = u32::from(p.address) + u32::from(p.count);
            if i > j {
                if p.table != sorted[j].table
                    || u32::from(p.address) > end + u32::from(limits.max_gap)
                {
                    break;
                }
                end = end.max(p_end);
            }
            if end - start > u32::from(limits.max_for(p.table)) {
                break;
            }
            best[i + 1] = best[i + 1].min(best[j] + 1);
        }
    }
    best[n]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_point_is_covered_exactly_once_within_the_limits(
        items in any_items(), gap in 0u16..64,
    ) {
        let limits = PlanLimits::with_gap(gap);
        let plan = ReadPlan::new(items.iter().copied(), limits);
        check_covers_exactly_once(&items, &plan, limits);
    }

    #[test]
    fn plans_use_the_fewest_requests((items, _table) in disjoint_items(), gap in 0u16..20,
                                     max_registers in 4u16..=125) {
        let limits = PlanLimits { max_gap: gap, max_registers, max_bits: MAX_READ_BITS };
        let plan = ReadPlan::new(items.iter().copied(), limits);
        check_covers_exactly_once(&items, &plan, limits);
        prop_assert_eq!(plan.len(), fewest_requests(&items, limits));
    }

    /// The split fallback against a device that refuses any read touching a bad address: after
    /// one pass every point whose own registers are good has been read, only points touching a
    /// bad address fail, coverage stays exactly once, and the remembered plan needs no further
    /// splits on the next pass.
    #[test]
    fn exception_splits_isolate_bad_registers(
        raw in prop::collection::btree_map(0u16..600, 1u16..=4, 1..80),
        bad in prop::collection::btree_set(0u16..620, 0..6),
        gap in 0u16..16,
    ) {
        let items: Vec<PlanItem> = raw.iter().enumerate().map(|(index, (&address, &count))| {
            PlanItem { index, table: Table::HoldingRegister, address, count }
        }).collect();
        let limits = PlanLimits::with_gap(gap);
        let touches_bad = |start: u16, count: u16| {
            bad.range(start..start.saturating_add(count)).next().is_some()
        };
        let mut plan = ReadPlan::new(items.iter().copied(), limits);
        let mut read = BTreeSet::new();
        let mut failed = BTreeSet::new();
        let mut i = 0;
        while i < plan.len() {
            let r = &plan.requests()[i];
            if !touches_bad(r.start, r.count) {
                read.extend(r.items.iter().map(|p| p.index));
                i += 1;
            } else if !plan.split(i) {
                failed.extend(plan.requests()[i].items.iter().map(|p| p.index));
                i += 1;
            }
        }
        check_covers_exactly_once(&items, &plan, limits);
        for p in &items {
            let is_bad = touches_bad(p.address, p.count);
            prop_assert_eq!(failed.contains(&p.index), is_bad, "{:?}", p);
            prop_assert_eq!(read.contains(&p.index), !is_bad, "{:?}", p);
        }
        let before = plan.clone();
        for r in plan.requests() {
            prop_assert!(r.items.len() == 1 || !touches_bad(r.start, r.count),
                "remembered plan still has a failing merged read {:?}", r);
        }
        prop_assert_eq!(before, plan);
    }
}

#[test]
fn reference_workload_needs_one_request_per_device() {
    let items = (0..100).map(|i| PlanItem {
        index: i,
        table: Table::HoldingRegister,
        address: i as u16,
        count: 1,
    });
    let plan = ReadPlan::new(items, PlanLimits::with_gap(0));
    assert_eq!(plan.len(), 1);
    assert_eq!(MAX_READ_REGISTERS, 125);
}

#[test]
fn two_thousand_coils_fit_one_request_and_one_more_does_not() {
    let coils = |n: usize| {
        (0..n).map(|i| PlanItem {
            index: i,
            table: Table::Coil,
            address: i as u16,
            count: 1,
        })
    };
    assert_eq!(
        ReadPlan::new(coils(2_000), PlanLimits::with_gap(0)).len(),
        1
    );
    assert_eq!(
        ReadPlan::new(coils(2_001), PlanLimits::with_gap(0)).len(),
        2
    );
}
