//! Rules on the request head that hold for every path, checked before routing: header names
//! and the authority must mean the same thing to every server behind the gateway
//! (docs/design.md §4.1).
//!
//! - **Header names with `_`.** CGI (RFC 3875 §4.1.18), WSGI, PHP and IIS pass headers to the
//!   application as `HTTP_X_FORWARDED_FOR`, so `X_Forwarded_For` and `X-Forwarded-For`
//!   arrive as the same variable: an underscore spelling would slip past the strip layer
//!   (`x_authenticated_client`, `X_Original_URL`). As nginx does by default
//!   (`underscores_in_headers off`), every such header is removed
//!   (`containment.underscore_headers: drop`), or the request is refused with `400`
//!   (`refuse`). A header named after a client credential (`client_secret`) is left in
//!   place for the authentication or containment checks, which refuse it (`400`): dropped
//!   here it would be silent, and a client sending it should learn it is wrong.
//! - **Userinfo in the authority** (`id:secret@host`, RFC 9110 §4.2.4: deprecated, a sender
//!   must not generate it) in the request target, `:authority` or `Host`: `400`. It would be
//!   copied into `X-Forwarded-Host` and logged.
//! - **More than one `Host`, or a `Host` that disagrees with the target's authority**
//!   (absolute form, or HTTP/2 `:authority`): `400` (RFC 9112 §3.2, RFC 9113 §8.3.1). Which
//!   one a server uses differs, so the gateway would not know which host the upstream saw.

use std::task::{Context, Poll};

use futures_util::future::{self, Either, Ready};
use http::header::HOST;
use http::{HeaderMap, Request, Response};
use tower::{Layer, Service};

use crate::auth::smuggled;
use crate::body::Body;
use crate::config::UnderscoreHeaders;
use crate::error::{GatewayError, RequestError};
use crate::upstream::remove_where;

#[derive(Debug, Clone)]
pub struct HeadRulesLayer {
    underscores: UnderscoreHeaders,
}

impl HeadRulesLayer {
    pub fn new(underscores: UnderscoreHeaders) -> Self {
        Self { underscores }
    }
}

impl<S> Layer<S> for HeadRulesLayer {
    type Service = HeadRules<S>;
    fn layer(&self, inner: S) -> HeadRules<S> {
        HeadRules {
            inner,
            underscores: self.underscores,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HeadRules<S> {
    inner: S,
    underscores: UnderscoreHeaders,
}

impl<S> Service<Request<Body>> for HeadRules<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = Either<Ready<Result<Response<Body>, GatewayError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        match check(&mut req, self.underscores) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(e) => Either::Left(future::ready(Err(e.into()))),
        }
    }
}

/// Applies the rules of the module documentation to a request head.
pub fn check(req: &mut Request<Body>, underscores: UnderscoreHeaders) -> Result<(), RequestError> {
    check_authority(req.uri(), req.headers())?;
    let underscored = |name: &http::HeaderName| {
        name.as_str().contains('_') && !smuggled::is_credential_header(name)
    };
    if req.headers().keys().any(underscored) {
        match underscores {
            // nginx `underscores_in_headers off`: CGI-style servers read `_` as `-`.
            UnderscoreHeaders::Drop => remove_where(req.headers_mut(), underscored),
            UnderscoreHeaders::Refuse => return Err(RequestError::UnderscoreHeader),
        }
    }
    Ok(())
}

fn check_authority(uri: &http::Uri, headers: &HeaderMap) -> Result<(), RequestError> {
    let target = uri.authority().map(|a| a.as_str());
    let mut hosts = headers.get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        // RFC 9112 §3.2: more than one Host field line → 400.
        (Some(_), Some(_)) => return Err(RequestError::AmbiguousHost),
        (host, _) => host.map(|h| h.as_bytes()),
    };
    // RFC 9110 §4.2.4: userinfo is deprecated in http(s) URIs; here it would be a
    // credential copied into X-Forwarded-Host and the logs.
    if target.is_some_and(|t| t.contains('@')) || host.is_some_and(|h| h.contains(&b'@')) {
        return Err(RequestError::UserinfoInAuthority);
    }
    // RFC 9113 §8.3.1 and RFC 9112 §3.2.2: the target's authority and Host must name one
    // host, or the gateway cannot know which one the upstream reads.
    if let (Some(target), Some(host)) = (target, host) {
        if !target.as_bytes().eq_ignore_ascii_case(host.trim_ascii()) {
            return Err(RequestError::AmbiguousHost);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut b = Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(full("")).unwrap()
    }

    #[test]
    fn underscore_headers_are_dropped_or_refused() {
        let headers = [
            ("x_authenticated_client", "billing"),
            ("X_Original_URL", "/oauth2/token"),
            ("x_http_method_override", "POST"),
            ("x_forwarded_for", "10.0.0.1"),
            ("accept", "*/*"),
            ("client_secret", "s"),
        ];
        let mut req = request("/x", &headers);
        check(&mut req, UnderscoreHeaders::Drop).unwrap();
        let mut left: Vec<_> = req.headers().keys().map(|k| k.as_str()).collect();
        left.sort();
        // The credential-named one is left for containment to refuse.
        assert_eq!(left, ["accept", "client_secret"]);
        let mut req = request("/x", &headers[..1]);
        assert_eq!(
            check(&mut req, UnderscoreHeaders::Refuse),
            Err(RequestError::UnderscoreHeader)
        );
        let mut req = request("/x", &[("accept", "*/*"), ("x-request-id", "a_b")]);
        assert_eq!(check(&mut req, UnderscoreHeaders::Refuse), Ok(()));
    }

    #[test]
    fn userinfo_and_ambiguous_hosts_are_refused() {
        let refused = [
            ("https://id:secret@auth.example.com/x", vec![]),
            ("https://id@auth.example.com/x", vec![]),
            ("/x", vec![("host", "id:secret@auth.example.com")]),
            ("/x", vec![("host", "a.example"), ("host", "b.example")]),
            ("/x", vec![("host", "a.example"), ("host", "a.example")]),
            ("https://a.example/x", vec![("host", "b.example")]),
        ];
        for (uri, headers) in refused {
            let mut req = request(uri, &headers);
            assert!(
                check(&mut req, UnderscoreHeaders::Drop).is_err(),
                "{uri} {headers:?}"
            );
        }
        for (uri, headers) in [
            ("/x", vec![("host", "auth.example.com")]),
            (
                "https://auth.example.com/x",
                vec![("host", "Auth.Example.com")],
            ),
            ("https://auth.example.com:443/x", vec![]),
            ("/x", vec![]),
        ] {
            let mut req = request(uri, &headers);
            assert_eq!(check(&mut req, UnderscoreHeaders::Drop), Ok(()), "{uri}");
        }
    }
}
