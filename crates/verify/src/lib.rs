//! secretgate-verify: what a token service behind secretgate needs to trust the
//! `x-authenticated-client` header, and nothing more (no HTTP stack, no runtime, no TLS).
//!
//! ```no_run
//! use secretgate_verify::{verify_internal_header, Expected, VerifyKeys};
//! # fn run(header: &str, body: &[u8], jwks: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! // Keys: the gateway's published JWK Set (ES256 / EdDSA), or shared HS256 keys by id.
//! let keys = VerifyKeys::from_jwks(jwks)?;
//! let claims = verify_internal_header(
//!     header,
//!     &keys,
//!     &Expected {
//!         leeway: 5,
//!         ..Expected::request(
//!             "secretgate",
//!             "legacy-token-service",
//!             "POST",
//!             "https://auth.example.com/oauth2/token",
//!             None, // the request had no query
//!             body,
//!         )
//!     },
//! )?;
//! println!("{} authenticated with {}", claims.client_id, claims.auth_method);
//! # Ok(()) }
//! ```
//!
//! Modules: [`alg`] (the algorithm names), [`jws`] (compact JWS and HMAC), [`jwk`] (JSON
//! Web Keys → public keys that verify, with aws-lc-rs), [`header`] (the internal header's
//! rules), [`json`] (JSON objects read strictly). The gateway itself uses this crate for all of them.

#![forbid(unsafe_code)]

pub mod alg;
pub mod header;
pub mod json;
pub mod jwk;
pub mod jws;

pub use alg::{Algorithm, AsymmetricAlgorithm, KeyType};
pub use header::{
    verify_internal_header, Check, Confirmation, Expected, InternalClaims, JwksError, VerifyError,
    VerifyKeys,
};
pub use jwk::{Jwk, JwkError, JwkSetError, PublicKey};
