//! What `fieldlink-cloud serve` tells the service manager, over the protocol in
//! [`fieldlink_plumbing::sd_notify`] (shared with the agent).
//!
//! What `fieldlink-cloud serve` says and when:
//! - `READY=1` (with `STATUS=` naming the HTTP address) once `service::serve` reports that it
//!   serves: migrations applied, the embedded broker (if configured) listening, ingest started
//!   and the HTTP listener bound. It does not wait for the external broker's SUBACK: a broker
//!   that is down must not keep the unit "activating" until `TimeoutStartSec=` kills it and
//!   restarts it in a loop, while the API could serve history; ingest reconnects by itself and
//!   `/health/ready` tells load balancers whether this node ingests.
//! - `WATCHDOG=1` every `$WATCHDOG_USEC / 2` from a task on the service's runtime, when the unit
//!   sets `WatchdogSec=` and `$WATCHDOG_PID` (if set) is this process. The pings stop when no
//!   runtime worker can run tasks any more (a blocking call or a lock held on every worker),
//!   which otherwise leaves a process that is "active" but neither ingests nor answers; systemd
//!   then aborts and restarts it. That is safe because the cloud acknowledges an MQTT message
//!   only after its rows are committed: the broker redelivers whatever was in flight.
//! - `STOPPING=1` as soon as a stop begins (SIGTERM, Ctrl-C), before ingest drains.

use tokio_util::sync::CancellationToken;

pub use fieldlink_plumbing::sd_notify::Notifier as SystemdNotifier;

/// Pings the watchdog until `stop` fires; returns at once when no watchdog was asked for.
pub async fn watchdog(notifier: &SystemdNotifier, stop: CancellationToken) {
    let Some(every) = notifier.watchdog_every() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => notifier.ping(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_watchdog_pings_until_the_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = SystemdNotifier::to_path(Some(path), Some(Duration::from_millis(20)));
        let stop = CancellationToken::new();
        let dog = tokio::spawn({
            let stop = stop.clone();
            async move { watchdog(&n, stop).await }
        });
        let sock = tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 64];
            for _ in 0..3 {
                let n = sock.recv(&mut buf).expect("a ping within 5 s");
                assert_eq!(&buf[..n], b"WATCHDOG=1");
            }
            sock
        })
        .await
        .unwrap();
        stop.cancel();
        dog.await.unwrap();
        // Whatever was sent before the stop is read; after it, silence.
        sock.set_nonblocking(true).unwrap();
        while sock.recv(&mut [0u8; 64]).is_ok() {}
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            sock.recv(&mut [0u8; 64]).is_err(),
            "a ping after the watchdog stopped"
        );
    }
}
