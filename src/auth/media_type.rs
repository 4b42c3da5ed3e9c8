//! The body type of a request to a protected endpoint, read strictly (docs/design.md §2.5).
//!
//! RFC 6749 §3.2 (and RFC 7662 §2.1, RFC 7009 §2.1, RFC 9126 §2.1, RFC 8628 §3.1): the
//! request is `application/x-www-form-urlencoded`. The gateway takes exactly that type,
//! optionally with `charset=utf-8`, or well-formed `multipart/form-data` with exactly one
//! `boundary` (what `curl -F` sends). A type some server would read differently from the
//! gateway is refused rather than guessed at (readings.rs lists how lenient servers read
//! types): any other parameter, a second `boundary`, a list of types, a missing `;`.
//!
//! | `Content-Type` | answer |
//! |---|---|
//! | the two above (type and parameter names case-insensitive, white space around `;` as RFC 9110 §5.6.6 allows, values optionally quoted) | read |
//! | none, with an empty body | no body (Basic, or no credentials) |
//! | `application/json`, `*/*+json`, `text/*` | `400`: a token request is a form (RFC 6749 §3.2) |
//! | anything else, or none with a body | `415` |

use http::header::CONTENT_TYPE;
use http::HeaderMap;

use crate::auth::form::BodyKind;
use crate::error::{GatewayError, RequestError};

/// The decoding a protected request's body gets, or why it is refused.
pub fn protected(headers: &HeaderMap, body_empty: bool) -> Result<BodyKind, GatewayError> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let value = match (values.next(), values.next()) {
        (None, _) if body_empty => return Ok(BodyKind::Other),
        (None, _) => return Err(GatewayError::UnsupportedMediaType),
        (Some(v), None) => v.as_bytes(),
        (Some(_), Some(_)) => return Err(RequestError::MultipleContentTypes.into()),
    };
    let text = std::str::from_utf8(value).map_err(|_| GatewayError::UnsupportedMediaType)?;
    let mut pieces = text.split(';');
    let essence = pieces.next().unwrap_or("").trim_matches([' ', '\t']);
    let params: Vec<(String, String)> = pieces
        .map(parameter)
        .collect::<Option<_>>()
        .ok_or(GatewayError::UnsupportedMediaType)?;
    let lower = essence.to_ascii_lowercase();
    match lower.as_str() {
        "application/x-www-form-urlencoded" => match params.as_slice() {
            [] => Ok(BodyKind::UrlEncoded),
            [(name, value)] if name == "charset" && value.eq_ignore_ascii_case("utf-8") => {
                Ok(BodyKind::UrlEncoded)
            }
            _ => Err(GatewayError::UnsupportedMediaType),
        },
        "multipart/form-data" => match params.as_slice() {
            [(name, boundary)] if name == "boundary" && is_boundary(boundary) => {
                Ok(BodyKind::Multipart {
                    boundary: boundary.clone(),
                })
            }
            _ => Err(GatewayError::UnsupportedMediaType),
        },
        // RFC 6749 §3.2: the parameters are form-encoded; JSON or text is a client error.
        t if t == "application/json" || t.ends_with("+json") || t.starts_with("text/") => {
            Err(RequestError::UnsupportedContentType.into())
        }
        _ => Err(GatewayError::UnsupportedMediaType),
    }
}

/// One `name=value` parameter (RFC 9110 §5.6.6): a token name (returned in lower case),
/// `=` without white space around it, a token or a quoted string without escapes.
fn parameter(piece: &str) -> Option<(String, String)> {
    let piece = piece.trim_matches([' ', '\t']);
    let (name, value) = piece.split_once('=')?;
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return None;
    }
    let value = match value.strip_prefix('"') {
        Some(quoted) => {
            let inner = quoted.strip_suffix('"')?;
            if inner.contains(['"', '\\']) {
                return None;
            }
            inner
        }
        None if !value.is_empty() && value.bytes().all(is_tchar) => value,
        None => return None,
    };
    Some((name.to_ascii_lowercase(), value.to_owned()))
}

/// RFC 2046 §5.1.1: 1 to 70 `bchars`, not ending in a space.
fn is_boundary(b: &str) -> bool {
    (1..=70).contains(&b.len())
        && !b.ends_with(' ')
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ct: &str) -> Result<BodyKind, GatewayError> {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, ct.parse().unwrap());
        protected(&h, false)
    }

    fn status(ct: &str) -> u16 {
        match kind(ct) {
            Ok(_) => 200,
            Err(GatewayError::UnsupportedMediaType) => 415,
            Err(GatewayError::Request(_)) => 400,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn exactly_the_form_types() {
        for ok in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded",
            "application/x-www-form-urlencoded;charset=UTF-8",
            "application/x-www-form-urlencoded ; charset=\"utf-8\"",
            "application/x-www-form-urlencoded;\tCharset=utf-8",
            "multipart/form-data; boundary=------------------------d74496d66958873e",
            "multipart/form-data; boundary=\"a b:c\"",
            "Multipart/Form-Data;BOUNDARY=x",
        ] {
            assert_eq!(status(ok), 200, "{ok}");
        }
        for unsupported in [
            "application/x-www-form-urlencoded; charset=latin1",
            "application/x-www-form-urlencoded; charset=utf-8; x=1",
            "application/x-www-form-urlencoded charset=utf-8",
            "application/x-www-form-urlencoded, text/html",
            "application/x-www-form-urlencoded; charset = utf-8",
            "application/x-www-form-urlencodedx",
            "multipart/form-data",
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data; boundary=a; charset=utf-8",
            "multipart/mixed; boundary=a",
            "multipart/form-data; boundary=\"\"",
            "application/octet-stream",
            "application/xml",
            "",
        ] {
            assert_eq!(status(unsupported), 415, "{unsupported}");
        }
        for text in [
            "application/json",
            "application/json; charset=utf-8",
            "application/jwt+json",
            "text/plain",
            "TEXT/html",
        ] {
            assert_eq!(status(text), 400, "{text}");
        }
        assert!(matches!(
            protected(&HeaderMap::new(), true),
            Ok(BodyKind::Other)
        ));
        assert!(matches!(
            protected(&HeaderMap::new(), false),
            Err(GatewayError::UnsupportedMediaType)
        ));
    }
}
