//! Device health in the registry: what gateways report, and the state the cloud serves.
//!
//! A gateway reports a device's health when it changes (`device_up`, `device_degraded`,
//! `device_down` events; see `drivers/src/health.rs`). The store keeps, per device, the newest
//! report by (boot epoch, event sequence number) and the latest error ever reported. The
//! state served is derived when reading, from the report and the gateway's own status:
//!
//! - no report yet: **unknown**, no `since`;
//! - the gateway is offline (its will or a clean shutdown arrived): **unknown** since the
//!   gateway's status changed; the report is kept as `reported` but nobody vouches for it;
//! - the gateway is online in a newer boot epoch than the report's (the agent restarted and
//!   has not polled the device yet): **unknown** since the birth;
//! - otherwise (online in the report's epoch, or a gateway that never sent a status): the
//!   reported state, since the gateway's timestamp of the change.
//!
//! An agent that reconnects in the same boot epoch kept its devices' state, and any change
//! made while the link was down travels through its journal, so its last report is current
//! again as soon as its birth arrives.

use fieldlink_protocol::Ident;

/// What a gateway says about a device.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReportedState {
    Online,
    Degraded,
    Offline,
}

impl ReportedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportedState::Online => "online",
            ReportedState::Degraded => "degraded",
            ReportedState::Offline => "offline",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<ReportedState> {
        match s {
            "online" => Some(ReportedState::Online),
            "degraded" => Some(ReportedState::Degraded),
            "offline" => Some(ReportedState::Offline),
            _ => None,
        }
    }
}

/// The state the cloud serves for a device.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Online,
    Degraded,
    Offline,
    /// Never reported, or its gateway cannot vouch for the last report (see the module docs).
    Unknown,
}

impl From<ReportedState> for DeviceState {
    fn from(r: ReportedState) -> DeviceState {
        match r {
            ReportedState::Online => DeviceState::Online,
            ReportedState::Degraded => DeviceState::Degraded,
            ReportedState::Offline => DeviceState::Offline,
        }
    }
}

/// One health event, as ingest classified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub gateway: Ident,
    pub device: Ident,
    pub state: ReportedState,
    /// The error behind a degraded or offline report.
    pub error: Option<String>,
    /// When the state changed, by the gateway's clock, never later than the receive time.
    pub at_ms: i64,
    pub boot_epoch: i64,
    pub seq: i64,
}

/// A device's health as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceHealth {
    pub gateway: Ident,
    pub device: Ident,
    pub state: DeviceState,
    /// When the state began; absent while nothing was ever reported.
    pub since_ms: Option<i64>,
    /// The gateway's last report, also when `state` is unknown.
    pub reported: Option<ReportedState>,
    /// The latest error reported, kept after the device recovers.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// A `devices` row joined with its gateway, as the stores read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthRow {
    pub gateway: Ident,
    pub device: Ident,
    pub health_state: Option<String>,
    pub health_at_ms: Option<i64>,
    pub health_epoch: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    pub gateway_online: bool,
    pub gateway_epoch: Option<i64>,
    /// When the gateway's last birth or death arrived; absent when it never sent one.
    pub status_at_ms: Option<i64>,
}

impl HealthRow {
    /// The state served, by the rules in the module docs.
    pub(crate) fn resolve(self) -> DeviceHealth {
        let reported = self.health_state.as_deref().and_then(ReportedState::parse);
        let (state, since_ms) = match reported {
            None => (DeviceState::Unknown, None),
            Some(r) => {
                let vouched = match self.status_at_ms {
                    None => true,
                    Some(_) if !self.gateway_online => false,
                    Some(_) => match (self.health_epoch, self.gateway_epoch) {
                        (Some(report), Some(gateway)) => report >= gateway,
                        _ => true,
                    },
                };
                if vouched {
                    (r.into(), self.health_at_ms)
                } else {
                    (DeviceState::Unknown, self.status_at_ms)
                }
            }
        };
        DeviceHealth {
            gateway: self.gateway,
            device: self.device,
            state,
            since_ms,
            reported,
            last_error: self.last_error,
            last_error_ms: self.last_error_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> HealthRow {
        HealthRow {
            gateway: Ident::new("gw").unwrap(),
            device: Ident::new("meter").unwrap(),
            health_state: Some("degraded".into()),
            health_at_ms: Some(1_000),
            health_epoch: Some(3),
            last_error: Some("exception 2".into()),
            last_error_ms: Some(1_000),
            gateway_online: true,
            gateway_epoch: Some(3),
            status_at_ms: Some(500),
        }
    }

    #[test]
    fn a_report_is_served_while_its_gateway_is_online_in_its_epoch() {
        let h = row().resolve();
        assert_eq!(h.state, DeviceState::Degraded);
        assert_eq!(h.since_ms, Some(1_000));
        assert_eq!(h.reported, Some(ReportedState::Degraded));
        assert_eq!(h.last_error.as_deref(), Some("exception 2"));
        // A report from a newer epoch than the last birth seen (the birth is still on its way).
        let h = HealthRow {
            health_epoch: Some(4),
            ..row()
        }
        .resolve();
        assert_eq!(h.state, DeviceState::Degraded);
    }

    #[test]
    fn an_offline_gateway_or_a_restarted_agent_makes_the_state_unknown() {
        let h = HealthRow {
            gateway_online: false,
            status_at_ms: Some(9_000),
            ..row()
        }
        .resolve();
        assert_eq!(
            (h.state, h.since_ms, h.reported),
            (
                DeviceState::Unknown,
                Some(9_000),
                Some(ReportedState::Degraded)
            )
        );
        let h = HealthRow {
            gateway_epoch: Some(4),
            status_at_ms: Some(8_000),
            ..row()
        }
        .resolve();
        assert_eq!((h.state, h.since_ms), (DeviceState::Unknown, Some(8_000)));
    }

    #[test]
    fn never_reported_is_unknown_and_a_gateway_without_status_is_trusted() {
        let h = HealthRow {
            health_state: None,
            health_at_ms: None,
            health_epoch: None,
            ..row()
        }
        .resolve();
        assert_eq!((h.state, h.since_ms), (DeviceState::Unknown, None));
        let h = HealthRow {
            gateway_online: false,
            gateway_epoch: None,
            status_at_ms: None,
            ..row()
        }
        .resolve();
        assert_eq!(h.state, DeviceState::Degraded);
    }
}
