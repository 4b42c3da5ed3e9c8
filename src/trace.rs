//! Request ids, the per-request access line and the per-request tracing span.
//!
//! The id comes from the client's `x-request-id` when present, else it is made here; it
//! goes upstream and back on the response. The access line and the span record method and
//! *path only*: a query string may hold credentials a client should not have sent, so it
//! is never logged.
//!
//! At the default `info` level a request costs one event, its access line, which carries
//! everything about it (request id, method, path, route, client, auth method, outcome,
//! status, latency, and for a request the gateway refused, the fixed reason). The span is
//! `debug`: it gives debug and trace events from the layers below their request context,
//! and costs nothing when they are off (a span per request at `info` was 6% of the CPU
//! instructions a proxied request takes).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::Request;
use rand::RngCore;
use tracing::Span;

use crate::conn::{ClientAddr, IpText, ProxyAddr};
use crate::metrics::{Metrics, Outcome, RouteClass};
use crate::oauth::{AuthMethod, ClientId};

/// The request id header. A `HeaderName`, not a `&str`: looking a header up by `&str`
/// parses and validates the name on every call (~400 instructions each, issue 23).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `<random process prefix>-<counter>`: unique, cheap, no lock.
#[derive(Debug, Clone)]
pub struct MakeId {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl Default for MakeId {
    fn default() -> Self {
        Self {
            prefix: format!("{:08x}", rand::rng().next_u32()).into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeId {
    /// The next id.
    pub fn make(&self) -> Option<HeaderValue> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // `{prefix}-{n:x}` written into a stack buffer: `format!` cost ~0.7k instructions
        // per request.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 64];
        let prefix = self.prefix.as_bytes();
        let len = prefix.len().min(buf.len() - 17);
        buf[..len].copy_from_slice(&prefix[..len]);
        buf[len] = b'-';
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
        for i in 0..digits {
            buf[len + digits - i] = HEX[(n >> (4 * i) & 15) as usize];
        }
        HeaderValue::from_bytes(&buf[..len + 1 + digits]).ok()
    }
}

/// Span with request id, method and path (never the query, never headers).
fn request_span<B>(req: &Request<B>, id: Option<&HeaderValue>) -> Span {
    let id = id.and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::debug_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        version = ?req.version(),
    )
}

/// What the layers below learned about one request, for its access line and metrics.
/// The access-log layer puts one in the request's extensions; route and auth fill it in.
/// Only closed-set values and *registered* client ids are ever written here.
#[derive(Debug, Default)]
pub struct Notes(Mutex<Note>);

#[derive(Debug, Default, Clone)]
pub struct Note {
    pub route: Option<RouteClass>,
    /// Set once authentication ran (protected paths only).
    pub outcome: Option<Outcome>,
    pub auth_method: Option<AuthMethod>,
    /// The client, when the id presented is registered (authenticated or not).
    pub client_id: Option<ClientId>,
    /// Why the gateway answered with an error itself: fixed text from error.rs, never
    /// request data.
    pub error: Option<String>,
    /// In shadow (auth/shadow.rs): the verdict, which was not enforced. `outcome` stays
    /// unset, so `secretgate_authentications_total` counts only enforced verdicts.
    pub shadow_outcome: Option<Outcome>,
}

impl Notes {
    fn with(&self, f: impl FnOnce(&mut Note)) {
        // A poisoned lock only means a panic elsewhere mid-write; the note is still usable.
        let mut note = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut note);
    }

    pub fn route(&self, class: RouteClass) {
        self.with(|n| n.route = Some(class));
    }

    pub fn auth_method(&self, method: AuthMethod) {
        self.with(|n| n.auth_method = Some(method));
    }

    /// `client_id` must be a registered id: unknown ids are attacker-chosen text.
    pub fn client(&self, client_id: &ClientId) {
        self.with(|n| n.client_id = Some(client_id.clone()));
    }

    pub fn outcome(&self, outcome: Outcome) {
        self.with(|n| n.outcome = Some(outcome));
    }

    /// The verdict on a request forwarded in shadow.
    pub fn shadow(&self, outcome: Outcome) {
        self.with(|n| n.shadow_outcome = Some(outcome));
    }

    /// `reason` must be fixed text (an error chain from error.rs), never request data.
    pub fn error(&self, reason: String) {
        self.with(|n| n.error = Some(reason));
    }

    pub fn snapshot(&self) -> Note {
        let note = self.0.lock().unwrap_or_else(|p| p.into_inner());
        note.clone()
    }
}

/// Records into the request's [`Notes`], if it has them (the benches and unit tests
/// call inner layers without the access-log layer).
pub fn note<B>(req: &Request<B>, f: impl FnOnce(&Notes)) {
    if let Some(notes) = req.extensions().get::<Arc<Notes>>() {
        f(notes);
    }
}

/// The request id (the client's `x-request-id` if strip.rs kept it, else a new one: set on
/// the request, so it goes upstream, and on the response unless the response has one), one
/// access line when the response head is ready (request id, method, path, route class,
/// client id, auth method, outcome, status, latency, refusal reason), one debug span
/// around the request, and the request and authentication metrics. Does not wrap the body
/// (streamed responses stay zero-copy). A request abandoned by its client (connection closed first) still gets its
/// line, with status 499 as nginx writes it.
#[derive(Debug, Clone)]
pub struct AccessLogLayer {
    metrics: Arc<Metrics>,
    ids: MakeId,
}

impl AccessLogLayer {
    pub fn new(metrics: Arc<Metrics>, ids: MakeId) -> Self {
        Self { metrics, ids }
    }
}

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            metrics: self.metrics.clone(),
            ids: self.ids.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
    metrics: Arc<Metrics>,
    ids: MakeId,
}

impl<S, B, RB> tower::Service<Request<B>> for AccessLog<S>
where
    S: tower::Service<Request<B>, Response = http::Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Done here rather than with tower-http's SetRequestId and PropagateRequestId
        // layers: those also put the id in the request's and the response's extensions,
        // which nothing reads (~1.2k instructions per request, issue 23).
        let request_id = match req.headers().get(REQUEST_ID) {
            Some(id) => Some(id.clone()),
            None => {
                let id = self.ids.make();
                if let Some(id) = &id {
                    req.headers_mut().insert(REQUEST_ID, id.clone());
                }
                id
            }
        };
        let span = request_span(&req, request_id.as_ref());
        let line = Line {
            addresses: Addresses::of(&req),
            request_id,
            method: req.method().clone(),
            uri: req.uri().clone(),
        };
        let notes = Arc::new(Notes::default());
        req.extensions_mut().insert(notes.clone());
        let inner = {
            let _enter = span.enter();
            self.inner.call(req)
        };
        AccessLogFuture {
            inner,
            record: Some(Record {
                span,
                line,
                notes,
                metrics: self.metrics.clone(),
                start: Instant::now(),
            }),
        }
    }
}

/// The addresses on an access line: `client_addr`, the client's (from a trusted proxy's
/// PROXY header, else the TCP peer), and `peer`, the TCP peer's (the proxy, if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub client: IpAddr,
    pub peer: IpAddr,
}

impl Addresses {
    /// What the server put on the request (nothing, for a request that did not come over
    /// a connection: the in-process tests).
    fn of<B>(req: &Request<B>) -> Option<Addresses> {
        let client = req.extensions().get::<ClientAddr>()?.0.ip();
        let peer = req
            .extensions()
            .get::<ProxyAddr>()
            .map_or(client, |p| p.0.ip());
        Some(Addresses { client, peer })
    }
}

/// What the access line needs from the request head (cheap clones: shared bytes).
struct Line {
    addresses: Option<Addresses>,
    request_id: Option<HeaderValue>,
    method: http::Method,
    uri: http::Uri,
}

/// What the access line needs once the response head is known.
struct Record {
    span: Span,
    line: Line,
    notes: Arc<Notes>,
    metrics: Arc<Metrics>,
    start: Instant,
}

impl Record {
    fn finish(self, status: u16) {
        let _enter = self.span.enter();
        let latency = self.start.elapsed();
        let note = self.notes.snapshot();
        let route = note.route.unwrap_or(RouteClass::invalid);
        self.metrics.request(route, status, latency);
        if let Some(outcome) = note.outcome {
            self.metrics
                .authentication(note.auth_method, outcome, note.client_id.as_ref());
        }
        if let Some(outcome) = note.shadow_outcome {
            self.metrics.shadow_decision(outcome);
        }
        let request_id = self
            .line
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let message = if status == 499 {
            "abandoned"
        } else {
            "response"
        };
        access_line(
            &AccessLine {
                request_id,
                addresses: self.line.addresses,
                method: self.line.method.as_str(),
                path: self.line.uri.path(),
                status,
                latency,
                route,
                message,
            },
            &note,
        );
    }
}

/// The fields of one access line besides the notes.
struct AccessLine<'a> {
    request_id: &'a str,
    addresses: Option<Addresses>,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency: Duration,
    route: RouteClass,
    message: &'a str,
}

/// Writes one access line. A failure of the gateway's own (a 5xx it wrote) goes out at
/// WARN, so that a `warn` filter still shows it.
fn access_line(line: &AccessLine<'_>, note: &Note) {
    let client = line.addresses.map(|a| IpText::new(a.client));
    let peer = line.addresses.map(|a| IpText::new(a.peer));
    macro_rules! access {
        ($level:expr) => {
            if !tracing::enabled!(target: crate::logline::ACCESS, $level) {
                return;
            }
            if access_line_directly($level, line, note, client.as_ref(), peer.as_ref()) {
                return;
            }
            tracing::event!(
                target: crate::logline::ACCESS,
                $level,
                request_id = line.request_id,
                client_addr = client.as_ref().map(|a| tracing::field::display(a.as_str())),
                peer = peer.as_ref().map(|a| tracing::field::display(a.as_str())),
                method = line.method,
                path = line.path,
                status = line.status,
                latency_us = line.latency.as_micros() as u64,
                route = line.route.as_str(),
                client_id = note.client_id.as_ref().map_or("-", ClientId::as_str),
                auth_method = note.auth_method.map_or("-", AuthMethod::as_str),
                outcome = note.outcome.map_or("-", Outcome::as_str),
                error = note.error.as_deref(),
                shadow_outcome = note.shadow_outcome.map(Outcome::as_str),
                "{}",
                line.message
            )
        };
    }
    if note.error.is_some() && line.status >= 500 {
        access!(tracing::Level::WARN);
    } else {
        access!(tracing::Level::INFO);
    }
}

/// Writes the access line without tracing's dispatch, when the binary's subscriber is the
/// one logline.rs reproduces and no span is open (at `debug` the request span is, and the
/// stock formatter writes its context); `false` if it did not, and the caller emits the
/// event. These fields are the event's in [`access_line`], in its order: change both
/// together (logline.rs's tests hold this list, written directly, to the stock
/// formatter's line for that event).
fn access_line_directly(
    level: tracing::Level,
    line: &AccessLine<'_>,
    note: &Note,
    client: Option<&IpText>,
    peer: Option<&IpText>,
) -> bool {
    use crate::logline::Value::{Shown, Str, U64};
    if !Span::current().is_none() {
        return false;
    }
    let mut fields = [("", U64(0)); 14];
    let mut n = 0;
    let mut push = |name, value| {
        fields[n] = (name, value);
        n += 1;
    };
    push("request_id", Str(line.request_id));
    if let Some(client) = client {
        push("client_addr", Shown(client.as_str()));
    }
    if let Some(peer) = peer {
        push("peer", Shown(peer.as_str()));
    }
    push("method", Str(line.method));
    push("path", Str(line.path));
    push("status", U64(u64::from(line.status)));
    push("latency_us", U64(line.latency.as_micros() as u64));
    push("route", Str(line.route.as_str()));
    push(
        "client_id",
        Str(note.client_id.as_ref().map_or("-", ClientId::as_str)),
    );
    push(
        "auth_method",
        Str(note.auth_method.map_or("-", AuthMethod::as_str)),
    );
    push("outcome", Str(note.outcome.map_or("-", Outcome::as_str)));
    if let Some(error) = note.error.as_deref() {
        push("error", Str(error));
    }
    if let Some(shadow) = note.shadow_outcome {
        push("shadow_outcome", Str(shadow.as_str()));
    }
    crate::logline::write_access(level, &fields[..n], line.message)
}

/// The access line and the request metric of a request head refused before it reached the
/// stack (server/refusal.rs): route `invalid`; method and path `-` when hyper read none.
/// `reason` is fixed text from error.rs.
pub fn head_refused(
    metrics: &Metrics,
    addresses: Option<Addresses>,
    (method, path): (&str, &str),
    request_id: &str,
    status: u16,
    reason: String,
    latency: Duration,
) {
    metrics.request(RouteClass::invalid, status, latency);
    let note = Note {
        error: Some(reason),
        ..Note::default()
    };
    access_line(
        &AccessLine {
            request_id,
            addresses,
            method,
            path,
            status,
            latency,
            route: RouteClass::invalid,
            message: "refused",
        },
        &note,
    );
}

pin_project_lite::pin_project! {
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        record: Option<Record>,
    }

    impl<F> PinnedDrop for AccessLogFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the response head: the client went away (or the connection
            // was torn down). Still one line and one count per request.
            if let Some(record) = this.project().record.take() {
                record.finish(499);
            }
        }
    }
}

impl<F, RB, E> std::future::Future for AccessLogFuture<F>
where
    F: std::future::Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let mut out = {
            let _enter = this.record.as_ref().map(|r| r.span.enter());
            std::task::ready!(this.inner.poll(cx))
        };
        if let (Ok(res), Some(record)) = (&mut out, this.record.take()) {
            if let Some(id) = &record.line.request_id {
                if !res.headers().contains_key(REQUEST_ID) {
                    res.headers_mut().insert(REQUEST_ID, id.clone());
                }
            }
            record.finish(res.status().as_u16());
        }
        std::task::Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_prefix_dash_hex_counter() {
        for n in [0u64, 1, 9, 10, 15, 16, 255, 256, 0xdead_beef, u64::MAX] {
            let ids = MakeId {
                prefix: "0a1b2c3d".into(),
                next: Arc::new(AtomicU64::new(n)),
            };
            assert_eq!(ids.make().unwrap(), format!("0a1b2c3d-{n:x}").as_str());
        }
        let ids = MakeId::default();
        let (a, b) = (ids.make().unwrap(), ids.make().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 10);
    }
}
