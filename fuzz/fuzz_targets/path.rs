//! Request paths → `route::classify`, the decision the route layer makes for every request,
//! with the default endpoint paths plus `/{tid}/{aid}/oauth2/token`; and the same input as
//! an `endpoints` entry → `PathPattern::parse`.
//! Checks: never panics; classification cannot be dodged (src/route/canonical.rs): whenever
//! a path is classified unprotected, no upstream reading of it names a protected endpoint:
//! not one that percent-decodes and then resolves dot segments and empty segments (RFC 3986
//! §5.2.4), not one that resolves first and decodes afterwards, and not a lenient one
//! (backslash as `/`, `;` path parameters and `::` stream names cut, ASCII case ignored,
//! trailing dots and spaces trimmed, a file extension dropped from the last segment); a path
//! classified protected is one under the strict reading; and every pattern that parses
//! classifies its own text as protected.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secretgate::config::PathPattern;
use secretgate::route::{classify, PathClass};

/// The same patterns as `patterns()`; `None` is a `{placeholder}` (one non-empty segment).
const REFERENCE: &[&[Option<&str>]] = &[
    &[Some("oauth2"), Some("token")],
    &[Some("oauth2"), Some("introspect")],
    &[Some("oauth2"), Some("revoke")],
    &[Some("oauth2"), Some("par")],
    &[Some("oauth2"), Some("device_authorization")],
    &[Some("oauth2"), Some("authorize")],
    &[None, None, Some("oauth2"), Some("token")],
];

fn patterns() -> Vec<PathPattern> {
    let mut p: Vec<PathPattern> = secretgate::config::EndpointsConfig::defaults()
        .routes
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    p.push(PathPattern::parse("/{tid}/{aid}/oauth2/token").expect("valid pattern"));
    assert_eq!(p.len(), REFERENCE.len());
    p
}

/// Lenient percent-decoding: a `%` without two hex digits stays as it is.
fn decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            if let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// Segments after resolving `.`, `..` and empty segments.
fn resolve(path: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for seg in path.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out
}

/// A lenient server's reading, written independently of the gateway's (ASCII only):
/// backslash as `/`, each segment's `;…` and `::…` cut off, then dot and empty segments
/// resolved, then case and trailing dots and spaces ignored.
fn lenient(decoded: &[u8]) -> Vec<Vec<u8>> {
    let slashed: Vec<u8> = decoded
        .iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for seg in slashed.split(|&b| b == b'/') {
        let seg = seg.split(|&b| b == b';').next().unwrap_or(b"");
        let cut = seg.windows(2).position(|w| w == b"::").unwrap_or(seg.len());
        let mut seg = seg[..cut].to_ascii_lowercase();
        match seg.as_slice() {
            b"" | b"." => continue,
            b".." => {
                segments.pop();
                continue;
            }
            _ => {}
        }
        while seg.last().is_some_and(|b| *b == b'.' || *b == b' ') {
            seg.pop();
        }
        if !seg.is_empty() {
            segments.push(seg);
        }
    }
    segments
}

/// The lenient reading, also with a file extension dropped from the last segment.
fn lenient_protected(decoded: &[u8]) -> bool {
    let mut segments = lenient(decoded);
    if protected(&segments) {
        return true;
    }
    match segments.last_mut() {
        Some(last) => match last.iter().rposition(|&b| b == b'.') {
            Some(dot) => {
                last.truncate(dot);
                while last.last().is_some_and(|b| *b == b'.' || *b == b' ') {
                    last.pop();
                }
                protected(&segments)
            }
            None => false,
        },
        None => false,
    }
}

fn protected(segments: &[Vec<u8>]) -> bool {
    REFERENCE.iter().any(|pat| {
        pat.len() == segments.len()
            && pat.iter().zip(segments).all(|(p, s)| match p {
                Some(lit) => lit.as_bytes() == s.as_slice(),
                None => !s.is_empty(),
            })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };

    let decoded = decode(data);
    let decode_then_resolve: Vec<Vec<u8>> =
        resolve(&decoded).into_iter().map(<[u8]>::to_vec).collect();
    let resolve_then_decode: Vec<Vec<u8>> = resolve(data).into_iter().map(decode).collect();
    match classify(&patterns(), path) {
        Ok(PathClass::Unprotected) => {
            assert!(
                !lenient_protected(&decoded),
                "a lenient server's reading of an unprotected path is protected"
            );
            assert!(
                !protected(&decode_then_resolve),
                "protected path classified unprotected (decode, then resolve)"
            );
            assert!(
                !protected(&resolve_then_decode),
                "protected path classified unprotected (resolve, then decode)"
            );
        }
        Ok(PathClass::Endpoint(_)) => assert!(
            protected(&decode_then_resolve),
            "unprotected path classified protected"
        ),
        Err(_) => {}
    }

    if let Ok(pattern) = PathPattern::parse(path) {
        assert_eq!(pattern.as_str(), path);
        assert_eq!(
            classify(&[pattern], path),
            Ok(PathClass::Endpoint(0)),
            "a pattern does not match its own text"
        );
    }
});
