//! The body rebuild: what makes "no secret reaches the upstream" true for protected
//! requests (docs/design.md §4).
//!
//! After a request has authenticated, its form body is re-encoded without
//! `client_secret`, `client_assertion` and `client_assertion_type`, with exactly one
//! `client_id` (added when the client authenticated with Basic or an assertion, so the
//! legacy server still learns which client it serves), as
//! `application/x-www-form-urlencoded` (multipart is transcoded). A body that is not a
//! form (it could only authenticate with Basic) is forwarded byte for byte. The
//! `Authorization` header, which carried the Basic credential, is removed, and
//! `Content-Length` is set to the forwarded body's length (any `Transfer-Encoding` goes).

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::HeaderMap;

use crate::auth::form::{self, Params};
use crate::oauth::{is_secret_param, ClientId, CLIENT_ID};

/// Rewrites `headers` for the upstream and returns the body to forward. `params` is the
/// decoded form (`None` for a body that is not a form, forwarded as `original`).
pub fn rebuild(
    headers: &mut HeaderMap,
    params: Option<&Params>,
    original: Bytes,
    client_id: &ClientId,
) -> Bytes {
    let forwarded = match params {
        Some(p) => {
            // docs/design.md §4: secret material is never forwarded. A `client_id` that is
            // empty means omitted (RFC 6749 §3.1); a non-empty one was checked to equal the
            // authenticated client, and repeats were refused (§3.2).
            let dropped = |name: &str, value: &str| {
                is_secret_param(name) || name == CLIENT_ID && value.is_empty()
            };
            let kept = p
                .iter()
                .filter(|(name, value)| !dropped(name, value))
                .map(|(name, value)| (name.as_ref(), value.as_ref()));
            let has_client_id = p
                .iter()
                .any(|(name, value)| name == CLIENT_ID && !value.is_empty());
            // The authenticated client's id, when the form did not carry it.
            let added = (!has_client_id).then_some((CLIENT_ID, client_id.as_str()));
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            // The re-encoded form is about as long as the original, less the secrets.
            let mut body = String::with_capacity(original.len() + client_id.as_str().len() + 16);
            // Encoded straight from the parameters, without collecting them first.
            form::encode_into(&mut body, kept.chain(added));
            Bytes::from(body)
        }
        None => original,
    };
    // The Basic header is the credential itself: it never goes upstream.
    headers.remove(AUTHORIZATION);
    headers.remove(TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(forwarded.len()));
    forwarded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Params<'static> {
        list.iter()
            .map(|(a, b)| (a.to_string().into(), b.to_string().into()))
            .collect()
    }

    fn head(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn decoded(body: &[u8]) -> Vec<(String, String)> {
        form_urlencoded::parse(body).into_owned().collect()
    }

    #[test]
    fn secrets_go_and_the_client_id_is_added_once() {
        let mut h = head(&[
            ("authorization", "Basic abc"),
            ("content-type", "multipart/form-data; boundary=x"),
            ("transfer-encoding", "chunked"),
        ]);
        let p = params(&[
            ("grant_type", "client_credentials"),
            ("client_secret", "s3cret"),
            ("client_assertion", "a.b.c"),
            ("client_assertion_type", "urn:x"),
            ("client_id", ""),
            ("scope", "a b"),
        ]);
        let body = rebuild(&mut h, Some(&p), Bytes::new(), &ClientId::new("billing"));
        assert_eq!(
            decoded(&body),
            [
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("scope".to_owned(), "a b".to_owned()),
                ("client_id".to_owned(), "billing".to_owned()),
            ]
        );
        assert!(!String::from_utf8_lossy(&body).contains("s3cret"));
        assert!(h.get(AUTHORIZATION).is_none());
        assert!(h.get(TRANSFER_ENCODING).is_none());
        assert_eq!(h[CONTENT_TYPE], "application/x-www-form-urlencoded");
        assert_eq!(h[CONTENT_LENGTH], body.len().to_string().as_str());
    }

    #[test]
    fn a_present_client_id_is_kept_in_place() {
        let mut h = HeaderMap::new();
        let p = params(&[("client_id", "reports"), ("client_secret", "x")]);
        let body = rebuild(&mut h, Some(&p), Bytes::new(), &ClientId::new("reports"));
        assert_eq!(&body[..], b"client_id=reports");
    }

    #[test]
    fn other_bodies_are_forwarded_unchanged() {
        let mut h = head(&[
            ("authorization", "Basic abc"),
            ("content-type", "application/json"),
        ]);
        let json = Bytes::from_static(br#"{"client_secret":"not a form"}"#);
        let body = rebuild(&mut h, None, json.clone(), &ClientId::new("billing"));
        assert_eq!(body, json);
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert!(h.get(AUTHORIZATION).is_none());
        assert_eq!(h[CONTENT_LENGTH], json.len().to_string().as_str());
    }
}
