//! Credentials where no authentication method reads them: headers and cookies named after a
//! credential parameter, and `Authorization` values other than a plain bearer token
//! (docs/design.md §2.2, §4.3).
//!
//! No OAuth method sends `client_secret` as a header or a cookie, but frameworks read
//! parameters from them (PHP's `$_REQUEST` merges cookies, ASP.NET's `Request["x"]` reads
//! query, form, cookies and server variables, CGI turns a `Client-Secret` header into
//! `HTTP_CLIENT_SECRET`). So a header or cookie named after a credential is refused, on
//! protected endpoints as a second method (RFC 6749 §2.3), elsewhere as a credential on a
//! path that does not authenticate. Names are compared as those servers do: ASCII case
//! ignored, `-`, `.` and space read as `_`; cookie names also percent-decoded (PHP) and
//! read leniently (lenient.rs). A header is also refused with an `X-` prefix
//! (`X-Client-Secret`): the usual spelling of a custom header, and what an application
//! taking its secret "from a header" would look for.

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use http::HeaderMap;

use crate::lenient;
use crate::oauth::{CLIENT_ASSERTION, CLIENT_SECRET};

/// Whether a header name, read as CGI and frameworks read it, names secret material:
/// ASCII case ignored, `-`, `.` and space read as `_`, one `x_` prefix dropped. Compared
/// byte by byte without building the normalised name (every header of every request
/// passes here; allocating a folded copy of each was ~4k instructions per request).
pub fn is_credential_header(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes();
    let bare = match name {
        [x, sep, rest @ ..] if normal(*x) == b'x' && normal(*sep) == b'_' => rest,
        _ => name,
    };
    reads_as(bare, CLIENT_SECRET) || reads_as(bare, CLIENT_ASSERTION)
}

/// A header-name byte as CGI reads it.
fn normal(b: u8) -> u8 {
    match b {
        b'-' | b'.' | b' ' => b'_',
        b => b.to_ascii_lowercase(),
    }
}

/// Whether `name`, read byte by byte with [`normal`], is `target`.
fn reads_as(name: &[u8], target: &str) -> bool {
    name.len() == target.len()
        && name
            .iter()
            .zip(target.bytes())
            .all(|(&b, t)| normal(b) == t)
}

/// Whether a cookie name, read as PHP and ASP.NET read it, names secret material.
fn is_credential_cookie(raw: &[u8]) -> bool {
    let dashed: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect();
    lenient::credential_readings(&dashed)
        .iter()
        .any(|n| n == CLIENT_SECRET || n == CLIENT_ASSERTION)
}

/// Whether any header or cookie of the request is named after a credential.
pub fn in_headers_or_cookies(headers: &HeaderMap) -> bool {
    headers.keys().any(is_credential_header)
        || headers.get_all(COOKIE).iter().any(|cookies| {
            // RFC 6265 §5.4 joins pairs with "; "; lenient servers also split at `,`.
            cookies
                .as_bytes()
                .split(|&b| b == b';' || b == b',')
                .map(|pair| pair.split(|&b| b == b'=').next().unwrap_or(b""))
                .any(|name| is_credential_cookie(name.trim_ascii()))
        })
}

/// Whether any `Authorization` header uses the Basic scheme (any case, leading white space
/// ignored): the credential itself (RFC 7617).
pub fn has_basic(headers: &HeaderMap) -> bool {
    headers.get_all(AUTHORIZATION).iter().any(|v| {
        let v = v.as_bytes().trim_ascii_start();
        v.len() >= 5
            && v[..5].eq_ignore_ascii_case(b"basic")
            && v.get(5).is_none_or(|b| b.is_ascii_whitespace())
    })
}

/// Whether the `Authorization` headers of a request that does not authenticate may be
/// forwarded: none, or exactly one well-formed `Bearer <token68>` or `DPoP <token68>`
/// (RFC 6750 §2.1, RFC 9449 §7.1), or one whose scheme `allowed` lists. Anything else could
/// be read by a lenient server as Basic credentials, which the upstream must never get.
pub fn authorization_forwardable(headers: &HeaderMap, allowed: &[String]) -> bool {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (None, _) => true,
        (Some(value), None) => forwardable(value, allowed),
        (Some(_), Some(_)) => false,
    }
}

fn forwardable(value: &HeaderValue, allowed: &[String]) -> bool {
    let v = value.as_bytes();
    // The scheme, then exactly one space (RFC 9110 §11.4 allows more; lenient decoders
    // differ on them, and no client sends them).
    let Some(space) = v.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, rest) = (&v[..space], &v[space + 1..]);
    if scheme.eq_ignore_ascii_case(b"basic") {
        return false;
    }
    if scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"dpop") {
        return is_token68(rest);
    }
    !scheme.is_empty()
        && allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(scheme))
}

/// RFC 9110 §11.2 `token68`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(v: &[u8]) -> bool {
    let body = v.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body > 0
        && v[..body]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// The reading as first written: the folded name built, then compared.
    fn is_credential_header_folded(name: &HeaderName) -> bool {
        let normal: String = name
            .as_str()
            .chars()
            .map(|c| match c {
                '-' | '.' | ' ' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        let bare = normal.strip_prefix("x_").unwrap_or(&normal);
        bare == CLIENT_SECRET || bare == CLIENT_ASSERTION
    }

    proptest::proptest! {
        /// The byte-by-byte comparison reads every header name as the folded copy did:
        /// names built from the letters that matter, in any case, with any separator.
        #[test]
        fn header_names_read_as_when_folded(
            name in "[xX]?[-._]?(client|CLIENT|Client|clie|c)[-._]?(secret|SECRET|assertion|Assertion|secre|x)?[-._a-z]{0,2}",
        ) {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            proptest::prop_assert_eq!(is_credential_header(&name), is_credential_header_folded(&name));
        }
    }

    #[test]
    fn credential_headers_and_cookies() {
        for name in [
            "client_secret",
            "Client-Secret",
            "CLIENT.SECRET",
            "X-Client-Secret",
            "x_client_assertion",
            "client-assertion",
        ] {
            assert!(in_headers_or_cookies(&headers(&[(name, "s")])), "{name}");
        }
        for cookie in [
            "client_secret=s",
            "a=1; Client-Secret=s",
            "a=1;client%5Fsecret=s",
            "client.secret=s",
            "client[secret=s",
            "client_secret%00x=s",
            "x=1, client_assertion=a",
        ] {
            assert!(
                in_headers_or_cookies(&headers(&[("cookie", cookie)])),
                "{cookie}"
            );
        }
        for ok in [
            ("client-id", "x"),
            ("x-client-secret-hint", "x"),
            ("secret", "x"),
            ("cookie", "session=abc; client_id=x; theme=client_secret"),
        ] {
            assert!(!in_headers_or_cookies(&headers(&[ok])), "{ok:?}");
        }
    }

    #[test]
    fn only_one_well_formed_bearer_or_dpop_token_is_forwarded() {
        let allowed = ["digest".to_owned()];
        for ok in [
            "Bearer abc",
            "bearer a.b.c",
            "DPoP eyJ-_~+/x==",
            "Digest username=\"a\"",
        ] {
            assert!(
                authorization_forwardable(&headers(&[("authorization", ok)]), &allowed),
                "{ok}"
            );
        }
        assert!(authorization_forwardable(&HeaderMap::new(), &[]));
        for refused in [
            "Basic YTpi",
            "basic",
            "Bearer",
            "Bearer ",
            "Bearer  abc",
            "Bearer abc def",
            "Bearer a=b",
            "Bearer =",
            "Bearer\tabc",
            "Basicx YTpi",
            "Digest username=\"a\"",
            "YTpi",
            " Bearer abc",
        ] {
            assert!(
                !authorization_forwardable(&headers(&[("authorization", refused)]), &[]),
                "{refused}"
            );
        }
        let two = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(!authorization_forwardable(&two, &[]));
        let basic = headers(&[("authorization", "Basic YTpi")]);
        assert!(!authorization_forwardable(&basic, &["basic".to_owned()]));
    }
}
