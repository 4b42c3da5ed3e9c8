//! Compact JWS and HMAC: the one implementation lives in the verifier crate
//! (`secretgate-verify`, crates/verify), which the upstream's side shares; the gateway
//! uses it through this module.

pub use secretgate_verify::jws::*;
