//! secretgate: a TLS-terminating reverse proxy that authenticates OAuth 2.0 clients
//! (`client_secret_basic`, `client_secret_post`, `client_secret_jwt`, and with client
//! certificates `tls_client_auth`, `self_signed_tls_client_auth`) in front of a legacy
//! token service, strips every trace of the secret, and forwards the request with a signed
//! internal header naming the client and method.
//!
//! The request path is assembled in [`stack`]; [`serve`] runs it behind the TLS listener.
//! The contract (flow, rules, errors, forwarding, header, config, CLI) is docs/design.md.
//!
//! Modules, bottom of the dependency graph first (every `use crate::` points down this
//! list; `.ci/modgraph.py` fails CI on a cycle):
//! - vocabulary: [`oauth`] (methods, algorithms, parameter names, `ClientId`), [`secret`],
//!   [`clock`], [`body`], [`x509`] (certificate thumbprints and RFC 8705 names), [`conn`],
//!   [`jws`], [`lenient`], [`error`] (error payloads and the one error → response table);
//! - configuration and process-wide state: [`tls`], [`config`], [`metrics`], [`limit`],
//!   [`logline`], [`logsink`];
//! - request-path parts: [`trace`], [`upstream`], [`strip`], [`route`], [`auth`],
//!   [`sign`], [`metadata`] (discovery documents rewritten), [`verify`], [`rescue`];
//! - assembly: [`stack`], [`reload`], [`readiness`] (the upstream probe behind `/readyz`),
//!   [`admin`], [`shutdown`], [`server`];
//! - commands: [`assertion`], [`demo`] (and `main.rs`).

#![forbid(unsafe_code)]

pub mod admin;
pub mod assertion;
pub mod auth;
pub mod body;
pub mod clock;
pub mod config;
pub mod conn;
pub mod demo;
pub mod error;
pub mod hashes;
pub mod head_rules;
pub mod jws;
pub mod keys;
pub mod lenient;
pub mod limit;
pub mod logline;
pub mod logsink;
pub mod metadata;
pub mod metrics;
pub mod oauth;
pub mod readiness;
pub mod reload;
pub mod rescue;
pub mod route;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sign;
pub mod stack;
pub mod state;
pub mod strip;
pub mod tls;
pub mod trace;
pub mod upstream;
pub mod verify;
pub mod x509;

#[cfg(test)]
mod testing;

pub use body::{Body, BodyError, BoxError};
pub use clock::Clock;
pub use config::Config;
pub use server::{serve, Gateway, ServeError};
pub use verify::{
    verify_internal_header, Check, Expected, InternalClaims, VerifyError, VerifyKeys,
};
