//! The proxy's tasks: the accept loop, one task per connection with a reader and a writer per
//! direction, and the flapping schedule. They run on the link's own runtime thread.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep_until, Instant};

use super::shape::{Flapping, Outage, Rng, Stamp, Stamper};
use super::state::{Control, Direction, Meters, Shared};
use super::SEGMENT_BYTES;

/// Accepts clients until the handle asks for shutdown.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut control = shared.control.subscribe();
    let mut streams = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let client = match accepted {
                    Ok((client, _)) => client,
                    Err(_) => {
                        // Out of descriptors or a connection gone before accept: try again soon.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                Meters::add(&shared.meters.accepted, 1);
                if control.borrow().refusing_new() {
                    Meters::add(&shared.meters.refused, 1);
                    abort(&client);
                    continue;
                }
                tokio::spawn(connection(client, Arc::clone(&shared), streams));
                streams += 1;
            }
            changed = control.changed() => {
                if changed.is_err() || control.borrow().shutdown {
                    return;
                }
            }
        }
    }
}

/// Runs a flapping schedule until a newer one (or none) replaces it.
pub(crate) async fn flap(shared: Arc<Shared>, schedule: Flapping, generation: u64) {
    let mut phase_end = Instant::now();
    loop {
        phase_end += schedule.up;
        sleep_until(phase_end).await;
        let mut current = false;
        shared.control.send_modify(|c| {
            if c.flap_generation == generation {
                current = true;
                c.outage = Some(schedule.outage);
                if schedule.outage == Outage::Reset {
                    c.resets += 1;
                }
            }
        });
        if !current {
            return;
        }
        Meters::add(&shared.meters.outages, 1);
        phase_end += schedule.down;
        sleep_until(phase_end).await;
        shared.control.send_if_modified(|c| {
            current = c.flap_generation == generation;
            if current {
                c.outage = None;
            }
            current
        });
        if !current {
            return;
        }
    }
}

/// How a connection ended.
enum End {
    /// Both directions delivered their end of stream: close normally.
    Closed,
    /// Reset from the handle, or a socket failed: close both sides with a reset.
    Reset,
    Failed,
}

/// Counts an open connection for as long as its task lives (also when the runtime drops it).
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: &Arc<Shared>) -> OpenConnection {
        Meters::add(&shared.meters.open, 1);
        OpenConnection(Arc::clone(shared))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.meters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(mut client: TcpStream, shared: Arc<Shared>, stream: u64) {
    let _open = OpenConnection::new(&shared);
    let born = *shared.control.borrow();
    let mut upstream = None;
    let end = tokio::select! {
        end = relay(&mut client, &mut upstream, &shared, stream, born) => end,
        () = reset_after(shared.control.subscribe(), born.resets) => End::Reset,
    };
    match end {
        End::Closed => {}
        End::Reset | End::Failed => {
            if matches!(end, End::Reset) {
                Meters::add(&shared.meters.reset, 1);
            }
            abort(&client);
            if let Some(upstream) = &upstream {
                abort(upstream);
            }
        }
    }
}

/// Makes the coming close of `socket` send a reset instead of a FIN.
fn abort(socket: &TcpStream) {
    // Without it the close is a FIN, which a test would see as a clean close, not a reset.
    let _ = socket.set_zero_linger();
}

async fn reset_after(mut control: watch::Receiver<Control>, born: u64) {
    loop {
        if control.borrow_and_update().resets > born {
            return;
        }
        changed(&mut control).await;
    }
}

async fn relay(
    client: &mut TcpStream,
    upstream: &mut Option<TcpStream>,
    shared: &Shared,
    stream: u64,
    born: Control,
) -> End {
    let mut control = shared.control.subscribe();
    // While the link does not pass, the connection attempt towards upstream is in flight too.
    while !control.borrow_and_update().passing() {
        changed(&mut control).await;
    }
    let upstream = match TcpStream::connect(shared.upstream).await {
        Ok(socket) => upstream.insert(socket),
        Err(_) => {
            Meters::add(&shared.meters.upstream_failed, 1);
            return End::Failed;
        }
    };
    // The emulator decides when bytes leave; Nagle's algorithm would add delays of its own.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    let seeded = |direction: Direction| {
        Stamper::new(Rng::for_stream(shared.seed, stream * 2 + direction.index()))
    };
    let pipes = tokio::try_join!(
        pipe(
            client_read,
            upstream_write,
            Direction::Uplink,
            shared,
            seeded(Direction::Uplink),
            born.black_holes,
        ),
        pipe(
            upstream_read,
            client_write,
            Direction::Downlink,
            shared,
            seeded(Direction::Downlink),
            born.black_holes,
        ),
    );
    if control.borrow().black_holes > born.black_holes {
        // A black hole never tells either peer anything, not even that the other one left.
        std::future::pending::<()>().await;
    }
    match pipes {
        Ok(_) => End::Closed,
        Err(_) => End::Failed,
    }
}

/// What the reader hands the writer: `None` is the end of stream.
struct Chunk {
    data: Option<Vec<u8>>,
    stamp: Stamp,
}

/// One direction of one connection: a reader that stamps chunks as they arrive and a writer
/// that delivers them when their stamp, the link and the bandwidth allow.
async fn pipe(
    read: impl AsyncRead + Unpin,
    write: impl AsyncWrite + Unpin,
    direction: Direction,
    shared: &Shared,
    stamper: Stamper,
    born_black_holes: u64,
) -> io::Result<()> {
    // The window: bytes read but not yet delivered. When it is full the reader stops, the
    // sender's socket buffer fills and its writes block, as over a slow or frozen TCP path.
    let window = Semaphore::new(shared.queue_bytes as usize);
    let (chunks, queue) = mpsc::unbounded_channel();
    tokio::try_join!(
        take_in(
            read,
            chunks,
            &window,
            direction,
            shared,
            stamper,
            born_black_holes
        ),
        hand_on(write, queue, &window, direction, shared, born_black_holes),
    )?;
    Ok(())
}

async fn take_in(
    mut read: impl AsyncRead + Unpin,
    chunks: mpsc::UnboundedSender<Chunk>,
    window: &Semaphore,
    direction: Direction,
    shared: &Shared,
    mut stamper: Stamper,
    born_black_holes: u64,
) -> io::Result<()> {
    let control = shared.control.subscribe();
    let segment = SEGMENT_BYTES.min(shared.queue_bytes).max(1);
    let mut buf = vec![0u8; segment as usize];
    loop {
        let room = window
            .acquire_many(segment)
            .await
            .map_err(|_| io::Error::other("link window closed"))?;
        room.forget();
        let n = match read.read(&mut buf).await {
            Ok(n) => n,
            // A black hole hides a peer's reset from the other peer.
            Err(_) if control.borrow().black_holes > born_black_holes => return Ok(()),
            Err(e) => return Err(e),
        };
        window.add_permits(segment as usize - n);
        let now = std::time::Instant::now();
        let stamp = stamper.stamp(now, control.borrow().impairment(direction));
        let data = (n > 0).then(|| buf[..n].to_vec());
        let end = data.is_none();
        if chunks.send(Chunk { data, stamp }).is_err() || end {
            return Ok(());
        }
    }
}

async fn hand_on(
    mut write: impl AsyncWrite + Unpin,
    mut queue: mpsc::UnboundedReceiver<Chunk>,
    window: &Semaphore,
    direction: Direction,
    shared: &Shared,
    born_black_holes: u64,
) -> io::Result<()> {
    let mut control = shared.control.subscribe();
    let meters = shared.meters.direction(direction);
    while let Some(chunk) = queue.recv().await {
        let len = chunk.data.as_ref().map_or(0, Vec::len);
        let mut not_before = Instant::from_std(chunk.stamp.release_at);
        let mut paced = false;
        let mut delayed = chunk.stamp.delayed;
        let black_hole = loop {
            let c = *control.borrow_and_update();
            if c.black_holes > born_black_holes {
                break true;
            }
            if !c.passing() {
                delayed = true;
                changed(&mut control).await;
                continue;
            }
            let now = Instant::now();
            if now < not_before {
                delayed = true;
                tokio::select! {
                    () = sleep_until(not_before) => {}
                    () = changed(&mut control) => {}
                }
                continue;
            }
            match c.impairment(direction).bytes_per_second {
                Some(rate) if !paced && len > 0 => {
                    paced = true;
                    let start = shared
                        .pacer(direction)
                        .reserve(now.into_std(), len, rate.get());
                    not_before = Instant::from_std(start);
                }
                _ => break false,
            }
        };
        if black_hole {
            // Swallowed and never acknowledged: the window stays used, so a sender that keeps
            // writing into a black hole ends up blocked, as over a dead path.
            Meters::add(&meters.bytes_dropped, len as u64);
            if chunk.data.is_none() {
                return Ok(());
            }
            continue;
        }
        let Some(data) = chunk.data else {
            write.shutdown().await?;
            return Ok(());
        };
        // Counted before the write, so a peer that has read a byte always finds it counted.
        Meters::add(&meters.bytes, len as u64);
        Meters::add(&meters.chunks, 1);
        Meters::add(&meters.chunks_delayed, u64::from(delayed));
        Meters::add(
            &meters.retransmissions,
            u64::from(chunk.stamp.retransmissions),
        );
        write.write_all(&data).await?;
        window.add_permits(len);
    }
    Ok(())
}

/// Waits for the next change of the control; forever once the handle is gone (the runtime is
/// being dropped then).
async fn changed(control: &mut watch::Receiver<Control>) {
    if control.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
