//! Upstream credentials (`clients[].upstream_credential`, docs/design.md §10.2): for a token
//! service that cannot change at all, the gateway presents the one legacy secret that
//! service knows, once the client authenticated in whatever way it is registered for.
//!
//! Invariants:
//! - only a request the auth layer authenticated (an [`Authenticated`] extension) and did
//!   not mark [`Shadowed`] gets it; the client's own credential was already removed
//!   (auth/rebuild.rs), so the upstream sees exactly one;
//! - `client_secret_basic`: `Authorization: Basic base64(urlencode(client_id) ":"
//!   urlencode(secret))` (RFC 6749 §2.3.1), marked sensitive (never printed, never
//!   HPACK-indexed); `client_secret_post`: `&client_secret=…` appended to the rebuilt
//!   form, which already holds exactly one `client_id` (rebuild.rs). A body that is not a
//!   form cannot carry it: 400, nothing forwarded;
//! - this runs before the signer, which hashes [`Authenticated::body`]: the header's
//!   `body_sha256` is over the body actually forwarded, secret included;
//! - the prepared values print as `***`; nothing here logs.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::{self, Either, Ready};
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response};
use tower::{Layer, Service};

use crate::auth::shadow::Shadowed;
use crate::auth::Authenticated;
use crate::body::{full, Body};
use crate::config::{RolloutConfig, UpstreamMethod};
use crate::error::{GatewayError, RequestError};
use crate::oauth::ClientId;

/// One client's credential, ready to add.
enum Prepared {
    /// The whole `Authorization` value, sensitive.
    Basic(HeaderValue),
    /// `&client_secret=<form-encoded secret>`.
    Post(Bytes),
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Prepared::Basic(_) => "Basic(***)",
            Prepared::Post(_) => "Post(***)",
        })
    }
}

/// Every client's upstream credential, prepared once per config.
#[derive(Debug, Clone)]
pub struct UpstreamCredentialLayer {
    credentials: Arc<HashMap<ClientId, Prepared>>,
}

impl UpstreamCredentialLayer {
    pub fn new(rollout: &RolloutConfig) -> Self {
        let credentials = rollout
            .clients
            .iter()
            .filter_map(|(id, c)| {
                let credential = c.upstream_credential.as_ref()?;
                // Validation required UTF-8 (config/rollout.rs).
                let secret = std::str::from_utf8(credential.secret.expose()).ok()?;
                let prepared = match credential.method {
                    UpstreamMethod::ClientSecretBasic => {
                        let mut value =
                            HeaderValue::try_from(crate::auth::basic::encode(id.as_str(), secret))
                                .ok()?;
                        value.set_sensitive(true);
                        Prepared::Basic(value)
                    }
                    UpstreamMethod::ClientSecretPost => {
                        let mut suffix = String::from("&client_secret=");
                        suffix.push_str(&crate::auth::form::form_encode_component(secret));
                        Prepared::Post(Bytes::from(suffix))
                    }
                };
                Some((id.clone(), prepared))
            })
            .collect();
        Self {
            credentials: Arc::new(credentials),
        }
    }

    /// Whether any client has one (otherwise the layer is not in the stack at all).
    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }
}

impl<S> Layer<S> for UpstreamCredentialLayer {
    type Service = UpstreamCredential<S>;
    fn layer(&self, inner: S) -> UpstreamCredential<S> {
        UpstreamCredential {
            inner,
            credentials: self.credentials.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamCredential<S> {
    inner: S,
    credentials: Arc<HashMap<ClientId, Prepared>>,
}

impl<S> Service<Request<Body>> for UpstreamCredential<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = Either<Ready<Result<Response<Body>, GatewayError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match self.present(req) {
            Ok(req) => Either::Right(self.inner.call(req)),
            Err(e) => Either::Left(future::ready(Err(e))),
        }
    }
}

impl<S> UpstreamCredential<S> {
    fn present(&self, mut req: Request<Body>) -> Result<Request<Body>, GatewayError> {
        if req.extensions().get::<Shadowed>().is_some() {
            return Ok(req);
        }
        let Some(who) = req.extensions().get::<Authenticated>() else {
            return Ok(req);
        };
        let Some(prepared) = self.credentials.get(&who.client_id) else {
            return Ok(req);
        };
        match prepared {
            Prepared::Basic(value) => {
                // The client's own Authorization went in rebuild.rs: this is the only one.
                req.headers_mut().insert(AUTHORIZATION, value.clone());
                Ok(req)
            }
            Prepared::Post(suffix) => {
                // rebuild.rs re-encoded every form as urlencoded, with one client_id.
                let form = req
                    .headers()
                    .get(CONTENT_TYPE)
                    .is_some_and(|v| v == "application/x-www-form-urlencoded");
                if !form {
                    return Err(RequestError::UnsupportedContentType.into());
                }
                let mut who = req
                    .extensions_mut()
                    .remove::<Authenticated>()
                    .ok_or(GatewayError::NotAuthenticated)?;
                let mut body = BytesMut::with_capacity(who.body.len() + suffix.len());
                body.extend_from_slice(&who.body);
                body.extend_from_slice(suffix);
                who.body = body.freeze();
                let (mut parts, _) = req.into_parts();
                parts
                    .headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(who.body.len()));
                let body = full(who.body.clone());
                parts.extensions.insert(who);
                Ok(Request::from_parts(parts, body))
            }
        }
    }
}
