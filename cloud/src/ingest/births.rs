//! Aliased telemetry and the births it is read with.
//!
//! An aliased batch (binary versions 2 and 3, JSON version 2) names series by their place in a
//! birth, identified by the birth's config hash and table check. The classifier reads it with the table of that
//! birth, found here: in the births this instance classified, else in `gateway_births`, where
//! every instance sharing the database stores the births it received.
//!
//! Status and telemetry travel on different topics (and, with a shared subscription, to
//! different instances), so a batch can arrive before its birth. Such a batch is parked in the
//! store (`parked_telemetry`) and its message acknowledged once that commit is done, so it
//! never holds the broker's in-flight window: a gateway naming births nobody saw cannot stall
//! the others. The classifier resolves parked batches ([`super::parking`]) when their birth is
//! known, here or to another instance through `gateway_births`, and dead-letters them as
//! `unknown_birth` (payload kept) once `birth_wait` has passed since they arrived.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fieldlink_protocol::{
    telemetry_birth_ref, BirthRef, Ident, SeriesAliases, TopicKind, TopicPrefix,
};

use super::classify::BirthRecord;
use crate::store::{Store, StoreError};

/// Births remembered in memory; beyond this the memory is cleared and refilled from the store.
const MAX_KNOWN: usize = 4_096;

/// Which birth a message needs: the topic's gateway and the birth its aliased payload names.
pub(super) type BirthKey = (Ident, BirthRef);

/// The birth an incoming message needs before it can be read, if it is aliased telemetry.
pub(super) fn needs_birth(prefix: &TopicPrefix, topic: &str, payload: &[u8]) -> Option<BirthKey> {
    let t = prefix.parse(topic).ok()?;
    if t.kind != TopicKind::Telemetry {
        return None;
    }
    match telemetry_birth_ref(payload) {
        Ok(Some(r)) => Some((t.gateway, r)),
        _ => None,
    }
}

/// The births this instance knows, by (gateway, birth reference).
pub(super) struct Births {
    known: HashMap<BirthKey, Arc<SeriesAliases>>,
    wait: Duration,
}

impl Births {
    pub fn new(wait: Duration) -> Births {
        Births {
            known: HashMap::new(),
            wait,
        }
    }

    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Remembers a birth this instance classified.
    pub fn learn(&mut self, gateway: &Ident, aliases: Arc<SeriesAliases>) {
        if self.known.len() >= MAX_KNOWN {
            self.known.clear();
        }
        self.known
            .insert((gateway.clone(), aliases.birth_ref()), aliases);
    }

    /// The table for `key`, from memory or else from the store.
    pub async fn find(
        &mut self,
        store: &Store,
        key: &BirthKey,
    ) -> Result<Option<Arc<SeriesAliases>>, StoreError> {
        if let Some(a) = self.known.get(key) {
            return Ok(Some(a.clone()));
        }
        let Some(stored) = store.birth(&key.0, &key.1.config_hash).await? else {
            return Ok(None);
        };
        match BirthRecord::from_stored(stored) {
            Ok(r) if r.aliases.matches(&key.1) => {
                self.learn(&key.0, r.aliases.clone());
                Ok(Some(r.aliases))
            }
            // Another table under the same hash (another agent version): a newer birth may
            // still come; keep waiting.
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), gateway = ?key.0.as_str(),
                    config_hash = ?key.1.config_hash,
                    "a stored birth no longer decodes");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_protocol::{Birth, DataKind, DeviceInfo, PointInfo};

    fn aliases(hash: &str) -> Arc<SeriesAliases> {
        Arc::new(SeriesAliases::from_birth(&Birth {
            gateway: Ident::new("gw").unwrap(),
            boot_epoch: 1,
            ts_ms: 0,
            agent_version: "0.1.0".into(),
            config_hash: hash.into(),
            devices: vec![DeviceInfo {
                name: Ident::new("d").unwrap(),
                points: vec![PointInfo {
                    name: Ident::new("m").unwrap(),
                    unit: None,
                    kind: DataKind::Number,
                    writable: false,
                }],
            }],
        }))
    }

    #[test]
    fn a_learned_birth_is_known_by_its_reference_only() {
        let gw = Ident::new("gw").unwrap();
        let mut b = Births::new(Duration::from_secs(5));
        let (a1, a2) = (aliases("h1"), aliases("h2"));
        b.learn(&gw, a1.clone());
        assert_eq!(
            b.known.get(&(gw.clone(), a1.birth_ref())).map(|a| &**a),
            Some(&*a1)
        );
        assert!(!b.known.contains_key(&(gw.clone(), a2.birth_ref())));
        assert!(!b
            .known
            .contains_key(&(Ident::new("other").unwrap(), a1.birth_ref())));
    }

    #[test]
    fn only_aliased_telemetry_needs_a_birth() {
        let prefix = TopicPrefix::default();
        let a = aliases("h1");
        let mut batch = fieldlink_protocol::TelemetryBatch::new(Ident::new("gw").unwrap(), 1, 1);
        batch.points.push(fieldlink_protocol::Point::new(
            Ident::new("d").unwrap(),
            Ident::new("m").unwrap(),
            0,
            1.0,
        ));
        use fieldlink_protocol::{binary, json};
        let aliased = binary::encode_aliased(&batch, &a).unwrap();
        for payload in [
            aliased.clone(),
            binary::encode_packed(&batch, &a).unwrap(),
            json::encode_aliased(&batch, &a).unwrap(),
        ] {
            assert_eq!(
                needs_birth(&prefix, "fieldlink/v1/gw/telemetry", &payload),
                Some((Ident::new("gw").unwrap(), a.birth_ref()))
            );
        }
        for named in [
            binary::encode(&batch).unwrap(),
            json::encode(&batch).unwrap(),
        ] {
            assert_eq!(
                needs_birth(&prefix, "fieldlink/v1/gw/telemetry", &named),
                None
            );
        }
        assert_eq!(
            needs_birth(&prefix, "fieldlink/v1/gw/events", &aliased),
            None
        );
        assert_eq!(
            needs_birth(&prefix, "fieldlink/v1/gw/telemetry", b"\xfb\x02"),
            None
        );
    }
}
