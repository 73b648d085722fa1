//! What the test's handle and the proxy's tasks share: the control the handle changes, the
//! meters the tasks count into, and the per-direction pacer that enforces bandwidth.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::shape::{Impairment, Outage, Shape};

/// A direction through the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Client → upstream.
    Uplink,
    /// Upstream → client.
    Downlink,
}

impl Direction {
    pub(crate) fn index(self) -> u64 {
        match self {
            Direction::Uplink => 0,
            Direction::Downlink => 1,
        }
    }
}

/// The link's settings as the handle last set them; every task watches it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Control {
    pub(crate) shape: Shape,
    /// Set by [`crate::Link::freeze`].
    pub(crate) frozen: bool,
    /// Set by [`crate::Link::refuse`].
    pub(crate) refusing: bool,
    /// The outage a flapping schedule has in effect now.
    pub(crate) outage: Option<Outage>,
    /// Which schedule may change `outage`; a new schedule (or none) retires the old one.
    pub(crate) flap_generation: u64,
    /// Raised by each reset: connections born under a lower number are reset.
    pub(crate) resets: u64,
    /// Raised by each half-open: connections born under a lower number become black holes.
    pub(crate) black_holes: u64,
    pub(crate) shutdown: bool,
}

impl Control {
    pub(crate) fn new(shape: Shape) -> Control {
        Control {
            shape,
            frozen: false,
            refusing: false,
            outage: None,
            flap_generation: 0,
            resets: 0,
            black_holes: 0,
            shutdown: false,
        }
    }

    /// Whether bytes (and connection attempts) move at all.
    pub(crate) fn passing(&self) -> bool {
        !self.frozen && self.outage != Some(Outage::Freeze)
    }

    /// Whether a new connection is closed as soon as it is accepted.
    pub(crate) fn refusing_new(&self) -> bool {
        self.refusing || self.outage == Some(Outage::Reset)
    }

    pub(crate) fn impairment(&self, direction: Direction) -> &Impairment {
        match direction {
            Direction::Uplink => &self.shape.uplink,
            Direction::Downlink => &self.shape.downlink,
        }
    }
}

/// Spaces one direction's chunks so that, across every connection, they leave no faster than
/// the bandwidth: each chunk reserves the link for `len / rate` seconds.
#[derive(Debug)]
pub(crate) struct Pacer {
    free_at: Mutex<Option<Instant>>,
}

impl Pacer {
    fn new() -> Pacer {
        Pacer {
            free_at: Mutex::new(None),
        }
    }

    /// When a chunk of `len` bytes, ready `now`, may leave at `bytes_per_second`.
    pub(crate) fn reserve(&self, now: Instant, len: usize, bytes_per_second: u64) -> Instant {
        let busy = Duration::from_secs_f64(len as f64 / bytes_per_second.max(1) as f64);
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = free_at.map_or(now, |t| t.max(now));
        *free_at = Some(start + busy);
        start
    }
}

/// One direction's meters.
#[derive(Debug, Default)]
pub(crate) struct DirectionMeters {
    pub(crate) bytes: AtomicU64,
    pub(crate) chunks: AtomicU64,
    pub(crate) chunks_delayed: AtomicU64,
    pub(crate) retransmissions: AtomicU64,
    pub(crate) bytes_dropped: AtomicU64,
}

impl DirectionMeters {
    fn snapshot(&self) -> DirectionCounters {
        DirectionCounters {
            bytes: self.bytes.load(Ordering::Relaxed),
            chunks: self.chunks.load(Ordering::Relaxed),
            chunks_delayed: self.chunks_delayed.load(Ordering::Relaxed),
            retransmissions: self.retransmissions.load(Ordering::Relaxed),
            bytes_dropped: self.bytes_dropped.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Meters {
    pub(crate) uplink: DirectionMeters,
    pub(crate) downlink: DirectionMeters,
    pub(crate) accepted: AtomicU64,
    pub(crate) open: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) reset: AtomicU64,
    pub(crate) upstream_failed: AtomicU64,
    pub(crate) outages: AtomicU64,
}

impl Meters {
    pub(crate) fn direction(&self, direction: Direction) -> &DirectionMeters {
        match direction {
            Direction::Uplink => &self.uplink,
            Direction::Downlink => &self.downlink,
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        Counters {
            uplink: self.uplink.snapshot(),
            downlink: self.downlink.snapshot(),
            accepted: self.accepted.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            reset: self.reset.load(Ordering::Relaxed),
            upstream_failed: self.upstream_failed.load(Ordering::Relaxed),
            outages: self.outages.load(Ordering::Relaxed),
        }
    }
}

/// Everything the handle and the proxy's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) upstream: SocketAddr,
    pub(crate) seed: u64,
    /// Bytes one direction of one connection holds before it stops reading (the window).
    pub(crate) queue_bytes: u32,
    pub(crate) control: watch::Sender<Control>,
    pub(crate) meters: Meters,
    pacers: [Pacer; 2],
}

impl Shared {
    pub(crate) fn new(upstream: SocketAddr, seed: u64, queue_bytes: u32, shape: Shape) -> Shared {
        Shared {
            upstream,
            seed,
            queue_bytes,
            control: watch::Sender::new(Control::new(shape)),
            meters: Meters::default(),
            pacers: [Pacer::new(), Pacer::new()],
        }
    }

    pub(crate) fn pacer(&self, direction: Direction) -> &Pacer {
        match direction {
            Direction::Uplink => &self.pacers[0],
            Direction::Downlink => &self.pacers[1],
        }
    }
}

/// A snapshot of the link's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Client → upstream.
    pub uplink: DirectionCounters,
    /// Upstream → client.
    pub downlink: DirectionCounters,
    /// Connections accepted from clients, refused ones included.
    pub accepted: u64,
    /// Connections the proxy holds now (black holes included: they stay open).
    pub open: u64,
    /// Connections closed with a reset as soon as they were accepted (refusing, or in an
    /// outage of [`Outage::Reset`]).
    pub refused: u64,
    /// Connections closed with a reset by [`crate::Link::reset_all`] or a reset outage.
    pub reset: u64,
    /// Connections reset because the upstream could not be reached.
    pub upstream_failed: u64,
    /// Outages a flapping schedule has started.
    pub outages: u64,
}

/// One direction's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    /// Bytes delivered to the far side: the bytes on the wire. Counted as they are handed to
    /// the far socket, so a byte a peer has read is always counted.
    pub bytes: u64,
    /// Chunks delivered (one read from the sender, at most [`crate::link::SEGMENT_BYTES`]).
    pub chunks: u64,
    /// Delivered chunks the emulator held back for any reason (latency, jitter, bandwidth,
    /// loss, a freeze).
    pub chunks_delayed: u64,
    /// Emulated losses: each one cost a delivered chunk a retransmission timeout.
    pub retransmissions: u64,
    /// Bytes swallowed by a half-open connection, never delivered.
    pub bytes_dropped: u64,
}
