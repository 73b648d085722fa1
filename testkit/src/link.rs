//! A bad field link between a gateway and its broker: a TCP proxy on `127.0.0.1` in front of an
//! upstream address, shaping each direction on its own, changeable while the test runs.
//!
//! # What it models
//!
//! Everything is modelled as an application above TCP sees it, because TCP is what the
//! gateway's MQTT client runs on: bytes are never lost, duplicated or reordered, only late.
//!
//! - **Latency** ([`Impairment::latency`]): a one-way delay added to every chunk.
//! - **Jitter** ([`Impairment::jitter`]): a random extra delay per chunk, never letting a chunk
//!   overtake the one before it.
//! - **Bandwidth** ([`Impairment::bytes_per_second`]): chunks leave no faster than the rate,
//!   shared by every connection in that direction.
//! - **Loss** ([`Loss`]): a "lost" chunk arrives one retransmission timeout late (doubling for
//!   each repeated loss), and everything behind it waits: TCP's head-of-line blocking.
//! - **A frozen link** ([`Link::freeze`], [`Link::thaw`]): nothing moves either way, sockets stay
//!   open, and everything held is delivered on thaw (a cellular link that stalls). New
//!   connections are accepted but reach upstream only on thaw, with whatever the client sent
//!   (and its close, if it gave up meanwhile): stale attempts pile up behind a freeze.
//! - **Half-open** ([`Link::half_open`]): the connections open now become black holes: nothing
//!   is delivered either way, not even a close or a reset, so only keep-alives notice. A sender
//!   blocks after a window's worth of bytes, as over a dead path. New connections work (the NAT
//!   mapping was lost, not the network).
//! - **Reset** ([`Link::reset_all`]): every open connection is closed with a TCP reset on both
//!   sides; new ones are accepted as usual.
//! - **Refuse** ([`Link::refuse`]): new connections are accepted and at once reset, so the
//!   client sees its first read or write fail with "connection reset".
//! - **Flapping** ([`Link::flap`]): up for a while, down for a while, repeating, where down is a
//!   freeze or a reset with refusal ([`Outage`]).
//!
//! Every random choice (jitter, loss) comes from a generator seeded by the caller
//! ([`LinkBuilder::seed`], [`DEFAULT_SEED`] otherwise), one stream per direction of each
//! connection in accept order. The pattern is a function of the seed and of the sequence of
//! chunks, where a chunk is one read from the sender (at most [`SEGMENT_BYTES`]): a test whose
//! peer writes and waits for an answer sees one chunk per write and the same pattern every run.
//!
//! # What it does not model
//!
//! Packets: chunks are reads, not segments; there is no congestion window, no slow start and no real retransmission, so
//! loss never shrinks throughput beyond the stalls themselves, and the kernel's own send and
//! receive buffers sit on both sides of the emulator's window: on loopback a sender's socket
//! takes megabytes (3.6 MB in the 64 kbit/s test) before its writes block, where a real
//! path would push back after its window; judge backpressure by what was delivered. A half-open
//! connection or a freeze is not seen by the client's TCP keep-alive probes' timing the way a
//! real path would (loopback answers them); MQTT's keep-alive, being data, is. Connection set-up
//! is not delayed by the latency (the client's connect succeeds at once, on loopback; its first
//! bytes carry the delay). A refused connection is accepted first, so the client's `connect`
//! succeeds and the refusal shows on its first read or write. A new shape applies to chunks
//! that arrive after it is set. No IP-level faults: no MTU, no corruption, no reordering.

mod proxy;
mod shape;
mod state;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use shape::{Flapping, Impairment, Loss, Outage, Shape};
pub use state::{Counters, DirectionCounters};

use crate::Result;
use state::Shared;

/// The seed used when the test gives none.
pub const DEFAULT_SEED: u64 = 0x000F_1E1D_011E;

/// The most one read from a sender takes: one chunk (about one Ethernet-sized TCP segment).
pub const SEGMENT_BYTES: u32 = 1460;

/// The bytes one direction of one connection holds before it stops reading, by default: a TCP
/// window of a modest link.
pub const DEFAULT_QUEUE_BYTES: u32 = 64 * 1024;

/// How a test wants its link.
#[derive(Debug, Clone)]
pub struct LinkBuilder {
    upstream: SocketAddr,
    shape: Shape,
    seed: u64,
    queue_bytes: u32,
}

impl LinkBuilder {
    /// Starts with this shape instead of a perfect link.
    pub fn shape(mut self, shape: Shape) -> LinkBuilder {
        self.shape = shape;
        self
    }

    /// Every random choice comes from this seed (default [`DEFAULT_SEED`]).
    pub fn seed(mut self, seed: u64) -> LinkBuilder {
        self.seed = seed;
        self
    }

    /// Bytes each direction of each connection holds in flight before the sender is pushed
    /// back (default [`DEFAULT_QUEUE_BYTES`]; at least 1).
    pub fn queue_bytes(mut self, bytes: u32) -> LinkBuilder {
        self.queue_bytes = bytes.max(1);
        self
    }

    /// Binds a free port on 127.0.0.1 and starts forwarding to the upstream address on the
    /// link's own thread. The upstream need not be listening yet: each connection connects to
    /// it when it is accepted.
    pub fn start(self) -> Result<Link> {
        let listener = StdListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared::new(
            self.upstream,
            self.seed,
            self.queue_bytes,
            self.shape,
        ));
        let handle = runtime.handle().clone();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("link-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(proxy::serve(listener, serving));
                // Dropping the runtime drops every connection task, closing its sockets.
                drop(runtime);
            })?;
        Ok(Link {
            addr,
            shared,
            runtime: handle,
            thread: Some(thread),
        })
    }
}

/// A running link emulator; every connection is closed and its thread joined on drop.
///
/// All methods take `&self` and may be called from any thread, inside or outside a tokio
/// runtime.
#[derive(Debug)]
pub struct Link {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    /// A perfect link to `upstream` with the default seed; shape it with [`Link::set`].
    pub fn start(upstream: SocketAddr) -> Result<Link> {
        Link::builder(upstream).start()
    }

    /// A link to `upstream` to configure before it starts.
    pub fn builder(upstream: SocketAddr) -> LinkBuilder {
        LinkBuilder {
            upstream,
            shape: Shape::perfect(),
            seed: DEFAULT_SEED,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        }
    }

    /// Where clients connect: `127.0.0.1` and a free port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the link forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Changes the shape of both directions; chunks arriving from now on get it.
    pub fn set(&self, shape: Shape) {
        self.shared.control.send_modify(|c| c.shape = shape);
    }

    /// The shape in effect.
    pub fn shape(&self) -> Shape {
        self.shared.control.borrow().shape
    }

    /// Stops every byte in both directions, and every new connection's way upstream, keeping
    /// all sockets open; what arrives meanwhile is held (up to the window, then the senders
    /// block).
    pub fn freeze(&self) {
        self.shared.control.send_modify(|c| c.frozen = true);
    }

    /// Ends a [`Link::freeze`]: everything held is delivered, in order, at the link's bandwidth.
    pub fn thaw(&self) {
        self.shared.control.send_modify(|c| c.frozen = false);
    }

    /// Turns every connection open now into a black hole for the rest of its life: what either
    /// peer sends is swallowed, closes and resets included, so neither learns anything until
    /// [`Link::reset_all`] or drop. Returns how many connections were open.
    pub fn half_open(&self) -> u64 {
        let open = self.counters().open;
        self.shared.control.send_modify(|c| c.black_holes += 1);
        open
    }

    /// Closes every open connection with a reset on both sides; new connections are accepted
    /// as usual. Returns how many connections were open.
    pub fn reset_all(&self) -> u64 {
        let open = self.counters().open;
        self.shared.control.send_modify(|c| c.resets += 1);
        open
    }

    /// While `true`, new connections are reset as soon as they are accepted; open ones carry on.
    pub fn refuse(&self, refusing: bool) {
        self.shared.control.send_modify(|c| c.refusing = refusing);
    }

    /// Starts a flapping schedule now (up first), replacing any previous one.
    pub fn flap(&self, schedule: Flapping) {
        let mut generation = 0;
        self.shared.control.send_modify(|c| {
            c.flap_generation += 1;
            c.outage = None;
            generation = c.flap_generation;
        });
        self.runtime
            .spawn(proxy::flap(Arc::clone(&self.shared), schedule, generation));
    }

    /// Ends the flapping schedule, leaving the link up.
    pub fn stop_flapping(&self) {
        self.shared.control.send_modify(|c| {
            c.flap_generation += 1;
            c.outage = None;
        });
    }

    /// The outage a flapping schedule has in effect now, if any.
    pub fn outage(&self) -> Option<Outage> {
        self.shared.control.borrow().outage
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.meters.snapshot()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.control.send_modify(|c| c.shutdown = true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
