//! Containment: credentials never leave through a route that does not authenticate
//! (docs/design.md §4.3).
//!
//! The gateway's promise is that the upstream never sees a raw client secret. On a
//! protected endpoint the authenticator removes it; on every other path a request that
//! carries one is refused here, with `400 invalid_request`, before anything is forwarded:
//! - an `Authorization` header with the Basic scheme (RFC 7617: the credential itself);
//! - `client_secret` or `client_assertion` in the query string;
//! - `client_secret` or `client_assertion` in a form body (urlencoded or multipart), read
//!   in full under `limits.max_body` (over it → 413) and then forwarded as read.
//!
//! Names are compared as a lenient server reads them (lenient.rs: `Client_Secret`,
//! `client%5Fsecret`, `client.secret`, `client_secret[]`), because that server might act
//! on them. A form body with a `Content-Encoding` cannot be read by the gateway and the
//! upstream alike, so it is refused (415). Other schemes (`Bearer`, `DPoP`) and other
//! bodies pass unchanged and stay streamed.

use http::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, Request};

use crate::auth::form;
use crate::body::{full, Body};
use crate::config::LimitsConfig;
use crate::error::{GatewayError, RequestError};
use crate::lenient;
use crate::oauth::{CLIENT_ASSERTION, CLIENT_SECRET};

/// What an unprotected request needs after its head was checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Nothing more: forward it, streamed.
    Clean,
    /// A form body: read it and check it ([`check_body`]) before forwarding.
    FormBody(FormKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormKind {
    UrlEncoded,
    Multipart { boundary: String },
}

/// Whether a parameter name, read leniently, names secret material.
fn is_secret_name(raw: &[u8]) -> bool {
    let name = lenient::param_name(raw);
    name == CLIENT_SECRET || name == CLIENT_ASSERTION
}

/// Whether a query string (or urlencoded body) carries secret material.
pub fn has_secret_param(form: &[u8]) -> bool {
    lenient::param_names(form).any(|n| n == CLIENT_SECRET || n == CLIENT_ASSERTION)
}

/// Checks the head of an unprotected request.
pub fn check_head(headers: &HeaderMap, query: Option<&str>) -> Result<Head, GatewayError> {
    // RFC 7617: a Basic header is the credential itself.
    if headers.get_all(AUTHORIZATION).iter().any(is_basic) {
        return Err(RequestError::CredentialsOnUnprotectedPath.into());
    }
    // RFC 6749 §2.3.1: credentials never in the URI; here they would be forwarded.
    if query.is_some_and(|q| has_secret_param(q.as_bytes())) {
        return Err(RequestError::CredentialsOnUnprotectedPath.into());
    }
    let mut kinds = Vec::new();
    for value in headers.get_all(CONTENT_TYPE) {
        kinds.push(form_kind(value)?);
    }
    let form = kinds.iter().flatten().next().cloned();
    match form {
        None => Ok(Head::Clean),
        // Several Content-Type headers, one a form: the upstream might read either one.
        Some(_) if kinds.len() > 1 => Err(RequestError::MultipleContentTypes.into()),
        Some(form) => {
            if has_content_coding(headers) {
                return Err(GatewayError::UnsupportedContentEncoding);
            }
            Ok(Head::FormBody(form))
        }
    }
}

/// Whether a `Content-Encoding` other than `identity` is present (RFC 9110 §8.4).
pub fn has_content_coding(headers: &HeaderMap) -> bool {
    headers.get_all(CONTENT_ENCODING).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity"))
    })
}

fn is_basic(value: &HeaderValue) -> bool {
    let v = value.as_bytes().trim_ascii_start();
    v.len() >= 5
        && v[..5].eq_ignore_ascii_case(b"basic")
        && v.get(5).is_none_or(|b| b.is_ascii_whitespace())
}

/// The form a `Content-Type` value announces, read as leniently as a server might.
fn form_kind(value: &HeaderValue) -> Result<Option<FormKind>, GatewayError> {
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(Some(FormKind::UrlEncoded))
    } else if essence.eq_ignore_ascii_case("multipart/form-data") {
        multer::parse_boundary(&*text)
            .map(|boundary| Some(FormKind::Multipart { boundary }))
            .map_err(|_| RequestError::MalformedMultipart.into())
    } else {
        Ok(None)
    }
}

/// Reads a form body of an unprotected request within the limits, refuses it if it
/// carries secret material, and returns the request with the body as read.
pub async fn check_body(
    req: Request<Body>,
    kind: FormKind,
    limits: &LimitsConfig,
) -> Result<Request<Body>, GatewayError> {
    let (parts, bytes) = read_form(req, &kind, limits).await?;
    Ok(Request::from_parts(parts, full(bytes)))
}

/// [`check_body`], returning the head and the body as read.
pub async fn read_form(
    req: Request<Body>,
    kind: &FormKind,
    limits: &LimitsConfig,
) -> Result<(http::request::Parts, bytes::Bytes), GatewayError> {
    let (parts, body) = req.into_parts();
    let bytes = crate::limit::read_body(
        &parts.headers,
        body,
        limits.max_body,
        limits.body_read_timeout,
    )
    .await?;
    let secret = match kind {
        FormKind::UrlEncoded => has_secret_param(&bytes),
        FormKind::Multipart { boundary } => form::multipart_names(bytes.clone(), boundary.clone())
            .await?
            .iter()
            .any(|name| is_secret_name(name.as_bytes())),
    };
    if secret {
        return Err(RequestError::CredentialsOnUnprotectedPath.into());
    }
    Ok((parts, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn refused(r: Result<Head, GatewayError>) -> bool {
        matches!(
            r,
            Err(GatewayError::Request(
                RequestError::CredentialsOnUnprotectedPath
            ))
        )
    }

    #[test]
    fn basic_credentials_and_query_secrets_are_refused() {
        for auth in ["Basic YTpi", "basic YTpi", "  BASIC YTpi", "Basic"] {
            assert!(
                refused(check_head(&headers(&[("authorization", auth)]), None)),
                "{auth}"
            );
        }
        for auth in [
            "Bearer abc",
            "DPoP abc",
            "Basicx abc",
            "Digest username=\"a\"",
        ] {
            assert_eq!(
                check_head(&headers(&[("authorization", auth)]), None).unwrap(),
                Head::Clean,
                "{auth}"
            );
        }
        for q in [
            "client_secret=s",
            "a=1&Client_Secret=s",
            "client%5Fsecret=s",
            "client.secret=s",
            "client_assertion=a.b.c",
            "x=1;client_secret=s",
            "client_secret[]=s",
        ] {
            assert!(refused(check_head(&HeaderMap::new(), Some(q))), "{q}");
        }
        for q in [
            "client_id=app&response_type=code",
            "secret=1",
            "client_secretx=1",
        ] {
            assert_eq!(
                check_head(&HeaderMap::new(), Some(q)).unwrap(),
                Head::Clean,
                "{q}"
            );
        }
    }

    #[test]
    fn form_bodies_are_inspected_and_others_stream() {
        let form = headers(&[(
            "content-type",
            "Application/X-WWW-Form-Urlencoded; charset=latin1",
        )]);
        assert_eq!(
            check_head(&form, None).unwrap(),
            Head::FormBody(FormKind::UrlEncoded)
        );
        let multipart = headers(&[("content-type", "multipart/form-data; boundary=XyZ")]);
        assert_eq!(
            check_head(&multipart, None).unwrap(),
            Head::FormBody(FormKind::Multipart {
                boundary: "XyZ".into()
            })
        );
        let json = headers(&[("content-type", "application/json")]);
        assert_eq!(check_head(&json, None).unwrap(), Head::Clean);
        let two = headers(&[
            ("content-type", "application/json"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        assert!(matches!(
            check_head(&two, None),
            Err(GatewayError::Request(RequestError::MultipleContentTypes))
        ));
        let gzip = headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-encoding", "gzip"),
        ]);
        assert!(matches!(
            check_head(&gzip, None),
            Err(GatewayError::UnsupportedContentEncoding)
        ));
        let identity = headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-encoding", "identity"),
        ]);
        assert!(check_head(&identity, None).is_ok());
    }

    #[tokio::test]
    async fn secrets_in_form_bodies_are_refused() {
        let (config, _dir) = crate::testing::config("limits: { max_body: 1KiB }\n");
        let limits = &config.limits;
        let req = |body: &'static str| Request::post("/x").body(full(body)).unwrap();
        let urlencoded = check_body(req("a=1&client_secret=s"), FormKind::UrlEncoded, limits).await;
        assert!(matches!(
            urlencoded,
            Err(GatewayError::Request(
                RequestError::CredentialsOnUnprotectedPath
            ))
        ));
        let clean = check_body(req("username=a&password=b"), FormKind::UrlEncoded, limits)
            .await
            .unwrap();
        use http_body_util::BodyExt;
        assert_eq!(
            clean.into_body().collect().await.unwrap().to_bytes(),
            "username=a&password=b"
        );
        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"Client_Secret\"\r\n\r\ns\r\n--XyZ--\r\n";
        let kind = FormKind::Multipart {
            boundary: "XyZ".into(),
        };
        assert!(check_body(req(multipart), kind.clone(), limits)
            .await
            .is_err());
        let upload = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nclient_secret=s\r\n--XyZ--\r\n";
        assert!(check_body(req(upload), kind, limits).await.is_ok());
    }
}
