//! Gateway registration by an operator, shared by the `gateway` subcommand and the admin
//! routes `POST /api/v1/gateways` and `DELETE /api/v1/gateways/{gateway}`.
//!
//! With `ingest.require_registration = true` only registered gateways are accepted: messages
//! from any other gateway become dead letters (reason `unregistered`). Registering takes
//! effect on the next message; removing takes effect within
//! [`REGISTRATION_REFRESH`](crate::ingest::REGISTRATION_REFRESH) on every instance.
//!
//! Removing never deletes data. A gateway that was never heard from (no status, no message,
//! no device, no command) loses its entry; any other keeps its devices, series, readings,
//! events and commands, and is listed as not registered. With registration not required,
//! ingest accepts it again like any unknown gateway, so removing only matters with
//! `require_registration = true`.

pub mod cli;
mod device;

pub use device::Device;

use fieldlink_protocol::Ident;

use crate::store::{Store, StoreError, Unregistered};

/// Why a registration request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("gateway id {id:?}: {reason}")]
    BadId { id: String, reason: String },
    #[error("name must be 1 to {MAX_NAME_CHARS} characters after trimming")]
    BadName,
    #[error("name must not contain control characters")]
    ControlInName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A gateway id, checked with the protocol's rules.
pub fn gateway_id(s: &str) -> Result<Ident, RegistryError> {
    Ident::new(s).map_err(|e| RegistryError::BadId {
        id: s.to_string(),
        reason: e.to_string(),
    })
}

/// A name, trimmed; `None` stays `None`.
pub fn gateway_name(name: Option<&str>) -> Result<Option<String>, RegistryError> {
    match name.map(str::trim) {
        None => Ok(None),
        Some(n) if n.is_empty() || n.chars().count() > MAX_NAME_CHARS => {
            Err(RegistryError::BadName)
        }
        Some(n) if n.chars().any(char::is_control) => Err(RegistryError::ControlInName),
        Some(n) => Ok(Some(n.to_string())),
    }
}

/// Registers `id`, setting its name when given; returns whether it was not registered before.
pub async fn register(store: &Store, id: &str, name: Option<&str>) -> Result<bool, RegistryError> {
    let gw = gateway_id(id)?;
    let name = gateway_name(name)?;
    Ok(store.register(&gw, name.as_deref()).await?)
}

/// Withdraws the registration of `id` (see the module docs for what is kept).
pub async fn remove(store: &Store, id: &str) -> Result<Unregistered, RegistryError> {
    let gw = gateway_id(id)?;
    Ok(store.unregister(&gw).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_are_checked() {
        assert_eq!(gateway_name(None).unwrap(), None);
        assert_eq!(
            gateway_name(Some("  North station ")).unwrap().as_deref(),
            Some("North station")
        );
        assert!(matches!(
            gateway_name(Some("  ")),
            Err(RegistryError::BadName)
        ));
        assert!(gateway_name(Some(&"é".repeat(MAX_NAME_CHARS))).is_ok());
        assert!(gateway_name(Some(&"é".repeat(MAX_NAME_CHARS + 1))).is_err());
        assert!(matches!(
            gateway_name(Some("a\u{1b}[2Jb")),
            Err(RegistryError::ControlInName)
        ));
        assert!(gateway_id("ps-north").is_ok());
        let e = gateway_id("bad id").unwrap_err().to_string();
        assert!(e.contains("\"bad id\""), "{e}");
    }
}
