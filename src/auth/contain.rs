//! Containment: credentials never leave through a route that does not authenticate
//! (docs/design.md §4.3).
//!
//! The gateway's promise is that the upstream never sees a raw client secret. On a
//! protected endpoint the authenticator removes it; on every other path a request that
//! carries one, as any common server behind the gateway could read it, is refused here
//! with `400 invalid_request` before anything is forwarded:
//! - an `Authorization` header that is not exactly one well-formed `Bearer` or `DPoP`
//!   token, or a scheme `containment.allow_authorization_schemes` lists (smuggled.rs): a
//!   lenient server may decode anything else as Basic, the credential itself (RFC 7617);
//! - a header or a cookie named after a credential (smuggled.rs);
//! - `client_secret` or `client_assertion` in the query string, read leniently;
//! - a credential in the body under any reading of readings.rs: a body whose type some
//!   server reads as a form is read in full under `limits.max_body` (over it → 413); a
//!   JSON body, or one without a type (or `text/plain`) that a server may read as pairs,
//!   is read up to `limits.max_body` and forwarded unread when it is longer.
//!
//! A form body with a `Content-Encoding` cannot be read by the gateway and the upstream
//! alike, so it is refused (415). Bodies of other types pass unchanged and stay streamed.

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, Request};
use http_body::Body as _;
use http_body_util::BodyExt;

use crate::auth::form;
use crate::auth::readings::{self, BodyReadings};
use crate::auth::smuggled;
use crate::body::{full, Body, BodyError};
use crate::config::LimitsConfig;
use crate::error::{GatewayError, RequestError};
use crate::lenient;
use crate::oauth::{CLIENT_ASSERTION, CLIENT_SECRET};

/// What an unprotected request needs after its head was checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Nothing more: forward it, streamed.
    Clean,
    /// A body some server reads as a form: read it in full and check it ([`check_body`]).
    FormBody(BodyReadings),
    /// A JSON body, or one no type keeps a server from reading as pairs: read up to
    /// `max_body` and checked, forwarded unread beyond that ([`check_body`]).
    Inspect(BodyReadings),
}

/// Whether a query string (or urlencoded body) carries secret material under any lenient
/// reading (lenient.rs).
pub fn has_secret_param(form: &[u8]) -> bool {
    lenient::param_names(form).any(|n| n == CLIENT_SECRET || n == CLIENT_ASSERTION)
        || readings::pair_names(form).any(readings::is_credential_name)
}

/// Checks the head of an unprotected request. `allowed` lists the extra `Authorization`
/// schemes that may be forwarded (lower case).
pub fn check_head(
    headers: &HeaderMap,
    query: Option<&str>,
    allowed: &[String],
) -> Result<Head, GatewayError> {
    // RFC 7617: a Basic header is the credential itself; anything but a plain token may
    // be read as one by a lenient server.
    if smuggled::has_basic(headers) {
        return Err(RequestError::CredentialsOnUnprotectedPath.into());
    }
    if !smuggled::authorization_forwardable(headers, allowed) {
        return Err(RequestError::UnforwardableAuthorization.into());
    }
    // RFC 6749 §2.3.1: credentials never in the URI; here they would be forwarded.
    if query.is_some_and(|q| has_secret_param(q.as_bytes())) {
        return Err(RequestError::CredentialsOnUnprotectedPath.into());
    }
    // PHP's $_REQUEST, ASP.NET's Request[...] and CGI read parameters from cookies and
    // headers too.
    if smuggled::in_headers_or_cookies(headers) {
        return Err(RequestError::CredentialsOnUnprotectedPath.into());
    }
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let readings = match (values.next(), values.next()) {
        // Rack and CGI.pm read a POST without a type as a form.
        (None, _) => BodyReadings::sniffed(),
        (Some(value), None) => readings::of_content_type(value.as_bytes())
            .map_err(|_| RequestError::MalformedMultipart)?,
        // Several Content-Type headers: the upstream might read any one of them.
        (Some(_), Some(_)) => return Err(RequestError::MultipleContentTypes.into()),
    };
    if readings.is_form() {
        // RFC 9110 §8.4: the gateway would check the encoded bytes, the upstream might
        // decode them.
        if has_content_coding(headers) {
            return Err(GatewayError::UnsupportedContentEncoding);
        }
        return Ok(Head::FormBody(readings));
    }
    if readings.is_empty() || has_content_coding(headers) {
        return Ok(Head::Clean);
    }
    Ok(Head::Inspect(readings))
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

/// Reads the body of an unprotected request as [`Head`] says, refuses it if any reading
/// finds secret material, and returns the request with the body as read (or, for an
/// inspected body over `max_body`, the part read followed by the rest, unread).
pub async fn check_body(
    req: Request<Body>,
    head: Head,
    limits: &LimitsConfig,
) -> Result<Request<Body>, GatewayError> {
    match head {
        Head::Clean => Ok(req),
        Head::FormBody(r) => {
            let (parts, bytes) = read_form(req, &r, limits).await?;
            Ok(Request::from_parts(parts, full(bytes)))
        }
        Head::Inspect(r) => {
            if req.body().is_end_stream() {
                return Ok(req);
            }
            let (parts, body) = req.into_parts();
            match read_prefix(&parts.headers, body, limits).await? {
                Prefix::Whole(bytes) => {
                    if readings::finds_credential(&bytes, &r) {
                        return Err(RequestError::CredentialsOnUnprotectedPath.into());
                    }
                    Ok(Request::from_parts(parts, full(bytes)))
                }
                // Over max_body: not buffered, not checked (docs/design.md §4.3).
                Prefix::Longer(body) => Ok(Request::from_parts(parts, body)),
            }
        }
    }
}

/// A form body read in full under the limits and checked: the head and the body as read.
pub async fn read_form(
    req: Request<Body>,
    r: &BodyReadings,
    limits: &LimitsConfig,
) -> Result<(http::request::Parts, Bytes), GatewayError> {
    let (parts, body) = req.into_parts();
    let bytes = crate::limit::read_body(
        &parts.headers,
        body,
        limits.max_body,
        limits.body_read_timeout,
    )
    .await?;
    let mut secret = readings::finds_credential(&bytes, r);
    // The strict multipart reading (the one the authenticator uses) as well, if it works.
    if !secret && !r.boundaries.is_empty() {
        if let Some(boundary) = strict_boundary(&parts.headers) {
            if let Ok(names) = form::multipart_names(bytes.clone(), boundary).await {
                secret = names
                    .iter()
                    .any(|n| readings::is_credential_name(n.as_bytes()));
            }
        }
    }
    if secret {
        return Err(RequestError::CredentialsOnUnprotectedPath.into());
    }
    Ok((parts, bytes))
}

/// The boundary of a multipart `Content-Type` as a strict parser (multer) reads it.
pub fn strict_boundary(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    multer::parse_boundary(value).ok()
}

/// A body read up to `max_body`.
enum Prefix {
    Whole(Bytes),
    /// Longer than `max_body`: what was read, then the rest, as one body.
    Longer(Body),
}

async fn read_prefix(
    headers: &HeaderMap,
    mut body: Body,
    limits: &LimitsConfig,
) -> Result<Prefix, GatewayError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|d| d > limits.max_body as u64) {
        return Ok(Prefix::Longer(body));
    }
    let mut read = bytes::BytesMut::new();
    let reading = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| GatewayError::BodyRead(e.into()))?;
            if let Ok(data) = frame.into_data() {
                read.extend_from_slice(&data);
                if read.len() > limits.max_body {
                    return Ok(false);
                }
            }
        }
        Ok::<bool, GatewayError>(true)
    };
    let whole = tokio::time::timeout(limits.body_read_timeout, reading)
        .await
        .map_err(|_| GatewayError::BodyReadTimeout)??;
    if whole {
        return Ok(Prefix::Whole(read.freeze()));
    }
    let first = futures_util::stream::once(futures_util::future::ready(Ok::<_, BodyError>(
        http_body::Frame::data(read.freeze()),
    )));
    let rest = http_body_util::BodyStream::new(body);
    use futures_util::StreamExt;
    Ok(Prefix::Longer(
        http_body_util::StreamBody::new(first.chain(rest)).boxed_unsync(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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

    fn head(pairs: &[(&str, &str)], query: Option<&str>) -> Result<Head, GatewayError> {
        check_head(&headers(pairs), query, &[])
    }

    fn refused(r: Result<Head, GatewayError>) -> bool {
        matches!(
            r,
            Err(GatewayError::Request(
                RequestError::CredentialsOnUnprotectedPath
                    | RequestError::UnforwardableAuthorization
            ))
        )
    }

    const OPAQUE: &str = "application/octet-stream";

    #[test]
    fn credentials_in_the_head_are_refused() {
        for auth in [
            "Basic YTpi",
            "basic YTpi",
            "  BASIC YTpi",
            "Basic",
            "Basicx abc",
            "Digest username=\"a\"",
            "Bearer a b",
        ] {
            assert!(refused(head(&[("authorization", auth)], None)), "{auth}");
        }
        for auth in ["Bearer abc", "DPoP abc"] {
            let h = headers(&[("authorization", auth), ("content-type", OPAQUE)]);
            assert_eq!(check_head(&h, None, &[]).unwrap(), Head::Clean, "{auth}");
        }
        let digest = headers(&[("authorization", "Digest a=1"), ("content-type", OPAQUE)]);
        assert_eq!(
            check_head(&digest, None, &["digest".to_owned()]).unwrap(),
            Head::Clean
        );
        for q in [
            "client_secret=s",
            "a=1&Client_Secret=s",
            "client%5Fsecret=s",
            "client%255Fsecret=s",
            "client[secret=s",
            "client.secret=s",
            "client_assertion=a.b.c",
            "x=1;client_secret=s",
            "client_secret[]=s",
        ] {
            assert!(refused(head(&[], Some(q))), "{q}");
        }
        for q in [
            "client_id=app&response_type=code",
            "secret=1",
            "client_secretx=1",
        ] {
            assert!(head(&[("content-type", OPAQUE)], Some(q)).is_ok(), "{q}");
        }
        for h in [("x-client-secret", "s"), ("cookie", "a=1; client_secret=s")] {
            assert!(refused(head(&[h], None)), "{h:?}");
        }
    }

    #[test]
    fn bodies_are_read_as_servers_read_them_and_others_stream() {
        let form = head(
            &[(
                "content-type",
                "Application/X-WWW-Form-Urlencoded; charset=latin1",
            )],
            None,
        );
        assert!(matches!(form, Ok(Head::FormBody(r)) if r.urlencoded));
        let list = head(
            &[(
                "content-type",
                "text/html, application/x-www-form-urlencoded",
            )],
            None,
        );
        assert!(matches!(list, Ok(Head::FormBody(_))));
        let multipart = head(
            &[("content-type", "multipart/form-data; boundary=XyZ")],
            None,
        );
        assert!(matches!(multipart, Ok(Head::FormBody(r)) if r.boundaries == ["XyZ"]));
        assert!(matches!(
            head(&[("content-type", "multipart/form-data")], None),
            Err(GatewayError::Request(RequestError::MalformedMultipart))
        ));
        let json = head(&[("content-type", "application/json")], None);
        assert!(matches!(json, Ok(Head::Inspect(r)) if r.json && !r.urlencoded));
        assert!(matches!(head(&[], None), Ok(Head::Inspect(r)) if r.urlencoded && r.json));
        assert_eq!(
            head(&[("content-type", OPAQUE)], None).unwrap(),
            Head::Clean
        );
        let two = head(
            &[
                ("content-type", "application/json"),
                ("content-type", OPAQUE),
            ],
            None,
        );
        assert!(matches!(
            two,
            Err(GatewayError::Request(RequestError::MultipleContentTypes))
        ));
        let gzip = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-encoding", "gzip"),
        ];
        assert!(matches!(
            head(&gzip, None),
            Err(GatewayError::UnsupportedContentEncoding)
        ));
        let identity = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-encoding", "identity"),
        ];
        assert!(head(&identity, None).is_ok());
        let gzip_json = [
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ];
        assert_eq!(head(&gzip_json, None).unwrap(), Head::Clean);
    }

    #[tokio::test]
    async fn secrets_in_bodies_are_refused_and_long_bodies_pass_unread() {
        let (config, _dir) = crate::testing::config("limits: { max_body: 1KiB }\n");
        let limits = &config.limits;
        let req = |ct: &str, body: String| {
            Request::post("/x")
                .header("content-type", ct)
                .body(full(body))
                .unwrap()
        };
        let check = |ct: &'static str, body: &str| {
            let r = req(ct, body.to_owned());
            let h = check_head(r.headers(), None, &[]).unwrap();
            async move { check_body(r, h, limits).await.map(|r| r.into_body()) }
        };
        let form = "application/x-www-form-urlencoded";
        assert!(check(form, "a=1&client_secret=s").await.is_err());
        let clean = check(form, "username=a&password=b").await.unwrap();
        assert_eq!(
            clean.collect().await.unwrap().to_bytes(),
            "username=a&password=b"
        );
        let mp = "multipart/form-data; boundary=XyZ";
        let secret = "--XyZ\r\nContent-Disposition: form-data; name=\"Client_Secret\"\r\n\r\ns\r\n--XyZ--\r\n";
        assert!(check(mp, secret).await.is_err());
        let upload = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nclient_secret=s\r\n--XyZ--\r\n";
        assert!(check(mp, upload).await.is_ok());
        assert!(check("application/json", r#"{"a":{"client_secret":1}}"#)
            .await
            .is_err());
        assert!(check("text/plain", "client_secret=s").await.is_err());
        // Over max_body: forwarded whole, unread.
        let long = format!("{{\"client_secret\":\"{}\"}}", "x".repeat(2048));
        let body = check_body(
            req("application/json", long.clone()),
            Head::Inspect(BodyReadings::sniffed()),
            limits,
        )
        .await
        .unwrap()
        .into_body();
        assert_eq!(body.collect().await.unwrap().to_bytes(), long);
    }
}
