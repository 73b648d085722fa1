//! A stream wrapper that notices the end of the stream for the link.
//!
//! When the device closes the connection, tokio-modbus's TCP client returns
//! `io::Error::last_os_error()`: whatever `errno` an earlier system call left, most often
//! `EAGAIN`, "Resource temporarily unavailable (os error 11)". The link cannot read the truth out
//! of that error, so it looks at the stream itself: [`Watched`] records that a read returned
//! end of stream, and how many bytes of an answer had arrived since the last request was written
//! (a device that dies halfway through an answer, or sends a short one and hangs up).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the link learns from the stream; shared between the link and its [`Watched`] stream.
#[derive(Debug, Default)]
pub(crate) struct StreamWatch {
    ended: AtomicBool,
    answer_bytes: AtomicUsize,
}

impl StreamWatch {
    /// `Some(bytes of the unfinished answer)` once a read has met the end of the stream.
    pub(crate) fn ended(&self) -> Option<usize> {
        self.ended
            .load(Ordering::Relaxed)
            .then(|| self.answer_bytes.load(Ordering::Relaxed))
    }
}

/// A stream that reports to a [`StreamWatch`].
#[derive(Debug)]
pub(crate) struct Watched<T> {
    io: T,
    watch: Arc<StreamWatch>,
}

impl<T> Watched<T> {
    pub(crate) fn new(io: T, watch: Arc<StreamWatch>) -> Watched<T> {
        Watched { io, watch }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let n = buf.filled().len() - before;
            // A zero-byte read into a buffer with room left is the end of the stream.
            if n == 0 && buf.remaining() > 0 {
                self.watch.ended.store(true, Ordering::Relaxed);
            } else {
                self.watch.answer_bytes.fetch_add(n, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                // A request goes out: what arrives from now on belongs to its answer.
                self.watch.answer_bytes.store(0, Ordering::Relaxed);
            }
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
