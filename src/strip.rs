//! Removes, from every inbound request, the headers only the gateway may set: before any
//! decision is made, protected path or not (docs/design.md §4.1, §5.4).
//!
//! - The internal header. The upstream trusts it as proof of authentication; if a client
//!   could send it, it could claim to be any client. Only the signer sets it again, from
//!   verified state (linkerd's rule for its identity header).
//! - Headers that tell an upstream where a request came from or which URL or method it
//!   really has: `Forwarded`, every `X-Forwarded-*`, `X-Real-IP` and the other client-IP
//!   headers, `X-Original-URL` / `X-Rewrite-URL` (IIS and Symfony route by them, so they
//!   could steer a request to a protected endpoint behind the gateway's back) and the
//!   method-override headers. The upstream client sets `X-Forwarded-For/Proto/Host` from
//!   what the gateway itself saw.
//! - An `x-request-id` that is not one short token of safe characters (it goes into logs
//!   and upstream requests): the access-log layer (trace.rs) then makes a fresh one.
//! - Hop-by-hop headers and every header the client's `Connection` names (RFC 9110
//!   §7.6.1), here rather than on the way out, so that a client cannot name a header the
//!   gateway sets later (`Connection: x-authenticated-client`) and have it removed.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderMap, HeaderName};
use http::Request;
use tower::{Layer, Service};

use crate::trace::REQUEST_ID;
use crate::upstream::remove_where;

/// Client-sent headers that claim facts only the gateway knows: where the request came
/// from, which URL or method it really has. Every `x-forwarded-*` too (-For, -Proto,
/// -Host, -Port, -Prefix, -Ssl, ...).
fn gateway_set(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "forwarded"
            | "x-real-ip"
            | "x-client-ip"
            | "true-client-ip"
            | "client-ip"
            | "x-cluster-client-ip"
            | "cf-connecting-ip"
            | "fastly-client-ip"
            | "x-original-url"
            | "x-rewrite-url"
            | "x-original-uri"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
    ) || name.starts_with("x-forwarded-")
}

/// Longest inbound request id kept.
const MAX_REQUEST_ID: usize = 128;

#[derive(Debug, Clone)]
pub struct StripLayer {
    internal: Arc<HeaderName>,
}

impl StripLayer {
    /// `internal` is the configured internal header name.
    pub fn new(internal: HeaderName) -> Self {
        Self {
            internal: Arc::new(internal),
        }
    }
}

impl<S> Layer<S> for StripLayer {
    type Service = Strip<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Strip {
            inner,
            internal: self.internal.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Strip<S> {
    inner: S,
    internal: Arc<HeaderName>,
}

impl<S, B> Service<Request<B>> for Strip<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        strip(req.headers_mut(), &self.internal);
        self.inner.call(req)
    }
}

/// Removes every header of the module documentation from `headers`.
pub fn strip(headers: &mut HeaderMap, internal: &HeaderName) {
    // docs/design.md §5.4: inbound copies of the internal header are never forwarded.
    // `remove` drops every value of a name.
    remove_where(headers, |name| name == internal || gateway_set(name));
    let mut ids = headers.get_all(REQUEST_ID).iter();
    let acceptable = match (ids.next(), ids.next()) {
        (None, _) => true,
        (Some(id), None) => {
            (1..=MAX_REQUEST_ID).contains(&id.len())
                && id.as_bytes().iter().all(|&b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'~')
                })
        }
        (Some(_), Some(_)) => false,
    };
    if !acceptable {
        headers.remove(REQUEST_ID);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn stripped(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        strip(&mut h, &HeaderName::from_static("x-authenticated-client"));
        h
    }

    #[test]
    fn gateway_set_headers_never_pass() {
        let h = stripped(&[
            ("x-authenticated-client", "forged"),
            ("x-authenticated-client", "forged twice"),
            ("forwarded", "for=1.2.3.4;proto=https"),
            ("x-real-ip", "1.2.3.4"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/admin"),
            ("x-original-url", "/oauth2/token"),
            ("x-rewrite-url", "/oauth2/token"),
            ("x-http-method-override", "PUT"),
            ("true-client-ip", "1.2.3.4"),
            ("accept", "application/json"),
            ("authorization", "Bearer x"),
            ("connection", "keep-alive, x-internal-custom"),
            ("x-internal-custom", "1"),
        ]);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "authorization"]);
    }

    #[test]
    fn request_ids_are_kept_only_when_short_and_plain() {
        for ok in ["abc-123", "4bf92f3577b34da6a3ce929d0e0e4736", "a.b:c_d~e"] {
            assert_eq!(stripped(&[("x-request-id", ok)])[REQUEST_ID], ok, "{ok}");
        }
        let long = "a".repeat(MAX_REQUEST_ID + 1);
        for bad in [
            "",
            "has space",
            "quote\"",
            "semi;colon",
            "<script>",
            long.as_str(),
        ] {
            assert!(
                stripped(&[("x-request-id", bad)]).get(REQUEST_ID).is_none(),
                "{bad:?}"
            );
        }
        assert!(stripped(&[("x-request-id", "a"), ("x-request-id", "b")])
            .get(REQUEST_ID)
            .is_none());
    }
}
