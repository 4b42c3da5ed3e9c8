//! Compact JWS (RFC 7515 §7.1) and HMAC (RFC 7518 §3.2): the one implementation of
//! splitting, base64url segments and the MAC, used by the gateway's assertion checker,
//! the internal header's signer and verifier, the `assertion` command and the tests.
//! Signatures with public keys are jwk.rs.
//!
//! Written here rather than taken from a JWT crate: three base64url segments and a MAC
//! are a few dozen lines that are easier to audit than a general library's algorithm
//! negotiation, and the callers need control over what is decoded when (nothing in a
//! payload is trusted before its signature verifies).
//! Invariants: segments are strict base64url without padding or whitespace (the engine
//! refuses `=`, `+`, `/` and spaces); MAC comparison is constant time (RFC 7515 §10.7).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use crate::alg::Algorithm;

/// The three segments of a compact JWS, not yet decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    /// `header "." payload`: the bytes the MAC covers.
    pub signing_input: &'a str,
}

/// Splits `value` into exactly three segments; header and payload must be non-empty. An
/// empty signature is structurally valid (it is what `alg: none` sends); the algorithm
/// check refuses it later.
pub fn split(value: &str) -> Option<Segments<'_>> {
    let mut parts = value.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.is_empty() || payload.is_empty() {
        return None;
    }
    Some(Segments {
        header,
        payload,
        signature,
        signing_input: &value[..header.len() + 1 + payload.len()],
    })
}

/// Decodes one base64url segment (no padding, no whitespace).
pub fn decode(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment).ok()
}

/// Appends the base64url (no padding) encoding of `bytes` to `out`.
pub fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Appends `text` as the contents of a JSON string (without the quotes), escaped as
/// serde_json escapes it. Text of printable ASCII other than `"` and `\\` (ids, URLs,
/// base64url) is appended as it is.
pub fn push_json_escaped(out: &mut String, text: &str) {
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(text);
    } else if let Ok(quoted) = serde_json::to_string(text) {
        out.push_str(&quoted[1..quoted.len() - 1]);
    }
}

/// Appends `text` as a JSON string, quotes included.
pub fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    push_json_escaped(out, text);
    out.push('"');
}

/// The base64url (no padding) encoding of `bytes`.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A MAC value of up to 64 bytes (HS512), without allocating.
#[derive(Clone, Copy)]
pub struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl AsRef<[u8]> for Tag {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// An HMAC key prepared for one algorithm. Preparing hashes the key once; each use clones
/// the prepared state.
#[derive(Clone)]
pub enum HmacKey {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HmacKey({}, ***)", self.algorithm().name())
    }
}

fn keyed<M: Mac + hmac::digest::KeyInit>(key: &[u8]) -> M {
    <M as hmac::digest::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

fn tag(out: &[u8]) -> Tag {
    let mut t = Tag {
        bytes: [0; 64],
        len: out.len(),
    };
    t.bytes[..out.len()].copy_from_slice(out);
    t
}

impl HmacKey {
    /// RFC 7518 §3.2 / RFC 7523 §3: the key is the given octets as they are (for a client
    /// secret, its UTF-8 bytes, never a base64 decoding of it).
    pub fn new(alg: Algorithm, key: &[u8]) -> HmacKey {
        match alg {
            Algorithm::Hs256 => HmacKey::Hs256(keyed(key)),
            Algorithm::Hs384 => HmacKey::Hs384(keyed(key)),
            Algorithm::Hs512 => HmacKey::Hs512(keyed(key)),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            HmacKey::Hs256(_) => Algorithm::Hs256,
            HmacKey::Hs384(_) => Algorithm::Hs384,
            HmacKey::Hs512(_) => Algorithm::Hs512,
        }
    }

    /// The MAC of `input`.
    pub fn sign(&self, input: &[u8]) -> Tag {
        match self {
            HmacKey::Hs256(m) => tag(&m.clone().chain_update(input).finalize().into_bytes()),
            HmacKey::Hs384(m) => tag(&m.clone().chain_update(input).finalize().into_bytes()),
            HmacKey::Hs512(m) => tag(&m.clone().chain_update(input).finalize().into_bytes()),
        }
    }

    /// Whether `signature` is the MAC of `input`, compared in constant time.
    pub fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match self {
            HmacKey::Hs256(m) => m.clone().chain_update(input).verify_slice(signature),
            HmacKey::Hs384(m) => m.clone().chain_update(input).verify_slice(signature),
            HmacKey::Hs512(m) => m.clone().chain_update(input).verify_slice(signature),
        }
        .is_ok()
    }
}

/// `BASE64URL(header) "."`: the constant start of every JWS a signer makes with one key.
pub fn header_prefix(header_json: &[u8]) -> String {
    let mut out = encode(header_json);
    out.push('.');
    out
}

/// Completes a compact JWS: `prefix` (from [`header_prefix`]) + `BASE64URL(payload)`, then
/// `"." BASE64URL(MAC)`.
pub fn sign_with_prefix(prefix: &str, payload_json: &[u8], key: &HmacKey) -> String {
    complete(prefix, payload_json, |input| Ok::<_, ()>(key.sign(input)))
        .unwrap_or_else(|()| unreachable!("a MAC cannot fail"))
}

/// Completes a compact JWS with any signer: `prefix` + `BASE64URL(payload)`, then
/// `"." BASE64URL(sign(header "." payload))`.
pub fn complete<S: AsRef<[u8]>, E>(
    prefix: &str,
    payload_json: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<S, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(prefix.len() + payload_json.len() * 4 / 3 + 130);
    out.push_str(prefix);
    encode_into(payload_json, &mut out);
    let signature = sign(out.as_bytes())?;
    out.push('.');
    encode_into(signature, &mut out);
    Ok(out)
}

/// A compact JWS over `header_json` and `payload_json`.
pub fn sign(header_json: &[u8], payload_json: &[u8], key: &HmacKey) -> String {
    sign_with_prefix(&header_prefix(header_json), payload_json, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_into_a_string_is_base64url_without_padding() {
        // Every length around the 768-byte chunk and the 3-byte group, appended to text.
        let data: Vec<u8> = (0..2400u32).map(|i| (i * 7 + i / 5) as u8).collect();
        for len in (0..20).chain(760..780).chain(1530..1540).chain([2400]) {
            let mut out = String::from("prefix.");
            encode_into(&data[..len], &mut out);
            assert_eq!(
                out,
                format!("prefix.{}", URL_SAFE_NO_PAD.encode(&data[..len])),
                "{len}"
            );
        }
    }

    /// RFC 7515 Appendix A.1.
    const A1_JWS: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const A1_KEY: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

    #[test]
    fn rfc7515_a1_vector_j14() {
        let s = split(A1_JWS).unwrap();
        let key = HmacKey::new(Algorithm::Hs256, &decode(A1_KEY).unwrap());
        let sig = decode(s.signature).unwrap();
        assert!(key.verify(s.signing_input.as_bytes(), &sig));
        assert_eq!(key.sign(s.signing_input.as_bytes()).as_ref(), &sig[..]);
        assert!(!key.verify(b"other", &sig));
        // Re-encoding the same header and payload gives the same JWS.
        let again = sign(
            &decode(s.header).unwrap(),
            &decode(s.payload).unwrap(),
            &key,
        );
        assert_eq!(again, A1_JWS);
    }

    #[test]
    fn split_needs_three_segments() {
        for bad in ["", "a.b", "a.b.c.d", ".b.c", "a..c"] {
            assert!(split(bad).is_none(), "{bad}");
        }
        let s = split("a.b.").unwrap();
        assert_eq!((s.signature, s.signing_input), ("", "a.b"));
        for bad in ["e30=", "e3 0", "e+/0"] {
            assert!(decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn every_algorithm_signs_what_it_verifies() {
        for alg in Algorithm::ALL {
            let key = HmacKey::new(alg, b"0123456789abcdef0123456789abcdef");
            let jws = sign(br#"{"alg":"x"}"#, b"{}", &key);
            let s = split(&jws).unwrap();
            let sig = decode(s.signature).unwrap();
            assert_eq!(
                sig.len(),
                match alg {
                    Algorithm::Hs256 => 32,
                    Algorithm::Hs384 => 48,
                    Algorithm::Hs512 => 64,
                }
            );
            assert!(key.verify(s.signing_input.as_bytes(), &sig));
            let other = HmacKey::new(alg, b"another key");
            assert!(!other.verify(s.signing_input.as_bytes(), &sig));
            assert_eq!(key.algorithm(), alg);
        }
    }
}
