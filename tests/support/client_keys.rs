//! Client key pairs for the `private_key_jwt` tests that craft assertions themselves
//! (refusals, rotation), made at run time and never committed: P-256 and Ed25519 by
//! rcgen, RSA by `openssl genpkey` (of any size, so a short one too). Assertions are
//! signed with the library's signer (`secretgate::keys::PrivateKey`), with any header
//! and claims, or by `openssl dgst` for a key the library refuses (RSA under 2048 bits).
//! The interop tests do not use this: there the client side is a third-party library.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use secretgate::jws;
use secretgate::oauth::AsymmetricAlgorithm;
use serde_json::{json, Value};

use crate::support::{now, PUBLIC_URL, TOKEN_PATH};

pub struct ClientKey {
    pub kid: String,
    /// PKCS#8 PEM of the private key.
    pub pem_file: PathBuf,
    /// SubjectPublicKeyInfo PEM of the public key (what an algorithm-confusion attacker
    /// would use as an HMAC key).
    pub public_pem: String,
    /// The public JWK, with `kid` and `use: sig`.
    pub jwk: Value,
    /// The algorithm this key signs with by default.
    pub alg: AsymmetricAlgorithm,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("these tests need the openssl command (apt-get install openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

impl ClientKey {
    /// A new P-256 key (ES256).
    pub fn ec(dir: &Path, kid: &str) -> ClientKey {
        Self::rcgen(
            dir,
            kid,
            &rcgen::PKCS_ECDSA_P256_SHA256,
            AsymmetricAlgorithm::Es256,
        )
    }

    /// A new Ed25519 key (EdDSA).
    pub fn ed(dir: &Path, kid: &str) -> ClientKey {
        Self::rcgen(dir, kid, &rcgen::PKCS_ED25519, AsymmetricAlgorithm::EdDsa)
    }

    fn rcgen(
        dir: &Path,
        kid: &str,
        alg: &'static rcgen::SignatureAlgorithm,
        jws_alg: AsymmetricAlgorithm,
    ) -> ClientKey {
        let pair = rcgen::KeyPair::generate_for(alg).unwrap();
        let pem_file = dir.join(format!("{kid}.pem"));
        std::fs::write(&pem_file, pair.serialize_pem()).unwrap();
        let key = secretgate::keys::PrivateKey::from_pem(pair.serialize_pem().as_bytes()).unwrap();
        let mut jwk = Value::Object(key.public_key().unwrap().jwk_members().unwrap());
        jwk["kid"] = kid.into();
        jwk["use"] = "sig".into();
        ClientKey {
            kid: kid.to_owned(),
            pem_file,
            public_pem: pair.public_key_pem(),
            jwk,
            alg: jws_alg,
        }
    }

    /// A new RSA key of `bits` bits (RS256), made by `openssl genpkey`.
    pub fn rsa(dir: &Path, kid: &str, bits: u32) -> ClientKey {
        let pem_file = dir.join(format!("{kid}.pem"));
        let path = pem_file.to_str().unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
            path,
        ]);
        let public_pem = String::from_utf8(openssl(&["pkey", "-in", path, "-pubout"])).unwrap();
        let modulus =
            String::from_utf8(openssl(&["rsa", "-in", path, "-noout", "-modulus"])).unwrap();
        let n = hex(modulus.trim().trim_start_matches("Modulus="));
        let jwk = json!({
            "kty": "RSA", "n": jws::encode(n), "e": "AQAB", "kid": kid, "use": "sig",
        });
        ClientKey {
            kid: kid.to_owned(),
            pem_file,
            public_pem,
            jwk,
            alg: AsymmetricAlgorithm::Rs256,
        }
    }

    /// A compact JWS of `claims` under `header`, signed with this key under `alg`
    /// (which need not be the header's: an assertion whose `alg` lies about its
    /// signature). RS256 with a key the library refuses (under 2048 bits) is signed by
    /// `openssl dgst`.
    pub fn sign_as(&self, header: &Value, claims: &Value, alg: AsymmetricAlgorithm) -> String {
        let prefix = jws::header_prefix(header.to_string().as_bytes());
        jws::complete(&prefix, claims.to_string().as_bytes(), |input| {
            match secretgate::keys::PrivateKey::from_pem(&std::fs::read(&self.pem_file).unwrap()) {
                Ok(key) => key.sign(alg, input).map_err(|_| ()),
                Err(_) => Ok(self.openssl_rs256(input)),
            }
        })
        .unwrap()
    }

    fn openssl_rs256(&self, input: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("input");
        std::fs::write(&data, input).unwrap();
        openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            self.pem_file.to_str().unwrap(),
            data.to_str().unwrap(),
        ])
    }

    /// A valid assertion for `client_id`: this key, its algorithm, its `kid`.
    pub fn assertion(&self, client_id: &str) -> String {
        self.sign_as(&self.header(), &claims(client_id), self.alg)
    }

    /// `{"alg": <this key's>, "typ": "JWT", "kid": <this key's>}`.
    pub fn header(&self) -> Value {
        json!({"alg": self.alg.name(), "typ": "JWT", "kid": self.kid})
    }
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// Fresh, valid claims for `client_id`: `aud` the token endpoint URL, a minute to live, a
/// `jti` never used before.
pub fn claims(client_id: &str) -> Value {
    let n = JTI.fetch_add(1, Ordering::Relaxed);
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": format!("{PUBLIC_URL}{TOKEN_PATH}"),
        "iat": now(),
        "exp": now() + 60,
        "jti": format!("pk-{}-{n}", std::process::id()),
    })
}

/// A JWK Set of these keys' public JWKs.
pub fn jwk_set(keys: &[&ClientKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}
