//! The authenticator: everything one protected request goes through, in order.
//!
//! POST only → body read under limits (limit.rs) → form decoded (form.rs) → exactly one
//! credential extracted (extract.rs) → throttle checked → credential verified against the
//! registry (Basic, post), as an assertion (jwt.rs, then the replay store) or as the
//! connection's client certificate (certificate.rs) → body rebuilt without secret
//! material (rebuild.rs), with the certificate tokens may be bound to noted. Built once per config generation; the
//! replay store and the throttle outlive generations and are passed in.

use std::net::IpAddr;
use std::sync::Arc;

use http::{Method, Request};

use crate::auth::certificate::CertificateCheck;
use crate::auth::contain;
use crate::auth::extract::{self, BodyForm, Extracted, Presented};
use crate::auth::form;
use crate::auth::hashing::Hasher;
use crate::auth::jwt;
use crate::auth::rebuild::rebuild;
use crate::auth::registry::{Registry, SecretCheck};
use crate::auth::replay::{ReplayError, ReplayStore};
use crate::auth::throttle::Throttle;
use crate::auth::Authenticated;
use crate::body::{full, Body};
use crate::clock::Clock;
use crate::config::{AssertionConfig, Config, LimitsConfig, QueryPolicy};
use crate::conn::{ClientAddr, ClientCertificate};
use crate::error::{AssertionRejection, AuthFailure, GatewayError, RequestError};
use crate::metrics::{CertificateOutcome, Metrics, Outcome, ReplayRejection};
use crate::oauth::{AuthMethod, ClientId};
use crate::secret::Secret;
use crate::trace::Notes;
use crate::x509::Thumbprint;

/// State that outlives config generations: forgetting used jtis would reopen a replay
/// window, and forgetting failures would reset brute-force counters on every reload.
#[derive(Clone)]
pub struct AuthState {
    pub replay: Arc<ReplayStore>,
    pub throttle: Arc<Throttle>,
    /// Hashed secrets: the bounded pool and the verify cache.
    pub hasher: Arc<Hasher>,
    /// Process-wide: replay refusals are counted where they happen.
    pub metrics: Arc<Metrics>,
}

/// Everything authentication needs, built once per config.
pub struct Authenticator {
    registry: Registry,
    certificates: CertificateCheck,
    state: AuthState,
    issuer: String,
    public_url: String,
    assertion: AssertionConfig,
    limits: LimitsConfig,
    query: QueryPolicy,
    clock: Clock,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("registry", &self.registry)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(config: &Config, state: AuthState, clock: Clock) -> Self {
        Self {
            registry: Registry::new(&config.clients),
            certificates: CertificateCheck::new(config),
            state,
            issuer: config.issuer.clone(),
            public_url: config.public_url.clone(),
            assertion: config.assertion.clone(),
            limits: config.limits.clone(),
            query: config.protected_query,
            clock,
        }
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    pub fn replay_store(&self) -> &Arc<ReplayStore> {
        &self.state.replay
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
        // The gateway and the upstream must read the same bytes: an encoded body would be
        // decoded by one and not the other (RFC 9110 §8.4).
        if contain::has_content_coding(req.headers()) {
            crate::limit::drain(req.into_body()).await;
            return Err(GatewayError::UnsupportedContentEncoding);
        }
        // A query the gateway forwards must be one the signed header binds (sign.rs); by
        // default there is none. (`?` alone counts: the upstream would see it.)
        if req.uri().query().is_some() && self.query == QueryPolicy::Deny {
            crate::limit::drain(req.into_body()).await;
            return Err(RequestError::QueryNotAllowed.into());
        }
        let (mut parts, body) = req.into_parts();
        let bytes = crate::limit::read_body(
            &parts.headers,
            body,
            self.limits.max_body,
            self.limits.body_read_timeout,
        )
        .await?;

        let params = form::decode(form::body_kind(&parts.headers)?, &bytes).await?;
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
        let cert = parts.extensions.get::<ClientCertificate>();
        let (client_id, method, cnf) = self
            .verify(
                presented,
                body_client_id.as_deref(),
                parts.uri.path(),
                peer,
                cert,
                notes,
            )
            .await?;

        if cnf.is_some() {
            self.state.metrics.certificate_bound();
        }
        let forwarded = rebuild(&mut parts.headers, params.as_ref(), bytes, &client_id);
        parts.extensions.insert(Authenticated {
            client_id,
            method,
            body: forwarded.clone(),
            cnf,
        });
        Ok(Request::from_parts(parts, full(forwarded)))
    }

    /// Verifies the presented credential, under brute-force throttling, and returns the
    /// authenticated client and method, and the certificate its tokens may be bound to.
    async fn verify(
        &self,
        presented: Presented,
        body_client_id: Option<&str>,
        path: &str,
        peer: Option<IpAddr>,
        cert: Option<&ClientCertificate>,
        notes: Option<&Notes>,
    ) -> Result<(ClientId, AuthMethod, Option<Thumbprint>), GatewayError> {
        let compact = match &presented {
            Presented::Jwt { assertion } => {
                Some(jwt::decode(assertion).ok_or(RequestError::MalformedAssertion)?)
            }
            Presented::Basic(_) | Presented::Post { .. } | Presented::ClientIdOnly { .. } => None,
        };
        let (claimed, method): (&str, AuthMethod) = match (&presented, &compact) {
            (Presented::Basic(c), _) => (&c.client_id, AuthMethod::ClientSecretBasic),
            (Presented::Post { client_id, .. }, _) => (client_id, AuthMethod::ClientSecretPost),
            (Presented::Jwt { .. }, Some(c)) => (
                jwt::subject(&c.claims).unwrap_or(""),
                AuthMethod::ClientSecretJwt,
            ),
            (Presented::Jwt { .. }, None) => ("", AuthMethod::ClientSecretJwt),
            (Presented::ClientIdOnly { client_id }, _) => {
                return self.verify_certificate(client_id, peer, cert, notes).await
            }
        };
        if let Some(notes) = notes {
            notes.auth_method(method);
            // Only a registered id is noted: anything else is attacker-chosen text, and
            // may even be a secret pasted into the wrong field.
            if let Some(client) = self.registry.get(claimed) {
                notes.client(&client.client_id);
            }
        }
        // RFC 6749 §2.3.1: brute-force protection, checked before any secret is tried.
        if let Some(ip) = peer {
            self.state
                .throttle
                .check(claimed, ip)
                .await
                .map_err(GatewayError::Throttled)?;
        }
        // RFC 6749 §2.3: one method per request. A certificate that authenticates the
        // certificate client the request names is a method; a secret or an assertion next
        // to it is a second one. (A certificate that does not authenticate it leaves one
        // method, refused below as the wrong one: so a caller without the client's key
        // learns nothing about how the client is registered.)
        let now = self.clock.now();
        if let (Some(cert), Some(client)) = (cert, self.registry.get(claimed)) {
            if client.method.uses_certificate()
                && self.certificates.authenticate(client, cert, now).is_ok()
            {
                return Err(RequestError::MultipleAuthMethods.into());
            }
        }
        let result = match (&presented, &compact) {
            (Presented::Basic(c), _) => {
                self.check_secret(&c.client_id, &c.secret, method, true)
                    .await
            }
            (Presented::Post { client_id, secret }, _) => {
                self.check_secret(client_id, secret, method, false).await
            }
            (Presented::Jwt { .. }, Some(c)) => {
                self.verify_assertion(c, body_client_id, path).await
            }
            // (A bare client_id was handed to `verify_certificate` above.)
            (Presented::Jwt { .. }, None) | (Presented::ClientIdOnly { .. }, _) => {
                Err(RequestError::MalformedAssertion.into())
            }
        };
        if let (Err(GatewayError::Authentication { .. }), Some(ip)) = (&result, peer) {
            self.state.throttle.record_failure(claimed, ip).await;
        }
        let id = result?;
        // RFC 8705 §3: tokens may be bound to a certificate whatever the method, but only
        // to one that something vouches for (here: it chains to `ca_file`).
        let cnf = self.certificates.binding(cert, now);
        Ok((id, method, cnf))
    }

    /// `tls_client_auth` / `self_signed_tls_client_auth` (RFC 8705 §2): the request named
    /// the client in `client_id` and presented nothing else.
    async fn verify_certificate(
        &self,
        client_id: &str,
        peer: Option<IpAddr>,
        cert: Option<&ClientCertificate>,
        notes: Option<&Notes>,
    ) -> Result<(ClientId, AuthMethod, Option<Thumbprint>), GatewayError> {
        let Some(client) = self
            .registry
            .get(client_id)
            .filter(|c| c.method.uses_certificate())
        else {
            // Unknown, or a secret client without its secret: an incomplete credential,
            // answered as before certificates existed (the same 401 for both).
            return Err(GatewayError::auth(
                AuthFailure::IncompleteCredentials,
                false,
            ));
        };
        if let Some(notes) = notes {
            notes.auth_method(client.method);
            notes.client(&client.client_id);
        }
        let Some(cert) = cert else {
            self.state
                .metrics
                .client_certificate(client.method, CertificateOutcome::missing);
            return Err(GatewayError::auth(AuthFailure::NoCertificate, false));
        };
        if let Some(ip) = peer {
            self.state
                .throttle
                .check(client_id, ip)
                .await
                .map_err(GatewayError::Throttled)?;
        }
        match self
            .certificates
            .authenticate(client, cert, self.clock.now())
        {
            Ok(thumbprint) => {
                self.state
                    .metrics
                    .client_certificate(client.method, CertificateOutcome::ok);
                Ok((client.client_id.clone(), client.method, Some(thumbprint)))
            }
            Err(rejection) => {
                self.state
                    .metrics
                    .client_certificate(client.method, CertificateOutcome::of(rejection));
                if let Some(ip) = peer {
                    self.state.throttle.record_failure(client_id, ip).await;
                }
                Err(GatewayError::auth(
                    AuthFailure::Certificate(rejection),
                    false,
                ))
            }
        }
    }

    /// `client_secret_basic` / `client_secret_post`: the registry's quick check, then, if
    /// hashes remain to be tried, the slow one off the event loop (hashing.rs).
    async fn check_secret(
        &self,
        client_id: &str,
        secret: &Secret,
        method: AuthMethod,
        basic: bool,
    ) -> Result<ClientId, GatewayError> {
        let fail = |f| GatewayError::auth(f, basic);
        let (client, hashes, work) = match self.registry.check_secret(client_id, secret, method) {
            SecretCheck::Matched(c) => return Ok(c.client_id.clone()),
            SecretCheck::Failed(f) => return Err(fail(f)),
            SecretCheck::NeedsHash {
                client,
                hashes,
                work,
            } => (client, hashes, work),
        };
        let matched = self
            .state
            .hasher
            .verify(client_id, hashes, work, secret)
            .await
            .map_err(|_| GatewayError::HashingSaturated)?;
        match (client, matched) {
            (Some(c), true) => match Registry::method_check(c, method) {
                SecretCheck::Matched(c) => Ok(c.client_id.clone()),
                SecretCheck::Failed(f) => Err(fail(f)),
                SecretCheck::NeedsHash { .. } => Err(fail(AuthFailure::WrongSecret)),
            },
            (Some(_), false) => Err(fail(AuthFailure::WrongSecret)),
            // The decoy of an unknown client: the same work, the same answer.
            (None, _) => Err(fail(AuthFailure::UnknownClient)),
        }
    }

    /// `client_secret_jwt`: returns the authenticated client id.
    async fn verify_assertion(
        &self,
        compact: &jwt::Compact<'_>,
        body_client_id: Option<&str>,
        path: &str,
    ) -> Result<ClientId, GatewayError> {
        let reject = |r: AssertionRejection| GatewayError::auth(AuthFailure::Assertion(r), false);
        // RFC 8725 §3.1: only the HMAC algorithms, named exactly; never `none`.
        let alg = compact.alg.map_err(reject)?;
        // RFC 7515 §4.1.11: we understand no extension, so any `crit` is refused.
        if compact.crit {
            return Err(reject(AssertionRejection::CriticalHeader));
        }
        let sub = jwt::subject(&compact.claims).map_err(reject)?;
        // docs/design.md §2: a body client_id must name the same client as the assertion.
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
        let client = match client {
            None => return Err(GatewayError::auth(AuthFailure::UnknownClient, false)),
            Some(c) if c.method != AuthMethod::ClientSecretJwt => {
                return Err(GatewayError::auth(AuthFailure::WrongMethod, false))
            }
            Some(_) if usable.is_none() => {
                return Err(reject(AssertionRejection::AlgorithmNotAllowed))
            }
            Some(_) if !mac_ok => return Err(reject(AssertionRejection::BadSignature)),
            Some(c) => c,
        };

        // `aud` may name the exact URL called (compat mode): only assertions need it.
        let endpoint_url = format!("{}{}", self.public_url, path);
        let now = self.clock.now();
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
        let recorded = self
            .state
            .replay
            .check_and_record(sub, &accepted.jti, accepted.replay_ttl, now)
            .await;
        match recorded {
            Ok(()) => Ok(client.client_id.clone()),
            Err(ReplayError::Replayed) => {
                self.state
                    .metrics
                    .replay_rejected(ReplayRejection::replayed);
                Err(GatewayError::auth(AuthFailure::ReplayedAssertion, false))
            }
            Err(ReplayError::Full) => {
                self.state.metrics.replay_rejected(ReplayRejection::full);
                Err(GatewayError::ReplayStoreFull)
            }
            // Fail closed: Redis could not record it, so it is not accepted.
            Err(ReplayError::Unavailable) => {
                self.state
                    .metrics
                    .replay_rejected(ReplayRejection::unavailable);
                Err(GatewayError::StateUnavailable)
            }
        }
    }
}
