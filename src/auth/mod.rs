//! Client authentication for protected endpoints: the heart of the gateway.
//!
//! For a request marked [`Protected`](crate::route::Protected) by routing, the
//! [`Authenticator`] requires POST, buffers the body within limits, decodes the form
//! (urlencoded or multipart), extracts exactly one credential, verifies it against the
//! registry (Basic, post), as an assertion (jwt, with replay protection) or as the
//! connection's client certificate (tls_client_auth, self_signed_tls_client_auth), then rebuilds
//! the request without any secret material and attaches an [`Authenticated`] extension for
//! the signer. Every other request is checked by `contain`: if it carries a client
//! credential (Basic, or a secret in the query or a form body) it is refused, since
//! nothing would remove it before the upstream.
//! Invariant: a request leaves [`AuthLayer`] either rejected or carrying no
//! `Authorization: Basic`, `client_secret`, `client_assertion` or `client_assertion_type`
//! (docs/design.md §4).
//!
//! Parts, one job each: `contain` (unprotected requests), `extract` (which credential), `basic` and `form` (parsers), `jwt`
//! (assertion checks), `certificate` (TLS client certificates, RFC 8705), `registry` (who may authenticate, prepared keys), `hashing` (hashed
//! secrets, off the event loops, with a verify cache), `replay` and `throttle` (state
//! shared across generations), `rebuild` (the forwarded body),
//! `authenticator` (the order of the steps) and `layer` (the tower service).

mod assertions;
mod authenticator;
mod authorize;
pub mod basic;
pub mod certificate;
pub mod contain;
pub mod extract;
pub mod form;
pub mod hashing;
pub mod jwks;
pub mod jwt;
mod layer;
pub mod media_type;
pub mod pkce;
pub mod policy;
pub mod rate_limit;
pub mod readings;
pub mod rebuild;
pub mod registry;
pub mod replay;
pub mod shadow;
pub mod smuggled;
pub mod throttle;

use bytes::Bytes;

pub use authenticator::{AuthState, Authenticator};
pub use layer::{Auth, AuthLayer, ResponseFuture};

use crate::oauth::{AuthMethod, ClientId};
use crate::x509::Thumbprint;

/// Who authenticated, and the exact body that will be forwarded. Set only by [`Auth`].
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub client_id: ClientId,
    pub method: AuthMethod,
    pub body: Bytes,
    /// The verified client certificate tokens may be bound to (RFC 8705 §3), if any:
    /// the one that authenticated the client, or one chaining to `tls.client_auth.ca_file`.
    pub cnf: Option<Thumbprint>,
}
