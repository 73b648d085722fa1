//! Messages larger than the connection takes: never a reconnect loop.
//!
//! rumqttc checks an incoming packet's length against `mqtt.max_packet_bytes` before reading it
//! and drops the connection when it is over. The session is persistent, so the broker sends the
//! same message first after every reconnect, and without help the connection would fail the
//! same way forever, for every gateway. A broker set up as `docs/DEPLOY.md` says refuses such a
//! packet from the gateway already (`max_packet_size` below the cloud's limit); this is for the
//! broker that does not.
//!
//! On that error [`PacketLimit`] raises the limit of the next connection to the packet's length
//! (at most the cap, by default the MQTT maximum, so every message can be taken), the event
//! loop reconnects at once and receives the message, keeps a bounded prefix of it, and hands it
//! to the writer as a `too_large` dead letter, acknowledged after its commit like any other.
//! The raised limit is only ever the limit of that one connection: as soon as it is established
//! the options go back to `mqtt.max_packet_bytes` for every later connection. The raised
//! connection itself lives on until it ends for its own reasons: ending it on purpose raced its
//! own acknowledgements (a close could lose the PUBACK and bring the message back, or stall the
//! next one), and while it lives it takes packets up to its raised limit, each cut to a prefix
//! here like any other oversized payload.
//!
//! Every payload over the protocol's limit (raised or not) is cut to its prefix at the event
//! loop, before any queue, so no queue holds more than the protocol's payload limit per message.

use std::time::Instant;

use bytes::Bytes;
use fieldlink_protocol::limits::MAX_PAYLOAD_BYTES;
use rumqttc::Publish;

use super::classify::dead_letter;
#[cfg(test)]
use super::classify::Content;
use super::writer::{Item, Origin};

/// The largest packet MQTT can frame (its remaining length field's maximum), the default cap.
pub const MQTT_MAX_PACKET_BYTES: usize = 268_435_455;

/// What to do about a packet over the connection's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversized {
    /// Reconnect at once with this incoming limit, for this one connection.
    Raise(usize),
    /// Over the cap too: the session cannot move past it. Back off; an operator must act.
    OverCap,
}

/// The incoming packet limit of the connection to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketLimit {
    /// `mqtt.max_packet_bytes`.
    normal: usize,
    /// The most a connection may be raised to.
    cap: usize,
    /// The limit of the connection being made or running, when raised.
    raised: Option<usize>,
}

impl PacketLimit {
    pub fn new(normal: usize, cap: usize) -> PacketLimit {
        PacketLimit {
            normal,
            cap: cap.max(normal),
            raised: None,
        }
    }

    pub fn normal(&self) -> usize {
        self.normal
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The connection failed on a packet of `remaining_len` bytes (MQTT's remaining length).
    pub fn too_large(&mut self, remaining_len: usize) -> Oversized {
        if remaining_len > self.cap {
            self.raised = None;
            return Oversized::OverCap;
        }
        self.raised = Some(remaining_len);
        Oversized::Raise(remaining_len)
    }

    /// Whether the connection now running was raised.
    pub fn is_raised(&self) -> bool {
        self.raised.is_some()
    }

    /// The raised connection ended (or is being ended): back to the normal limit.
    pub fn lowered(&mut self) {
        self.raised = None;
    }
}

/// How many bytes of an oversized payload travel on to the dead letter (the store keeps at most
/// `ingest.dead_letter_payload_bytes` of them).
pub const KEPT_PREFIX_BYTES: usize = 64 * 1024;

/// A publish whose payload is over the protocol's limit, as a dead letter: the payload cut to
/// its first [`KEPT_PREFIX_BYTES`], the full size and hash in the dead letter. `None` for a
/// payload within the limit.
pub fn dead_letter_item(publish: Publish, received: Instant, received_ms: i64) -> Option<Item> {
    let size = publish.payload.len();
    if size <= MAX_PAYLOAD_BYTES {
        return None;
    }
    let detail = format!(
        "the payload is {size} bytes, over the protocol's limit of {MAX_PAYLOAD_BYTES} bytes"
    );
    let content = dead_letter(
        &publish.topic,
        &publish.payload,
        received_ms,
        "too_large",
        detail,
    );
    let keep = size.min(KEPT_PREFIX_BYTES);
    let publish = Publish {
        payload: Bytes::copy_from_slice(&publish.payload[..keep]),
        ..publish
    };
    Some(Item {
        origin: Origin::Broker(publish),
        received,
        received_ms,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_over_the_limit_raises_one_connection_up_to_the_cap() {
        let mut l = PacketLimit::new(1 << 20, 4 << 20);
        assert!(!l.is_raised());
        assert_eq!(l.too_large(1_572_870), Oversized::Raise(1_572_870));
        assert!(l.is_raised());
        l.lowered();
        assert!(!l.is_raised());
        assert_eq!(l.too_large(4 << 20), Oversized::Raise(4 << 20));
        assert_eq!(l.too_large((4 << 20) + 1), Oversized::OverCap);
        assert!(!l.is_raised());
        // A cap below the normal limit is the normal limit.
        assert_eq!(PacketLimit::new(1 << 20, 10).cap(), 1 << 20);
    }

    #[test]
    fn an_oversized_payload_becomes_a_prefix_and_a_dead_letter_with_its_size() {
        let payload = vec![b'x'; MAX_PAYLOAD_BYTES + 1];
        let mut p = Publish::new(
            "fieldlink/v1/gw-1/telemetry",
            rumqttc::QoS::AtLeastOnce,
            payload,
        );
        p.pkid = 7;
        let item = dead_letter_item(p, Instant::now(), 42).expect("oversized");
        let Origin::Broker(publish) = &item.origin else {
            panic!("from the broker")
        };
        assert_eq!(publish.pkid, 7);
        assert_eq!(publish.payload.len(), KEPT_PREFIX_BYTES);
        let Content::Dead(d) = &item.content else {
            panic!("{:?}", item.content)
        };
        assert_eq!(d.reason, "too_large");
        assert_eq!(d.size, (MAX_PAYLOAD_BYTES + 1) as u64);
        assert!(d.payload.len() <= KEPT_PREFIX_BYTES);
        let small = Publish::new("t", rumqttc::QoS::AtLeastOnce, vec![0u8; 10]);
        assert!(dead_letter_item(small, Instant::now(), 42).is_none());
    }
}
