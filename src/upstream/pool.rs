//! Kept-alive HTTP/1.1 connections to the one upstream, for one worker thread.
//!
//! Built on hyper's low-level `client::conn::http1`. A connection is not driven by a task of
//! its own: whoever uses it polls it, inline (the request's response future, then the
//! response body, see mod.rs), so a request costs no wake-up of a second task, no channel
//! hop to it and back. Between requests a connection sits in [`Pool`], a lock-free bounded
//! queue, unpolled; before it is handed out again it is polled once, without a waker, so a
//! connection the upstream closed meanwhile is noticed and dropped rather than used.
//! A reaper task per pool (started with its first connection, ended when the pool goes
//! with its configuration generation) closes connections idle for longer than
//! `upstream.pool_idle_timeout` and those the upstream closed, so an idle gateway holds no
//! dead sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use http::uri::Authority;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::Body;

/// Idle connections kept per worker; more are closed when they come back.
pub const MAX_IDLE: usize = 1024;

/// One connection: the sending half and the connection future that does its I/O.
pub struct Conn {
    pub send: http1::SendRequest<Body>,
    /// Boxed once, when connected: the future is 680 bytes, and `Conn` moves with every
    /// request and fills a slot of [`Pool`]'s queue, whose `MAX_IDLE` slots are all
    /// allocated and touched up front (unboxed, 0.7 MiB per worker before the first
    /// request; boxed, 64 KiB).
    conn: Box<http1::Connection<TokioIo<TcpStream>, Body>>,
    /// The connection future has finished (closed, or failed): never reusable.
    finished: bool,
}

impl Conn {
    /// Drives the connection's I/O: reads and writes whatever is due, and registers `cx`
    /// for more. Returns whether it has finished.
    pub fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.finished {
            // An error here also fails the request's response future (hyper hands it on),
            // which is where it is reported.
            if Pin::new(&mut self.conn).poll(cx).is_ready() {
                self.finished = true;
            }
        }
        self.finished
    }

    /// Whether a new request can be sent on it now: not finished, and its previous
    /// exchange completed (polled once, without a waker, to take in what arrived).
    fn reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        !self.drive(&mut cx) && self.send.is_ready()
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The idle connections of one worker's upstream client.
pub struct Pool {
    idle: ArrayQueue<Idle>,
    idle_timeout: Duration,
    reaper: AtomicBool,
}

impl Pool {
    pub fn new(idle_timeout: Duration) -> Pool {
        Pool {
            idle: ArrayQueue::new(MAX_IDLE),
            idle_timeout,
            reaper: AtomicBool::new(false),
        }
    }

    /// The oldest idle connection that can take a request, if any; dead and expired ones
    /// met on the way are closed.
    pub fn checkout(&self) -> Option<Conn> {
        while let Some(mut idle) = self.idle.pop() {
            if idle.since.elapsed() < self.idle_timeout && idle.conn.reusable() {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Puts a connection whose exchange completed back, unless it finished or the pool
    /// is full (then it is closed).
    pub fn put_back(&self, conn: Conn) {
        if !conn.finished {
            let _ = self.idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Connects to `authority` (every address it resolves to, in order, within
    /// `connect_timeout` in all) and makes the HTTP/1.1 connection.
    pub async fn connect(
        self: &Arc<Self>,
        authority: &Authority,
        connect_timeout: Duration,
    ) -> Result<Conn, ConnectError> {
        let tcp = tokio::time::timeout(connect_timeout, tcp_connect(authority))
            .await
            .map_err(|_| ConnectError::Timeout(connect_timeout))??;
        let _ = tcp.set_nodelay(true);
        let (send, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(ConnectError::Handshake)?;
        self.start_reaper();
        Ok(Conn {
            send,
            conn: Box::new(conn),
            finished: false,
        })
    }

    /// Starts this pool's reaper on the current runtime (the worker's), once.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::downgrade(self);
        let every = (self.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(reap(pool, every));
    }

    /// Closes idle connections that expired or that the upstream closed.
    fn reap_once(&self) {
        for _ in 0..self.idle.len() {
            let Some(mut idle) = self.idle.pop() else {
                break;
            };
            if idle.since.elapsed() < self.idle_timeout && idle.conn.reusable() {
                let _ = self.idle.push(idle);
            }
        }
    }

    #[cfg(test)]
    pub fn idle_count(&self) -> usize {
        self.idle.len()
    }

    #[cfg(test)]
    pub fn reap_once_for_tests(&self) {
        self.reap_once()
    }
}

async fn reap(pool: Weak<Pool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Gone with its configuration generation: so is this task.
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.reap_once();
    }
}

async fn tcp_connect(authority: &Authority) -> Result<TcpStream, ConnectError> {
    let port = authority.port_u16().unwrap_or(80);
    let host = authority.host();
    // `[::1]` in a URL is `::1` to the resolver.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port))
        .await
        .map_err(ConnectError::Resolve)?
    {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(ConnectError::Connect(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
    })))
}

/// Why no connection to the upstream could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve the upstream host: {0}")]
    Resolve(#[source] std::io::Error),
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] std::io::Error),
    #[error("connecting to the upstream timed out after {0:?}")]
    Timeout(Duration),
    #[error("HTTP/1.1 handshake with the upstream failed: {0}")]
    Handshake(#[source] hyper::Error),
}
