//! The IO of an HTTP/1 connection, between hyper and the TLS stream: it times the wait for
//! a request head and the head itself, and it catches the refusal hyper writes on its own
//! for a head it cannot parse, so that the gateway answers with its own (refusal.rs).
//!
//! hyper parses every byte of client input; nothing here reads it (a second HTTP parser is
//! where request smuggling comes from). What this IO knows is the exchange state: how many
//! requests hyper dispatched to the service, how many of their responses it finished (the
//! response body dropped, which hyper does once the body's last byte is encoded), and
//! which of those it has flushed. Invariants:
//!
//! - **Quiet**: every dispatched response finished and flushed. hyper then has nothing of
//!   the gateway's left to write, and the only bytes it can still write are its automatic
//!   answer to a head it could not parse (`400`, `414`, `431`; hyper's `Server::on_error`),
//!   after which it closes. Those bytes are swallowed here, and their status kept.
//! - **Timing** (docs/design.md §8.7): while quiet, the connection waits for a head: the
//!   first one for `limits.header_read_timeout`, later ones for `limits.keepalive_timeout`
//!   (then it is closed as if the client had gone: no answer). From the first byte on, the
//!   head must be complete within `limits.header_read_timeout` (slowloris); past it the
//!   read fails, and the gateway answers `408`. Not quiet: no timer here (bodies have
//!   theirs in the stack).
//!
//! hyper's own header timer stays on as a backstop, set to the sum of both.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::HeadRefusal;

/// Requests dispatched and responses finished on one HTTP/1 connection.
#[derive(Debug, Default)]
pub struct Exchanges {
    dispatched: AtomicU64,
    finished: AtomicU64,
}

impl Exchanges {
    /// hyper handed a request to the service.
    pub fn dispatched(&self) {
        self.dispatched.fetch_add(1, Ordering::AcqRel);
    }

    /// The responses finished, if every dispatched request has its response finished.
    fn all_finished(&self) -> Option<u64> {
        let finished = self.finished.load(Ordering::Acquire);
        (self.dispatched.load(Ordering::Acquire) == finished).then_some(finished)
    }
}

/// A response body that tells [`Exchanges`] when hyper is done with it.
pub struct Finished<B> {
    body: B,
    exchanges: Arc<Exchanges>,
}

impl<B> Finished<B> {
    pub fn new(body: B, exchanges: Arc<Exchanges>) -> Self {
        Finished { body, exchanges }
    }
}

impl<B> Drop for Finished<B> {
    fn drop(&mut self) {
        self.exchanges.finished.fetch_add(1, Ordering::AcqRel);
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Finished<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's timeouts for heads.
#[derive(Debug, Clone, Copy)]
pub struct HeadTimeouts {
    /// `limits.header_read_timeout`: the first head, and any head from its first byte.
    pub head: Duration,
    /// `limits.keepalive_timeout`: the wait for a later request's first byte.
    pub keepalive: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request is being served (or its response written).
    Busy,
    /// Quiet, no byte of the next head yet.
    Waiting,
    /// The next head has started.
    Head,
}

/// Why the connection stopped, as far as this IO saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// hyper wrote its own answer to a head (swallowed); the first bytes of its status line.
    Refused([u8; STATUS_LINE], usize),
    /// A head started and did not complete in time.
    HeadTimedOut,
    /// No request came within the wait (`keepalive_timeout`, or for the first request
    /// `header_read_timeout`).
    Idle,
}

/// `HTTP/1.1 431`: enough of hyper's status line to read the code.
const STATUS_LINE: usize = 12;

impl Stopped {
    /// What the gateway answers instead, if anything.
    pub fn refusal(&self) -> Option<HeadRefusal> {
        match self {
            Stopped::Refused(line, len) => Some(match line.get(9..*len.min(&STATUS_LINE)) {
                Some(b"431") => HeadRefusal::TooLarge,
                Some(b"414") => HeadRefusal::UriTooLong,
                // 400, hyper's answer to every other head it cannot parse.
                _ => HeadRefusal::Malformed,
            }),
            Stopped::HeadTimedOut => Some(HeadRefusal::Timeout),
            Stopped::Idle => None,
        }
    }
}

/// The HTTP/1 connection's IO (see the module documentation).
pub struct HeadGuard<S> {
    io: S,
    exchanges: Arc<Exchanges>,
    /// `finished` as of the last completed flush: every byte of those responses is out.
    flushed: u64,
    /// `flushed` when the current wait for a head began.
    waiting_after: u64,
    phase: Phase,
    timeouts: HeadTimeouts,
    /// The deadline of the current phase (none while busy).
    timer: Pin<Box<Sleep>>,
    /// When the current head started, for the refusal's latency.
    head_began: Instant,
    stopped: Option<Stopped>,
}

impl<S> HeadGuard<S> {
    pub fn new(io: S, exchanges: Arc<Exchanges>, timeouts: HeadTimeouts) -> Self {
        let now = Instant::now();
        HeadGuard {
            io,
            exchanges,
            flushed: 0,
            waiting_after: 0,
            // The first head: waited for as long as any head may take.
            phase: Phase::Waiting,
            timeouts,
            timer: Box::pin(tokio::time::sleep_until(now + timeouts.head)),
            head_began: now,
            stopped: None,
        }
    }

    /// The stream, how the connection ended (if this IO saw it end), and when the last head
    /// started.
    pub fn into_parts(self) -> (S, Option<Stopped>, Instant) {
        (self.io, self.stopped, self.head_began)
    }

    fn quiet(&self) -> bool {
        self.exchanges.all_finished() == Some(self.flushed)
    }

    /// Moves between busy and waiting as requests come and go.
    fn track(&mut self) {
        if !self.quiet() {
            self.phase = Phase::Busy;
        } else if self.phase == Phase::Busy || self.waiting_after != self.flushed {
            // A response went out since the last wait began: wait for the next request.
            self.phase = Phase::Waiting;
            self.waiting_after = self.flushed;
            let deadline = Instant::now() + self.timeouts.keepalive;
            self.timer.as_mut().reset(deadline);
        }
    }

    /// Takes hyper's own answer to a head instead of sending it.
    fn swallow(&mut self, buf: &[u8]) {
        match &mut self.stopped {
            Some(Stopped::Refused(line, len)) => {
                let take = (STATUS_LINE - *len).min(buf.len());
                line[*len..*len + take].copy_from_slice(&buf[..take]);
                *len += take;
            }
            stopped => {
                let mut line = [0; STATUS_LINE];
                let take = STATUS_LINE.min(buf.len());
                line[..take].copy_from_slice(&buf[..take]);
                *stopped = Some(Stopped::Refused(line, take));
            }
        }
    }

    fn refused(&self) -> bool {
        matches!(self.stopped, Some(Stopped::Refused(..)))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.stopped {
            // Once given up on, the answer stays the same.
            Some(Stopped::Idle) => return Poll::Ready(Ok(())),
            Some(Stopped::HeadTimedOut) => return Poll::Ready(Err(timed_out())),
            _ => {}
        }
        this.track();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.phase == Phase::Waiting {
                    // docs/design.md §8.7: from its first byte, a head must be complete
                    // within header_read_timeout (slowloris), however long the wait was.
                    this.phase = Phase::Head;
                    this.head_began = Instant::now();
                    let deadline = this.head_began + this.timeouts.head;
                    this.timer.as_mut().reset(deadline);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.phase == Phase::Busy || this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if this.phase == Phase::Waiting {
                    // No request came: an end of input, which hyper takes as the client
                    // closing an idle connection (no answer is owed).
                    this.stopped = Some(Stopped::Idle);
                    Poll::Ready(Ok(()))
                } else {
                    // A head started and stalled: hyper gives up on it without answering,
                    // the connection answers 408 (refusal.rs).
                    this.stopped = Some(Stopped::HeadTimedOut);
                    Poll::Ready(Err(timed_out()))
                }
            }
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "request head not received within limits.header_read_timeout",
    )
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refused() || this.quiet() {
            // Nothing of the gateway's is left to write: this is hyper answering a head it
            // could not parse. The gateway answers instead, once hyper is done.
            this.swallow(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refused() || this.quiet() {
            let mut total = 0;
            for b in bufs {
                this.swallow(b);
                total += b.len();
            }
            return Poll::Ready(Ok(total));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refused() {
            return Poll::Ready(Ok(()));
        }
        let finished = this.exchanges.finished.load(Ordering::Acquire);
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        this.flushed = finished;
        Poll::Ready(Ok(()))
    }

    /// Only flushes: the connection closes the stream itself, after hyper, so that it can
    /// answer a refused head and linger (linger.rs).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn timeouts() -> HeadTimeouts {
        HeadTimeouts {
            head: Duration::from_secs(5),
            keepalive: Duration::from_secs(60),
        }
    }

    fn guard() -> (
        HeadGuard<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        Arc<Exchanges>,
    ) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let exchanges = Arc::new(Exchanges::default());
        (
            HeadGuard::new(ours, exchanges.clone(), timeouts()),
            theirs,
            exchanges,
        )
    }

    #[tokio::test]
    async fn a_write_with_nothing_outstanding_is_swallowed_and_its_status_kept() {
        let (mut g, mut peer, _) = guard();
        g.write_all(b"HTTP/1.1 4").await.unwrap();
        g.write_all(b"31 Request Header Fields Too Large\r\n\r\n")
            .await
            .unwrap();
        g.flush().await.unwrap();
        let (io, stopped, _) = g.into_parts();
        drop(io);
        let mut sent = Vec::new();
        peer.read_to_end(&mut sent).await.unwrap();
        assert!(sent.is_empty(), "nothing reached the peer: {sent:?}");
        assert_eq!(stopped.unwrap().refusal(), Some(HeadRefusal::TooLarge));
    }

    #[tokio::test]
    async fn responses_pass_until_finished_and_flushed() {
        let (mut g, mut peer, exchanges) = guard();
        exchanges.dispatched();
        // 100 Continue, then the response, all while the request is outstanding.
        g.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        g.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let body = Finished::new(http_body_util::Empty::<Bytes>::new(), exchanges.clone());
        drop(body);
        // Finished but not yet flushed: the tail of the response still passes.
        g.write_all(b"content-length: 0\r\n\r\n").await.unwrap();
        g.flush().await.unwrap();
        // Now quiet: what hyper writes is its own.
        g.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        let (io, stopped, _) = g.into_parts();
        drop(io);
        let mut sent = Vec::new();
        peer.read_to_end(&mut sent).await.unwrap();
        assert_eq!(
            sent,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(stopped.unwrap().refusal(), Some(HeadRefusal::Malformed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_waits_keepalive_then_a_head_has_header_read_timeout() {
        let (mut g, mut peer, exchanges) = guard();
        // The first request arrives, is served and flushed.
        peer.write_all(b"GET").await.unwrap();
        let mut buf = [0; 16];
        assert_eq!(g.read(&mut buf).await.unwrap(), 3);
        exchanges.dispatched();
        drop(Finished::new(
            http_body_util::Empty::<Bytes>::new(),
            exchanges.clone(),
        ));
        g.flush().await.unwrap();
        // Idle well past header_read_timeout, but within keepalive_timeout: still open.
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            peer.write_all(b"G").await.unwrap();
            // Then the head stalls.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(peer);
        });
        assert_eq!(g.read(&mut buf).await.unwrap(), 1);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(35),
            "5 s from the first byte"
        );
        let (_, stopped, _) = g.into_parts();
        assert_eq!(stopped.unwrap().refusal(), Some(HeadRefusal::Timeout));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_ends_at_keepalive_timeout_without_an_answer() {
        let (mut g, _peer, exchanges) = guard();
        exchanges.dispatched();
        drop(Finished::new(
            http_body_util::Empty::<Bytes>::new(),
            exchanges.clone(),
        ));
        g.flush().await.unwrap();
        let start = Instant::now();
        let mut buf = [0; 16];
        assert_eq!(g.read(&mut buf).await.unwrap(), 0, "end of input");
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        let (_, stopped, _) = g.into_parts();
        assert_eq!(stopped, Some(Stopped::Idle));
        assert_eq!(stopped.unwrap().refusal(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_request_is_waited_for_header_read_timeout() {
        let (mut g, _peer, _) = guard();
        let start = Instant::now();
        let mut buf = [0; 16];
        assert_eq!(g.read(&mut buf).await.unwrap(), 0);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn no_timer_while_a_request_is_served() {
        let (mut g, mut peer, exchanges) = guard();
        exchanges.dispatched();
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(600)).await;
            peer.write_all(b"body").await.unwrap();
        });
        let mut buf = [0; 16];
        assert_eq!(g.read(&mut buf).await.unwrap(), 4);
        assert_eq!(start.elapsed(), Duration::from_secs(600));
    }
}
