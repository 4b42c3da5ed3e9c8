//! Form bodies: which decoding a `Content-Type` calls for, strict
//! `application/x-www-form-urlencoded` decoding, `multipart/form-data` transcoding, and
//! encoding.
//!
//! Invariants: decoding is strict (a `%` must start two hex digits, names and values must be
//! UTF-8) so the gateway and the upstream can never read a body differently; parameters are
//! kept in order; encoding escapes everything but unreserved characters, so
//! `decode(encode(x)) == x`.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::HeaderMap;
use memchr::{memchr, memchr2, memchr_iter};

use crate::error::RequestError;

/// Which decoding a request body calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    UrlEncoded,
    Multipart {
        boundary: String,
    },
    /// Any other type, or none: the body cannot carry credentials.
    Other,
}

/// Reads the one `Content-Type`. Several are refused (the upstream might read another
/// one); an urlencoded body in any charset but UTF-8 is refused (the gateway decodes UTF-8
/// and the upstream must read the same parameters).
pub fn body_kind(headers: &HeaderMap) -> Result<BodyKind, RequestError> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(BodyKind::Other),
        (Some(v), None) => v
            .to_str()
            .map_err(|_| RequestError::UnsupportedContentType)?,
        (Some(_), Some(_)) => return Err(RequestError::MultipleContentTypes),
    };
    let mut pieces = value.split(';');
    let essence = pieces.next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        for param in pieces {
            let (name, val) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("charset")
                && !val.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            {
                return Err(RequestError::UnsupportedContentType);
            }
        }
        Ok(BodyKind::UrlEncoded)
    } else if essence.eq_ignore_ascii_case("multipart/form-data") {
        multer::parse_boundary(value)
            .map(|boundary| BodyKind::Multipart { boundary })
            .map_err(|_| RequestError::MalformedMultipart)
    } else {
        Ok(BodyKind::Other)
    }
}

/// Decodes a whole body of `kind`: `None` for a body that is not a form.
pub async fn decode(kind: BodyKind, body: &Bytes) -> Result<Option<Params<'_>>, RequestError> {
    match kind {
        BodyKind::UrlEncoded => parse_urlencoded(body).map(Some),
        BodyKind::Multipart { boundary } => parse_multipart(body.clone(), boundary).await.map(Some),
        BodyKind::Other => Ok(None),
    }
}

/// Decoded form parameters, in the order they came. Borrowed from the body where nothing
/// needed decoding (a token request's names and most values), so that a form is copied
/// once, into the body forwarded (issue 23).
pub type Params<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// Most parameters accepted in one form; token requests carry a handful.
const MAX_PARAMS: usize = 256;

/// `+` → space, `%XX` → byte; `None` on a `%` not followed by two hex digits.
pub fn form_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    // Runs without escapes (most of a token request, all of an assertion) are copied whole.
    while let Some(i) = memchr2(b'%', b'+', rest) {
        out.extend_from_slice(&rest[..i]);
        if rest[i] == b'+' {
            out.push(b' ');
            rest = &rest[i + 1..];
        } else {
            let hi = hex(*rest.get(i + 1)?)?;
            let lo = hex(*rest.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            rest = &rest[i + 3..];
        }
    }
    out.extend_from_slice(rest);
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses an urlencoded body strictly (WHATWG/HTML form encoding, UTF-8).
pub fn parse_urlencoded(body: &[u8]) -> Result<Params<'_>, RequestError> {
    // A token request has a handful.
    let mut params = Vec::with_capacity(8);
    // The separators are found with memchr, many bytes at a time: an assertion is most of
    // a jwt request's body, and a byte-at-a-time scan cost ~12 instructions per byte.
    let mut start = 0;
    for end in memchr_iter(b'&', body).chain([body.len()]) {
        let pair = &body[start..end];
        start = end + 1;
        if pair.is_empty() {
            continue;
        }
        if params.len() == MAX_PARAMS {
            return Err(RequestError::MalformedForm);
        }
        let (name, value) = match memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        params.push((component(name)?, component(value)?));
    }
    Ok(params)
}

/// One decoded name or value: borrowed when it has no `%` or `+`, UTF-8 either way.
fn component(raw: &[u8]) -> Result<Cow<'_, str>, RequestError> {
    if memchr2(b'%', b'+', raw).is_none() {
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| RequestError::MalformedForm);
    }
    form_decode(raw)
        .and_then(|b| String::from_utf8(b).ok())
        .map(Cow::Owned)
        .ok_or(RequestError::MalformedForm)
}

/// Parses `multipart/form-data` (what `curl -F name=value` sends) into parameters.
/// Parts must be plain fields: a file upload has no place in a token request.
pub async fn parse_multipart(
    body: Bytes,
    boundary: String,
) -> Result<Params<'static>, RequestError> {
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(u64::MAX));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut params = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => return Err(RequestError::MalformedMultipart),
        };
        if params.len() == MAX_PARAMS || field.file_name().is_some() {
            return Err(RequestError::MalformedMultipart);
        }
        let name = field
            .name()
            .ok_or(RequestError::MalformedMultipart)?
            .to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|_| RequestError::MalformedMultipart)?;
        let value =
            String::from_utf8(bytes.to_vec()).map_err(|_| RequestError::MalformedMultipart)?;
        params.push((Cow::Owned(name), Cow::Owned(value)));
    }
    Ok(params)
}

/// The names of every part of a `multipart/form-data` body, files included (for checking
/// what an unprotected request would forward; the values are not kept).
pub async fn multipart_names(body: Bytes, boundary: String) -> Result<Vec<String>, RequestError> {
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(u64::MAX));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut names = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => names.push(field.name().unwrap_or_default().to_owned()),
            Ok(None) => return Ok(names),
            Err(_) => return Err(RequestError::MalformedMultipart),
        }
    }
}

/// Characters left as they are: RFC 3986 unreserved. Everything else is `%XX`, space is `+`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'*')
}

/// Form-encodes one name or value.
pub fn form_encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_encoded(&mut out, text);
    out
}

fn push_encoded(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if is_unreserved(b) {
            continue;
        }
        // Runs of unreserved (ASCII) characters are copied whole. A non-empty run starts
        // after an escaped byte at an ASCII one, and ends before an ASCII byte or a UTF-8
        // lead byte: both ends are character boundaries.
        if start < i {
            out.push_str(&text[start..i]);
        }
        start = i + 1;
        if b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    if start < text.len() {
        out.push_str(&text[start..]);
    }
}

/// Encodes parameters as an urlencoded body.
pub fn encode<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    encode_into(&mut out, params);
    out
}

/// [`encode`], appended to `out` (sized by the caller: the body is written without growing
/// it when the estimate holds).
pub fn encode_into<'a>(out: &mut String, params: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let start = out.len();
    for (name, value) in params {
        if out.len() > start {
            out.push('&');
        }
        push_encoded(out, name);
        out.push('=');
        push_encoded(out, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strict_decoding() {
        assert_eq!(
            parse_urlencoded(b"grant_type=client_credentials&scope=a+b%20c&&empty=&bare").unwrap(),
            vec![
                ("grant_type".into(), "client_credentials".into()),
                ("scope".into(), "a b c".into()),
                ("empty".into(), "".into()),
                ("bare".into(), "".into()),
            ]
        );
        // Borrowed from the body where nothing was decoded, owned where something was.
        let parsed = parse_urlencoded(b"grant_type=client_credentials&scope=a+b&x%41=1").unwrap();
        assert!(matches!(parsed[0], (Cow::Borrowed(_), Cow::Borrowed(_))));
        assert!(matches!(parsed[1], (Cow::Borrowed(_), Cow::Owned(_))));
        assert!(matches!(parsed[2], (Cow::Owned(_), Cow::Borrowed(_))));
        assert_eq!(parse_urlencoded(b"a=%zz"), Err(RequestError::MalformedForm));
        assert_eq!(
            parse_urlencoded(b"a=\xff"),
            Err(RequestError::MalformedForm)
        );
        assert_eq!(
            parse_urlencoded(b"\xc3=1"),
            Err(RequestError::MalformedForm)
        );
        assert_eq!(parse_urlencoded(b"a=%4"), Err(RequestError::MalformedForm));
        assert_eq!(parse_urlencoded(b"a=%FF"), Err(RequestError::MalformedForm));
        assert_eq!(parse_urlencoded(b"a=caf%C3%A9").unwrap()[0].1, "café");
    }

    #[test]
    fn content_types() {
        let kind = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, ct.parse().unwrap());
            body_kind(&h)
        };
        assert_eq!(body_kind(&HeaderMap::new()), Ok(BodyKind::Other));
        assert_eq!(
            kind("application/x-www-form-urlencoded"),
            Ok(BodyKind::UrlEncoded)
        );
        assert_eq!(
            kind("Application/X-WWW-Form-Urlencoded; charset=\"UTF-8\""),
            Ok(BodyKind::UrlEncoded)
        );
        assert_eq!(
            kind("application/x-www-form-urlencoded; charset=iso-8859-1"),
            Err(RequestError::UnsupportedContentType)
        );
        assert_eq!(
            kind("multipart/form-data; boundary=XyZ"),
            Ok(BodyKind::Multipart {
                boundary: "XyZ".into()
            })
        );
        assert_eq!(
            kind("multipart/form-data"),
            Err(RequestError::MalformedMultipart)
        );
        assert_eq!(kind("application/json"), Ok(BodyKind::Other));
        let mut two = HeaderMap::new();
        two.append(CONTENT_TYPE, "application/json".parse().unwrap());
        two.append(
            CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        assert_eq!(body_kind(&two), Err(RequestError::MultipleContentTypes));
    }

    #[test]
    fn too_many_params() {
        let body = "a=1&".repeat(MAX_PARAMS + 1);
        assert_eq!(
            parse_urlencoded(body.as_bytes()),
            Err(RequestError::MalformedForm)
        );
    }

    #[tokio::test]
    async fn multipart_as_curl_sends_it() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--XyZ\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nbilling\r\n--XyZ--\r\n";
        let params = parse_multipart(Bytes::from(body), "XyZ".into())
            .await
            .unwrap();
        assert_eq!(
            params,
            vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), "billing".into())
            ]
        );
        let file = "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nx\r\n--XyZ--\r\n";
        assert_eq!(
            parse_multipart(Bytes::from(file), "XyZ".into()).await,
            Err(RequestError::MalformedMultipart)
        );
        assert_eq!(
            parse_multipart(Bytes::from("garbage"), "XyZ".into()).await,
            Err(RequestError::MalformedMultipart)
        );
    }

    proptest! {
        /// decode(encode(x)) == x for any parameters.
        #[test]
        fn round_trip(params in proptest::collection::vec(("\\PC{0,12}", "\\PC{0,20}"), 0..8)) {
            let params: Params = params.into_iter().filter(|(n, v)| !(n.is_empty() && v.is_empty())).map(|(n, v)| (n.into(), v.into())).collect();
            let encoded = encode(params.iter().map(|(n, v)| (&**n, &**v)));
            prop_assert_eq!(parse_urlencoded(encoded.as_bytes()).unwrap(), params);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_urlencoded(&bytes);
        }
    }
}
