//! Birth and death: whether a gateway is online, and what it measures.
//!
//! The birth is published retained on connect, so a cloud node that starts later still learns
//! each gateway's devices, units and writable points. The death is registered as the MQTT will
//! (retained too), so the broker announces a gateway that vanished without a word.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::Message;
use crate::error::ValidationError;
use crate::limits::{
    MAX_CONFIG_HASH_LEN, MAX_DEVICES_PER_BIRTH, MAX_POINTS_PER_DEVICE, MAX_UNIT_LEN,
    MAX_VERSION_LEN,
};
use crate::topic::TopicKind;
use crate::{validate, DataKind, Ident};

/// The retained state of a gateway, tagged by `"state"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Online(Birth),
    Offline(Death),
}

/// Published on every connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Birth {
    pub gateway: Ident,
    pub boot_epoch: u64,
    pub ts_ms: i64,
    pub agent_version: String,
    /// Hash of the configuration in force, so the cloud can tell whether an apply-config
    /// command took effect.
    pub config_hash: String,
    #[serde(deserialize_with = "crate::json::bounded::devices")]
    pub devices: Vec<DeviceInfo>,
}

/// A device the gateway polls and what it reads from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub name: Ident,
    #[serde(deserialize_with = "crate::json::bounded::device_points")]
    pub points: Vec<PointInfo>,
}

/// One point of a device: its metric name, unit, value type and whether commands may write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointInfo {
    pub name: Ident,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub kind: DataKind,
    #[serde(default)]
    pub writable: bool,
}

/// The MQTT will; also published on a clean shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Death {
    pub gateway: Ident,
    /// The boot epoch of the session that died, so a late will cannot mark a newer session
    /// offline.
    pub boot_epoch: u64,
}

impl Status {
    /// The gateway the status is about.
    pub fn gateway(&self) -> &Ident {
        match self {
            Status::Online(b) => &b.gateway,
            Status::Offline(d) => &d.gateway,
        }
    }
}

impl Birth {
    fn validate(&self) -> Result<(), ValidationError> {
        validate::timestamp(self.ts_ms, || "ts_ms".into())?;
        validate::label(&self.agent_version, MAX_VERSION_LEN, || {
            "agent_version".into()
        })?;
        validate::label(&self.config_hash, MAX_CONFIG_HASH_LEN, || {
            "config_hash".into()
        })?;
        validate::count(self.devices.len(), MAX_DEVICES_PER_BIRTH, || {
            "devices".into()
        })?;
        let mut names = HashSet::new();
        for (d, dev) in self.devices.iter().enumerate() {
            if !names.insert(dev.name.as_str()) {
                return Err(ValidationError::Duplicate {
                    field: format!("devices[{d}].name"),
                    name: dev.name.to_string(),
                });
            }
            validate::count(dev.points.len(), MAX_POINTS_PER_DEVICE, || {
                format!("devices[{d}].points")
            })?;
            let mut points = HashSet::new();
            for (p, pt) in dev.points.iter().enumerate() {
                if !points.insert(pt.name.as_str()) {
                    return Err(ValidationError::Duplicate {
                        field: format!("devices[{d}].points[{p}].name"),
                        name: pt.name.to_string(),
                    });
                }
                if let Some(unit) = &pt.unit {
                    validate::label(unit, MAX_UNIT_LEN, || {
                        format!("devices[{d}].points[{p}].unit")
                    })?;
                }
            }
        }
        Ok(())
    }
}

impl Message for Status {
    const TOPIC: TopicKind = TopicKind::Status;

    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Status::Online(b) => b.validate(),
            Status::Offline(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }

    fn birth() -> Birth {
        Birth {
            gateway: id("gw"),
            boot_epoch: 1,
            ts_ms: 1_700_000_000_000,
            agent_version: "0.1.0".into(),
            config_hash: "ab12".into(),
            devices: vec![DeviceInfo {
                name: id("meter"),
                points: vec![PointInfo {
                    name: id("v"),
                    unit: Some("V".into()),
                    kind: DataKind::Number,
                    writable: false,
                }],
            }],
        }
    }

    #[test]
    fn birth_rules() {
        assert_eq!(Status::Online(birth()).validate(), Ok(()));
        let mut b = birth();
        b.devices.push(b.devices[0].clone());
        assert!(matches!(
            Status::Online(b).validate(),
            Err(ValidationError::Duplicate { ref field, .. }) if field == "devices[1].name"
        ));
        let mut b = birth();
        let p = b.devices[0].points[0].clone();
        b.devices[0].points.push(p);
        assert!(matches!(
            Status::Online(b).validate(),
            Err(ValidationError::Duplicate { .. })
        ));
        let mut b = birth();
        b.devices[0].points[0].unit = Some("k\nW".into());
        assert!(matches!(
            Status::Online(b).validate(),
            Err(ValidationError::ControlChar { ref field, .. }) if field == "devices[0].points[0].unit"
        ));
        let mut b = birth();
        b.agent_version = String::new();
        assert!(matches!(
            Status::Online(b).validate(),
            Err(ValidationError::Empty { .. })
        ));
        let mut b = birth();
        b.config_hash = "f".repeat(MAX_CONFIG_HASH_LEN + 1);
        assert!(Status::Online(b).validate().is_err());
    }

    #[test]
    fn death_is_always_valid_and_names_its_gateway() {
        let d = Status::Offline(Death {
            gateway: id("gw"),
            boot_epoch: 3,
        });
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(d.gateway().as_str(), "gw");
    }
}
