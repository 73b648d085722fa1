//! The simulated site: the Modbus units of `site.toml` on one TCP port, and the serial weather
//! station writing into one end of a pseudo-terminal pair.

use std::net::SocketAddr;

use fieldlink_sim::{
    ConfigError, LineSensorHandle, SerialSettings, ServeError, SimConfig, Simulator,
    TcpServerHandle,
};

use crate::pty::PtyPair;

/// The name of the serial line sensor in `site.toml`.
pub const WEATHER: &str = "weather";

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("site.toml: {0}")]
    Config(#[from] ConfigError),
    #[error("site.toml defines no line sensor named {WEATHER:?}")]
    NoWeatherStation,
    #[error("simulator: {0}")]
    Serve(#[from] ServeError),
}

/// The running simulator.
pub struct Site {
    pub simulator: Simulator,
    tcp: TcpServerHandle,
    weather: Option<LineSensorHandle>,
}

impl Site {
    /// Serves the site's Modbus units on `listen` (port 0 picks a free port).
    pub async fn start(listen: SocketAddr) -> Result<Site, SiteError> {
        let simulator = Simulator::from_config(SimConfig::from_toml_str(crate::SITE_TOML)?)?;
        let tcp = simulator.bind_tcp(listen).await?;
        Ok(Site {
            simulator,
            tcp,
            weather: None,
        })
    }

    /// Where the Modbus TCP server listens.
    pub fn modbus_addr(&self) -> SocketAddr {
        self.tcp.local_addr()
    }

    /// Starts the weather station writing into the simulator's end of `pty`.
    pub fn start_weather(&mut self, pty: &PtyPair) -> Result<(), SiteError> {
        let sensor = self
            .simulator
            .line_sensor(WEATHER)
            .ok_or(SiteError::NoWeatherStation)?;
        let settings = SerialSettings::new(pty.device_end(), sensor.baud());
        self.weather = Some(sensor.start(settings)?);
        Ok(())
    }

    /// Stops the servers.
    pub async fn stop(self) {
        if let Some(weather) = self.weather {
            if let Err(e) = weather.stop().await {
                tracing::warn!(error = %e, "weather station stopped with an error");
            }
        }
        if let Err(e) = self.tcp.stop().await {
            tracing::warn!(error = %e, "Modbus TCP server stopped with an error");
        }
    }
}
