//! secretgate: a TLS-terminating reverse proxy that authenticates OAuth 2.0 clients
//! (`client_secret_basic`, `client_secret_post`, `client_secret_jwt`) in front of a legacy
//! token service, strips every trace of the secret, and forwards the request with a signed
//! internal header naming the client and method.
//!
//! The request path is assembled in [`stack`]; [`serve`] runs it behind the TLS listener.

#![forbid(unsafe_code)]

pub mod admin;
pub mod assertion;
pub mod auth;
pub mod config;
pub mod demo;
pub mod error;
pub mod limit;
pub mod metrics;
pub mod reload;
pub mod rescue;
pub mod route;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sign;
pub mod stack;
pub mod strip;
pub mod tls;
pub mod trace;
pub mod upstream;

/// Boxed errors, as hyper and tower pass them around.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error of a streamed body (client or upstream I/O). A concrete type rather than a
/// `dyn Error` so that futures holding bodies stay provably `Send`.
#[derive(Debug)]
pub struct BodyError(BoxError);

impl BodyError {
    pub fn new(e: impl Into<BoxError>) -> Self {
        Self(e.into())
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The body type used throughout the stack: streamed for unprotected requests and
/// upstream responses, in-memory for rebuilt protected requests and gateway responses.
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BodyError>;

pub use config::Config;
pub use server::{serve, Gateway, ServeError};
pub use sign::{verify_internal_header, Expected, InternalClaims, VerifyError, VerifyKeys};
