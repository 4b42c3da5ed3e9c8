//! How a connection is asked to end gracefully: when the server stops, or when nothing
//! has been in flight on it for `limits.idle_timeout` (docs/design.md §8.7).
//!
//! Neither happens often, but the connection's task wakes about four times per request
//! (request read, upstream answer, response written, next head). Polling the server's
//! stop signal and the idle timer on each of those wakes cost ~1.7k instructions per
//! request (issue 23: a `tokio::select!` re-registering with the watch every time). So
//! both are polled with a waker of their own ([`Quiet`]), and only after it was woken:
//! once at the start, then only when one of them has something to say.
//!
//! Invariant: no wake of the stop signal or the idle timer is lost. The connection
//! task's waker is registered before the flag is read, and a wake sets the flag before
//! waking the task, so a wake that comes while the two are being polled makes the task
//! poll them again.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use hyper::body::Incoming;
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use tokio::time::Instant;

use crate::body::BoxError;

/// What a connection's requests are doing, for the idle timeout.
#[derive(Debug)]
pub(super) struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds from `start` to the end of the last request.
    last_end: AtomicU64,
    start: Instant,
}

/// Counts a request in flight until dropped.
pub(super) struct InFlight(Arc<Activity>);

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            start: Instant::now(),
        })
    }

    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// How long nothing has been in flight, or `None` while something is.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_end.load(Ordering::Acquire));
        Some(self.start.elapsed().saturating_sub(last))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.start.elapsed().as_millis() as u64;
        self.0.last_end.fetch_max(now, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A hyper connection that can be asked to finish gracefully. (hyper-util's
/// `GracefulConnection` wants an IO that lives forever; ours is borrowed, so that the
/// connection gets it back to close it, linger.rs.)
pub(super) trait Graceful: Future<Output = hyper::Result<()>> {
    fn finish(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for http1::Connection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Graceful for http2::Connection<I, S, E>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
    E: Http2ServerConnExec<S::Future, B>,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// What decides when a connection is asked to finish.
pub(super) struct Ending {
    pub(super) peer: SocketAddr,
    pub(super) stop: tokio::sync::watch::Receiver<bool>,
    pub(super) activity: Arc<Activity>,
    pub(super) idle_timeout: Duration,
}

/// The waker the stop signal and the idle timer are polled with: it records that one of
/// them woke, then wakes the connection's task.
#[derive(Default)]
struct Quiet {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Quiet {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Ending {
    /// Runs `conn` to its end, asking it to finish gracefully when the server stops or
    /// when it has been idle for `idle_timeout`.
    pub(super) async fn drive<C: Graceful>(self, conn: C) {
        let Ending {
            peer,
            mut stop,
            activity,
            idle_timeout,
        } = self;
        tokio::pin!(conn);
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        let stopping = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopping);
        let quiet = Arc::new(Quiet {
            woken: AtomicBool::new(true),
            ..Quiet::default()
        });
        let waker = Waker::from(quiet.clone());
        let mut closing = false;
        poll_fn(|cx| loop {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return Poll::Ready(());
            }
            if closing {
                return Poll::Pending;
            }
            // Registered before the flag is read: a wake from here on reaches the task.
            quiet.task.register(cx.waker());
            if !quiet.woken.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let mut own = Context::from_waker(&waker);
            if stopping.as_mut().poll(&mut own).is_ready() {
                conn.as_mut().finish();
                closing = true;
                continue;
            }
            // The timer is set from the end of the last request: when it fires early (a
            // request came and went meanwhile) it is set again for the rest, and polled
            // again so that it is registered.
            while idle.as_mut().poll(&mut own).is_ready() {
                match activity.idle_for() {
                    Some(idle_for) if idle_for >= idle_timeout => {
                        tracing::debug!(peer = %peer, "limits.idle_timeout: closing an idle connection");
                        conn.as_mut().finish();
                        closing = true;
                        break;
                    }
                    Some(idle_for) => {
                        idle.as_mut().reset(Instant::now() + (idle_timeout - idle_for));
                    }
                    None => idle.as_mut().reset(Instant::now() + idle_timeout),
                }
            }
            if !closing {
                return Poll::Pending;
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn activity_tracks_requests_in_flight_and_quiet_time() {
        let a = Activity::new();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(a.idle_for(), Some(Duration::from_secs(3)));
        let req = a.begin();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(a.idle_for(), None, "busy while a request is in flight");
        drop(req);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(a.idle_for(), Some(Duration::from_secs(2)));
    }

    /// A connection that stays open until it is asked to finish, and counts its polls.
    struct Fake {
        finished: bool,
        polls: Arc<AtomicUsize>,
    }

    impl Future for Fake {
        type Output = hyper::Result<()>;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if self.finished {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }
    }

    impl Graceful for Fake {
        fn finish(mut self: Pin<&mut Self>) {
            self.finished = true;
        }
    }

    fn ending(idle: u64) -> (Ending, tokio::sync::watch::Sender<bool>, Arc<Activity>) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let activity = Activity::new();
        let ending = Ending {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            stop: rx,
            activity: activity.clone(),
            idle_timeout: Duration::from_secs(idle),
        };
        (ending, tx, activity)
    }

    /// Drives `conn`, failing the test if it is still open after an hour (of the paused
    /// clock): a lost wake leaves it open for ever.
    async fn drive(ending: Ending, conn: impl Graceful) {
        tokio::time::timeout(Duration::from_secs(3600), ending.drive(conn))
            .await
            .expect("the connection was asked to finish");
    }

    /// How long (on the paused clock) `conn` ran before it was asked to finish.
    async fn finished_after(ending: Ending, conn: impl Graceful) -> Duration {
        let start = Instant::now();
        drive(ending, conn).await;
        start.elapsed()
    }

    fn fake() -> (Fake, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let conn = Fake {
            finished: false,
            polls: polls.clone(),
        };
        (conn, polls)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_asked_to_finish_after_the_idle_timeout() {
        let (ending, _tx, _) = ending(10);
        let (conn, _) = fake();
        let ran = finished_after(ending, conn).await;
        assert_eq!(ran, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_counts_from_the_end_of_the_last_request() {
        let (ending, _tx, activity) = ending(10);
        let (conn, _) = fake();
        let request = activity.begin();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(25)).await;
            drop(request);
        });
        let ran = finished_after(ending, conn).await;
        assert_eq!(ran, Duration::from_secs(35));
    }

    #[tokio::test(start_paused = true)]
    async fn the_server_stopping_asks_the_connection_to_finish_at_once() {
        let (ending, tx, _) = ending(60);
        let (conn, _) = fake();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            tx.send_replace(true);
        });
        let ran = finished_after(ending, conn).await;
        assert_eq!(ran, Duration::from_secs(5));
        // Stopping before the connection is driven: asked to finish on the first poll.
        let (ending, tx, _) = self::ending(60);
        tx.send_replace(true);
        let (conn, polls) = fake();
        let ran = finished_after(ending, conn).await;
        assert_eq!((ran, polls.load(Ordering::Relaxed)), (Duration::ZERO, 2));
    }

    /// A connection that wakes its own task (as hyper does on every read and write) is
    /// polled for each wake, and the idle timer, polled only when it woke, still fires.
    #[tokio::test(start_paused = true)]
    async fn the_connections_own_wakes_leave_the_idle_timer_working() {
        struct Busy {
            wakes: Arc<AtomicUsize>,
            finished: bool,
        }
        impl Future for Busy {
            type Output = hyper::Result<()>;
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                if self.finished {
                    return Poll::Ready(Ok(()));
                }
                if self.wakes.load(Ordering::Relaxed) < 1000 {
                    self.wakes.fetch_add(1, Ordering::Relaxed);
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
        impl Graceful for Busy {
            fn finish(mut self: Pin<&mut Self>) {
                self.finished = true;
            }
        }
        let (ending, _tx, _) = ending(10);
        let wakes = Arc::new(AtomicUsize::new(0));
        let conn = Busy {
            wakes: wakes.clone(),
            finished: false,
        };
        let ran = finished_after(ending, conn).await;
        let wakes = wakes.load(Ordering::Relaxed);
        assert_eq!((wakes, ran), (1000, Duration::from_secs(10)));
    }
}
