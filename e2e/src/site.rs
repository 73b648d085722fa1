//! The simulated site: one pump station (Modbus unit 1) with a temperature the test moves
//! and a writable setpoint the commands write, served by `fieldlink-sim` over Modbus TCP.

use std::net::SocketAddr;

use fieldlink_sim::{SimConfig, Simulator, Table, TcpServerHandle};

/// The gateway id of the agent in front of the site.
pub const GATEWAY: &str = "gw-e2e";
/// The device name in the agent's configuration.
pub const DEVICE: &str = "pump";
/// The Modbus unit of the pump station.
pub const UNIT: u8 = 1;
/// Holding register of `temp` (u16, scale 0.1, °C); read-only over Modbus.
pub const TEMP_REGISTER: u16 = 0;
/// Holding register of `setpoint` (u16, rpm); writable over Modbus.
pub const SETPOINT_REGISTER: u16 = 10;
/// The temperature the site starts at.
pub const START_TEMP: f64 = 70.0;

const SIM_TOML: &str = r#"
[[units]]
id = 1
name = "pump"

[[units.points]]
name = "temp"
table = "holding_register"
address = 0
type = "u16"
scale = 0.1
waveform = { kind = "constant", value = 70.0 }

[[units.points]]
name = "setpoint"
table = "holding_register"
address = 10
type = "u16"
writable = true
waveform = { kind = "constant", value = 0 }
"#;

/// The agent's `[[devices]]` section for the site at `modbus`, polled every `poll_ms`.
pub fn agent_devices(modbus: SocketAddr, poll_ms: u64) -> String {
    format!(
        r#"
[[devices]]
name = "{DEVICE}"
poll_interval_ms = {poll_ms}
timeout_ms = 1000
transport = {{ kind = "tcp", host = "{host}", port = {port}, unit_id = {UNIT} }}

[[devices.points]]
name = "temp"
unit = "degC"
table = "holding_register"
address = {TEMP_REGISTER}
type = "u16"
scale = 0.1

[[devices.points]]
name = "setpoint"
unit = "rpm"
table = "holding_register"
address = {SETPOINT_REGISTER}
type = "u16"
writable = true
"#,
        host = modbus.ip(),
        port = modbus.port(),
    )
}

/// The simulator serving the site on a free loopback port, on the caller's runtime.
pub struct Site {
    pub sim: Simulator,
    tcp: Option<TcpServerHandle>,
    addr: SocketAddr,
}

impl Site {
    pub async fn start() -> Site {
        let config = SimConfig::from_toml_str(SIM_TOML).expect("the site's simulator config");
        let sim = Simulator::from_config(config).expect("a valid site");
        let tcp = sim
            .bind_tcp(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("the simulator listens");
        let addr = tcp.local_addr();
        Site {
            sim,
            tcp: Some(tcp),
            addr,
        }
    }

    /// Where the simulator answers Modbus TCP.
    pub fn modbus_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the temperature the station reports from now on (to 0.1 °C).
    pub fn set_temp(&self, celsius: f64) {
        let raw = (celsius * 10.0).round() as u16;
        self.sim
            .write_register(UNIT, Table::HoldingRegister, TEMP_REGISTER, raw)
            .expect("the temperature register exists");
    }

    /// The setpoint register as a Modbus master would read it now.
    pub fn setpoint(&self) -> u16 {
        self.sim
            .read_register(UNIT, Table::HoldingRegister, SETPOINT_REGISTER)
            .expect("the setpoint register exists")
    }

    /// Modbus write requests (function codes 5, 6, 15, 16, 22, 23) the station has answered
    /// or refused so far.
    pub fn write_requests(&self) -> u64 {
        let stats = self.sim.stats();
        [5u8, 6, 15, 16, 22, 23]
            .iter()
            .map(|f| stats.requests_for(UNIT, *f))
            .sum()
    }

    pub async fn stop(mut self) {
        if let Some(tcp) = self.tcp.take() {
            let _ = tcp.stop().await;
        }
    }
}
