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
