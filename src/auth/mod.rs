//! Client authentication for protected endpoints: the heart of the gateway.
//!
//! For a request marked [`Protected`] by routing: require POST, buffer the body within
//! limits, decode the form (urlencoded or multipart), extract exactly one credential,
//! verify it against the registry (Basic, post) or as an assertion (jwt, with replay
//! protection), then rebuild the request without any secret material and attach an
//! [`Authenticated`] extension for the signer. Unprotected requests pass straight through.
//! Invariant: a request leaves this layer either rejected or carrying no `Authorization:
//! Basic`, `client_secret`, `client_assertion` or `client_assertion_type` (DESIGN.md §4).

pub mod basic;
pub mod extract;
pub mod form;
pub mod jwt;
pub mod registry;
pub mod replay;
pub mod throttle;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::config::{Config, Limits};
use crate::error::{AuthFailure, GatewayError, RequestError};
use crate::metrics::Outcome;
use crate::route::Protected;
use crate::trace::Notes;
use crate::Body;
use extract::{BodyForm, Extracted, Presented};
use registry::Registry;
use replay::{ReplayError, ReplayStore};
use throttle::Throttle;

use crate::upstream::ClientAddr;

/// The three client-secret methods (RFC 7591 §2 `token_endpoint_auth_method` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
}

impl AuthMethod {
    pub fn from_name(name: &str) -> Option<AuthMethod> {
        match name {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "client_secret_jwt" => Some(AuthMethod::ClientSecretJwt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::ClientSecretJwt => "client_secret_jwt",
        }
    }
}

/// Who authenticated, and the exact body that will be forwarded. Set only by [`Auth`].
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub client_id: String,
    pub method: AuthMethod,
    pub body: Bytes,
}

/// Everything authentication needs, built once per config.
pub struct Authenticator {
    registry: Registry,
    replay: Arc<dyn ReplayStore>,
    throttle: Arc<Throttle>,
    issuer: String,
    public_url: String,
    assertion: crate::config::Assertion,
    limits: Limits,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("registry", &self.registry)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

enum Kind {
    UrlEncoded,
    Multipart(String),
    Other,
}

impl Authenticator {
    /// An authenticator with fresh throttle state.
    pub fn new(config: &Config, replay: Arc<dyn ReplayStore>) -> Self {
        Self::with_state(config, replay, Arc::new(Throttle::new(&config.throttle)))
    }

    /// An authenticator over replay and throttle state that outlive it: a reload builds a
    /// new authenticator but must not forget used jtis or recent failures.
    pub fn with_state(
        config: &Config,
        replay: Arc<dyn ReplayStore>,
        throttle: Arc<Throttle>,
    ) -> Self {
        Self {
            registry: Registry::new(&config.clients),
            replay,
            throttle,
            issuer: config.issuer.clone(),
            public_url: config.public_url.clone(),
            assertion: config.assertion.clone(),
            limits: config.limits.clone(),
        }
    }

    pub fn replay_store(&self) -> &Arc<dyn ReplayStore> {
        &self.replay
    }

    /// Authenticates a protected request and returns it rebuilt without secrets. The
    /// outcome, method and (registered) client id go into the request's [`Notes`].
    pub async fn authenticate(&self, req: Request<Body>) -> Result<Request<Body>, GatewayError> {
        let notes = req.extensions().get::<Arc<Notes>>().cloned();
        let result = self.authenticate_noted(req, notes.as_deref()).await;
        if let Some(notes) = notes {
            notes.outcome(match &result {
                Ok(_) => Outcome::ok,
                Err(e) => Outcome::of(e),
            });
        }
        result
    }

    async fn authenticate_noted(
        &self,
        req: Request<Body>,
        notes: Option<&Notes>,
    ) -> Result<Request<Body>, GatewayError> {
        // RFC 6749 §3.2: the token endpoint takes POST; so do introspection, revocation, PAR.
        if req.method() != Method::POST {
            crate::limit::drain(req.into_body()).await;
            return Err(RequestError::MethodNotPost.into());
        }
        let (mut parts, body) = req.into_parts();
        let bytes = crate::limit::read_body(
            &parts.headers,
            body,
            self.limits.max_body,
            self.limits.body_read_timeout,
        )
        .await?;

        let params = match content_kind(&parts.headers)? {
            Kind::UrlEncoded => Some(form::parse_urlencoded(&bytes)?),
            Kind::Multipart(boundary) => {
                Some(form::parse_multipart(bytes.clone(), boundary).await?)
            }
            Kind::Other => None,
        };
        let body_form = match &params {
            Some(p) => BodyForm::Form(p),
            None => BodyForm::Opaque {
                empty: bytes.is_empty(),
            },
        };
        let Extracted {
            presented,
            body_client_id,
        } = extract::extract(&parts.headers, parts.uri.query(), &body_form)?;

        let peer = parts.extensions.get::<ClientAddr>().map(|a| a.0.ip());
        let (client_id, method) = self.verify(
            presented,
            body_client_id.as_deref(),
            parts.uri.path(),
            peer,
            notes,
        )?;

        // Rebuild the body without secret material (DESIGN.md §4).
        let forwarded = match &params {
            Some(p) => {
                let mut kept: Vec<(&str, &str)> = Vec::with_capacity(p.len() + 1);
                let mut has_client_id = false;
                for (name, value) in p {
                    if extract::is_secret_param(name) {
                        continue;
                    }
                    if name == extract::CLIENT_ID {
                        // Empty means omitted (RFC 6749 §3.1); non-empty was checked equal.
                        if value.is_empty() {
                            continue;
                        }
                        has_client_id = true;
                    }
                    kept.push((name, value));
                }
                // The legacy server still learns which client it serves.
                if !has_client_id {
                    kept.push((extract::CLIENT_ID, &client_id));
                }
                parts.headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                Bytes::from(form::encode(kept))
            }
            None => bytes,
        };
        // The Basic header is the credential itself: it never goes upstream.
        parts.headers.remove(AUTHORIZATION);
        parts.headers.remove(TRANSFER_ENCODING);
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(forwarded.len()));
        parts.extensions.insert(Authenticated {
            client_id,
            method,
            body: forwarded.clone(),
        });
        let body = Full::new(forwarded)
            .map_err(|never| match never {})
            .boxed_unsync();
        Ok(Request::from_parts(parts, body))
    }

    /// Verifies the presented credential, under brute-force throttling, and returns the
    /// authenticated client and method.
    fn verify(
        &self,
        presented: Presented,
        body_client_id: Option<&str>,
        path: &str,
        peer: Option<IpAddr>,
        notes: Option<&Notes>,
    ) -> Result<(String, AuthMethod), GatewayError> {
        let compact = match &presented {
            Presented::Jwt { assertion } => {
                Some(jwt::decode(assertion).ok_or(RequestError::MalformedAssertion)?)
            }
            Presented::Basic(_) | Presented::Post { .. } => None,
        };
        let claimed: &str = match (&presented, &compact) {
            (Presented::Basic(c), _) => &c.client_id,
            (Presented::Post { client_id, .. }, _) => client_id,
            (Presented::Jwt { .. }, Some(c)) => jwt::subject(&c.claims).unwrap_or(""),
            (Presented::Jwt { .. }, None) => "",
        };
        if let Some(notes) = notes {
            notes.auth_method(match &presented {
                Presented::Basic(_) => AuthMethod::ClientSecretBasic,
                Presented::Post { .. } => AuthMethod::ClientSecretPost,
                Presented::Jwt { .. } => AuthMethod::ClientSecretJwt,
            });
            // Only a registered id is noted: anything else is attacker-chosen text, and
            // may even be a secret pasted into the wrong field.
            if self.registry.get(claimed).is_some() {
                notes.client(claimed);
            }
        }
        // RFC 6749 §2.3.1: brute-force protection, checked before any secret is tried.
        if let Some(ip) = peer {
            self.throttle
                .check(claimed, ip)
                .map_err(GatewayError::Throttled)?;
        }
        let result = match &presented {
            Presented::Basic(c) => self
                .registry
                .verify_secret(&c.client_id, &c.secret, AuthMethod::ClientSecretBasic)
                .map(|client| (client.client_id.clone(), AuthMethod::ClientSecretBasic))
                .map_err(|f| GatewayError::auth(f, true)),
            Presented::Post { client_id, secret } => self
                .registry
                .verify_secret(client_id, secret, AuthMethod::ClientSecretPost)
                .map(|client| (client.client_id.clone(), AuthMethod::ClientSecretPost))
                .map_err(|f| GatewayError::auth(f, false)),
            Presented::Jwt { .. } => match &compact {
                Some(c) => self
                    .verify_assertion(c, body_client_id, path)
                    .map(|id| (id, AuthMethod::ClientSecretJwt)),
                None => Err(RequestError::MalformedAssertion.into()),
            },
        };
        if let (Err(GatewayError::Authentication { .. }), Some(ip)) = (&result, peer) {
            self.throttle.record_failure(claimed, ip);
        }
        result
    }

    /// `client_secret_jwt`: returns the authenticated client id.
    fn verify_assertion(
        &self,
        compact: &jwt::Compact<'_>,
        body_client_id: Option<&str>,
        path: &str,
    ) -> Result<String, GatewayError> {
        let reject = |r: jwt::Rejection| GatewayError::auth(AuthFailure::Assertion(r), false);
        // RFC 8725 §3.1: only the HMAC algorithms, named exactly; never `none`.
        let alg = compact.alg.map_err(reject)?;
        // RFC 7515 §4.1.11: we understand no extension, so any `crit` is refused.
        if compact.crit {
            return Err(reject(jwt::Rejection::CriticalHeader));
        }
        let sub = jwt::subject(&compact.claims).map_err(reject)?;
        // DESIGN.md §2: a body client_id must name the same client as the assertion.
        if body_client_id.is_some_and(|id| id != sub) {
            return Err(RequestError::ClientIdMismatch.into());
        }
        // RFC 7523 §3 items 1-2: iss and sub are both the client_id.
        jwt::check_issuer(&compact.claims, sub).map_err(reject)?;

        let client = self.registry.get(sub);
        let usable = client
            .filter(|c| c.method == AuthMethod::ClientSecretJwt && c.algorithms.contains(&alg));
        // Always one MAC computation, with the decoy key when the client is unknown or may
        // not use this algorithm, so timing does not tell these cases apart.
        let mac_ok = self.registry.verify_mac(
            usable,
            alg,
            compact.signing_input.as_bytes(),
            &compact.signature,
        );
        match client {
            None => return Err(GatewayError::auth(AuthFailure::UnknownClient, false)),
            Some(c) if c.method != AuthMethod::ClientSecretJwt => {
                return Err(GatewayError::auth(AuthFailure::WrongMethod, false))
            }
            Some(_) if usable.is_none() => return Err(reject(jwt::Rejection::AlgorithmNotAllowed)),
            Some(_) if !mac_ok => return Err(reject(jwt::Rejection::BadSignature)),
            Some(_) => {}
        }

        // `aud` may name the exact URL called (compat mode): only assertions need it.
        let endpoint_url = format!("{}{}", self.public_url, path);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let accepted = jwt::check_claims(
            &compact.claims,
            &jwt::Expectations {
                issuer: &self.issuer,
                endpoint_url: &endpoint_url,
                audience_mode: self.assertion.audience,
                leeway: self.assertion.leeway,
                max_age: self.assertion.max_age,
                now,
            },
        )
        .map_err(reject)?;
        // RFC 7523 §3 item 7: a jti is used once. Recorded only after everything else
        // passed, so a rejected assertion cannot burn a legitimate client's jti.
        match self
            .replay
            .check_and_record(sub, &accepted.jti, accepted.replay_ttl)
        {
            Ok(()) => Ok(sub.to_owned()),
            Err(ReplayError::Replayed) => {
                Err(GatewayError::auth(AuthFailure::ReplayedAssertion, false))
            }
            Err(ReplayError::Full) => Err(GatewayError::ReplayStoreFull),
        }
    }
}

/// Which body decoding a Content-Type calls for.
fn content_kind(headers: &http::HeaderMap) -> Result<Kind, RequestError> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(Kind::Other),
        (Some(v), None) => v
            .to_str()
            .map_err(|_| RequestError::UnsupportedContentType)?,
        (Some(_), Some(_)) => return Err(RequestError::UnsupportedContentType),
    };
    let mut pieces = value.split(';');
    let essence = pieces.next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        for param in pieces {
            let (name, val) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("charset")
                && !val.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            {
                return Err(RequestError::UnsupportedContentType);
            }
        }
        Ok(Kind::UrlEncoded)
    } else if essence.eq_ignore_ascii_case("multipart/form-data") {
        multer::parse_boundary(value)
            .map(Kind::Multipart)
            .map_err(|_| RequestError::MalformedMultipart)
    } else {
        Ok(Kind::Other)
    }
}

/// Tower layer running [`Authenticator`] on protected requests.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<Request<Body>> for Auth<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // Only this layer may say who authenticated; drop anything claiming otherwise.
        req.extensions_mut().remove::<Authenticated>();
        if req.extensions().get::<Protected>().is_none() {
            return ResponseFuture {
                state: State::Calling {
                    future: self.inner.call(req),
                },
            };
        }
        // `inner` was polled ready: take it, leave a fresh clone behind (tower's contract).
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let authenticator = self.authenticator.clone();
        ResponseFuture {
            state: State::Authenticating {
                // The body read is async: one allocation per protected request.
                future: Box::pin(async move { authenticator.authenticate(req).await }),
                inner: Some(inner),
            },
        }
    }
}

pin_project! {
    /// Authenticating (protected requests only), then the inner service's future.
    pub struct ResponseFuture<S: Service<Request<Body>>> {
        #[pin]
        state: State<S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S: Service<Request<Body>>> {
        Authenticating {
            future: BoxFuture<Result<Request<Body>, GatewayError>>,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
{
    type Output = Result<Response<Body>, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Authenticating { future, inner } => {
                    let req = ready!(future.as_mut().poll(cx))?;
                    let Some(mut inner) = inner.take() else {
                        return Poll::Ready(Err(GatewayError::NotAuthenticated));
                    };
                    let future = inner.call(req);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => return future.poll(cx),
            }
        }
    }
}
