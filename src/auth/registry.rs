//! The client registry: who may authenticate, with which method, and the prepared key
//! state for each secret.
//!
//! Built once per config load (never per request): every secret is turned into a keyed
//! digest for `client_secret_basic`/`client_secret_post` and into HMAC states for the
//! assertion algorithms the client may use, so a request only clones a prepared state.
//! Secrets given only as a hash (`hash`, `hash_file`) are kept as hashes; checking one is
//! slow by design and is done off the event loops (auth/hashing.rs): this module says when
//! it is needed ([`SecretCheck::NeedsHash`]).
//! Invariants: comparisons are constant time over fixed-length values (RFC 6749 §2.3.1
//! does not say so, but OIDC Core §16.19 and common sense do); an unknown client costs the
//! same work as a known one; several secrets per client form a rotation window and all of
//! them are always tried, so timing does not reveal which one matched. With hashed secrets
//! registered, every failure does the same number of hash verifications, the most any
//! client has: a client's own hashes padded with decoys (hashes of random bytes with the
//! parameters of the first hash in the config), an unknown client or a client with only
//! plain secrets decoys alone. So a wrong secret costs the same whatever the client id,
//! as long as every hash uses the same algorithm and parameters (docs/design.md §2.7).

use std::collections::{HashMap, HashSet};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use std::sync::Arc;

use crate::config::{ClientConfig, ClientKeySet, ClientSecret, PkceConfig, PkceRequired};
use crate::error::AuthFailure;
use crate::hashes::StoredHash;
use crate::jws::HmacKey;
use crate::oauth::{Algorithm, AsymmetricAlgorithm, AuthMethod, ClientId};
use crate::secret::Secret;
use crate::x509::{CertificateName, Thumbprint};

type Digest = [u8; 32];

/// Prepared key state for one secret of one client.
#[derive(Clone)]
struct PreparedSecret {
    /// HMAC-SHA256(process key, secret): compared against the same digest of what the
    /// client presents, so lengths never leak and no raw secret is kept for comparison.
    digest: Digest,
    /// One prepared MAC key per algorithm the client may use (jwt clients only).
    macs: Vec<HmacKey>,
}

/// A registered client.
pub struct RegisteredClient {
    pub client_id: ClientId,
    pub method: AuthMethod,
    pub algorithms: Vec<Algorithm>,
    /// `tls_client_auth`: the name its certificate must carry (RFC 8705 §2.1.2).
    pub tls_name: Option<CertificateName>,
    /// `self_signed_tls_client_auth`: its registered certificates (RFC 8705 §2.2).
    pub certificates: Vec<Thumbprint>,
    /// The grant types it may use at the token endpoint; `None`: any.
    pub grant_types: Option<Vec<String>>,
    /// `private_key_jwt`: its public keys, and the algorithms its assertions may use.
    pub key_set: Option<ClientKeySet>,
    pub asymmetric_algorithms: Vec<AsymmetricAlgorithm>,
    secrets: Vec<PreparedSecret>,
    /// The client's own hashes (what a verify-cache entry is keyed with).
    hashes: Vec<Arc<StoredHash>>,
    /// Its hashes padded with decoys to the registry's most: what a verification runs.
    work: Vec<Arc<StoredHash>>,
}

/// What checking a presented Basic or post secret came to.
#[derive(Debug)]
pub enum SecretCheck<'a> {
    Matched(&'a RegisteredClient),
    Failed(AuthFailure),
    /// No plain secret matched, and hashes registered somewhere: `work` is to be verified
    /// (slowly, off the event loop), of which `hashes` are the client's own (none for an
    /// unknown client or one with plain secrets only: the work is then decoys, it fails,
    /// at the same cost).
    NeedsHash {
        client: Option<&'a RegisteredClient>,
        hashes: &'a [Arc<StoredHash>],
        work: &'a [Arc<StoredHash>],
    },
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .field("algorithms", &self.algorithms)
            .field("secrets", &format_args!("[***; {}]", self.secrets.len()))
            .field("hashes", &self.hashes.len())
            .finish()
    }
}

pub struct Registry {
    clients: HashMap<ClientId, RegisteredClient>,
    /// Keys the digest of presented secrets; random per registry, never leaves memory.
    digest_key: Hmac<Sha256>,
    /// Stands in for an unknown client so that the failure path does the same work.
    decoy: PreparedSecret,
    /// The same, when hashed secrets are registered: as many hashes of random bytes, with
    /// the parameters of the first registered hash, as the client with the most hashes has.
    decoys: Vec<Arc<StoredHash>>,
    /// The ids of public clients as a lenient store might match them (lenient.rs).
    public_ids: HashSet<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("clients", &self.clients.len())
            .finish()
    }
}

impl Registry {
    pub fn new(clients_in_order: &[ClientConfig]) -> Registry {
        let clients = clients_in_order;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let digest_key = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        let mut decoy_secret = [0u8; 32];
        rand::rng().fill_bytes(&mut decoy_secret);
        let decoy = prepare(
            &digest_key,
            &Secret::new(decoy_secret.to_vec()),
            &Algorithm::ALL,
        );
        let mut clients = clients
            .iter()
            .map(|c| {
                let algs: &[Algorithm] = if c.auth_method == AuthMethod::ClientSecretJwt {
                    &c.algorithms
                } else {
                    &[]
                };
                let mut secrets = Vec::new();
                let mut hashes = Vec::new();
                for s in &c.secrets {
                    match s {
                        ClientSecret::Plain(plain) => {
                            secrets.push(prepare(&digest_key, plain, algs))
                        }
                        ClientSecret::Hashed(hash) => hashes.push(Arc::new(hash.clone())),
                    }
                }
                (
                    c.client_id.clone(),
                    RegisteredClient {
                        client_id: c.client_id.clone(),
                        method: c.auth_method,
                        algorithms: c.algorithms.clone(),
                        tls_name: c.tls_name.clone(),
                        certificates: c.certificates.clone(),
                        grant_types: c.grant_types.clone(),
                        key_set: c.key_set.clone(),
                        asymmetric_algorithms: c.asymmetric_algorithms.clone(),
                        secrets,
                        hashes,
                        work: Vec::new(),
                    },
                )
            })
            .collect::<HashMap<ClientId, RegisteredClient>>();
        // Decoys with the parameters of the first hash in config order.
        let most = clients.values().map(|c| c.hashes.len()).max().unwrap_or(0);
        let first = clients_in_order
            .iter()
            .flat_map(|c| &c.secrets)
            .find_map(|s| match s {
                ClientSecret::Hashed(h) => Some(h),
                ClientSecret::Plain(_) => None,
            });
        let decoys: Vec<Arc<StoredHash>> = match first {
            Some(h) => (0..most).map(|_| Arc::new(h.decoy())).collect(),
            None => Vec::new(),
        };
        for client in clients.values_mut() {
            let own = client.hashes.len();
            client.work = client.hashes.clone();
            client.work.extend(decoys[..most - own].iter().cloned());
        }
        let public_ids = clients
            .values()
            .filter(|c| c.method == AuthMethod::None)
            .map(|c| crate::lenient::identifier(&c.client_id))
            .collect();
        Registry {
            clients,
            digest_key,
            decoy,
            decoys,
            public_ids,
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn get(&self, client_id: &str) -> Option<&RegisteredClient> {
        self.clients.get(client_id)
    }

    /// Whether a request naming `client_id` (at the authorization endpoint, where nothing
    /// authenticates it) must use PKCE. With `pkce.required: public`, an id a lenient
    /// store could match to a public client counts as that client (`SPA` for `spa`,
    /// under a case-insensitive collation), so that it cannot dodge the rule.
    pub fn must_use_pkce(&self, client_id: Option<&str>, pkce: &PkceConfig) -> bool {
        match pkce.required {
            PkceRequired::Off => false,
            PkceRequired::All => true,
            PkceRequired::Public => client_id
                .is_some_and(|id| self.public_ids.contains(&crate::lenient::identifier(id))),
        }
    }

    /// `client_secret_basic` / `client_secret_post`: checks a presented secret against
    /// the client's secrets, and says if its hashes remain to be tried.
    pub fn check_secret(
        &self,
        client_id: &str,
        presented: &Secret,
        method: AuthMethod,
    ) -> SecretCheck<'_> {
        let mut mac = self.digest_key.clone();
        mac.update(presented.expose());
        let digest: Digest = mac.finalize().into_bytes().into();
        match self.clients.get(client_id) {
            None => {
                // Same work as a known client with one secret, result discarded.
                let _ = bool::from(digest.ct_eq(&self.decoy.digest));
                if self.decoys.is_empty() {
                    SecretCheck::Failed(AuthFailure::UnknownClient)
                } else {
                    SecretCheck::NeedsHash {
                        client: None,
                        hashes: &[],
                        work: &self.decoys,
                    }
                }
            }
            Some(client) => {
                // Constant time across all secrets: no early exit on the first match.
                let matched = client
                    .secrets
                    .iter()
                    .fold(Choice::from(0), |acc, s| acc | digest.ct_eq(&s.digest));
                if bool::from(matched) {
                    Self::method_check(client, method)
                } else if client.work.is_empty() {
                    SecretCheck::Failed(AuthFailure::WrongSecret)
                } else {
                    SecretCheck::NeedsHash {
                        client: Some(client),
                        hashes: &client.hashes,
                        work: &client.work,
                    }
                }
            }
        }
    }

    /// A client whose secret matched: still refused if it is registered for another
    /// method (RFC 7591 §2 token_endpoint_auth_method: one method per client).
    pub fn method_check(client: &RegisteredClient, method: AuthMethod) -> SecretCheck<'_> {
        if client.method == method {
            SecretCheck::Matched(client)
        } else {
            SecretCheck::Failed(AuthFailure::WrongMethod)
        }
    }

    /// [`Registry::check_secret`] where no hash is involved (tests and benches).
    pub fn verify_secret(
        &self,
        client_id: &str,
        presented: &Secret,
        method: AuthMethod,
    ) -> Result<&RegisteredClient, AuthFailure> {
        match self.check_secret(client_id, presented, method) {
            SecretCheck::Matched(client) => Ok(client),
            SecretCheck::Failed(f) => Err(f),
            SecretCheck::NeedsHash { client: None, .. } => Err(AuthFailure::UnknownClient),
            SecretCheck::NeedsHash { .. } => Err(AuthFailure::WrongSecret),
        }
    }

    /// Verifies an assertion MAC for `client` (or for the decoy when `client` is `None`).
    /// Returns true when any of the client's secrets produced `signature`.
    pub fn verify_mac(
        &self,
        client: Option<&RegisteredClient>,
        alg: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> bool {
        let secrets = match client {
            Some(c) => c.secrets.as_slice(),
            None => std::slice::from_ref(&self.decoy),
        };
        secrets.iter().fold(false, |ok, s| {
            // `verify` compares in constant time (RFC 7515 §10.7 timing note).
            let this = s
                .macs
                .iter()
                .find(|k| k.algorithm() == alg)
                .is_some_and(|k| k.verify(signing_input, signature));
            ok | this
        })
    }
}

fn prepare(digest_key: &Hmac<Sha256>, secret: &Secret, algs: &[Algorithm]) -> PreparedSecret {
    let mut mac = digest_key.clone();
    mac.update(secret.expose());
    // RFC 7523 §3 / OIDC Core §9: the MAC key is the client secret's own octets (UTF-8),
    // not a base64-decoding of it.
    let key = secret.expose();
    PreparedSecret {
        digest: mac.finalize().into_bytes().into(),
        macs: algs.iter().map(|&alg| HmacKey::new(alg, key)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Sha512;

    fn registry() -> Registry {
        Registry::new(&[
            ClientConfig {
                client_id: ClientId::new("billing"),
                auth_method: AuthMethod::ClientSecretBasic,
                algorithms: vec![Algorithm::Hs256],
                secrets: vec![
                    ClientSecret::Plain(Secret::new("old-secret")),
                    ClientSecret::Plain(Secret::new("new-secret")),
                ],
                tls_name: None,
                certificates: Vec::new(),
                grant_types: None,
                key_set: None,
                asymmetric_algorithms: Vec::new(),
            },
            ClientConfig {
                client_id: ClientId::new("jwt"),
                auth_method: AuthMethod::ClientSecretJwt,
                algorithms: vec![Algorithm::Hs256],
                secrets: vec![ClientSecret::Plain(Secret::new(
                    "0123456789abcdef0123456789abcdef",
                ))],
                tls_name: None,
                certificates: Vec::new(),
                grant_types: None,
                key_set: None,
                asymmetric_algorithms: Vec::new(),
            },
        ])
    }

    #[test]
    fn rotation_window_accepts_every_secret() {
        let r = registry();
        let basic = AuthMethod::ClientSecretBasic;
        assert!(r
            .verify_secret("billing", &Secret::new("old-secret"), basic)
            .is_ok());
        assert!(r
            .verify_secret("billing", &Secret::new("new-secret"), basic)
            .is_ok());
        assert_eq!(
            r.verify_secret("billing", &Secret::new("new-secreT"), basic)
                .unwrap_err(),
            AuthFailure::WrongSecret
        );
        assert_eq!(
            r.verify_secret("nobody", &Secret::new("new-secret"), basic)
                .unwrap_err(),
            AuthFailure::UnknownClient
        );
        assert_eq!(
            r.verify_secret(
                "billing",
                &Secret::new("new-secret"),
                AuthMethod::ClientSecretPost
            )
            .unwrap_err(),
            AuthFailure::WrongMethod
        );
    }

    #[test]
    fn mac_uses_only_allowed_algorithms() {
        let r = registry();
        let client = r.get("jwt");
        let key = b"0123456789abcdef0123456789abcdef";
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(b"x.y");
        let sig = m.finalize().into_bytes();
        assert!(r.verify_mac(client, Algorithm::Hs256, b"x.y", &sig));
        assert!(!r.verify_mac(client, Algorithm::Hs256, b"x.z", &sig));
        // Not prepared for HS512: never verifies.
        let mut m = Hmac::<Sha512>::new_from_slice(key).unwrap();
        m.update(b"x.y");
        assert!(!r.verify_mac(client, Algorithm::Hs512, b"x.y", &m.finalize().into_bytes()));
        assert!(!r.verify_mac(None, Algorithm::Hs256, b"x.y", &sig));
    }

    #[test]
    fn debug_hides_secrets() {
        let r = registry();
        let text = format!("{:?}", r.get("billing").unwrap());
        assert!(text.contains("[***; 2]"), "{text}");
        assert!(!text.contains("old-secret") && !text.contains("new-secret"));
    }

    #[test]
    fn every_failure_verifies_as_many_hashes() {
        use crate::hashes::{make_hash, HashParams};
        let hashed = |secret: &str| {
            let text = make_hash(secret.as_bytes(), HashParams::Bcrypt(10)).unwrap();
            ClientSecret::Hashed(StoredHash::parse(&text).unwrap())
        };
        let client = |id: &str, secrets| ClientConfig {
            client_id: ClientId::new(id),
            auth_method: AuthMethod::ClientSecretBasic,
            algorithms: vec![Algorithm::Hs256],
            secrets,
            tls_name: None,
            certificates: Vec::new(),
            grant_types: None,
            key_set: None,
            asymmetric_algorithms: Vec::new(),
        };
        let r = Registry::new(&[
            client("two", vec![hashed("a"), hashed("b")]),
            client("one", vec![hashed("c")]),
            client("plain", vec![ClientSecret::Plain(Secret::new("p"))]),
        ]);
        let basic = AuthMethod::ClientSecretBasic;
        let wrong = Secret::new("wrong");
        let work = |id: &str| match r.check_secret(id, &wrong, basic) {
            SecretCheck::NeedsHash { hashes, work, .. } => (hashes.len(), work.len()),
            other => panic!("{id}: {other:?}"),
        };
        // Own hashes first, padded with decoys to the most any client has (two).
        assert_eq!(work("two"), (2, 2));
        assert_eq!(work("one"), (1, 2));
        assert_eq!(work("plain"), (0, 2));
        assert_eq!(work("nobody"), (0, 2));
        // A plain secret that matches needs no hashing at all.
        assert!(matches!(
            r.check_secret("plain", &Secret::new("p"), basic),
            SecretCheck::Matched(_)
        ));
    }
}
