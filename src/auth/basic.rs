//! HTTP Basic client credentials, RFC 6749 §2.3.1 and RFC 7617.
//!
//! `Authorization: Basic base64(urlencode(client_id) ":" urlencode(client_secret))`.
//! Decoding: scheme case-insensitive (RFC 7235 §2.1), base64 (padding optional), split at
//! the FIRST colon (an id cannot contain one once encoded; a secret may), then
//! form-url-decode each half (`+` is a space, `%XX` a byte) and require VSCHAR. The id
//! must not be empty; an empty secret (`id:`, what some libraries send for a public
//! client) parses, and the authenticator answers it as missing credentials (401).
//! Invariant: errors never carry any part of the decoded credentials.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use crate::auth::form::form_decode;
use crate::error::RequestError;
use crate::oauth::is_vschar;
use crate::secret::Secret;

/// Standard alphabet; padding accepted but not required, trailing bits must be zero.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest Authorization value we decode; far above any real client id and secret.
const MAX_HEADER_LEN: usize = 8 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct BasicCredentials {
    pub client_id: String,
    pub secret: Secret,
}

/// Parses one `Authorization` header value into Basic credentials.
pub fn parse(value: &[u8]) -> Result<BasicCredentials, RequestError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(RequestError::MalformedBasic);
    }
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &b""[..]),
    };
    // RFC 7235 §2.1: the auth-scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(RequestError::UnsupportedAuthorizationScheme);
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(RequestError::MalformedBasic);
    }
    let decoded = BASE64
        .decode(token)
        .map_err(|_| RequestError::MalformedBasic)?;
    // RFC 6749 §2.3.1 (via RFC 7617 §2): user-id and password are separated by the first
    // colon; the encoded client id cannot contain one.
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(RequestError::MalformedBasic)?;
    let client_id = decode_half(&decoded[..colon])?;
    if client_id.is_empty() {
        return Err(RequestError::MalformedBasic);
    }
    let secret = decode_half(&decoded[colon + 1..])?;
    Ok(BasicCredentials {
        client_id: String::from_utf8(client_id).map_err(|_| RequestError::MalformedBasic)?,
        secret: Secret::new(secret),
    })
}

/// Form-url-decodes one half (RFC 6749 §2.3.1, Appendix B) and checks it is a VSCHAR
/// string (Appendix A.1, A.2).
fn decode_half(raw: &[u8]) -> Result<Vec<u8>, RequestError> {
    let bytes = form_decode(raw).ok_or(RequestError::MalformedBasic)?;
    if !bytes.iter().copied().all(is_vschar) {
        return Err(RequestError::MalformedBasic);
    }
    Ok(bytes)
}

/// Encodes credentials the way RFC 6749 §2.3.1 says a client must (used by tests, the
/// demo and benchmarks).
pub fn encode(client_id: &str, secret: &str) -> String {
    let id = crate::auth::form::form_encode_component(client_id);
    let secret = crate::auth::form::form_encode_component(secret);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(value: &str) -> (String, Vec<u8>) {
        let c = parse(value.as_bytes()).expect(value);
        (c.client_id, c.secret.expose().to_vec())
    }

    #[test]
    fn rfc6749_example_b1() {
        assert_eq!(
            ok("Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"),
            ("s6BhdRkqt3".to_owned(), b"7Fjfp0ZBr1KtDRbnfVdmIw".to_vec())
        );
    }

    #[test]
    fn scheme_is_case_insensitive_b2() {
        assert_eq!(
            ok("basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3").0,
            "s6BhdRkqt3"
        );
        assert_eq!(
            ok("BASIC   czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3 ").0,
            "s6BhdRkqt3"
        );
    }

    fn b64(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn form_encoded_halves_are_decoded_b3_b6() {
        assert_eq!(
            ok(&b64("my%2Dclient:p%3Ass")),
            ("my-client".to_owned(), b"p:ss".to_vec())
        );
        assert_eq!(ok(&b64("id:a+b")).1, b"a b");
        assert_eq!(ok(&b64("id:a%20b")).1, b"a b");
    }

    #[test]
    fn split_at_first_colon_b4() {
        assert_eq!(
            ok(&b64("id:se:cr:et")),
            ("id".to_owned(), b"se:cr:et".to_vec())
        );
    }

    #[test]
    fn malformed_inputs_b8_b10_b11() {
        for bad in [
            b64("id:bad%zz"),
            b64("id:bad%4"),
            b64("nocolon"),
            "Basic !!!notbase64".to_owned(),
            "Basic".to_owned(),
            "Basic ".to_owned(),
            b64(":secret"),
            b64(":"),
            b64("id:tab\there"),
            b64("id:%00"),
            b64("id:caf%C3%A9"),
        ] {
            assert_eq!(
                parse(bad.as_bytes()),
                Err(RequestError::MalformedBasic),
                "{bad}"
            );
        }
        assert_eq!(
            parse(b"Bearer abc"),
            Err(RequestError::UnsupportedAuthorizationScheme)
        );
    }

    #[test]
    fn an_empty_secret_parses_as_empty_b11() {
        assert_eq!(ok(&b64("spa:")), ("spa".to_owned(), Vec::new()));
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        // "id:secret1" encodes with one `=` of padding.
        assert_eq!(ok("Basic aWQ6c2VjcmV0MQ").1, b"secret1");
        assert_eq!(ok("Basic aWQ6c2VjcmV0MQ==").1, b"secret1");
    }

    proptest! {
        /// decode(encode(x)) == x for every VSCHAR id and secret.
        #[test]
        fn decode_inverts_encode(id in "[ -~]{1,40}", secret in "[ -~]{1,80}") {
            let c = parse(encode(&id, &secret).as_bytes()).unwrap();
            prop_assert_eq!(c.client_id, id);
            prop_assert_eq!(c.secret.expose(), secret.as_bytes());
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut value = b"Basic ".to_vec();
            value.extend(bytes);
            let _ = parse(&value);
        }
    }
}
