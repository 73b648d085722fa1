//! The read planner: the fewest Modbus requests that read every point of a device.
//!
//! Polling one register per request is what makes other gateways slow and chatty (a thousand
//! requests a second for ten meters of a hundred registers). The planner merges, per table,
//! points whose registers are adjacent or at most `max_gap` apart into one read of up to 125
//! registers (2,000 bits), in address order. Overlapping points (two bits of one register, a
//! `u32` and its low word) share a read. For maps whose points do not partly overlap, taking the
//! longest acceptable run each time gives the fewest requests; `tests/planner.rs` checks that
//! against an exhaustive search.
//!
//! Devices differ in what they accept: many answer a read that spans an unmapped address with
//! "illegal data address". [`ReadPlan::split`] halves such a request by points; the poller
//! retries the halves at once and keeps the split plan, so one bad register costs a few extra
//! requests once, is then read (and fails) alone, and never blinds the rest of the device.

use crate::pointmap::Table;

/// The largest read of registers Modbus allows.
pub const MAX_READ_REGISTERS: u16 = 125;
/// The largest read of coils or discrete inputs Modbus allows.
pub const MAX_READ_BITS: u16 = 2_000;

/// A point as the planner sees it: where it is, and an index back into the caller's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanItem {
    pub index: usize,
    pub table: Table,
    pub address: u16,
    /// Registers or bits, at least 1; `address + count` must not pass 65,536.
    pub count: u16,
}

impl PlanItem {
    fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.count)
    }
}

/// One read request and the points it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// The points read by this request, in address order.
    pub items: Vec<PlanItem>,
}

impl ReadRequest {
    fn covering(items: Vec<PlanItem>) -> ReadRequest {
        let start = items.iter().map(|p| p.address).min().unwrap_or(0);
        let end = items.iter().map(PlanItem::end).max().unwrap_or(0);
        ReadRequest {
            table: items.first().map_or(Table::HoldingRegister, |p| p.table),
            start,
            count: u16::try_from(end - u32::from(start)).unwrap_or(u16::MAX),
            items,
        }
    }

    /// Where `item`'s words start in this request's answer.
    pub fn offset_of(&self, item: &PlanItem) -> usize {
        usize::from(item.address - self.start)
    }
}

/// How far the planner may merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Unmapped registers (or bits) one read may span between two points.
    pub max_gap: u16,
    pub max_registers: u16,
    pub max_bits: u16,
}

impl PlanLimits {
    pub fn with_gap(max_gap: u16) -> PlanLimits {
        PlanLimits {
            max_gap,
            max_registers: MAX_READ_REGISTERS,
            max_bits: MAX_READ_BITS,
        }
    }

    pub fn max_for(&self, table: Table) -> u16 {
        if table.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        }
    }
}

/// The requests that read a set of points; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    requests: Vec<ReadRequest>,
}

impl ReadPlan {
    /// Plans `items`. An item longer than the table's limit gets a request of its own (validation
    /// keeps such points out of real maps).
    pub fn new(items: impl IntoIterator<Item = PlanItem>, limits: PlanLimits) -> ReadPlan {
        let mut items: Vec<PlanItem> = items.into_iter().collect();
        items.sort_by_key(|p| (p.table, p.address, p.index));
        let mut requests = Vec::new();
        let mut current: Vec<PlanItem> = Vec::new();
        let (mut start, mut end) = (0u32, 0u32);
        for item in items {
            let fits = current.first().is_some_and(|first| {
                first.table == item.table
                    && u32::from(item.address) <= end + u32::from(limits.max_gap)
                    && end.max(item.end()) - start <= u32::from(limits.max_for(item.table))
            });
            if fits {
                end = end.max(item.end());
            } else {
                if !current.is_empty() {
                    requests.push(ReadRequest::covering(std::mem::take(&mut current)));
                }
                start = u32::from(item.address);
                end = item.end();
            }
            current.push(item);
        }
        if !current.is_empty() {
            requests.push(ReadRequest::covering(current));
        }
        ReadPlan { requests }
    }

    pub fn requests(&self) -> &[ReadRequest] {
        &self.requests
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Replaces request `i` by two requests carrying its first and second half of points, in
    /// place (`i` and `i + 1`). Returns `false`, changing nothing, when the request carries
    /// points that all start at one address: there is nothing left to isolate.
    pub fn split(&mut self, i: usize) -> bool {
        let Some(req) = self.requests.get(i) else {
            return false;
        };
        let first_addr = req.items[0].address;
        if req.items.iter().all(|p| p.address == first_addr) {
            return false;
        }
        let items = &req.items;
        // Split between distinct addresses so points sharing a register stay together.
        let mut mid = items.len() / 2;
        while mid > 0 && items[mid].address == items[mid - 1].address {
            mid -= 1;
        }
        if mid == 0 {
            mid = items
                .iter()
                .position(|p| p.address != first_addr)
                .unwrap_or(1);
        }
        let (a, b) = items.split_at(mid);
        let (a, b) = (
            ReadRequest::covering(a.to_vec()),
            ReadRequest::covering(b.to_vec()),
        );
        self.requests[i] = a;
        self.requests.insert(i + 1, b);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: usize, address: u16, count: u16) -> PlanItem {
        PlanItem {
            index,
            table: Table::HoldingRegister,
            address,
            count,
        }
    }

    #[test]
    fn a_hundred_adjacent_registers_take_one_request() {
        let plan = ReadPlan::new(
            (0..100).map(|i| item(i, i as u16, 1)),
            PlanLimits::with_gap(0),
        );
        assert_eq!(plan.len(), 1);
        assert_eq!(plan.requests()[0].count, 100);
    }

    #[test]
    fn the_register_limit_and_the_gap_cut_requests() {
        let plan = ReadPlan::new(
            (0..126).map(|i| item(i, i as u16, 1)),
            PlanLimits::with_gap(0),
        );
        assert_eq!(
            plan.requests()
                .iter()
                .map(|r| (r.start, r.count))
                .collect::<Vec<_>>(),
            [(0, 125), (125, 1)]
        );
        let gapped = [item(0, 0, 2), item(1, 5, 2), item(2, 20, 1)];
        let plan = ReadPlan::new(gapped, PlanLimits::with_gap(3));
        assert_eq!(
            plan.requests()
                .iter()
                .map(|r| (r.start, r.count))
                .collect::<Vec<_>>(),
            [(0, 7), (20, 1)]
        );
    }

    #[test]
    fn tables_never_share_a_request() {
        let mut c = item(1, 1, 1);
        c.table = Table::InputRegister;
        let plan = ReadPlan::new([item(0, 0, 1), c], PlanLimits::with_gap(10));
        assert_eq!(plan.len(), 2);
    }

    #[test]
    fn split_halves_by_points_and_keeps_shared_registers_together() {
        let items = [item(0, 0, 1), item(1, 1, 1), item(2, 1, 1), item(3, 2, 1)];
        let mut plan = ReadPlan::new(items, PlanLimits::with_gap(0));
        assert!(plan.split(0));
        let r = plan.requests();
        assert_eq!((r[0].start, r[0].count, r[0].items.len()), (0, 1, 1));
        assert_eq!((r[1].start, r[1].count, r[1].items.len()), (1, 2, 3));
        assert!(plan.split(1));
        assert_eq!(plan.len(), 3);
        assert_eq!(plan.requests()[1].items.len(), 2);
        assert!(!plan.split(1), "two bits of one register cannot be split");
        assert!(!plan.split(7));
    }
}
