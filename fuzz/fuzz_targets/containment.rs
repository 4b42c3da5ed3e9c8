//! The two promises of secret containment, fed arbitrary input:
//! - a protected form body that authenticates is rebuilt (`auth::extract`, then
//!   `auth::rebuild::rebuild`) into a body in which no parameter, read by an independent
//!   lenient decoder, is `client_secret`, `client_assertion` or `client_assertion_type`,
//!   and `client_id` appears exactly once, with the authenticated id;
//! - on an unprotected path, a query string (or urlencoded body) that an independent
//!   lenient reading finds a `client_secret` or `client_assertion` in is refused
//!   (`auth::contain::check_head`), and an `Authorization` value with the Basic scheme is
//!   refused too.
//! Never panics. The reference reader here is written apart from `lenient.rs` (ASCII case
//! only, so it is less lenient than the gateway and every name it finds must be refused).
#![no_main]
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use secretgate::auth::contain::check_head;
use secretgate::auth::extract::{extract, BodyForm, Presented};
use secretgate::auth::form;
use secretgate::auth::rebuild::rebuild;
use secretgate::oauth::ClientId;

/// A lenient server's parameter names: split at `&` and `;`, `+` as space, `%XX` decoded
/// where valid, ASCII case ignored, PHP's `[`-suffix cut and `.`/space read as `_`.
fn reference_names(form: &[u8]) -> Vec<Vec<u8>> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    form.split(|&b| b == b'&' || b == b';')
        .map(|pair| {
            let name = pair.split(|&b| b == b'=').next().unwrap_or(b"");
            let mut out = Vec::new();
            let mut i = 0;
            while i < name.len() {
                match name[i] {
                    b'+' => out.push(b' '),
                    b'%' => match (
                        name.get(i + 1).copied().and_then(hex),
                        name.get(i + 2).copied().and_then(hex),
                    ) {
                        (Some(h), Some(l)) => {
                            out.push(h << 4 | l);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    },
                    b => out.push(b),
                }
                i += 1;
            }
            let cut = out.iter().position(|&b| b == b'[').unwrap_or(out.len());
            out.truncate(cut);
            let trimmed: Vec<u8> = out
                .trim_ascii()
                .iter()
                .map(|b| match b.to_ascii_lowercase() {
                    b'.' | b' ' => b'_',
                    b => b,
                })
                .collect();
            trimmed
        })
        .collect()
}

fn is_secret(name: &[u8]) -> bool {
    name == b"client_secret" || name == b"client_assertion"
}

fuzz_target!(|data: &[u8]| {
    // Protected: what authenticates is rebuilt without secret material.
    if let Ok(params) = form::parse_urlencoded(data) {
        if let Ok(extracted) = extract(&HeaderMap::new(), None, &BodyForm::Form(&params)) {
            let id = match &extracted.presented {
                Presented::Post { client_id, .. } | Presented::ClientIdOnly { client_id } => {
                    client_id.clone()
                }
                // The authenticator refuses a body client_id other than the assertion's
                // subject; take the body's when there is one.
                Presented::Jwt { .. } => extracted
                    .body_client_id
                    .clone()
                    .unwrap_or_else(|| "asserted-client".to_owned()),
                Presented::Basic(_) => unreachable!("no Authorization header was given"),
            };
            let mut headers = HeaderMap::new();
            let body = rebuild(
                &mut headers,
                Some(&params),
                Bytes::copy_from_slice(data),
                &ClientId::new(id.as_str()),
            );
            let names = reference_names(&body);
            assert!(
                !names
                    .iter()
                    .any(|n| is_secret(n) || n == b"client_assertion_type"),
                "secret material in the rebuilt body: {body:?}"
            );
            let ids: Vec<(String, String)> = form_urlencoded::parse(&body)
                .into_owned()
                .filter(|(n, _)| n == "client_id")
                .collect();
            assert_eq!(ids, [("client_id".to_owned(), id)], "{body:?}");
        }
    }

    // Unprotected: a query a lenient server finds a secret in is refused.
    if let Ok(query) = std::str::from_utf8(data) {
        let refused = check_head(&HeaderMap::new(), Some(query), &[]).is_err();
        if reference_names(data).iter().any(|n| is_secret(n)) {
            assert!(refused, "query with a secret parameter passed: {query:?}");
        }
    }

    // Unprotected: a Basic Authorization header is refused.
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        let trimmed = data.trim_ascii_start();
        let basic = trimmed.len() >= 5
            && trimmed[..5].eq_ignore_ascii_case(b"basic")
            && trimmed.get(5).is_none_or(|b| b.is_ascii_whitespace());
        if basic {
            assert!(
                check_head(&headers, None, &[]).is_err(),
                "Basic passed: {data:?}"
            );
        }
    }
});
