//! Client assertions (RFC 7523 §3, docs/design.md §2.6, §2.14): the signature, by the
//! method the `alg` belongs to, then the claims and the replay store.
//!
//! - `client_secret_jwt` (an HMAC `alg`): the MAC over `header "." payload` with each of
//!   the client's secrets, in constant time; always one MAC per secret, with a decoy key
//!   when the client is unknown or may not use the algorithm.
//! - `private_key_jwt` (RS256, PS256, ES256, EdDSA): the client's public keys, by `kid`
//!   when the header has one, else every key of the algorithm's type (at most
//!   [`MAX_KEYS_TRIED`]); the `alg` must be in the client's allow-list and fit the key's
//!   type. A `jwks_uri` client's keys come from the key sets (jwks/): an unknown `kid`
//!   triggers one rate-limited refetch; a set never fetched is `503`. One verification
//!   with a decoy key of the same type stands in when the client is unknown, so timing
//!   does not tell which ids are registered.
//!
//! Invariants: a `client_secret_jwt` client is never tried with a public key and a
//! `private_key_jwt` client never with a secret (RFC 8725 §3.1: the key decides the
//! algorithm); the `jti` is recorded only after every other check passed.

use std::sync::{Arc, OnceLock};

use secretgate_verify::{Jwk, KeyType, PublicKey};

use crate::auth::jwt::{self, AssertionAlgorithm};
use crate::auth::registry::RegisteredClient;
use crate::auth::replay::ReplayError;
use crate::auth::Authenticator;
use crate::config::ClientKeySet;
use crate::error::{AssertionRejection, AuthFailure, GatewayError, RequestError};
use crate::metrics::ReplayRejection;
use crate::oauth::{AsymmetricAlgorithm, AuthMethod, ClientId};

/// Most keys tried for an assertion without `kid`.
pub const MAX_KEYS_TRIED: usize = 5;

fn reject(r: AssertionRejection) -> GatewayError {
    GatewayError::auth(AuthFailure::Assertion(r), false)
}

impl Authenticator {
    /// `client_secret_jwt` or `private_key_jwt`: returns the authenticated client and
    /// the method it used.
    pub(super) async fn verify_assertion(
        &self,
        compact: &jwt::Compact<'_>,
        body_client_id: Option<&str>,
        path: &str,
    ) -> Result<(ClientId, AuthMethod), GatewayError> {
        // RFC 8725 §3.1: only the algorithms named exactly; never `none`.
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

        let (client, method) = match alg {
            AssertionAlgorithm::Hmac(a) => (
                self.verify_mac(compact, sub, a)?,
                AuthMethod::ClientSecretJwt,
            ),
            AssertionAlgorithm::PublicKey(a) => (
                self.verify_signature(compact, sub, a).await?,
                AuthMethod::PrivateKeyJwt,
            ),
        };
        self.accept_claims(compact, sub, path).await?;
        Ok((client.client_id.clone(), method))
    }

    /// `client_secret_jwt`: the MAC with each of the client's secrets.
    fn verify_mac(
        &self,
        compact: &jwt::Compact<'_>,
        sub: &str,
        alg: crate::oauth::Algorithm,
    ) -> Result<&RegisteredClient, GatewayError> {
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
            None => Err(GatewayError::auth(AuthFailure::UnknownClient, false)),
            // RFC 8725 §3.1: a private_key_jwt client has no secret to be tried with.
            Some(c) if c.method != AuthMethod::ClientSecretJwt => {
                Err(GatewayError::auth(AuthFailure::WrongMethod, false))
            }
            Some(_) if usable.is_none() => Err(reject(AssertionRejection::AlgorithmNotAllowed)),
            Some(_) if !mac_ok => Err(reject(AssertionRejection::BadSignature)),
            Some(c) => Ok(c),
        }
    }

    /// `private_key_jwt`: the signature with the client's public keys.
    async fn verify_signature(
        &self,
        compact: &jwt::Compact<'_>,
        sub: &str,
        alg: AsymmetricAlgorithm,
    ) -> Result<&RegisteredClient, GatewayError> {
        let input = compact.signing_input.as_bytes();
        let client = self.registry.get(sub);
        let client = match client {
            Some(c) if c.method == AuthMethod::PrivateKeyJwt => c,
            other => {
                // The same work as a registered client with one key of this type.
                let _ = decoy(alg.key_type()).verify(alg, input, &compact.signature);
                return Err(GatewayError::auth(
                    if other.is_none() {
                        AuthFailure::UnknownClient
                    } else {
                        // RFC 8725 §3.1: a client_secret_jwt client's secret is never
                        // tried as, nor against, a public key.
                        AuthFailure::WrongMethod
                    },
                    false,
                ));
            }
        };
        // The client's allow-list (RFC 8725 §3.1), and the key decides the algorithm.
        if !client.asymmetric_algorithms.contains(&alg) {
            return Err(reject(AssertionRejection::AlgorithmNotAllowed));
        }
        let keys = match &client.key_set {
            Some(ClientKeySet::Static(keys)) => keys.clone(),
            Some(ClientKeySet::Uri(uri)) => self
                .state
                .key_sets
                .keys(uri)
                .ok_or(GatewayError::KeysUnavailable)?,
            None => return Err(reject(AssertionRejection::UnknownKey)),
        };
        if verify_with(&keys, compact, alg) {
            return Ok(client);
        }
        // An unknown kid at a jwks_uri: the client may have rotated; fetch again (at most
        // once per min_refetch_interval, shared by concurrent requests).
        let unknown_kid = compact
            .kid
            .as_deref()
            .is_some_and(|kid| !keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
        if let (true, Some(ClientKeySet::Uri(uri))) = (unknown_kid, &client.key_set) {
            if let Some(fresh) = self.state.key_sets.refetch(uri).await {
                if verify_with(&fresh, compact, alg) {
                    return Ok(client);
                }
            }
        }
        Err(reject(if unknown_kid {
            AssertionRejection::UnknownKey
        } else {
            AssertionRejection::BadSignature
        }))
    }

    /// Time claims, `aud`, and the `jti` recorded once (RFC 7523 §3 items 3-7).
    async fn accept_claims(
        &self,
        compact: &jwt::Compact<'_>,
        sub: &str,
        path: &str,
    ) -> Result<(), GatewayError> {
        let now = self.clock.now();
        let accepted = jwt::check_claims(
            &compact.claims,
            &jwt::Expectations {
                issuer: &self.issuer,
                // `aud` may name the exact URL called (compat mode).
                endpoint_url: (&self.public_url, path),
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
            Ok(()) => Ok(()),
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

/// Whether one of `keys` verifies the assertion under `alg`: the key named by `kid`, or
/// without a `kid` the first [`MAX_KEYS_TRIED`] keys that allow `alg`.
fn verify_with(keys: &[Jwk], compact: &jwt::Compact<'_>, alg: AsymmetricAlgorithm) -> bool {
    let input = compact.signing_input.as_bytes();
    let candidates = keys.iter().filter(|k| k.allows(alg));
    let verifies = |k: &Jwk| k.key.verify(alg, input, &compact.signature);
    match compact.kid.as_deref() {
        Some(kid) => candidates
            .filter(|k| k.kid.as_deref() == Some(kid))
            .any(verifies),
        None => candidates.take(MAX_KEYS_TRIED).any(verifies),
    }
}

/// A public key of `key_type` nobody holds the private half of, made once per process.
fn decoy(key_type: KeyType) -> &'static PublicKey {
    static DECOYS: OnceLock<Option<Arc<[PublicKey; 3]>>> = OnceLock::new();
    static FALLBACK: OnceLock<PublicKey> = OnceLock::new();
    let made = DECOYS.get_or_init(|| {
        let ec = crate::keys::generate_pem(AsymmetricAlgorithm::Es256).ok()?;
        let ed = crate::keys::generate_pem(AsymmetricAlgorithm::EdDsa).ok()?;
        let rsa =
            aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).ok()?;
        let public = |pem: String| {
            crate::keys::PrivateKey::from_pem(pem.as_bytes())
                .ok()?
                .public_key()
        };
        let rsa_public = {
            use aws_lc_rs::signature::KeyPair;
            let p = rsa.public_key();
            PublicKey::rsa(
                p.modulus().big_endian_without_leading_zero(),
                p.exponent().big_endian_without_leading_zero(),
            )
            .ok()?
        };
        Some(Arc::new([public(ec)?, public(ed)?, rsa_public]))
    });
    match (made, key_type) {
        (Some(d), KeyType::P256) => &d[0],
        (Some(d), KeyType::Ed25519) => &d[1],
        (Some(d), KeyType::Rsa) => &d[2],
        // Key generation failed (not expected): an Ed25519 key of zeros verifies nothing.
        (None, _) => FALLBACK.get_or_init(|| {
            PublicKey::ed25519(&[0x3b; 32]).unwrap_or_else(|_| unreachable!("a valid point"))
        }),
    }
}

/// Makes the decoys now (at load, not on a request), when `private_key_jwt` is in use.
pub fn prepare_decoys() {
    let _ = decoy(KeyType::Rsa);
}
