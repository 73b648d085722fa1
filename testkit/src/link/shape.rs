//! What a link does to the bytes crossing it, and the seeded stamping that turns a shape into
//! the instant each chunk may leave the emulator.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

/// How both directions of the link are impaired. Each direction is shaped on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Shape {
    /// Client → upstream (a gateway's publishes towards its broker).
    pub uplink: Impairment,
    /// Upstream → client (acknowledgements and commands towards the gateway).
    pub downlink: Impairment,
}

impl Shape {
    /// A link that adds nothing: loopback speed, no loss.
    pub fn perfect() -> Shape {
        Shape::default()
    }

    /// The same impairment in both directions.
    pub fn symmetric(impairment: Impairment) -> Shape {
        Shape {
            uplink: impairment,
            downlink: impairment,
        }
    }
}

/// One direction's impairment. The default impairs nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Impairment {
    /// One-way delay added to every chunk; a round trip grows by the uplink's latency plus the
    /// downlink's (twice the latency for a symmetric shape).
    pub latency: Duration,
    /// Extra one-way delay drawn uniformly from `0..=jitter` for each chunk from the seeded
    /// generator. Order is kept: a chunk never overtakes the one before it (as TCP delivers).
    pub jitter: Duration,
    /// Bytes per second this direction carries, shared by every connection through the link;
    /// `None` is unlimited. 64 kbit/s is 8,000.
    pub bytes_per_second: Option<NonZeroU64>,
    /// Emulated packet loss, seen by the application as retransmission stalls.
    pub loss: Option<Loss>,
}

impl Impairment {
    /// Only a one-way delay.
    pub fn latency(latency: Duration) -> Impairment {
        Impairment {
            latency,
            ..Impairment::default()
        }
    }

    /// This impairment with random extra delay up to `jitter`.
    pub fn with_jitter(mut self, jitter: Duration) -> Impairment {
        self.jitter = jitter;
        self
    }

    /// This impairment limited to `bytes_per_second` (0 is treated as 1: a link carries
    /// something or is frozen, which [`crate::Link::freeze`] models).
    pub fn with_bytes_per_second(mut self, bytes_per_second: u64) -> Impairment {
        self.bytes_per_second = Some(NonZeroU64::new(bytes_per_second).unwrap_or(NonZeroU64::MIN));
        self
    }

    /// This impairment limited to `kbit` kilobits (1,000 bits) per second.
    pub fn with_kbit_per_second(self, kbit: u64) -> Impairment {
        self.with_bytes_per_second(kbit.saturating_mul(1000) / 8)
    }

    /// This impairment with emulated loss.
    pub fn with_loss(mut self, loss: Loss) -> Impairment {
        self.loss = Some(loss);
        self
    }
}

/// Packet loss as an application above TCP sees it.
///
/// TCP never loses bytes: a lost segment is sent again after the retransmission timeout, and
/// everything behind it waits (head-of-line blocking). So each chunk is "lost" with
/// `probability` (a draw from the seeded generator); a lost chunk leaves `retransmit_after`
/// later, and its retransmission can be lost again with the same probability, each time
/// doubling the wait as TCP's backoff does (at most [`Loss::MAX_RETRANSMISSIONS`] times).
/// Chunks behind it keep their order, so they wait too.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    /// Chance that a chunk (or its retransmission) is lost, `0.0..=1.0`.
    pub probability: f64,
    /// The first retransmission timeout (Linux's minimum is 200 ms; on a 1 s round trip it is
    /// well over a second).
    pub retransmit_after: Duration,
}

impl Loss {
    /// A chunk is retransmitted at most this often; its last copy always arrives.
    pub const MAX_RETRANSMISSIONS: u32 = 6;
}

/// When the link is down in a [`Flapping`] schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// The link stalls as [`crate::Link::freeze`] does: nothing moves, sockets stay open, and
    /// everything held is delivered when it comes back (coverage lost for a while).
    Freeze,
    /// Every connection is reset as the outage starts and new ones are refused until it ends
    /// (a modem that re-attaches with a new address).
    Reset,
}

/// A link that goes up and down on a schedule: up for `up`, then down for `down`, repeating,
/// starting with `up` from the moment it is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flapping {
    /// How long each up phase lasts.
    pub up: Duration,
    /// How long each outage lasts.
    pub down: Duration,
    /// What an outage does.
    pub outage: Outage,
}

/// The seeded generator every random choice comes from: SplitMix64, small and well mixed, so a
/// test given the same seed sees the same pattern on every run.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The generator for one direction of one connection (`stream` numbers them in accept
    /// order), independent of the others.
    pub(crate) fn for_stream(seed: u64, stream: u64) -> Rng {
        let mut mixer = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        Rng(mixer.next_u64())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0.0..1.0`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..=max`.
    fn duration_up_to(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % nanos.saturating_add(1))
    }
}

/// When a chunk may leave, decided as it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) release_at: Instant,
    /// How many times the chunk was "lost" before its copy got through.
    pub(crate) retransmissions: u32,
    /// Whether the chunk leaves later than it arrived.
    pub(crate) delayed: bool,
}

/// Stamps one direction's chunks in arrival order: latency, jitter and loss, never earlier than
/// the chunk before (bandwidth is applied when the chunk leaves, shared by all connections).
#[derive(Debug)]
pub(crate) struct Stamper {
    rng: Rng,
    last_release: Option<Instant>,
}

impl Stamper {
    pub(crate) fn new(rng: Rng) -> Stamper {
        Stamper {
            rng,
            last_release: None,
        }
    }

    pub(crate) fn stamp(&mut self, arrived: Instant, impairment: &Impairment) -> Stamp {
        let mut delay = impairment.latency + self.rng.duration_up_to(impairment.jitter);
        let mut retransmissions = 0;
        if let Some(loss) = impairment.loss {
            let mut timeout = loss.retransmit_after;
            while retransmissions < Loss::MAX_RETRANSMISSIONS
                && self.rng.next_f64() < loss.probability
            {
                delay += timeout;
                timeout = timeout.saturating_mul(2);
                retransmissions += 1;
            }
        }
        let mut release_at = arrived + delay;
        if let Some(last) = self.last_release {
            release_at = release_at.max(last);
        }
        self.last_release = Some(release_at);
        Stamp {
            release_at,
            retransmissions,
            delayed: release_at > arrived,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(probability: f64) -> Impairment {
        Impairment::latency(Duration::from_millis(10))
            .with_jitter(Duration::from_millis(50))
            .with_loss(Loss {
                probability,
                retransmit_after: Duration::from_millis(200),
            })
    }

    #[test]
    fn the_same_seed_stamps_the_same_pattern_and_another_seed_does_not() {
        let start = Instant::now();
        let run = |seed| {
            let mut stamper = Stamper::new(Rng::for_stream(seed, 0));
            (0..200)
                .map(|i| stamper.stamp(start + Duration::from_millis(i), &lossy(0.2)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn stamps_never_go_backwards_and_respect_latency() {
        let start = Instant::now();
        let mut stamper = Stamper::new(Rng::for_stream(1, 3));
        let mut last = start;
        for i in 0..1000 {
            let arrived = start + Duration::from_micros(i * 300);
            let stamp = stamper.stamp(arrived, &lossy(0.1));
            assert!(
                stamp.release_at >= last,
                "chunk {i} overtook the one before"
            );
            assert!(stamp.release_at >= arrived + Duration::from_millis(10));
            last = stamp.release_at;
        }
    }

    #[test]
    fn loss_backs_off_like_tcp_and_its_rate_follows_the_probability() {
        let start = Instant::now();
        let mut stamper = Stamper::new(Rng::for_stream(42, 0));
        let certain = Impairment::default().with_loss(Loss {
            probability: 1.0,
            retransmit_after: Duration::from_millis(100),
        });
        let stamp = stamper.stamp(start, &certain);
        assert_eq!(stamp.retransmissions, Loss::MAX_RETRANSMISSIONS);
        // 100 + 200 + 400 + 800 + 1600 + 3200 ms.
        assert_eq!(stamp.release_at - start, Duration::from_millis(6300));

        let mut stamper = Stamper::new(Rng::for_stream(42, 1));
        let tenth = Impairment::default().with_loss(Loss {
            probability: 0.1,
            retransmit_after: Duration::ZERO,
        });
        let lost = (0..10_000)
            .filter(|_| stamper.stamp(start, &tenth).retransmissions > 0)
            .count();
        assert!((800..1200).contains(&lost), "{lost} of 10,000 lost at 10 %");
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let start = Instant::now();
        let impairment = Impairment::default().with_jitter(Duration::from_millis(20));
        let mut seen_extra = Duration::ZERO;
        for stream in 0..100 {
            let mut stamper = Stamper::new(Rng::for_stream(5, stream));
            let extra = stamper.stamp(start, &impairment).release_at - start;
            assert!(extra <= Duration::from_millis(20));
            seen_extra = seen_extra.max(extra);
        }
        assert!(
            seen_extra > Duration::from_millis(10),
            "jitter never drew a delay"
        );
    }

    #[test]
    fn kbit_converts_to_bytes() {
        let i = Impairment::default().with_kbit_per_second(64);
        assert_eq!(i.bytes_per_second.map(NonZeroU64::get), Some(8000));
    }
}
