//! What `check-config` prints: the gateway, its broker and journal, every device and the read
//! plan the drivers will use for it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use fieldlink_drivers::pointmap::{DeviceKind, ModbusLink};
use fieldlink_drivers::{PlanItem, PlanLimits, ReadPlan};

use crate::config::AgentConfig;

/// The plans of a Modbus device: one per distinct poll interval, as the stations group them.
pub fn read_plans(m: &fieldlink_drivers::pointmap::ModbusDevice) -> Vec<(Duration, ReadPlan)> {
    let mut by: BTreeMap<Duration, Vec<PlanItem>> = BTreeMap::new();
    for (index, p) in m.points.iter().enumerate() {
        by.entry(p.poll_interval).or_default().push(PlanItem {
            index,
            table: p.table,
            address: p.address,
            count: p.count(),
        });
    }
    by.into_iter()
        .map(|(i, items)| (i, ReadPlan::new(items, PlanLimits::with_gap(m.max_gap))))
        .collect()
}

/// The human-readable summary.
pub fn summary(c: &AgentConfig) -> String {
    let mut s = String::new();
    let m = &c.mqtt;
    let _ = writeln!(s, "gateway {} (config hash {})", c.gateway, c.hash);
    let _ = writeln!(
        s,
        "broker  {}://{}:{} as {:?}, topics {}/{}/…, {:?} encoding, {} in flight",
        if m.tls.is_some() { "mqtts" } else { "mqtt" },
        m.host,
        m.port,
        m.client_id,
        m.prefix.as_str(),
        c.gateway,
        m.encoding,
        m.max_in_flight
    );
    if let Some(t) = &m.tls {
        let ca = t
            .ca_file
            .as_ref()
            .map_or("system roots".to_owned(), |p| p.display().to_string());
        let _ = writeln!(
            s,
            "tls     CA {ca}{}{}",
            if t.client_auth.is_some() {
                ", client certificate"
            } else {
                ""
            },
            if t.insecure {
                ", INSECURE: server not verified"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        s,
        "journal {} (cap {} bytes, {:?} durability, sync every {:?})",
        c.journal.path.display(),
        c.journal.caps.max_bytes,
        c.journal.durability,
        c.journal.commit_interval
    );
    let mut total_requests_per_s = 0.0;
    let _ = writeln!(s, "devices {}", c.point_map.devices.len());
    for d in &c.point_map.devices {
        match &d.kind {
            DeviceKind::Modbus(md) => {
                let link = match &md.link {
                    ModbusLink::Tcp { host, port } => format!("modbus tcp {host}:{port}"),
                    ModbusLink::Rtu { port, line, .. } => {
                        format!("modbus rtu {port} @{} baud", line.baud)
                    }
                };
                let _ = writeln!(
                    s,
                    "  {} — {link} unit {}, {} points, every {:?}",
                    d.name,
                    md.unit_id,
                    md.points.len(),
                    d.poll_interval
                );
                for (interval, plan) in read_plans(md) {
                    total_requests_per_s += plan.len() as f64 / interval.as_secs_f64();
                    let reqs: Vec<String> = plan
                        .requests()
                        .iter()
                        .map(|r| format!("{} {}+{}", r.table, r.start, r.count))
                        .collect();
                    let _ = writeln!(
                        s,
                        "    every {interval:?}: {} request(s): {}",
                        plan.len(),
                        reqs.join(", ")
                    );
                }
            }
            DeviceKind::SerialLine(sl) => {
                let _ = writeln!(
                    s,
                    "  {} — serial line {} @{} baud, {} points",
                    d.name,
                    sl.port,
                    sl.line.baud,
                    sl.points.len()
                );
            }
        }
    }
    let _ = writeln!(s, "modbus requests per second: {total_requests_per_s:.1}");
    s
}

/// Column titles of [`point_list`].
const POINT_COLUMNS: [&str; 9] = [
    "device", "point", "table", "address", "type", "scale", "unit", "writable", "poll_ms",
];

/// What `check-config --points` prints: a header, then one line per point as the drivers will
/// read it (templates applied, blocks expanded), in the map's order, in aligned columns that
/// never contain a space, so the list can be read by eye or by `awk`. Serial-line points have
/// no table or address; their type column names the field of the line they come from.
pub fn point_list(c: &AgentConfig) -> String {
    let mut rows: Vec<[String; 9]> = vec![POINT_COLUMNS.map(str::to_owned)];
    let unit = |u: &Option<String>| u.clone().unwrap_or_else(|| "-".into());
    for d in &c.point_map.devices {
        match &d.kind {
            DeviceKind::Modbus(m) => rows.extend(m.points.iter().map(|p| {
                [
                    d.name.to_string(),
                    p.name.to_string(),
                    p.table.to_string(),
                    p.address.to_string(),
                    p.data_type.to_string(),
                    p.scale.to_string(),
                    unit(&p.unit),
                    if p.writable { "yes" } else { "no" }.to_owned(),
                    p.poll_interval.as_millis().to_string(),
                ]
            })),
            DeviceKind::SerialLine(sl) => rows.extend(sl.points.iter().map(|p| {
                [
                    d.name.to_string(),
                    p.name.to_string(),
                    "serial_line".to_owned(),
                    "-".to_owned(),
                    format!("field={}", p.field),
                    p.scale.to_string(),
                    unit(&p.unit),
                    "no".to_owned(),
                    "-".to_owned(),
                ]
            })),
        }
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(s, "{}", line.join("  ").trim_end());
    }
    s
}
