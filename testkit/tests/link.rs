//! The link emulator with real TCP peers on loopback: an echo server and a recording sink
//! behind it, std clients in front. Counts and order are asserted; times only as floors (the
//! emulator's delays cannot be beaten) or with at least 2× slack.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fieldlink_testkit::{Flapping, Impairment, Link, Loss, Outage, Shape};

/// What an upstream server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicU64,
    /// Connections whose client side ended (end of stream or an error).
    closed: AtomicU64,
    bytes: AtomicU64,
    /// Every read, with when it completed.
    reads: Mutex<Vec<(Instant, Vec<u8>)>>,
}

/// An upstream on a free port; each connection on its own thread. Stops accepting on drop.
struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Sends back everything it receives, then closes its side after the client's end.
    fn echo() -> Server {
        Server::start(true)
    }

    /// Records everything it receives and sends nothing.
    fn sink() -> Server {
        Server::start(false)
    }

    fn start(echo: bool) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_, stop_) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stop_.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => {
                        seen_.connections.fetch_add(1, Ordering::SeqCst);
                        let seen = Arc::clone(&seen_);
                        std::thread::spawn(move || serve(socket, &seen, echo));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }
}

fn serve(mut socket: TcpStream, seen: &Seen, echo: bool) {
    socket.set_nonblocking(false).unwrap();
    socket.set_nodelay(true).unwrap();
    let mut buf = [0u8; 8192];
    loop {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen.bytes.fetch_add(n as u64, Ordering::SeqCst);
                seen.reads
                    .lock()
                    .unwrap()
                    .push((Instant::now(), buf[..n].to_vec()));
                if echo && socket.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    seen.closed.fetch_add(1, Ordering::SeqCst);
    let _ = socket.shutdown(Shutdown::Write);
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn connect(link: &Link) -> TcpStream {
    let socket = TcpStream::connect(link.addr()).unwrap();
    socket.set_nodelay(true).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket
}

/// Sends `message`, waits for its echo, checks it, and returns the round-trip time.
fn ping(socket: &mut TcpStream, message: &[u8]) -> Duration {
    let sent = Instant::now();
    socket.write_all(message).unwrap();
    let mut back = vec![0u8; message.len()];
    socket.read_exact(&mut back).unwrap();
    assert_eq!(back, message);
    sent.elapsed()
}

/// Polls `condition` for up to 5 s.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a read on a socket the emulator should have reset returns.
fn read_error(socket: &mut TcpStream) -> ErrorKind {
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    match socket.read(&mut buf) {
        Ok(n) => panic!("read {n} bytes where a reset was expected"),
        Err(e) => e.kind(),
    }
}

/// Asserts nothing arrives on `socket` for `wait` and the connection stays open.
fn assert_silent(socket: &mut TcpStream, wait: Duration) {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 16];
    match socket.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
}

/// Deterministic bytes that make a shifted or reordered stream obvious.
fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

#[test]
fn round_trip_grows_by_twice_the_latency_and_a_new_shape_applies_at_once() {
    let echo = Server::echo();
    let latency = Duration::from_millis(100);
    let link = Link::builder(echo.addr)
        .shape(Shape::symmetric(Impairment::latency(latency)))
        .start()
        .unwrap();
    let mut client = connect(&link);

    let slow: Vec<Duration> = (0..8u8).map(|i| ping(&mut client, &[i; 16])).collect();
    for rtt in &slow {
        assert!(
            *rtt >= 2 * latency,
            "a round trip took {rtt:?}, under 2 × {latency:?}"
        );
    }
    let slow = median(slow);
    assert!(slow < 4 * latency, "median round trip {slow:?}");

    link.set(Shape::perfect());
    let fast = median((8..16u8).map(|i| ping(&mut client, &[i; 16])).collect());
    assert!(
        fast < latency,
        "median round trip {fast:?} after the latency was removed"
    );
    println!("round trip with 100 ms each way: {slow:?}; without: {fast:?}");

    let counters = link.counters();
    for direction in [counters.uplink, counters.downlink] {
        assert_eq!(direction.bytes, 16 * 16);
        assert_eq!(direction.chunks, 16, "one chunk per write");
        assert_eq!(
            direction.chunks_delayed, 8,
            "only the chunks sent under latency"
        );
    }
    assert_eq!((counters.accepted, counters.open), (1, 1));
    assert_eq!(echo.seen.connections.load(Ordering::SeqCst), 1);

    drop(client);
    eventually("the closed connection to leave the link", || {
        link.counters().open == 0
    });
    eventually("the close to reach upstream", || {
        echo.seen.closed.load(Ordering::SeqCst) == 1
    });
}

#[test]
fn sixty_four_kbit_moves_about_8000_bytes_per_second() {
    let sink = Server::sink();
    let link = Link::builder(sink.addr)
        .shape(Shape {
            uplink: Impairment::default().with_kbit_per_second(64),
            downlink: Impairment::default(),
        })
        .start()
        .unwrap();
    let client = connect(&link);
    let mut writer = client.try_clone().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let written_ = Arc::clone(&written);
    let flood = std::thread::spawn(move || {
        let block = pattern(1024);
        while writer.write_all(&block).is_ok() {
            written_.fetch_add(1024, Ordering::SeqCst);
        }
    });

    std::thread::sleep(Duration::from_millis(500));
    let (t0, b0) = (Instant::now(), link.counters().uplink.bytes);
    std::thread::sleep(Duration::from_millis(2500));
    let (t1, b1) = (Instant::now(), link.counters().uplink.bytes);
    let rate = (b1 - b0) as f64 / (t1 - t0).as_secs_f64();
    println!(
        "64 kbit/s: {rate:.0} B/s over {:?}; the sender had written {} bytes, the link \
         delivered {b1}",
        t1 - t0,
        written.load(Ordering::SeqCst)
    );
    assert!((4_000.0..=16_000.0).contains(&rate), "{rate:.0} B/s");

    // The wire's count is what upstream received, byte for byte.
    link.freeze();
    eventually("upstream to have every delivered byte", || {
        sink.seen.bytes.load(Ordering::SeqCst) == link.counters().uplink.bytes
    });
    let received: Vec<u8> = sink
        .seen
        .reads
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, bytes)| bytes.clone())
        .collect();
    let block = pattern(1024);
    assert!(received.chunks(1024).all(|c| c == &block[..c.len()]));
    assert!(
        written.load(Ordering::SeqCst) > b1,
        "the sender was never ahead of the link"
    );

    client.shutdown(Shutdown::Both).unwrap();
    flood.join().unwrap();
}

#[test]
fn order_and_content_survive_jitter_and_loss() {
    let echo = Server::echo();
    let impairment = Impairment::latency(Duration::from_millis(2))
        .with_jitter(Duration::from_millis(20))
        .with_loss(Loss {
            probability: 0.05,
            retransmit_after: Duration::from_millis(10),
        });
    let link = Link::builder(echo.addr)
        .shape(Shape::symmetric(impairment))
        .start()
        .unwrap();
    let mut client = connect(&link);
    let payload = pattern(256 * 1024);
    let mut writer = client.try_clone().unwrap();
    let to_send = payload.clone();
    let sender = std::thread::spawn(move || {
        let mut offset = 0;
        let mut size = 1;
        while offset < to_send.len() {
            let end = (offset + size).min(to_send.len());
            writer.write_all(&to_send[offset..end]).unwrap();
            offset = end;
            size = size * 7 % 4001 + 1;
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "the echo differs from what was sent");

    let counters = link.counters();
    println!("under jitter and 5 % loss: {counters:?}");
    for direction in [counters.uplink, counters.downlink] {
        assert_eq!(direction.bytes, payload.len() as u64);
        assert_eq!(
            direction.chunks_delayed, direction.chunks,
            "latency delays every chunk"
        );
        assert!(direction.retransmissions > 0, "5 % loss never struck");
        assert_eq!(direction.bytes_dropped, 0);
    }
}

#[test]
fn the_same_seed_delays_the_same_chunks_and_another_seed_others() {
    let echo = Server::echo();
    let run = |seed: u64| -> Vec<u64> {
        let link = Link::builder(echo.addr)
            .seed(seed)
            .shape(Shape {
                uplink: Impairment::default().with_loss(Loss {
                    probability: 0.3,
                    retransmit_after: Duration::from_millis(2),
                }),
                downlink: Impairment::default(),
            })
            .start()
            .unwrap();
        let mut client = connect(&link);
        let mut before = 0;
        (0..40u8)
            .map(|i| {
                ping(&mut client, &[i; 32]);
                let now = link.counters().uplink.retransmissions;
                let lost = now - before;
                before = now;
                lost
            })
            .collect()
    };
    let first = run(11);
    assert!(first.iter().sum::<u64>() > 0, "30 % loss never struck");
    assert_eq!(first, run(11), "the same seed gave another pattern");
    assert_ne!(first, run(12), "another seed gave the same pattern");
}

#[test]
fn freeze_holds_bytes_and_thaw_delivers_them_all() {
    let echo = Server::echo();
    let link = Link::start(echo.addr).unwrap();
    let mut client = connect(&link);
    ping(&mut client, b"before the freeze");

    link.freeze();
    let payload = pattern(20_000);
    client.write_all(&payload).unwrap();
    // An attempt made during the freeze: its connect succeeds locally, it reaches upstream
    // only on thaw.
    let mut late = connect(&link);
    late.write_all(b"late").unwrap();
    assert_silent(&mut client, Duration::from_millis(300));
    let frozen = link.counters();
    assert_eq!(frozen.uplink.bytes, 17, "bytes crossed a frozen link");
    assert_eq!(echo.seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!((frozen.accepted, frozen.open), (2, 2));

    link.thaw();
    let mut back = vec![0u8; payload.len()];
    client.read_exact(&mut back).unwrap();
    assert!(back == payload, "the held bytes changed");
    let mut back = [0u8; 4];
    late.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"late");
    assert_eq!(echo.seen.connections.load(Ordering::SeqCst), 2);
    assert_eq!(link.counters().uplink.bytes, 17 + 20_000 + 4);
}

#[test]
fn half_open_delivers_nothing_and_tells_nobody() {
    let echo = Server::echo();
    let link = Link::start(echo.addr).unwrap();
    let mut client = connect(&link);
    ping(&mut client, b"alive");

    assert_eq!(link.half_open(), 1);
    client.write_all(&[7u8; 1000]).unwrap();
    assert_silent(&mut client, Duration::from_millis(300));
    eventually("the link to swallow the bytes", || {
        link.counters().uplink.bytes_dropped == 1000
    });
    assert_eq!(echo.seen.bytes.load(Ordering::SeqCst), 5);

    // The client gives up; upstream is not told.
    drop(client);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(echo.seen.closed.load(Ordering::SeqCst), 0);

    // A new connection is not a black hole.
    let mut fresh = connect(&link);
    ping(&mut fresh, b"a new connection");
    let counters = link.counters();
    assert_eq!(
        counters.open, 2,
        "the black hole stays open beside the new connection"
    );
    assert_eq!(counters.uplink.bytes, 5 + 16);
}

#[test]
fn reset_closes_every_connection_and_new_ones_work() {
    let echo = Server::echo();
    let link = Link::start(echo.addr).unwrap();
    let mut a = connect(&link);
    let mut b = connect(&link);
    ping(&mut a, b"a");
    ping(&mut b, b"b");

    assert_eq!(link.reset_all(), 2);
    assert_eq!(read_error(&mut a), ErrorKind::ConnectionReset);
    assert_eq!(read_error(&mut b), ErrorKind::ConnectionReset);
    eventually("upstream to see both connections end", || {
        echo.seen.closed.load(Ordering::SeqCst) == 2
    });
    eventually("both connections to leave the link", || {
        link.counters().open == 0
    });
    assert_eq!(link.counters().reset, 2);

    let mut c = connect(&link);
    ping(&mut c, b"after the reset");
    assert_eq!(echo.seen.connections.load(Ordering::SeqCst), 3);
}

#[test]
fn refused_connections_are_reset_and_open_ones_carry_on() {
    let echo = Server::echo();
    let link = Link::start(echo.addr).unwrap();
    let mut open = connect(&link);
    ping(&mut open, b"open");

    link.refuse(true);
    let mut refused = connect(&link);
    assert_eq!(read_error(&mut refused), ErrorKind::ConnectionReset);
    ping(&mut open, b"still open");
    let counters = link.counters();
    assert_eq!((counters.accepted, counters.refused), (2, 1));
    assert_eq!(echo.seen.connections.load(Ordering::SeqCst), 1);

    link.refuse(false);
    let mut admitted = connect(&link);
    ping(&mut admitted, b"admitted");
}

#[test]
fn flapping_follows_its_schedule() {
    let sink = Server::sink();
    let link = Link::start(sink.addr).unwrap();
    let mut client = connect(&link);
    let phase = Duration::from_millis(400);
    let messages = 95u64;
    let interval = Duration::from_millis(20);

    let start = Instant::now();
    link.flap(Flapping {
        up: phase,
        down: phase,
        outage: Outage::Freeze,
    });
    // Down from 0.4 to 0.8 s and from 1.2 to 1.6 s; sending ends at 1.9 s, before the third.
    for seq in 0..messages {
        let due = start + interval * seq as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        client.write_all(&seq.to_be_bytes()).unwrap();
    }
    link.stop_flapping();
    eventually("every message to arrive", || {
        sink.seen.bytes.load(Ordering::SeqCst) == messages * 8
    });

    // Arrival time of each message: when the read that completed it returned.
    let mut stream = Vec::new();
    let mut arrivals = Vec::new();
    for (at, bytes) in sink.seen.reads.lock().unwrap().iter() {
        stream.extend_from_slice(bytes);
        while arrivals.len() < stream.len() / 8 {
            arrivals.push(*at);
        }
    }
    let seqs: Vec<u64> = stream
        .chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        seqs,
        (0..messages).collect::<Vec<_>>(),
        "held messages lost or reordered"
    );

    let stalls: Vec<Duration> = arrivals
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|gap| *gap > phase / 2)
        .collect();
    let outages = link.counters().outages;
    println!("flapping 400/400 ms: {outages} outages, stalls {stalls:?}");
    assert!(
        outages >= 2,
        "{outages} outages in 1.9 s of 400/400 ms flapping"
    );
    // A third outage starts only if sending ran late, and is cut short by stop_flapping.
    assert!(
        stalls.len() as u64 == outages || stalls.len() as u64 + 1 == outages,
        "{} stalls for {outages} outages",
        stalls.len()
    );
    assert!(stalls.len() >= 2);
    for stall in &stalls {
        assert!(*stall <= 2 * phase, "a stall of {stall:?}");
    }
}

#[test]
fn flapping_with_resets_drops_connections_and_refuses_while_down() {
    let echo = Server::echo();
    let link = Link::start(echo.addr).unwrap();
    link.flap(Flapping {
        up: Duration::from_millis(300),
        down: Duration::from_millis(600),
        outage: Outage::Reset,
    });
    let mut before = connect(&link);
    ping(&mut before, b"up");
    assert_eq!(read_error(&mut before), ErrorKind::ConnectionReset);
    assert_eq!(link.outage(), Some(Outage::Reset));
    let mut during = connect(&link);
    assert_eq!(read_error(&mut during), ErrorKind::ConnectionReset);

    eventually("the link to come back up", || link.outage().is_none());
    let mut after = connect(&link);
    ping(&mut after, b"up again");
    link.stop_flapping();
    let counters = link.counters();
    assert_eq!(
        (counters.outages, counters.reset, counters.refused),
        (1, 1, 1)
    );
}

#[test]
fn drop_closes_every_connection_and_joins_the_thread() {
    let echo = Server::echo();
    let link = Link::builder(echo.addr)
        .shape(Shape::symmetric(Impairment::latency(
            Duration::from_millis(50),
        )))
        .start()
        .unwrap();
    let addr = link.addr();
    let thread_name = format!("link-{}", addr.port());
    let threads_named = |name: &str| {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim() == name)
            .count()
    };
    // The thread names itself once it runs.
    eventually("the link's thread to be named", || {
        threads_named(&thread_name) == 1
    });
    let mut client = connect(&link);
    ping(&mut client, b"x");
    client.write_all(b"in flight").unwrap();

    drop(link);
    assert_eq!(threads_named(&thread_name), 0);
    let mut rest = Vec::new();
    let end = client.read_to_end(&mut rest);
    assert!(
        matches!(&end, Ok(0)) || matches!(&end, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "the client's connection outlived the link: {end:?}"
    );
    eventually("upstream to see the connection end", || {
        echo.seen.closed.load(Ordering::SeqCst) == 1
    });
    assert!(TcpStream::connect(addr).is_err(), "the port still accepts");
}

#[test]
fn an_unreachable_upstream_resets_the_client() {
    let nobody = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let link = Link::start(nobody).unwrap();
    let mut client = connect(&link);
    assert_eq!(read_error(&mut client), ErrorKind::ConnectionReset);
    assert_eq!(link.counters().upstream_failed, 1);
}

#[tokio::test]
async fn works_from_a_tokio_test() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let echo = Server::echo();
    let latency = Duration::from_millis(50);
    let link = Link::builder(echo.addr)
        .shape(Shape::symmetric(Impairment::latency(latency)))
        .start()
        .unwrap();
    let mut client = tokio::net::TcpStream::connect(link.addr()).await.unwrap();
    let sent = Instant::now();
    client.write_all(b"from tokio").await.unwrap();
    let mut back = [0u8; 10];
    client.read_exact(&mut back).await.unwrap();
    assert!(sent.elapsed() >= 2 * latency);
    assert_eq!(&back, b"from tokio");
    link.freeze();
    link.thaw();
    assert_eq!(link.counters().downlink.bytes, 10);
    drop(link);
}
