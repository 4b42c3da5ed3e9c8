//! Which endpoint a request path names, read so that no server behind the gateway can read
//! it as another one (docs/design.md §4.5).
//!
//! Two steps. First the path must be canonical: percent-decoded to UTF-8 without leftovers,
//! no encoded `/`, no backslash (literal or `%5C`), no control character, no empty, `.` or
//! `..` segment. Then it is matched exactly against the `endpoints` patterns. A path that
//! does not match exactly is compared once more, *loosely*, the way common servers
//! normalise a path before routing it; if it matches loosely it is refused, because the
//! upstream may well serve it as that endpoint while the gateway would have forwarded it
//! unauthenticated (or, for the authorization endpoint, unchecked). The loose reading,
//! segment by segment:
//!
//! | normalisation | servers that do it |
//! |---|---|
//! | `;…` path parameters removed (`/oauth2/token;jsessionid=x`) | Tomcat, Jetty, Spring, WebLogic |
//! | letter case ignored, with Unicode case folding (`K` Kelvin sign is `k`, `ſ` is `s`) | IIS, ASP.NET, Spring with case-insensitive matching, Java `equalsIgnoreCase` |
//! | trailing dots and spaces removed (`/oauth2/token.`, `%20`) | IIS / Windows file names |
//! | `::$DATA` and other NTFS stream suffixes removed | IIS |
//! | full-width letters read as ASCII (`ｔｏｋｅｎ`) | IIS "best fit" mapping |
//! | a file extension removed from the last segment (`/oauth2/token.json`) | Spring suffix pattern matching |
//! | percent-decoding applied twice (`%2574oken`) | IIS double decoding, some frameworks |
//! | characters whose best-fit mapping or compatibility decomposition (NFKD) is `/`, `\`, `.` or a letter (`／`, `∕`, `＼`, `．`, `𝐭`, `ť`) | IIS and CGI programs on Windows (best-fit code page conversion), Unicode-normalising routers |
//! | ASP.NET cookieless session segments `(X(...))` removed (`/(S(abc))/oauth2/token`) | IIS / ASP.NET |
//!
//! Invariant: a path is either an endpoint (and judged by that kind's rules), or
//! unprotected and not loosely equal to any endpoint pattern, or refused.

use std::borrow::Cow;

use crate::config::PathPattern;
use crate::error::RequestError;
use crate::lenient;

/// What a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathClass {
    /// It matches the pattern at this index, exactly.
    Endpoint(usize),
    Unprotected,
}

/// Classifies `path` (as received, still percent-encoded).
pub fn classify(patterns: &[PathPattern], path: &str) -> Result<PathClass, RequestError> {
    let decoded = decode(path)?;
    let segments = canonical_segments(&decoded)?;
    if let Some(i) = patterns.iter().position(|p| p.matches(&segments)) {
        return Ok(PathClass::Endpoint(i));
    }
    if looks_protected(patterns, &segments) {
        return Err(RequestError::LookalikePath);
    }
    Ok(PathClass::Unprotected)
}

/// The percent-decoded path, if it decodes one way only.
fn decode(path: &str) -> Result<Cow<'_, str>, RequestError> {
    // A `%` left over, `%2F`, `%2E` and friends change meaning once decoded; refuse them so
    // the upstream's reading of the path is the same as ours.
    if has_bad_escape(path) {
        return Err(RequestError::AmbiguousPath);
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| RequestError::AmbiguousPath)?;
    // Windows servers read `\` as `/`; a control character (`%00` truncation, `%0A` in a log
    // line) has no place in a path. Neither can be read the same way everywhere.
    if decoded.contains('\\') || decoded.chars().any(char::is_control) {
        return Err(RequestError::AmbiguousPath);
    }
    Ok(decoded)
}

/// The segments of a decoded canonical path (one trailing `/` ignored; `/` alone has
/// none), or why the path is not canonical.
fn canonical_segments(decoded: &str) -> Result<Vec<&str>, RequestError> {
    let trimmed = decoded
        .strip_prefix('/')
        .ok_or(RequestError::AmbiguousPath)?;
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    // Empty and dot segments, also as a lenient server sees them once it has cut `;…`
    // parameters off (Tomcat reads `/x/..;/oauth2/token` as `/oauth2/token`) or trimmed
    // trailing dots and spaces.
    if segments.iter().any(|s| lenient::ambiguous_segment(s)) {
        return Err(RequestError::AmbiguousPath);
    }
    Ok(segments)
}

/// A `%` that does not start an escape, or an escaped `/` (`%2F`, `%2f`).
fn has_bad_escape(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            // `%2F` decodes to a segment separator that was not one. Checked here, where
            // every `%` of an acceptable path starts an escape, instead of with two
            // substring searches (~780 instructions per request, issue 23).
            let slash = bytes.get(i + 1) == Some(&b'2')
                && bytes
                    .get(i + 2)
                    .is_some_and(|b| b.eq_ignore_ascii_case(&b'f'));
            if !ok || slash {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether another server could read these (canonical, decoded) segments as a protected
/// endpoint: see the table in the module documentation.
fn looks_protected(patterns: &[PathPattern], segments: &[&str]) -> bool {
    // Loosened segments, with `.` and `..` resolved (RFC 3986 §5.2.4) once `;…` is cut:
    // only a second decoding can make dot segments here, the first reading refused them.
    let loose = |segments: &[&str]| -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(segments.len());
        for s in segments {
            // IIS removes ASP.NET cookieless session segments, `(S(…))`, before routing.
            if lenient::is_cookieless_segment(s) {
                continue;
            }
            match lenient::cut_segment(s).trim_end_matches([' ', '\t']) {
                "." => {}
                ".." => {
                    out.pop();
                }
                _ => {
                    let l = lenient::path_segment(s);
                    if !l.is_empty() {
                        out.push(l);
                    }
                }
            }
        }
        out
    };
    let mut readings = vec![loose(segments)];
    // Decoded a second time: `%2574oken` is `%74oken` to us and `token` to a server that
    // decodes twice (and a second decoding may produce new separators).
    let joined = segments.join("/");
    let mut texts = vec![Cow::Borrowed(joined.as_str())];
    if joined.contains('%') {
        let twice = percent_encoding::percent_decode_str(&joined).decode_utf8_lossy();
        let resplit: Vec<&str> = twice.split(['/', '\\']).collect();
        readings.push(loose(&resplit));
        texts.push(twice);
    }
    // Characters that best-fit mapping or compatibility decomposition make `/`, `\`, `.`
    // or a letter (`%EF%BC%8F` FULLWIDTH SOLIDUS, U+2215 DIVISION SLASH, `ｔ`, `ť`), in
    // the path as decoded once and twice: IIS and Windows CGI programs read them so.
    for text in &texts {
        if let Cow::Owned(mapped) = lenient::lookalike_text(text) {
            let resplit: Vec<&str> = mapped.split(['/', '\\']).collect();
            readings.push(loose(&resplit));
        }
    }
    // Spring's suffix pattern matching serves `/oauth2/token.json` as `/oauth2/token`.
    for i in 0..readings.len() {
        if let Some((stem, _ext)) = readings[i].last().and_then(|l| l.rsplit_once('.')) {
            let mut without_ext = readings[i].clone();
            let last = without_ext.len() - 1;
            without_ext[last] = stem.trim_end_matches(['.', ' ']).to_owned();
            readings.push(without_ext);
        }
    }
    readings.iter().any(|reading| {
        patterns.iter().any(|p| {
            p.matches_by(reading, |literal, seg| {
                lenient::path_segment(literal) == seg
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathClass::*;

    fn pats(list: &[&str]) -> Vec<PathPattern> {
        list.iter()
            .map(|p| PathPattern::parse(p).unwrap())
            .collect()
    }

    #[test]
    fn placeholders_match_one_segment() {
        let p = pats(&["/oauth2/token", "/{tid}/{aid}/oauth2/token"]);
        assert_eq!(classify(&p, "/oauth2/token"), Ok(Endpoint(0)));
        assert_eq!(classify(&p, "/oauth2/token/"), Ok(Endpoint(0)));
        assert_eq!(classify(&p, "/acme/app/oauth2/token"), Ok(Endpoint(1)));
        assert_eq!(classify(&p, "/acme;x/app/oauth2/token"), Ok(Endpoint(1)));
        // Authenticated like any tenant path; whatever the upstream makes of it, the
        // request carries no secret and a header bound to this exact path.
        assert_eq!(classify(&p, "/x/%252e%252e/oauth2/token"), Ok(Endpoint(1)));
        assert_eq!(classify(&p, "/acme/oauth2/token"), Ok(Unprotected));
        assert_eq!(classify(&p, "/a/b/c/oauth2/token"), Ok(Unprotected));
        assert_eq!(
            classify(&p, "/.well-known/openid-configuration"),
            Ok(Unprotected)
        );
        assert_eq!(classify(&p, "/"), Ok(Unprotected));
    }

    #[test]
    fn encoded_paths_cannot_dodge_protection() {
        let p = pats(&["/oauth2/token"]);
        assert_eq!(classify(&p, "/oauth2/%74oken"), Ok(Endpoint(0)));
        // `%2` followed by another hex digit is not a slash.
        assert_eq!(classify(&p, "/a%2Eb"), Ok(Unprotected));
        for ambiguous in [
            "/oauth2%2Ftoken",
            "/oauth2%2ftoken",
            "/oauth2/token%2F",
            "/%2F%2Foauth2/token",
            "/oauth2/%41%2ftoken",
            "/x/../oauth2/token",
            "/oauth2//token",
            "/oauth2/./token",
            "/oauth2/%2e%2e/oauth2/token",
            "/oauth2/tok%zzen",
            "/oauth2/tok%e",
            "/oauth2\\token",
            "/oauth2%5Ctoken",
            "/oauth2%5ctoken",
            "/x%5C..%5Coauth2/token",
            "/oauth2/token%00.json",
            "/oauth2/token%0A",
            "/oauth2/%C0%AFtoken",
            "oauth2/token",
            "/x/..;/oauth2/token",
            "/x/..;x=1/oauth2/token",
            "/oauth2/.;/token",
            "/oauth2/;x/token",
            "/x/.../oauth2/token",
            "/x/.%20/oauth2/token",
            "/;jsessionid=1",
            // Full-width dots: a dot segment once read as ASCII.
            "/x/%EF%BC%8E%EF%BC%8E/oauth2/token",
        ] {
            assert_eq!(
                classify(&p, ambiguous),
                Err(RequestError::AmbiguousPath),
                "{ambiguous}"
            );
        }
    }

    /// Spellings that common servers route to the protected endpoint: refused, not
    /// forwarded as unprotected.
    #[test]
    fn lookalikes_of_a_protected_path_are_refused() {
        let p = pats(&["/oauth2/token", "/{tid}/{aid}/oauth2/token"]);
        for lookalike in [
            "/oauth2/token;x",
            "/oauth2/token;jsessionid=ABC123",
            "/oauth2;x/token",
            "/oauth2/token%3Bx",
            "/OAuth2/Token",
            "/OAUTH2/TOKEN",
            "/oauth2/to%E2%84%AAen",
            "/oauth2/token.",
            "/oauth2/token%20",
            "/oauth2/token..",
            "/oauth2/token::$DATA",
            "/oauth2/%EF%BD%94%EF%BD%8F%EF%BD%8B%EF%BD%85%EF%BD%8E",
            "/oauth2/token.json",
            "/oauth2/token.do",
            "/oauth2/%2574oken",
            "/oauth2%252Ftoken",
            "/oauth2/x/%252e%252e/token",
            "/oauth2/%252e/token",
            "/acme/app/OAuth2/token",
            "/acme/app/oauth2/token;v=1",
            // Best fit and compatibility forms of `/`, `\`, `.` and letters.
            "/oauth2%EF%BC%8Ftoken",
            "/oauth2%E2%88%95token",
            "/oauth2%E2%81%84token",
            "/oauth2%E2%A7%B8token",
            "/oauth2%EF%BC%BCtoken",
            "/oauth2%E2%88%96token",
            "/oauth2%EF%B9%A8token",
            "/oauth2/token%EF%BC%8Ejson",
            "/oauth2/token%E2%80%A4",
            "/oauth2/t%C3%B6ken",
            "/oauth2/%F0%9D%90%ADoken",
            "/oauth2%25EF%25BC%258Ftoken",
            "/acme%EF%BC%8Fapp/oauth2/token",
            // ASP.NET cookieless sessions.
            "/(S(abc123))/oauth2/token",
            "/(A(x))(S(y))/oauth2/token",
            "/oauth2/(S(abc))/token",
            "/(S(x))/acme/app/oauth2/token",
        ] {
            assert_eq!(
                classify(&p, lookalike),
                Err(RequestError::LookalikePath),
                "{lookalike}"
            );
        }
        // Near the protected paths but not read as them by anyone: forwarded.
        for other in [
            "/oauth2/tokens",
            "/oauth2/token/extra",
            "/oauth2/authorize;x",
            "/login;jsessionid=ABC123",
            "/oauth2/revoke",
            "/static/app.js",
            "/acme/oauth2/token;x",
        ] {
            assert_eq!(classify(&p, other), Ok(Unprotected), "{other}");
        }
    }

    #[test]
    fn segments_are_loosened_as_lenient_servers_do() {
        assert_eq!(lenient::path_segment("To\u{212A}en"), "token");
        assert_eq!(lenient::path_segment("ＴＯＫＥＮ. ;x"), "token");
        assert_eq!(lenient::path_segment("token::$DATA"), "token");
    }
}
