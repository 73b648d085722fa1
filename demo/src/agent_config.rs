//! The agent configuration the demo runs: `agent.toml` with the addresses chosen at start.
//!
//! Only values are replaced (the broker URL, the journal path, the simulator's port, the
//! weather station's serial port), so the generated file is the shipped one with other
//! numbers in it, and the agent validates it exactly as `check-config` would.

use std::net::SocketAddr;
use std::path::Path;

use toml::{Table, Value};

/// Where the demo's pieces are, for the agent.
#[derive(Debug, Clone)]
pub struct AgentAddresses<'a> {
    /// The embedded broker.
    pub broker: SocketAddr,
    /// The simulator's Modbus TCP server.
    pub modbus: SocketAddr,
    /// The journal file (its directory also holds the boot counter and the command ledger).
    pub journal: &'a Path,
    /// The gateway's end of the weather station's pty; `None` leaves the station out.
    pub weather_port: Option<&'a Path>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    #[error("agent.toml does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("agent.toml: {0}")]
    Shape(String),
    #[error("cannot write the agent configuration: {0}")]
    Serialize(#[from] toml::ser::Error),
}

fn shape(what: impl Into<String>) -> AgentConfigError {
    AgentConfigError::Shape(what.into())
}

fn table<'t>(parent: &'t mut Table, key: &str) -> Result<&'t mut Table, AgentConfigError> {
    parent
        .get_mut(key)
        .and_then(Value::as_table_mut)
        .ok_or_else(|| shape(format!("[{key}] is missing")))
}

/// `template` (the text of `agent.toml`) with `addresses` filled in, as TOML text.
pub fn render(template: &str, addresses: &AgentAddresses<'_>) -> Result<String, AgentConfigError> {
    let mut doc: Table = toml::from_str(template)?;
    table(&mut doc, "mqtt")?.insert(
        "url".into(),
        Value::String(format!("mqtt://{}", addresses.broker)),
    );
    table(&mut doc, "journal")?.insert(
        "path".into(),
        Value::String(addresses.journal.display().to_string()),
    );
    let devices = doc
        .get_mut("devices")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| shape("[[devices]] is missing"))?;
    let mut kept = Vec::with_capacity(devices.len());
    for (i, device) in devices.drain(..).enumerate() {
        let mut device = device;
        let transport = device
            .as_table_mut()
            .and_then(|d| d.get_mut("transport"))
            .and_then(Value::as_table_mut)
            .ok_or_else(|| shape(format!("devices[{i}].transport is missing")))?;
        match transport.get("kind").and_then(Value::as_str) {
            Some("tcp") => {
                transport.insert(
                    "host".into(),
                    Value::String(addresses.modbus.ip().to_string()),
                );
                transport.insert(
                    "port".into(),
                    Value::Integer(i64::from(addresses.modbus.port())),
                );
            }
            Some("serial_line") => match addresses.weather_port {
                Some(port) => {
                    transport.insert("port".into(), Value::String(port.display().to_string()));
                }
                None => continue,
            },
            other => {
                return Err(shape(format!(
                "devices[{i}].transport.kind {other:?}: the demo serves tcp and serial_line only"
            )))
            }
        }
        kept.push(device);
    }
    *devices = kept;
    let body = toml::to_string(&doc)?;
    Ok(format!(
        "# Written by fieldlink-demo at each start from demo/agent.toml, with the addresses of\n\
         # this run. Edits are overwritten; SIGHUP makes a running agent re-read it.\n\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses<'a>(journal: &'a Path, weather: Option<&'a Path>) -> AgentAddresses<'a> {
        AgentAddresses {
            broker: "127.0.0.1:41883".parse().unwrap(),
            modbus: "127.0.0.1:45020".parse().unwrap(),
            journal,
            weather_port: weather,
        }
    }

    #[test]
    fn fills_in_addresses_and_the_agent_accepts_the_result() {
        let journal = Path::new("/tmp/demo/agent/journal.db");
        let weather = Path::new("/tmp/demo/tty-weather");
        let text = render(crate::AGENT_TOML, &addresses(journal, Some(weather))).unwrap();
        let config = fieldlink_agent::config::parse(&text).unwrap();
        assert_eq!(config.gateway.to_string(), crate::GATEWAY_ID);
        assert_eq!(config.journal.path, journal);
        let doc: Table = toml::from_str(&text).unwrap();
        assert_eq!(doc["mqtt"]["url"].as_str(), Some("mqtt://127.0.0.1:41883"));
        let devices = doc["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 4);
        for d in &devices[..3] {
            assert_eq!(d["transport"]["port"].as_integer(), Some(45020));
        }
        assert_eq!(
            devices[3]["transport"]["port"].as_str(),
            Some("/tmp/demo/tty-weather")
        );
    }

    #[test]
    fn leaves_the_weather_station_out_without_a_pty() {
        let journal = Path::new("/tmp/demo/agent/journal.db");
        let text = render(crate::AGENT_TOML, &addresses(journal, None)).unwrap();
        fieldlink_agent::config::parse(&text).unwrap();
        let doc: Table = toml::from_str(&text).unwrap();
        let names: Vec<_> = doc["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["energy-meter", "climate", "pump"]);
    }
}
