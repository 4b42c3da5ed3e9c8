//! One client connection, from accepted socket to close: the connection cap, the TLS
//! handshake (bounded by `limits.header_read_timeout`), HTTP/1.1 or HTTP/2 as ALPN chose
//! (served by hyper's own connection for that protocol: guessing it from the first bytes
//! cost a second read buffer, 8 KiB per connection),
//! the stack for every request, and the two ways a connection is asked to end gracefully
//! (ending.rs):
//! the server stopping, or the connection having nothing in flight for
//! `limits.idle_timeout` (an HTTP/1 connection closes after its in-flight response, an
//! HTTP/2 one gets GOAWAY and finishes its streams).
//!
//! hyper borrows the TLS stream, so that the connection gets it back when hyper is done:
//! an HTTP/1 head hyper refused, or that did not arrive in time (head.rs), is answered
//! with the gateway's own error (refusal.rs), an HTTP/2 header list over
//! `limits.max_header_size` on its stream, and every connection is closed by lingering
//! (linger.rs), so that the client reads the last answer.
//!
//! Invariant: the number of accepted connections never exceeds `limits.max_connections`
//! (counted over all workers, before the handshake, so a flood of connections costs no
//! TLS work); one over the cap is closed at once and counted.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::future::Either;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::ending::{Activity, Ending};
use super::head::{Exchanges, Finished, HeadGuard, HeadTimeouts};
use super::proxy::{self, Origin};
use super::{linger, refusal};
use crate::body::{Body, BodyError};
use crate::conn::{ClientAddr, ClientCertificate, ProxyAddr};
use crate::error::HeadRefusal;
use crate::metrics::{ConnectionRefusal, HandshakeFailure, Metrics};
use crate::reload::Generation;
use crate::trace::{Addresses, MakeId};

/// Open connections over all workers, against `limits.max_connections`.
#[derive(Debug, Default)]
pub struct Slots {
    open: AtomicUsize,
}

/// One taken slot; given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Slots {
    /// A slot, unless `max` connections are open already.
    pub fn take(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What every connection of one worker shares.
pub struct Context {
    pub worker: usize,
    pub tls: TlsAcceptor,
    pub current: Arc<ArcSwap<Generation>>,
    pub metrics: Arc<Metrics>,
    pub slots: Arc<Slots>,
    /// Request ids for the answers to refused heads (refusal.rs).
    pub ids: MakeId,
}

/// Serves one accepted connection to its end. `stop` turning true asks it to finish
/// gracefully; `_alive` tells the worker, by being dropped, that it has ended.
pub async fn serve(
    ctx: Arc<Context>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
    _alive: tokio::sync::mpsc::Sender<()>,
) {
    // Connection settings come from the generation current at accept time; each request
    // below loads the generation current when it arrives.
    let generation = ctx.current.load_full();
    let limits = &generation.config.limits;
    let Some(_slot) = ctx.slots.take(limits.max_connections) else {
        // Refused before any TLS work: the socket just closes.
        ctx.metrics.connection_refused(ConnectionRefusal::limit);
        tracing::debug!(%peer, "limits.max_connections reached: connection refused");
        return;
    };
    let _ = tcp.set_nodelay(true);
    let idle_timeout = limits.idle_timeout;
    let timeouts = HeadTimeouts {
        head: limits.header_read_timeout,
        keepalive: limits.keepalive_timeout,
    };
    // The PROXY header and the TLS handshake share one deadline: a peer cannot have it
    // twice by being slow with each.
    let deadline = Instant::now() + limits.header_read_timeout;
    let origin = match &generation.config.listen_proxy_protocol {
        None => Origin {
            client: peer,
            carried: false,
        },
        Some(pp) => {
            // Only a listed peer may name the client: anyone can write an address into a
            // header (proxy-protocol.txt §2: trust it only from known senders).
            let trusted = pp.trusts(peer.ip());
            match tokio::time::timeout_at(deadline, proxy::origin(&mut tcp, peer, trusted)).await {
                Ok(Ok(origin)) => origin,
                Ok(Err(refusal)) => {
                    if let Some(reason) = refusal.metric() {
                        ctx.metrics.connection_refused(reason);
                    }
                    tracing::debug!(%peer, reason = refusal.as_str(), "connection closed");
                    return;
                }
                // A trusted peer must send its header first.
                Err(_) if trusted => {
                    ctx.metrics
                        .connection_refused(ConnectionRefusal::proxy_header_missing);
                    tracing::debug!(%peer, "no PROXY header in time: connection closed");
                    return;
                }
                // Anyone else's silence is the handshake's timeout, counted as such.
                Err(_) => {
                    ctx.metrics.tls_handshake_failed(HandshakeFailure::timeout);
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    // Fallible: a failed handshake hands the socket back, so the failure is counted
    // before the client sees the connection close.
    let handshake = ctx.tls.accept(tcp).into_fallible();
    let mut tls = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err((e, tcp))) => {
            ctx.metrics.tls_handshake_failed(HandshakeFailure::error);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            drop(tcp);
            return;
        }
        Err(_) => {
            ctx.metrics.tls_handshake_failed(HandshakeFailure::timeout);
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let _open = ctx.metrics.connection();
    let activity = Activity::new();
    // The protocol ALPN agreed on; without ALPN, HTTP/1.1 (HTTP/2 over TLS requires it).
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let requests = Requests {
        ctx: ctx.clone(),
        client: origin.client,
        // The TCP peer, when it is a proxy that named the client (the access line's `peer`).
        proxy: origin.carried.then_some(peer),
        // RFC 8705: what the client presented, judged per request by the auth layer.
        client_cert: ClientCertificate::from_chain(tls.get_ref().1.peer_certificates()),
        activity: activity.clone(),
        // HTTP/1 heads are bounded by hyper's read buffer; HTTP/2 header lists here.
        max_header_list: h2.then_some(limits.max_header_size),
    };
    let http = generation.http.clone();
    drop(generation);

    let ending = Ending {
        peer,
        stop,
        activity,
        idle_timeout,
    };
    if h2 {
        let svc = hyper::service::service_fn(move |req| requests.call(req));
        ending
            .drive(http.h2.serve_connection(TokioIo::new(&mut tls), svc))
            .await;
        linger::close(tls, None).await;
        return;
    }
    let exchanges = Arc::new(Exchanges::default());
    let mut guard = HeadGuard::new(tls, exchanges.clone(), timeouts);
    let svc = hyper::service::service_fn(move |req| {
        exchanges.dispatched();
        let response = requests.call(req);
        let exchanges = exchanges.clone();
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(response.map(|body| Finished::new(body, exchanges)))
        }
    });
    ending
        .drive(http.h1.serve_connection(TokioIo::new(&mut guard), svc))
        .await;
    let (tls, ended, head_began) = guard.into_parts();
    let answer = match ended.and_then(|e| e.refusal()) {
        Some(refusal) => {
            tracing::debug!(%peer, %refusal, "request head refused");
            let generation = ctx.current.load();
            let addresses = Addresses {
                client: origin.client.ip(),
                peer: peer.ip(),
            };
            let recorder = ctx.recorder(&generation.config.realm, addresses);
            Some(recorder.answer(refusal, head_began.elapsed()).await)
        }
        None => None,
    };
    linger::close(tls, answer).await;
}

impl Context {
    fn recorder<'a>(&'a self, realm: &'a str, addresses: Addresses) -> refusal::Recorder<'a> {
        refusal::Recorder {
            realm,
            ids: &self.ids,
            metrics: &self.metrics,
            addresses: Some(addresses),
        }
    }
}

/// What the connection's service needs to hand a request to the stack.
#[derive(Clone)]
struct Requests {
    ctx: Arc<Context>,
    client: SocketAddr,
    proxy: Option<SocketAddr>,
    client_cert: Option<ClientCertificate>,
    activity: Arc<Activity>,
    /// HTTP/2: `limits.max_header_size`, for the header list.
    max_header_list: Option<usize>,
}

impl Requests {
    fn call(
        &self,
        req: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static {
        if let Some(max) = self.max_header_list {
            // docs/design.md §8.7: h2 decoded this list under its own, larger bound; one
            // over `limits.max_header_size` is refused with the gateway's 431 (RFC 6585
            // §5), on its stream, and never reaches the stack.
            if refusal::header_list_size(&req) > max {
                let generation = self.ctx.current.load();
                let addresses = Addresses {
                    client: self.client.ip(),
                    peer: self.proxy.unwrap_or(self.client).ip(),
                };
                let response = self
                    .ctx
                    .recorder(&generation.config.realm, addresses)
                    .response(
                        HeadRefusal::TooLarge,
                        (req.method().as_str(), req.uri().path()),
                        Duration::ZERO,
                    );
                return Either::Left(std::future::ready(Ok(response)));
            }
        }
        let in_flight = self.activity.begin();
        let mut req = req.map(|b| b.map_err(BodyError::new).boxed_unsync());
        req.extensions_mut().insert(ClientAddr(self.client));
        if let Some(proxy) = self.proxy {
            req.extensions_mut().insert(ProxyAddr(proxy));
        }
        if let Some(cert) = &self.client_cert {
            req.extensions_mut().insert(cert.clone());
        }
        // Per request, not per connection: a reload applies to kept-alive connections
        // from their next request on.
        let response = self
            .ctx
            .current
            .load()
            .stack(self.ctx.worker)
            .clone()
            .oneshot(req);
        Either::Right(async move {
            let response = response.await;
            drop(in_flight);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_never_exceed_the_cap_and_come_back() {
        let slots = Arc::new(Slots::default());
        let a = slots.take(2).unwrap();
        let _b = slots.take(2).unwrap();
        assert!(slots.take(2).is_none());
        drop(a);
        assert!(slots.take(2).is_some());
    }
}
