//! JSON Web Keys (RFC 7517) → public keys that verify signatures, with aws-lc-rs.
//!
//! Accepted (RFC 7518 §6, RFC 8037 §2): RSA (`n`, `e`; at least 2048 bits; RS256,
//! PS256), EC on P-256 (`x`, `y`; ES256) and OKP Ed25519 (`x`; EdDSA). Refused, each with
//! its reason: a private key (`d` present), `use` other than `sig`, `key_ops` without
//! `verify`, another `kty` or curve, an `alg` that does not fit the key (an RSA key never
//! verifies ES256 nor an HMAC), a point not on the curve, a short RSA modulus. In a JWK
//! Set a repeated `kid` is refused. Each key is parsed once, here: verification then
//! costs no parsing ([`aws_lc_rs::signature::ParsedPublicKey`]).
//!
//! Invariants: a [`PublicKey`] verifies only with algorithms of its own type
//! ([`PublicKey::verify`] says no to any other); there is no HMAC here, so a public key
//! can never be used as an HMAC secret (algorithm confusion, RFC 8725 §2.1).

use aws_lc_rs::signature::{self, ParsedPublicKey};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::alg::{AsymmetricAlgorithm, KeyType};
use crate::jws;

/// Why a JWK was refused. Fixed text, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("not a JSON object with a kty")]
    Malformed,
    #[error("a private key (`d` present): publish only public keys")]
    Private,
    #[error("`use` is not `sig`")]
    NotForSignatures,
    #[error("`key_ops` does not include `verify`")]
    NotForVerification,
    #[error("kty `{0}` is not supported (RSA, EC P-256, OKP Ed25519)")]
    UnsupportedKeyType(String),
    #[error("curve `{0}` is not supported (EC: P-256; OKP: Ed25519)")]
    UnsupportedCurve(String),
    #[error("alg `{0}` is not supported (RS256, PS256, ES256, EdDSA)")]
    UnsupportedAlgorithm(String),
    #[error("alg `{0}` does not fit the key type")]
    AlgorithmMismatch(String),
    #[error("member `{0}` missing or not base64url")]
    Member(&'static str),
    #[error("RSA modulus of {0} bits; at least 2048 are needed")]
    RsaTooSmall(usize),
    #[error("not a valid public key")]
    InvalidKey,
    #[error("kid `{0}` appears twice in the set")]
    DuplicateKid(String),
}

/// Why a JWK Set as a whole was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkSetError {
    #[error("not a JSON object with a `keys` array")]
    Malformed,
}

/// A public key, parsed once for the algorithms its type allows.
#[derive(Clone)]
pub enum PublicKey {
    Rsa {
        /// RS256 and PS256 verify with the same modulus, under different paddings.
        pkcs1: ParsedPublicKey,
        pss: ParsedPublicKey,
        bits: usize,
    },
    P256(ParsedPublicKey),
    Ed25519(ParsedPublicKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublicKey::Rsa { bits, .. } => write!(f, "PublicKey::Rsa({bits} bits)"),
            PublicKey::P256(_) => f.write_str("PublicKey::P256"),
            PublicKey::Ed25519(_) => f.write_str("PublicKey::Ed25519"),
        }
    }
}

impl PublicKey {
    pub fn key_type(&self) -> KeyType {
        match self {
            PublicKey::Rsa { .. } => KeyType::Rsa,
            PublicKey::P256(_) => KeyType::P256,
            PublicKey::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// RSA from its modulus and exponent (big-endian, as in a JWK).
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<PublicKey, JwkError> {
        let n = strip_zeros(n);
        let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
        // RFC 7518 §3.3: a key of 2048 bits or larger MUST be used.
        if bits < 2048 {
            return Err(JwkError::RsaTooSmall(bits));
        }
        let der = rsa_public_key_der(n, strip_zeros(e));
        let parse = |alg| ParsedPublicKey::new(alg, &der).map_err(|_| JwkError::InvalidKey);
        Ok(PublicKey::Rsa {
            pkcs1: parse(&signature::RSA_PKCS1_2048_8192_SHA256)?,
            pss: parse(&signature::RSA_PSS_2048_8192_SHA256)?,
            bits,
        })
    }

    /// P-256 from its coordinates (32 bytes each).
    pub fn p256(x: &[u8], y: &[u8]) -> Result<PublicKey, JwkError> {
        if x.len() != 32 || y.len() != 32 {
            return Err(JwkError::InvalidKey);
        }
        let mut point = Vec::with_capacity(65);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        // aws-lc-rs checks that the point is on the curve.
        ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .map(PublicKey::P256)
            .map_err(|_| JwkError::InvalidKey)
    }

    /// Ed25519 from its 32 bytes.
    pub fn ed25519(x: &[u8]) -> Result<PublicKey, JwkError> {
        if x.len() != 32 {
            return Err(JwkError::InvalidKey);
        }
        ParsedPublicKey::new(&signature::ED25519, x)
            .map(PublicKey::Ed25519)
            .map_err(|_| JwkError::InvalidKey)
    }

    /// Whether `signature` by this key under `alg` covers `input`. An algorithm of
    /// another key type never verifies (RFC 8725 §3.1: the key decides, not the header).
    pub fn verify(&self, alg: AsymmetricAlgorithm, input: &[u8], signature: &[u8]) -> bool {
        let key = match (self, alg) {
            (PublicKey::Rsa { pkcs1, .. }, AsymmetricAlgorithm::Rs256) => pkcs1,
            (PublicKey::Rsa { pss, .. }, AsymmetricAlgorithm::Ps256) => pss,
            (PublicKey::P256(k), AsymmetricAlgorithm::Es256) => k,
            (PublicKey::Ed25519(k), AsymmetricAlgorithm::EdDsa) => k,
            _ => return false,
        };
        key.verify_sig(input, signature).is_ok()
    }

    /// The public JWK members of this key (without `kid`, `alg`, `use`), for publishing:
    /// only the P-256 and Ed25519 keys the gateway signs with.
    pub fn jwk_members(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let mut m = serde_json::Map::new();
        match self {
            PublicKey::P256(k) => {
                let point = k.as_ref();
                // SEC1 uncompressed: 0x04 || x || y.
                let (x, y) = point.get(1..)?.split_at(32);
                m.insert("kty".into(), "EC".into());
                m.insert("crv".into(), "P-256".into());
                m.insert("x".into(), jws::encode(x).into());
                m.insert("y".into(), jws::encode(y).into());
            }
            PublicKey::Ed25519(k) => {
                m.insert("kty".into(), "OKP".into());
                m.insert("crv".into(), "Ed25519".into());
                m.insert("x".into(), jws::encode(k.as_ref()).into());
            }
            PublicKey::Rsa { .. } => return None,
        }
        Some(m)
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// DER of an RFC 8017 `RSAPublicKey` (SEQUENCE of the two INTEGERs), what aws-lc-rs
/// parses: a few lines, not worth an ASN.1 crate.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        // A positive INTEGER whose first byte has the high bit set takes a leading zero.
        let pad = v.first().is_none_or(|b| b & 0x80 != 0);
        out.push(0x02);
        length(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    fn length(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let significant = strip_zeros(&bytes);
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// One parsed public JWK.
#[derive(Clone, Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The `alg` the key is restricted to, if it names one.
    pub alg: Option<AsymmetricAlgorithm>,
    pub key: PublicKey,
}

impl Jwk {
    /// Whether this key may verify a signature under `alg`: its type fits, and its own
    /// `alg` (if any) is that one.
    pub fn allows(&self, alg: AsymmetricAlgorithm) -> bool {
        self.key.key_type() == alg.key_type() && self.alg.is_none_or(|a| a == alg)
    }
}

#[derive(Deserialize)]
struct RawJwk<'a> {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    #[serde(borrow)]
    d: Option<&'a RawValue>,
    // Private RSA members: any of them makes it a private key too.
    #[serde(borrow)]
    p: Option<&'a RawValue>,
    #[serde(borrow)]
    q: Option<&'a RawValue>,
}

fn member(value: &Option<String>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    value
        .as_deref()
        .and_then(jws::decode)
        .filter(|b| !b.is_empty())
        .ok_or(JwkError::Member(name))
}

/// Parses one JWK (a JSON object).
pub fn parse_jwk(json: &[u8]) -> Result<Jwk, JwkError> {
    // RFC 7517 §4: a JWK is a JSON object (not an array read by position).
    let raw: RawJwk<'_> = crate::json::object(json).ok_or(JwkError::Malformed)?;
    from_raw(raw)
}

fn from_raw(raw: RawJwk<'_>) -> Result<Jwk, JwkError> {
    let kty = raw.kty.ok_or(JwkError::Malformed)?;
    // RFC 7517 §4.2, §4.3: published keys verify signatures, nothing else.
    if raw.d.is_some() || raw.p.is_some() || raw.q.is_some() {
        return Err(JwkError::Private);
    }
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(JwkError::NotForSignatures);
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err(JwkError::NotForVerification);
    }
    let alg = match raw.alg {
        None => None,
        Some(name) => Some(
            AsymmetricAlgorithm::from_name(&name).ok_or(JwkError::UnsupportedAlgorithm(name))?,
        ),
    };
    let key = match (kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => PublicKey::rsa(&member(&raw.n, "n")?, &member(&raw.e, "e")?)?,
        ("EC", Some("P-256")) => PublicKey::p256(&member(&raw.x, "x")?, &member(&raw.y, "y")?)?,
        ("OKP", Some("Ed25519")) => PublicKey::ed25519(&member(&raw.x, "x")?)?,
        ("EC" | "OKP", crv) => {
            return Err(JwkError::UnsupportedCurve(crv.unwrap_or("").to_owned()))
        }
        (other, _) => return Err(JwkError::UnsupportedKeyType(other.to_owned())),
    };
    if let Some(a) = alg {
        if a.key_type() != key.key_type() {
            return Err(JwkError::AlgorithmMismatch(a.name().to_owned()));
        }
    }
    Ok(Jwk {
        kid: raw.kid,
        alg,
        key,
    })
}

/// Parses a JWK Set (RFC 7517 §5): each key parsed on its own, in order, so that a caller
/// can refuse the set for one bad key (a configured file) or drop that key and go on (a
/// set fetched from a client's `jwks_uri`). A `kid` seen before is refused.
pub fn parse_set(json: &[u8]) -> Result<Vec<Result<Jwk, JwkError>>, JwkSetError> {
    #[derive(Deserialize)]
    struct Set<'a> {
        #[serde(borrow)]
        keys: Vec<&'a RawValue>,
    }
    // RFC 7517 §5: a JWK Set is a JSON object (`[[]]` would be a set of no keys).
    let set: Set<'_> = crate::json::object(json).ok_or(JwkSetError::Malformed)?;
    let mut seen: Vec<String> = Vec::new();
    Ok(set
        .keys
        .into_iter()
        .map(|raw| {
            let jwk = crate::json::object::<RawJwk<'_>>(raw.get().as_bytes())
                .ok_or(JwkError::Malformed)
                .and_then(from_raw)?;
            if let Some(kid) = &jwk.kid {
                if seen.contains(kid) {
                    return Err(JwkError::DuplicateKid(kid.clone()));
                }
                seen.push(kid.clone());
            }
            Ok(jwk)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

    fn ec() -> EcdsaKeyPair {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .unwrap()
    }

    fn ec_jwk(pair: &EcdsaKeyPair, extra: serde_json::Value) -> serde_json::Value {
        let point = pair.public_key().as_ref();
        let mut jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": jws::encode(&point[1..33]), "y": jws::encode(&point[33..]),
        });
        for (k, v) in extra.as_object().unwrap() {
            jwk[k] = v.clone();
        }
        jwk
    }

    fn rsa_jwk(bits: aws_lc_rs::rsa::KeySize) -> (RsaKeyPair, serde_json::Value) {
        let pair = RsaKeyPair::generate(bits).unwrap();
        let public = pair.public_key();
        let (n, e) = (public.modulus(), public.exponent());
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": jws::encode(n.big_endian_without_leading_zero()),
            "e": jws::encode(e.big_endian_without_leading_zero()),
        });
        (pair, jwk)
    }

    #[test]
    fn each_key_type_verifies_its_own_algorithms_only() {
        let rng = SystemRandom::new();
        // EC P-256, ES256.
        let pair = ec();
        let jwk = parse_jwk(ec_jwk(&pair, serde_json::json!({})).to_string().as_bytes()).unwrap();
        let sig = pair.sign(&rng, b"input").unwrap();
        assert!(jwk
            .key
            .verify(AsymmetricAlgorithm::Es256, b"input", sig.as_ref()));
        assert!(!jwk
            .key
            .verify(AsymmetricAlgorithm::Es256, b"other", sig.as_ref()));
        for other in [
            AsymmetricAlgorithm::Rs256,
            AsymmetricAlgorithm::Ps256,
            AsymmetricAlgorithm::EdDsa,
        ] {
            assert!(!jwk.key.verify(other, b"input", sig.as_ref()), "{other:?}");
            assert!(!jwk.allows(other));
        }
        // Ed25519, EdDSA.
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = parse_jwk(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": jws::encode(ed.public_key().as_ref())})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let sig = ed.sign(b"input");
        assert!(jwk
            .key
            .verify(AsymmetricAlgorithm::EdDsa, b"input", sig.as_ref()));
        assert!(!jwk
            .key
            .verify(AsymmetricAlgorithm::Es256, b"input", sig.as_ref()));
        // RSA 2048: RS256 and PS256 each with its padding.
        let (pair, raw) = rsa_jwk(aws_lc_rs::rsa::KeySize::Rsa2048);
        let jwk = parse_jwk(raw.to_string().as_bytes()).unwrap();
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(&signature::RSA_PKCS1_SHA256, &rng, b"input", &mut sig)
            .unwrap();
        assert!(jwk.key.verify(AsymmetricAlgorithm::Rs256, b"input", &sig));
        assert!(!jwk.key.verify(AsymmetricAlgorithm::Ps256, b"input", &sig));
        pair.sign(&signature::RSA_PSS_SHA256, &rng, b"input", &mut sig)
            .unwrap();
        assert!(jwk.key.verify(AsymmetricAlgorithm::Ps256, b"input", &sig));
        assert!(!jwk.key.verify(AsymmetricAlgorithm::Rs256, b"input", &sig));
        assert!(!jwk.key.verify(AsymmetricAlgorithm::Es256, b"input", &sig));
        assert!(matches!(jwk.key, PublicKey::Rsa { bits: 2048, .. }));
    }

    #[test]
    fn refusals_each_with_its_reason() {
        let pair = ec();
        let refused = |extra: serde_json::Value| {
            parse_jwk(ec_jwk(&pair, extra).to_string().as_bytes()).unwrap_err()
        };
        assert_eq!(refused(serde_json::json!({"d": "AAAA"})), JwkError::Private);
        assert_eq!(
            refused(serde_json::json!({"use": "enc"})),
            JwkError::NotForSignatures
        );
        assert_eq!(
            refused(serde_json::json!({"key_ops": ["encrypt"]})),
            JwkError::NotForVerification
        );
        assert_eq!(
            refused(serde_json::json!({"alg": "RS256"})),
            JwkError::AlgorithmMismatch("RS256".into())
        );
        assert_eq!(
            refused(serde_json::json!({"alg": "HS256"})),
            JwkError::UnsupportedAlgorithm("HS256".into())
        );
        assert_eq!(
            refused(serde_json::json!({"alg": "none"})),
            JwkError::UnsupportedAlgorithm("none".into())
        );
        assert_eq!(
            refused(serde_json::json!({"crv": "P-384"})),
            JwkError::UnsupportedCurve("P-384".into())
        );
        assert_eq!(
            refused(serde_json::json!({"kty": "oct", "k": "AAAA"})),
            JwkError::UnsupportedKeyType("oct".into())
        );
        // A point off the curve.
        assert_eq!(
            refused(serde_json::json!({"y": jws::encode([7u8; 32])})),
            JwkError::InvalidKey
        );
        assert_eq!(
            refused(serde_json::json!({"x": "not base64url!"})),
            JwkError::Member("x")
        );
        let (_, small) = rsa_jwk(aws_lc_rs::rsa::KeySize::Rsa2048);
        let mut n = jws::decode(small["n"].as_str().unwrap()).unwrap();
        n.truncate(128);
        n[0] |= 0x80;
        let mut short = small.clone();
        short["n"] = jws::encode(&n).into();
        assert_eq!(
            parse_jwk(short.to_string().as_bytes()).unwrap_err(),
            JwkError::RsaTooSmall(1024)
        );
        assert_eq!(parse_jwk(b"[1]").unwrap_err(), JwkError::Malformed);
    }

    #[test]
    fn rsa_and_okp_refusals_each_with_its_reason() {
        let (_, rsa) = rsa_jwk(aws_lc_rs::rsa::KeySize::Rsa2048);
        let with = |base: &serde_json::Value, extra: serde_json::Value| {
            let mut jwk = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                jwk[k] = v.clone();
            }
            parse_jwk(jwk.to_string().as_bytes())
        };
        // RSA: the private members, `use: enc`, a missing exponent, an EC `alg`.
        for private in ["d", "p", "q"] {
            let mut m = serde_json::Map::new();
            m.insert(private.into(), "AQAB".into());
            assert_eq!(
                with(&rsa, m.into()).unwrap_err(),
                JwkError::Private,
                "{private}"
            );
        }
        assert_eq!(
            with(&rsa, serde_json::json!({"use": "enc"})).unwrap_err(),
            JwkError::NotForSignatures
        );
        let mut no_e = rsa.clone();
        no_e.as_object_mut().unwrap().remove("e");
        assert_eq!(
            parse_jwk(no_e.to_string().as_bytes()).unwrap_err(),
            JwkError::Member("e")
        );
        assert_eq!(
            with(&rsa, serde_json::json!({"alg": "EdDSA"})).unwrap_err(),
            JwkError::AlgorithmMismatch("EdDSA".into())
        );
        // A modulus one bit short of 2048 (the top bit cleared), and leading zero bytes
        // that do not count.
        let mut n = jws::decode(rsa["n"].as_str().unwrap()).unwrap();
        n[0] = 0x7f;
        assert_eq!(
            with(&rsa, serde_json::json!({"n": jws::encode(&n)})).unwrap_err(),
            JwkError::RsaTooSmall(2047)
        );
        let mut padded = vec![0, 0];
        padded.extend_from_slice(&jws::decode(rsa["n"].as_str().unwrap()).unwrap());
        let key = with(&rsa, serde_json::json!({"n": jws::encode(&padded)})).unwrap();
        assert!(matches!(key.key, PublicKey::Rsa { bits: 2048, .. }));
        // OKP: X25519 and Ed448 are other curves; a point of the wrong length; no crv.
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = jws::encode(pair.public_key().as_ref());
        let ed = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x});
        assert!(parse_jwk(ed.to_string().as_bytes()).is_ok());
        for crv in ["X25519", "Ed448"] {
            assert_eq!(
                with(&ed, serde_json::json!({"crv": crv})).unwrap_err(),
                JwkError::UnsupportedCurve(crv.into())
            );
        }
        assert_eq!(
            with(&ed, serde_json::json!({"x": jws::encode([9u8; 31])})).unwrap_err(),
            JwkError::InvalidKey
        );
        let mut no_crv = ed.clone();
        no_crv.as_object_mut().unwrap().remove("crv");
        assert_eq!(
            parse_jwk(no_crv.to_string().as_bytes()).unwrap_err(),
            JwkError::UnsupportedCurve(String::new())
        );
        assert_eq!(
            with(&ed, serde_json::json!({"d": jws::encode([1u8; 32])})).unwrap_err(),
            JwkError::Private
        );
        assert_eq!(
            with(&ed, serde_json::json!({"use": "enc"})).unwrap_err(),
            JwkError::NotForSignatures
        );
        // `Ed25519` (RFC 9864) and `EdDSA` (RFC 8037) name the one algorithm.
        for alg in ["EdDSA", "Ed25519"] {
            let key = with(&ed, serde_json::json!({"alg": alg})).unwrap();
            assert_eq!(key.alg, Some(AsymmetricAlgorithm::EdDsa));
        }
    }

    #[test]
    fn sets_keep_good_keys_and_name_bad_ones() {
        let (a, b) = (ec(), ec());
        let set = serde_json::json!({"keys": [
            ec_jwk(&a, serde_json::json!({"kid": "a", "alg": "ES256", "use": "sig"})),
            ec_jwk(&b, serde_json::json!({"kid": "a"})),
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            ec_jwk(&b, serde_json::json!({"kid": "b"})),
        ]});
        let keys = parse_set(set.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 4);
        assert_eq!(
            keys[0].as_ref().unwrap().alg,
            Some(AsymmetricAlgorithm::Es256)
        );
        assert_eq!(
            keys[1].as_ref().unwrap_err(),
            &JwkError::DuplicateKid("a".into())
        );
        assert!(keys[2].is_err());
        assert_eq!(keys[3].as_ref().unwrap().kid.as_deref(), Some("b"));
        // `[[]]` and `[[...]]`: a set read by position (the `jwk` fuzz target found the first
        // accepted as a set of no keys).
        for bad in [
            &b"{}"[..],
            b"[]",
            b"{\"keys\":{}}",
            b"not json",
            b"[[]]",
            b"[[{}]]",
        ] {
            assert_eq!(parse_set(bad).unwrap_err(), JwkSetError::Malformed);
        }
        // An entry written as an array is malformed, as is a JWK outside a set.
        let positional = parse_set(br#"{"keys":[["OKP"]]}"#).unwrap();
        assert_eq!(positional[0].as_ref().unwrap_err(), &JwkError::Malformed);
        assert_eq!(parse_jwk(br#"["OKP"]"#).unwrap_err(), JwkError::Malformed);
    }

    #[test]
    fn published_members_parse_back() {
        let pair = ec();
        let jwk = parse_jwk(ec_jwk(&pair, serde_json::json!({})).to_string().as_bytes()).unwrap();
        let members = serde_json::Value::Object(jwk.key.jwk_members().unwrap());
        let again = parse_jwk(members.to_string().as_bytes()).unwrap();
        let sig = pair.sign(&SystemRandom::new(), b"m").unwrap();
        assert!(again
            .key
            .verify(AsymmetricAlgorithm::Es256, b"m", sig.as_ref()));
    }

    #[test]
    fn rsa_der_lengths() {
        // Long-form lengths for a 4096-bit modulus; a high-bit exponent gets its zero.
        let der = rsa_public_key_der(&[0xff; 512], &[0x80, 1]);
        assert_eq!(&der[..4], &[0x30, 0x82, 0x02, 0x0a]);
        assert_eq!(&der[4..8], &[0x02, 0x82, 0x02, 0x01]);
        assert_eq!(&der[der.len() - 5..], &[0x02, 0x03, 0x00, 0x80, 0x01]);
    }
}
