//! Aliased telemetry and the births it is read with.
//!
//! An aliased batch (binary version 2) names series by their place in a birth, identified by
//! the birth's config hash and table check. The classifier reads it with the table of that
//! birth, found here: in the births this instance classified, else in `gateway_births`, where
//! every instance sharing the database stores the births it received.
//!
//! Status and telemetry travel on different topics (and, with a shared subscription, to
//! different instances), so a batch can arrive before its birth. Such a batch is parked,
//! unacknowledged: it is retried when a birth is classified and on a timer against the store,
//! and after `wait` it becomes a dead letter `unknown_birth` that keeps the payload. Parked
//! messages are bounded; at the bound the classifier stops reading from the broker until the
//! oldest resolves or expires. A parked message is never acknowledged before its rows (or its
//! dead letter) are committed, like any other: a crash meanwhile makes the broker redeliver it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use fieldlink_protocol::{binary, BirthRef, Ident, SeriesAliases, TopicKind, TopicPrefix};
use rumqttc::Publish;
use tokio::time::Instant;

use super::classify::BirthRecord;
use crate::store::{Store, StoreError};

/// Births remembered in memory; beyond this the memory is cleared and refilled from the store.
const MAX_KNOWN: usize = 4_096;

/// Which birth a message needs: the topic's gateway and the birth its aliased payload names.
pub(super) type BirthKey = (Ident, BirthRef);

/// A message waiting for its birth.
pub(super) struct Parked {
    pub publish: Publish,
    pub received: std::time::Instant,
    pub received_ms: i64,
    pub key: BirthKey,
    pub deadline: Instant,
}

/// The birth an incoming message needs before it can be read, if it is aliased telemetry.
pub(super) fn needs_birth(prefix: &TopicPrefix, topic: &str, payload: &[u8]) -> Option<BirthKey> {
    let t = prefix.parse(topic).ok()?;
    if t.kind != TopicKind::Telemetry {
        return None;
    }
    match binary::birth_ref(payload) {
        Ok(Some(r)) => Some((t.gateway, r)),
        _ => None,
    }
}

pub(super) struct Births {
    known: HashMap<BirthKey, Arc<SeriesAliases>>,
    parked: VecDeque<Parked>,
    wait: Duration,
    max_parked: usize,
}

impl Births {
    pub fn new(wait: Duration, max_parked: usize) -> Births {
        Births {
            known: HashMap::new(),
            parked: VecDeque::new(),
            wait,
            max_parked: max_parked.max(1),
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

    pub fn park(
        &mut self,
        publish: Publish,
        received: std::time::Instant,
        received_ms: i64,
        key: BirthKey,
    ) {
        tracing::debug!(gateway = ?key.0.as_str(), config_hash = ?key.1.config_hash,
            "aliased telemetry waits for its birth");
        self.parked.push_back(Parked {
            publish,
            received,
            received_ms,
            key,
            deadline: Instant::now() + self.wait,
        });
    }

    pub fn is_full(&self) -> bool {
        self.parked.len() >= self.max_parked
    }

    pub fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Looks up in the store the births parked messages wait for and that are not in memory.
    pub async fn refresh(&mut self, store: &Store) {
        let missing: HashSet<BirthKey> = self
            .parked
            .iter()
            .filter(|p| !self.known.contains_key(&p.key))
            .map(|p| p.key.clone())
            .collect();
        for key in missing {
            if let Err(e) = self.find(store, &key).await {
                tracing::warn!(error = %e, "could not look up a birth; retrying");
            }
        }
    }

    /// Parked messages whose birth is now known (with its table), and those whose wait is
    /// over, each in arrival order.
    pub fn take_ready(&mut self, now: Instant) -> Vec<(Parked, Option<Arc<SeriesAliases>>)> {
        let mut ready = Vec::new();
        let mut keep = VecDeque::with_capacity(self.parked.len());
        for p in self.parked.drain(..) {
            match self.known.get(&p.key) {
                Some(a) => {
                    let a = a.clone();
                    ready.push((p, Some(a)));
                }
                None if p.deadline <= now => ready.push((p, None)),
                None => keep.push_back(p),
            }
        }
        self.parked = keep;
        ready
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

    fn publish() -> Publish {
        Publish::new(
            "fieldlink/v1/gw/telemetry",
            rumqttc::QoS::AtLeastOnce,
            vec![0xFB],
        )
    }

    #[test]
    fn parked_messages_resolve_in_order_or_expire() {
        let gw = Ident::new("gw").unwrap();
        let mut b = Births::new(Duration::from_secs(5), 2);
        let (a1, a2) = (aliases("h1"), aliases("h2"));
        let t0 = Instant::now();
        b.park(
            publish(),
            std::time::Instant::now(),
            1,
            (gw.clone(), a1.birth_ref()),
        );
        b.park(
            publish(),
            std::time::Instant::now(),
            2,
            (gw.clone(), a2.birth_ref()),
        );
        assert!(b.is_full());
        assert!(b.take_ready(t0).is_empty());
        b.learn(&gw, a2.clone());
        let ready = b.take_ready(t0);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].0.received_ms, 2);
        assert_eq!(ready[0].1.as_deref(), Some(&*a2));
        assert!(!b.is_full());
        assert!(b.take_ready(t0 + Duration::from_secs(4)).is_empty());
        let ready = b.take_ready(t0 + Duration::from_secs(6));
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].0.received_ms, 1);
        assert!(ready[0].1.is_none(), "expired without its birth");
        assert!(!b.has_parked());
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
        let aliased = binary::encode_aliased(&batch, &a).unwrap();
        let named = binary::encode(&batch).unwrap();
        assert_eq!(
            needs_birth(&prefix, "fieldlink/v1/gw/telemetry", &aliased),
            Some((Ident::new("gw").unwrap(), a.birth_ref()))
        );
        assert_eq!(
            needs_birth(&prefix, "fieldlink/v1/gw/telemetry", &named),
            None
        );
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
