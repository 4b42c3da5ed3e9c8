//! Private keys the gateway signs with, and the public keys it publishes: the asymmetric
//! internal header (ES256, EdDSA; docs/design.md §5.3) and the `assertion` command's
//! `private_key_jwt` assertions (RS256, PS256, ES256, EdDSA).
//!
//! Keys are PKCS#8 PEM (`openssl genpkey`, `secretgate new-key`), parsed by aws-lc-rs,
//! the crypto provider rustls already uses. A key is checked against the algorithm it is
//! configured for (a P-256 key never signs EdDSA), and its public half is what the JWK
//! Set publishes: never private material, never an HMAC key.
//! Invariant: `Debug` never prints key material.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use secretgate_verify::{AsymmetricAlgorithm, KeyType, PublicKey};

pub use crate::error::SignFailed;

/// Why a private key cannot be used. Fixed text; never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no PEM private key in it")]
    NotPem,
    #[error("a {0} PEM key: convert it to PKCS#8 (`openssl pkcs8 -topk8 -nocrypt -in KEY`)")]
    NotPkcs8(&'static str),
    #[error("not a P-256, Ed25519 or RSA PKCS#8 key")]
    Unsupported,
    #[error("{found}, but {alg} needs {needs}")]
    Mismatch {
        found: &'static str,
        alg: &'static str,
        needs: &'static str,
    },
    #[error("an RSA key of {0} bits; at least 2048 are needed")]
    RsaTooSmall(usize),
}

/// A private key, parsed.
pub enum PrivateKey {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, ***)", self.describe())
    }
}

fn type_name(t: KeyType) -> &'static str {
    match t {
        KeyType::P256 => "a P-256 key",
        KeyType::Ed25519 => "an Ed25519 key",
        KeyType::Rsa => "an RSA key",
    }
}

impl PrivateKey {
    /// Parses a PKCS#8 PEM private key of any supported type.
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NotPem)?;
        let pkcs8 = match der {
            PrivateKeyDer::Pkcs8(k) => k,
            PrivateKeyDer::Pkcs1(_) => return Err(KeyError::NotPkcs8("PKCS#1 (RSA PRIVATE KEY)")),
            PrivateKeyDer::Sec1(_) => return Err(KeyError::NotPkcs8("SEC1 (EC PRIVATE KEY)")),
            _ => return Err(KeyError::Unsupported),
        };
        let bytes = pkcs8.secret_pkcs8_der();
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, bytes)
        {
            return Ok(PrivateKey::P256(k));
        }
        // OpenSSL writes Ed25519 keys as PKCS#8 v1 (no public key inside): accepted.
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes) {
            return Ok(PrivateKey::Ed25519(k));
        }
        if let Ok(k) = RsaKeyPair::from_pkcs8(bytes) {
            let bits = k.public_modulus_len() * 8;
            // RFC 7518 §3.3: at least 2048 bits.
            if bits < 2048 {
                return Err(KeyError::RsaTooSmall(bits));
            }
            return Ok(PrivateKey::Rsa(k));
        }
        Err(KeyError::Unsupported)
    }

    /// Parses a key for `alg`, refusing one of another type.
    pub fn for_algorithm(pem: &[u8], alg: AsymmetricAlgorithm) -> Result<PrivateKey, KeyError> {
        let key = PrivateKey::from_pem(pem)?;
        if key.key_type() != alg.key_type() {
            return Err(KeyError::Mismatch {
                found: key.describe(),
                alg: alg.name(),
                needs: type_name(alg.key_type()),
            });
        }
        Ok(key)
    }

    pub fn key_type(&self) -> KeyType {
        match self {
            PrivateKey::P256(_) => KeyType::P256,
            PrivateKey::Ed25519(_) => KeyType::Ed25519,
            PrivateKey::Rsa(_) => KeyType::Rsa,
        }
    }

    fn describe(&self) -> &'static str {
        type_name(self.key_type())
    }

    /// The JWS signature of `input` under `alg` (`r || s` for ES256, RFC 7518 §3.4).
    pub fn sign(&self, alg: AsymmetricAlgorithm, input: &[u8]) -> Result<Vec<u8>, SignFailed> {
        let rng = SystemRandom::new();
        match (self, alg) {
            (PrivateKey::P256(k), AsymmetricAlgorithm::Es256) => k
                .sign(&rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignFailed),
            (PrivateKey::Ed25519(k), AsymmetricAlgorithm::EdDsa) => {
                Ok(k.sign(input).as_ref().to_vec())
            }
            (PrivateKey::Rsa(k), AsymmetricAlgorithm::Rs256 | AsymmetricAlgorithm::Ps256) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    AsymmetricAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, input, &mut out)
                    .map_err(|_| SignFailed)?;
                Ok(out)
            }
            _ => Err(SignFailed),
        }
    }

    /// The public half, as a key that verifies (and can be published as a JWK).
    pub fn public_key(&self) -> Option<PublicKey> {
        match self {
            PrivateKey::P256(k) => {
                let point = k.public_key().as_ref();
                PublicKey::p256(point.get(1..33)?, point.get(33..)?).ok()
            }
            PrivateKey::Ed25519(k) => PublicKey::ed25519(k.public_key().as_ref()).ok(),
            PrivateKey::Rsa(k) => {
                let public = k.public_key();
                PublicKey::rsa(
                    public.modulus().big_endian_without_leading_zero(),
                    public.exponent().big_endian_without_leading_zero(),
                )
                .ok()
            }
        }
    }

    /// The public JWK of this key for `alg` under `kid` (`use: sig`); `None` for RSA,
    /// which the gateway never publishes.
    pub fn public_jwk(&self, kid: &str, alg: AsymmetricAlgorithm) -> Option<serde_json::Value> {
        let mut members = self.public_key()?.jwk_members()?;
        members.insert("kid".into(), kid.into());
        members.insert("alg".into(), alg.name().into());
        members.insert("use".into(), "sig".into());
        Some(serde_json::Value::Object(members))
    }
}

/// The RFC 7638 thumbprint of a public JWK (its required members, in lexicographic
/// order, without white space, SHA-256, base64url): a `kid` derived from the key itself.
pub fn jwk_thumbprint(jwk: &serde_json::Value) -> Option<String> {
    use sha2::{Digest, Sha256};
    let required: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, name) in required.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        canonical.push_str(&format!("\"{name}\":"));
        canonical.push_str(&serde_json::to_string(jwk.get(name)?.as_str()?).ok()?);
    }
    canonical.push('}');
    Some(secretgate_verify::jws::encode(Sha256::digest(
        canonical.as_bytes(),
    )))
}

/// Why `new-key` could not write a key.
#[derive(Debug, thiserror::Error)]
pub enum NewKeyError {
    #[error("{0} exists: not overwriting a key")]
    Exists(std::path::PathBuf),
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// `secretgate new-key`: writes a new private key for `alg` to `path` (PKCS#8 PEM, mode
/// 0600, never over an existing file) and returns its public JWK, under `kid` or (when
/// `None`) its RFC 7638 thumbprint.
pub fn new_key_file(
    alg: AsymmetricAlgorithm,
    path: &std::path::Path,
    kid: Option<&str>,
) -> Result<serde_json::Value, NewKeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let pem = generate_pem(alg)?;
    let key = PrivateKey::for_algorithm(pem.as_bytes(), alg)?;
    let anonymous = key.public_jwk("", alg).ok_or(KeyError::Unsupported)?;
    let kid = match kid {
        Some(k) => k.to_owned(),
        None => jwk_thumbprint(&anonymous).ok_or(KeyError::Unsupported)?,
    };
    let jwk = key.public_jwk(&kid, alg).ok_or(KeyError::Unsupported)?;
    // Never over an existing file (a key in use), and readable by its owner only.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => NewKeyError::Exists(path.to_owned()),
            _ => NewKeyError::Write {
                path: path.to_owned(),
                source: e,
            },
        })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| NewKeyError::Write {
            path: path.to_owned(),
            source,
        })?;
    Ok(jwk)
}

/// A new PKCS#8 private key for `alg` (ES256: P-256, EdDSA: Ed25519), as PEM.
pub fn generate_pem(alg: AsymmetricAlgorithm) -> Result<String, KeyError> {
    let algorithm = match alg {
        AsymmetricAlgorithm::Es256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        AsymmetricAlgorithm::EdDsa => &rcgen::PKCS_ED25519,
        AsymmetricAlgorithm::Rs256 | AsymmetricAlgorithm::Ps256 => {
            return Err(KeyError::Unsupported)
        }
    };
    rcgen::KeyPair::generate_for(algorithm)
        .map(|k| k.serialize_pem())
        .map_err(|_| KeyError::Unsupported)
}

/// A P-256 key generated now, written under the SEC1 label (`EC PRIVATE KEY`), as
/// `openssl ecparam -genkey` labels its keys: the PEM parser classifies by label, which is
/// what the refusal of non-PKCS#8 keys is tested against. No key is kept in the source.
#[cfg(test)]
pub(crate) fn sec1_labelled_pem() -> String {
    let pkcs8 = generate_pem(AsymmetricAlgorithm::Es256).expect("P-256 generates");
    let label = ["EC", "PRIVATE", "KEY"].join(" ");
    pkcs8.replace(&["PRIVATE", "KEY"].join(" "), &label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_what_their_public_key_verifies() {
        for alg in [AsymmetricAlgorithm::Es256, AsymmetricAlgorithm::EdDsa] {
            let pem = generate_pem(alg).unwrap();
            // The PKCS#8 label (spelled in pieces: no key text is kept in the source).
            let label = format!("-----BEGIN {}-----", ["PRIVATE", "KEY"].join(" "));
            assert!(pem.starts_with(&label), "{pem}");
            let key = PrivateKey::for_algorithm(pem.as_bytes(), alg).unwrap();
            let sig = key.sign(alg, b"input").unwrap();
            let public = key.public_key().unwrap();
            assert!(public.verify(alg, b"input", &sig));
            assert!(!public.verify(alg, b"other", &sig));
            let jwk = key.public_jwk("k1", alg).unwrap();
            assert_eq!(jwk["kid"], "k1");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], alg.name());
            assert!(jwk.get("d").is_none(), "no private material: {jwk}");
            assert!(!format!("{key:?}").contains(&pem[30..60]));
        }
    }

    #[test]
    fn new_key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let jwk = new_key_file(AsymmetricAlgorithm::EdDsa, &path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The kid is the RFC 7638 thumbprint: 43 base64url characters.
        assert_eq!(jwk["kid"].as_str().unwrap().len(), 43);
        assert_eq!(jwk["alg"], "EdDSA");
        let pem = std::fs::read(&path).unwrap();
        let key = PrivateKey::for_algorithm(&pem, AsymmetricAlgorithm::EdDsa).unwrap();
        assert_eq!(
            key.public_jwk(jwk["kid"].as_str().unwrap(), AsymmetricAlgorithm::EdDsa)
                .unwrap(),
            jwk
        );
        assert!(matches!(
            new_key_file(AsymmetricAlgorithm::Es256, &path, Some("k2")),
            Err(NewKeyError::Exists(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), pem, "untouched");
    }

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn thumbprints_follow_rfc7638() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_key_of_another_type_or_format_is_refused_with_its_reason() {
        let ec = generate_pem(AsymmetricAlgorithm::Es256).unwrap();
        let ed = generate_pem(AsymmetricAlgorithm::EdDsa).unwrap();
        assert_eq!(
            PrivateKey::for_algorithm(ec.as_bytes(), AsymmetricAlgorithm::EdDsa).unwrap_err(),
            KeyError::Mismatch {
                found: "a P-256 key",
                alg: "EdDSA",
                needs: "an Ed25519 key"
            }
        );
        assert_eq!(
            PrivateKey::for_algorithm(ed.as_bytes(), AsymmetricAlgorithm::Es256).unwrap_err(),
            KeyError::Mismatch {
                found: "an Ed25519 key",
                alg: "ES256",
                needs: "a P-256 key"
            }
        );
        assert_eq!(
            PrivateKey::from_pem(b"not a key").unwrap_err(),
            KeyError::NotPem
        );
        // What `openssl ecparam -genkey` writes: the label decides.
        let sec1 = sec1_labelled_pem();
        assert!(sec1.starts_with("-----BEGIN EC "), "{sec1}");
        assert_eq!(
            PrivateKey::from_pem(sec1.as_bytes()).unwrap_err(),
            KeyError::NotPkcs8("SEC1 (EC PRIVATE KEY)")
        );
    }
}
