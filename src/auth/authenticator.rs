//! The authenticator: everything one protected request goes through, in order.
//!
//! POST only → body read under limits (limit.rs) → form decoded (form.rs) → exactly one
//! credential extracted (extract.rs) → throttle checked → credential verified against the
//! registry (Basic, post), as an assertion (jwt.rs, then the replay store) or as the
//! connection's client certificate (certificate.rs), or a public client named with no
//! credential at all → what the client may do at this kind of endpoint (policy.rs: grant
//! types, PKCE, no introspection for public clients) → body rebuilt without secret
//! material (rebuild.rs), with the certificate tokens may be bound to noted. Built once
//! per config generation; the replay store and the throttle outlive generations and are
//! passed in.

use std::net::IpAddr;
use std::sync::Arc;

use http::{Method, Request};

use crate::auth::certificate::CertificateCheck;
use crate::auth::contain;
use crate::auth::extract::{self, BodyForm, Extracted, Presented};
use crate::auth::form;
use crate::auth::hashing::Hasher;
use crate::auth::jwks::KeySets;
use crate::auth::jwt;
use crate::auth::media_type;
use crate::auth::policy;
use crate::auth::readings;
use crate::auth::rebuild::rebuild;
use crate::auth::registry::{RegisteredClient, Registry, SecretCheck};
use crate::auth::replay::ReplayStore;
use crate::auth::shadow::ShadowPolicy;
use crate::auth::throttle::Throttle;
use crate::auth::Authenticated;
use crate::body::{full, Body};
use crate::clock::Clock;
use crate::config::{AssertionConfig, Config, LimitsConfig, PkceConfig, QueryPolicy};
use crate::conn::{ClientAddr, ClientCertificate};
use crate::error::{AuthFailure, GatewayError, RequestError};
use crate::metrics::{CertificateOutcome, Metrics, Outcome, PkceRefusal};
use crate::oauth::{AuthMethod, ClientId, EndpointKind};
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
    /// `private_key_jwt` clients' `jwks_uri` sets, kept across reloads.
    pub key_sets: Arc<KeySets>,
    /// Process-wide: replay refusals are counted where they happen.
    pub metrics: Arc<Metrics>,
}

/// Everything authentication needs, built once per config.
pub struct Authenticator {
    pub(super) registry: Registry,
    certificates: CertificateCheck,
    pub(super) state: AuthState,
    pub(super) issuer: String,
    pub(super) public_url: String,
    pub(super) assertion: AssertionConfig,
    limits: LimitsConfig,
    /// `containment.allow_authorization_schemes`, for the paths that do not authenticate.
    allowed_schemes: Vec<String>,
    query: QueryPolicy,
    pkce: PkceConfig,
    pub(super) clock: Clock,
    /// `Some` when any request can be in shadow (`rollout: shadow`).
    shadow: Option<ShadowPolicy>,
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
        // Decoy keys for unknown private_key_jwt clients are made once per process, off
        // the request path (an RSA key takes a while).
        if config
            .clients
            .iter()
            .any(|c| c.auth_method == AuthMethod::PrivateKeyJwt)
        {
            std::thread::spawn(crate::auth::assertions::prepare_decoys);
        }
        Self {
            registry: Registry::new(&config.clients),
            certificates: CertificateCheck::new(config),
            state,
            issuer: config.issuer.clone(),
            public_url: config.public_url.clone(),
            assertion: config.assertion.clone(),
            limits: config.limits.clone(),
            allowed_schemes: config.containment.allow_authorization_schemes.clone(),
            query: config.protected_query,
            pkce: config.pkce.clone(),
            clock,
            shadow: ShadowPolicy::new(&config.rollout),
        }
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// Extra `Authorization` schemes forwarded where clients do not authenticate.
    pub fn allowed_schemes(&self) -> &[String] {
        &self.allowed_schemes
    }

    pub fn replay_store(&self) -> &Arc<ReplayStore> {
        &self.state.replay
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn pkce(&self) -> &PkceConfig {
        &self.pkce
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.state.metrics
    }

    /// Authenticates a request to an endpoint of `kind` and returns it rebuilt without
    /// secrets. The outcome, method and (registered) client id go into the request's
    /// [`Notes`].
    pub async fn authenticate(
        &self,
        req: Request<Body>,
        kind: EndpointKind,
    ) -> Result<Request<Body>, GatewayError> {
        let notes = req.extensions().get::<Arc<Notes>>().cloned();
        match &self.shadow {
            // Some client is in shadow (shadow.rs): the body names the mode.
            Some(policy) => self.authenticate_rollout(policy, req, kind, notes).await,
            None => self.authenticate_enforced(req, kind, notes).await,
        }
    }

    /// [`Authenticator::authenticate`], enforced: the outcome is noted and counted.
    pub(super) async fn authenticate_enforced(
        &self,
        req: Request<Body>,
        kind: EndpointKind,
        notes: Option<Arc<Notes>>,
    ) -> Result<Request<Body>, GatewayError> {
        let result = self.authenticate_noted(req, kind, notes.as_deref()).await;
        if let Err(GatewayError::Pkce(e)) = &result {
            self.state.metrics.pkce_refused(kind, PkceRefusal::of(*e));
        }
        if let Some(notes) = notes {
            notes.outcome(match &result {
                Ok(_) => Outcome::ok,
                Err(e) => Outcome::of(e),
            });
        }
        result
    }

    /// The verdict on one request. Without a [`ClientAddr`] (shadow.rs) the throttle is
    /// neither asked nor fed.
    pub(super) async fn authenticate_noted(
        &self,
        req: Request<Body>,
        kind: EndpointKind,
        notes: Option<&Notes>,
    ) -> Result<Request<Body>, GatewayError> {
        // RFC 6749 §3.2: the token endpoint takes POST; so do introspection (RFC 7662
        // §2.1), revocation (RFC 7009 §2.1), PAR (RFC 9126 §2.1) and device
        // authorization (RFC 8628 §3.1).
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

        // RFC 6749 §3.2: exactly the form types (media_type.rs); JSON or text → 400,
        // anything else → 415.
        let body_kind = media_type::protected(&parts.headers, bytes.is_empty())?;
        let boundary = match &body_kind {
            form::BodyKind::Multipart { boundary } => Some(boundary.clone()),
            _ => None,
        };
        let params = form::decode(body_kind, &bytes).await?;
        // A multipart body another parser reads other names from (a second `name`,
        // `name*`, parts after the closing delimiter): refused, not guessed at.
        if let (Some(boundary), Some(params)) = (&boundary, &params) {
            let lenient = readings::multipart_names(&bytes, boundary.as_bytes());
            if lenient.len() != params.len()
                || lenient
                    .iter()
                    .zip(params)
                    .any(|(l, (n, _))| l != n.as_bytes())
            {
                return Err(RequestError::MalformedMultipart.into());
            }
        }
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

        // What this client may do here, judged only once it authenticated.
        if let Some(client) = self.registry.get(&client_id) {
            policy::check(kind, client, params.as_ref(), &self.pkce)?;
        }
        if cnf.is_some() {
            self.state.metrics.certificate_bound();
        }
        // A clone of the handle, not the bytes: `params` may borrow from them.
        let forwarded = rebuild(
            &mut parts.headers,
            params.as_ref(),
            bytes.clone(),
            &client_id,
        );
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
            // The method the assertion's alg belongs to (a public-key algorithm is
            // private_key_jwt), for the notes and the metrics.
            (Presented::Jwt { .. }, Some(c)) => (
                jwt::subject(&c.claims).unwrap_or(""),
                match c.alg {
                    Ok(jwt::AssertionAlgorithm::PublicKey(_)) => AuthMethod::PrivateKeyJwt,
                    _ => AuthMethod::ClientSecretJwt,
                },
            ),
            (Presented::Jwt { .. }, None) => ("", AuthMethod::ClientSecretJwt),
            (Presented::ClientIdOnly { client_id }, _) => {
                return match self.registry.get(client_id) {
                    Some(c) if c.method.is_public() => self.verify_public(c, cert, notes),
                    _ => self.verify_certificate(client_id, peer, cert, notes).await,
                };
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
        let public = self
            .registry
            .get(claimed)
            .is_some_and(|c| c.method.is_public());
        // RFC 6749 §2.3.1: Basic with an empty password (`id:`, as some libraries send
        // for a public client) carries no secret: missing credentials, not a guess. A
        // public client presenting any credential is the wrong method (RFC 7591 §2).
        if let Presented::Basic(c) = &presented {
            if c.secret.is_empty() {
                let reason = if public {
                    AuthFailure::WrongMethod
                } else {
                    AuthFailure::IncompleteCredentials
                };
                return Err(GatewayError::auth(reason, true));
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
            (Presented::Jwt { .. }, Some(c)) => self
                .verify_assertion(c, body_client_id, path)
                .await
                .map(|(id, _)| id),
            // (A bare client_id was handed to `verify_certificate` above.)
            (Presented::Jwt { .. }, None) | (Presented::ClientIdOnly { .. }, _) => {
                Err(RequestError::MalformedAssertion.into())
            }
        };
        // A public client has no secret to match: say so in the log (the answer is the
        // same 401).
        let result = result.map_err(|e| match e {
            GatewayError::Authentication {
                reason: AuthFailure::WrongSecret,
                basic,
            } if public => GatewayError::auth(AuthFailure::WrongMethod, basic),
            e => e,
        });
        if let (Err(GatewayError::Authentication { .. }), Some(ip)) = (&result, peer) {
            self.state.throttle.record_failure(claimed, ip).await;
        }
        let id = result?;
        // RFC 8705 §3: tokens may be bound to a certificate whatever the method, but only
        // to one that something vouches for (here: it chains to `ca_file`).
        let cnf = self.certificates.binding(cert, now);
        Ok((id, method, cnf))
    }

    /// A public client (`auth_method: none`, RFC 6749 §2.1): the request named it with
    /// `client_id` and carried no credential (extract.rs saw none). There is nothing to
    /// verify, so nothing for the throttle to count. A certificate on the connection is
    /// a credential it is not registered with, unless it chains to
    /// `tls.client_auth.ca_file`: then it only binds the tokens (RFC 8705 §3, §4).
    fn verify_public(
        &self,
        client: &RegisteredClient,
        cert: Option<&ClientCertificate>,
        notes: Option<&Notes>,
    ) -> Result<(ClientId, AuthMethod, Option<Thumbprint>), GatewayError> {
        if let Some(notes) = notes {
            notes.auth_method(AuthMethod::None);
            notes.client(&client.client_id);
        }
        let cnf = match cert {
            None => None,
            Some(cert) => Some(
                self.certificates
                    .binding(Some(cert), self.clock.now())
                    .ok_or(GatewayError::auth(AuthFailure::WrongMethod, false))?,
            ),
        };
        Ok((client.client_id.clone(), AuthMethod::None, cnf))
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
}
