//! The body type every layer passes along, and the boxed error types hyper and tower use.
//!
//! Streamed for unprotected requests and upstream responses, in memory for rebuilt
//! protected requests and the responses the gateway writes itself.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

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

/// The body type used throughout the stack.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>;

/// A body held in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
