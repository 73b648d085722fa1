//! Which publish carried what: the correlation between our publishes and rumqttc's packet ids.
//!
//! rumqttc's `publish` returns no packet id. Our publishes all go through its request channel,
//! which its event loop takes strictly in order, and it reports `Outgoing::Publish(pkid)` for
//! each QoS 1 publish as it writes it, so the n-th such event belongs to the n-th publish we
//! queued. The window keeps the tags of queued publishes in order, binds the front one to the
//! packet id of each `Outgoing::Publish`, and hands the tag back on the PUBACK with that id.
//!
//! This holds only within one connection, and only if nothing but our own publishes produce
//! those events. The uplink therefore makes rumqttc forget everything at a disconnect (its
//! pending resend queue, which the channel's leftovers join at a connection error, and its queued
//! events), drops its own overflow of publishes not yet in the channel, and calls
//! [`Window::clear`]; what was in flight is requeued by the journal and published again, with new
//! packet ids, after the next CONNACK.

use std::collections::{HashMap, VecDeque};

use fieldlink_buffer::BatchId;

/// What a publish carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A journal batch: acknowledge it in the journal on PUBACK.
    Batch(BatchId),
    /// A status message (birth or offline): nothing to delete.
    Status,
}

/// The publishes of one connection that await their PUBACK.
#[derive(Debug, Default)]
pub struct Window {
    queued: VecDeque<Tag>,
    sent: HashMap<u16, Tag>,
}

/// A correlation rule was broken; the connection's bookkeeping cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("rumqttc reported publish {0} that was not queued")]
    Unexpected(u16),
    #[error("packet id {0} is already in flight")]
    Reused(u16),
}

impl Window {
    /// A publish was queued with rumqttc.
    pub fn queued(&mut self, tag: Tag) {
        self.queued.push_back(tag);
    }

    /// rumqttc wrote the next publish with packet id `pkid`.
    pub fn written(&mut self, pkid: u16) -> Result<(), WindowError> {
        let tag = self
            .queued
            .pop_front()
            .ok_or(WindowError::Unexpected(pkid))?;
        if self.sent.insert(pkid, tag).is_some() {
            return Err(WindowError::Reused(pkid));
        }
        Ok(())
    }

    /// The broker acknowledged `pkid`: what it carried, if it was ours.
    pub fn acked(&mut self, pkid: u16) -> Option<Tag> {
        self.sent.remove(&pkid)
    }

    /// Journal batches queued or awaiting their PUBACK.
    pub fn batches(&self) -> usize {
        self.queued
            .iter()
            .chain(self.sent.values())
            .filter(|t| matches!(t, Tag::Batch(_)))
            .count()
    }

    /// Publishes of any kind queued or awaiting their PUBACK.
    pub fn len(&self) -> usize {
        self.queued.len() + self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The connection is gone: forget everything.
    pub fn clear(&mut self) {
        self.queued.clear();
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_bind_in_order_and_come_back_on_their_puback() {
        let mut w = Window::default();
        w.queued(Tag::Status);
        w.queued(Tag::Status);
        w.queued(Tag::Status);
        w.written(7).unwrap();
        w.written(8).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(w.acked(8), Some(Tag::Status));
        assert_eq!(w.acked(8), None, "a PUBACK counts once");
        assert_eq!(w.acked(99), None, "not ours");
        w.written(9).unwrap();
        assert_eq!(w.written(10), Err(WindowError::Unexpected(10)));
        w.clear();
        assert!(w.is_empty());
    }

    #[test]
    fn a_reused_packet_id_is_an_error() {
        let mut w = Window::default();
        w.queued(Tag::Status);
        w.queued(Tag::Status);
        w.written(1).unwrap();
        assert_eq!(w.written(1), Err(WindowError::Reused(1)));
    }
}
