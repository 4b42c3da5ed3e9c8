//! Containment against the readings of the servers behind the gateway (docs/design.md §4.3):
//! form and multipart bodies, generated or raw, are read by the gateway's own check
//! (`auth::contain::check_head` for the `Content-Type`, then `auth::readings::finds_credential`,
//! exactly as an unprotected request is checked) and by two readers written here, apart
//! from the gateway's code:
//! - **PHP-like**: the type cut at `;`, `,` or a space; pairs split at `&`; names
//!   url-decoded, leading spaces skipped, `.` and space before the first `[` read as `_`,
//!   an unclosed `[` read as `_`, a closed one starting an array suffix, cut at NUL;
//!   multipart boundary from the first `boundary` substring, lines ending in LF or CRLF,
//!   the last `name` of a part, parts read past the closing delimiter;
//! - **Werkzeug-like**: the type before `;`, options parsed as `k=v` (the last `boundary`
//!   wins); pairs split at `&`; names `unquote_plus`-ed; multipart lines ending in CRLF or
//!   LF, `name*` (RFC 2231) preferred over `name`, reading stopped at the closing
//!   delimiter.
//! Both compare names case-sensitively with `client_secret` and `client_assertion`, as
//! those servers do. The target fails when either finds a credential in a body the gateway
//! would forward.
#![no_main]
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use secretgate::auth::contain::{check_head, Head};
use secretgate::auth::readings::{finds_credential, BodyReadings};

fn is_credential(name: &[u8]) -> bool {
    name == b"client_secret" || name == b"client_assertion"
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `+` as space (when `plus`), `%XX` decoded where valid, else left as is.
fn url_decode(raw: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' if plus => out.push(b' '),
            b'%' => match (
                raw.get(i + 1).and_then(|&b| hex(b)),
                raw.get(i + 2).and_then(|&b| hex(b)),
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
    out
}

/// PHP's `php_register_variable_ex` name mangling.
fn php_name(decoded: &[u8]) -> Vec<u8> {
    let cut = decoded
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(decoded.len());
    let mut name: Vec<u8> = decoded[..cut].to_vec();
    while name.first() == Some(&b' ') {
        name.remove(0);
    }
    let mut out = Vec::new();
    for (i, &b) in name.iter().enumerate() {
        match b {
            b'[' => {
                if name[i + 1..].contains(&b']') {
                    return out; // an array: `name[...]` fills `name`
                }
                out.push(b'_');
                out.extend_from_slice(&name[i + 1..]);
                return out;
            }
            b'.' | b' ' => out.push(b'_'),
            b => out.push(b),
        }
    }
    out
}

/// `(essence, parameters)` split on `;` with the given essence terminators.
fn essence(ct: &[u8], stops: &[u8]) -> Vec<u8> {
    let end = ct
        .iter()
        .position(|b| stops.contains(b))
        .unwrap_or(ct.len());
    ct[..end].trim_ascii().to_ascii_lowercase()
}

fn lines(body: &[u8]) -> Vec<&[u8]> {
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect()
}

/// The names of every part, reading lines that start with `--boundary`. `stop_at_close`:
/// Werkzeug stops at `--boundary--`, PHP reads on.
fn multipart_names(
    body: &[u8],
    boundary: &[u8],
    stop_at_close: bool,
    pick: fn(&[u8]) -> Option<Vec<u8>>,
) -> Vec<Vec<u8>> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut close = delimiter.clone();
    close.extend_from_slice(b"--");
    let mut names = Vec::new();
    let mut in_headers = false;
    for line in lines(body) {
        if line.starts_with(&close) {
            if stop_at_close {
                break;
            }
            in_headers = false;
            continue;
        }
        if line.starts_with(&delimiter) {
            in_headers = true;
            continue;
        }
        if in_headers {
            if line.is_empty() {
                in_headers = false;
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            if line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(b"content-disposition")
            {
                if let Some(name) = pick(&line[colon + 1..]) {
                    names.push(name);
                }
            }
        }
    }
    names
}

fn params(value: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    value
        .split(|&b| b == b';')
        .filter_map(|p| {
            let eq = p.iter().position(|&b| b == b'=')?;
            let v = p[eq + 1..].trim_ascii();
            let v = v
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v);
            Some((p[..eq].trim_ascii().to_ascii_lowercase(), v.to_vec()))
        })
        .collect()
}

/// PHP: the last `name` parameter.
fn php_pick(value: &[u8]) -> Option<Vec<u8>> {
    params(value)
        .into_iter()
        .filter(|(k, _)| k == b"name")
        .map(|(_, v)| v)
        .last()
}

/// Werkzeug: `name*` (RFC 2231) over `name`, the first of each.
fn werkzeug_pick(value: &[u8]) -> Option<Vec<u8>> {
    let ps = params(value);
    if let Some((_, v)) = ps.iter().find(|(k, _)| k == b"name*") {
        let encoded = v.rsplit(|&b| b == b'\'').next().unwrap_or(v);
        return Some(url_decode(encoded, false));
    }
    ps.into_iter().find(|(k, _)| k == b"name").map(|(_, v)| v)
}

/// Whether PHP reads a credential from this request.
fn php_finds(ct: &[u8], body: &[u8]) -> bool {
    match essence(ct, b";, ").as_slice() {
        b"application/x-www-form-urlencoded" => body
            .split(|&b| b == b'&')
            .map(|pair| pair.split(|&b| b == b'=').next().unwrap_or(b""))
            .any(|name| is_credential(&php_name(&url_decode(name, true)))),
        b"multipart/form-data" => {
            let lower = ct.to_ascii_lowercase();
            let Some(at) = lower.windows(8).position(|w| w == b"boundary") else {
                return false;
            };
            let Some(eq) = ct[at..].iter().position(|&b| b == b'=') else {
                return false;
            };
            let raw = &ct[at + eq + 1..];
            let raw = match raw.strip_prefix(b"\"") {
                Some(q) => &q[..q.iter().position(|&b| b == b'"').unwrap_or(q.len())],
                None => {
                    &raw[..raw
                        .iter()
                        .position(|&b| b == b',' || b == b';')
                        .unwrap_or(raw.len())]
                }
            };
            !raw.is_empty()
                && multipart_names(body, raw, false, php_pick)
                    .iter()
                    .any(|n| is_credential(&php_name(n)))
        }
        _ => false,
    }
}

/// Whether Werkzeug (or Rack, for a request without a type) reads a credential.
fn werkzeug_finds(ct: Option<&[u8]>, body: &[u8]) -> bool {
    let urlencoded = |body: &[u8]| {
        body.split(|&b| b == b'&')
            .map(|pair| pair.split(|&b| b == b'=').next().unwrap_or(b""))
            .any(|name| is_credential(&url_decode(name, true)))
    };
    let Some(ct) = ct else {
        return urlencoded(body); // Rack: a POST without a type is a form
    };
    match essence(ct, b";").as_slice() {
        b"application/x-www-form-urlencoded" => urlencoded(body),
        b"multipart/form-data" => {
            let semicolon = ct.iter().position(|&b| b == b';').unwrap_or(ct.len());
            let boundary = params(&ct[semicolon..])
                .into_iter()
                .filter(|(k, _)| k == b"boundary")
                .map(|(_, v)| v)
                .last();
            boundary.is_some_and(|b| {
                !b.is_empty()
                    && multipart_names(body, &b, true, werkzeug_pick)
                        .iter()
                        .any(|n| is_credential(n))
            })
        }
        _ => false,
    }
}

/// The gateway: does it refuse this request on a path that does not authenticate?
fn gateway_refuses(ct: Option<&[u8]>, body: &[u8]) -> bool {
    let mut headers = HeaderMap::new();
    if let Some(ct) = ct {
        let Ok(value) = HeaderValue::from_bytes(ct) else {
            return true;
        };
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    match check_head(&headers, None, &[]) {
        Err(_) => true,
        Ok(Head::Clean) => false,
        Ok(Head::FormBody(r) | Head::Inspect(r)) => finds_credential(body, &r),
    }
}

const SPELLINGS: [&[u8]; 12] = [
    b"client_secret",
    b"client_assertion",
    b"client.secret",
    b"client secret",
    b"client[secret",
    b"client_secret[]",
    b"client%5Fsecret",
    b"client%255Fsecret",
    b"client_secret%00x",
    b" client_secret",
    b"client_id",
    b"scope",
];

const TYPES: [&[u8]; 8] = [
    b"application/x-www-form-urlencoded",
    b"application/x-www-form-urlencoded; charset=latin1",
    b"application/x-www-form-urlencoded,text/html",
    b"multipart/form-data; boundary=XyZ",
    b"multipart/form-data; boundary=\"XyZ\"",
    b"multipart/form-data; boundary=AbC; boundary=XyZ",
    b"multipart/form-data; xboundary=XyZ; boundary=AbC",
    b"multipart/form-data;boundary=XyZ",
];

/// Builds a request from the input: a type from `TYPES`, parts named from `SPELLINGS` or
/// from input bytes, laid out with the input's choice of line ends, quotes, duplicate
/// `name`s, `name*` and parts after the closing delimiter.
fn generate(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut it = data.iter().copied();
    let mut next = || it.next().unwrap_or(0);
    let ct = TYPES[usize::from(next()) % TYPES.len()].to_vec();
    let crlf = if next() & 1 == 0 {
        &b"\r\n"[..]
    } else {
        &b"\n"[..]
    };
    let parts = usize::from(next() % 4) + 1;
    let mut body = Vec::new();
    let multipart = ct.starts_with(b"multipart");
    for k in 0..parts {
        let choice = next();
        let name: Vec<u8> = if choice < 200 {
            SPELLINGS[usize::from(choice) % SPELLINGS.len()].to_vec()
        } else {
            (0..choice % 8).map(|_| next()).collect()
        };
        let layout = next();
        if multipart {
            let boundary: &[u8] = if layout & 0x10 != 0 { b"AbC" } else { b"XyZ" };
            body.extend_from_slice(b"--");
            body.extend_from_slice(boundary);
            body.extend_from_slice(crlf);
            body.extend_from_slice(b"Content-Disposition: form-data; ");
            match layout & 3 {
                0 => body.extend_from_slice(b"name=\""),
                1 => body.extend_from_slice(b"name=x; name=\""),
                2 => body.extend_from_slice(b"name=x; name*=UTF-8''\""),
                _ => body.extend_from_slice(b"NAME=\""),
            }
            body.extend_from_slice(&name);
            body.extend_from_slice(b"\"");
            body.extend_from_slice(crlf);
            body.extend_from_slice(crlf);
            body.extend_from_slice(b"v");
            body.extend_from_slice(crlf);
            if layout & 4 != 0 && k + 1 < parts {
                body.extend_from_slice(b"--");
                body.extend_from_slice(boundary);
                body.extend_from_slice(b"--");
                body.extend_from_slice(crlf);
            }
        } else {
            if k > 0 {
                body.push([b'&', b';', b'\n'][usize::from(layout) % 3]);
            }
            body.extend_from_slice(&name);
            body.extend_from_slice(b"=v");
        }
    }
    if multipart {
        body.extend_from_slice(b"--XyZ--");
        body.extend_from_slice(crlf);
    }
    (ct, body)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (ct, body): (Option<Vec<u8>>, Vec<u8>) = if mode & 1 == 0 {
        let (ct, body) = generate(rest);
        (Some(ct), body)
    } else {
        // Raw: the first line is the Content-Type (empty: none), the rest the body.
        let newline = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let ct = &rest[..newline];
        let body = rest.get(newline + 1..).unwrap_or(b"");
        ((!ct.is_empty()).then(|| ct.to_vec()), body.to_vec())
    };
    let refused = gateway_refuses(ct.as_deref(), &body);
    let php = ct.as_deref().is_some_and(|ct| php_finds(ct, &body));
    let werkzeug = werkzeug_finds(ct.as_deref(), &body);
    assert!(
        refused || !(php || werkzeug),
        "forwarded a credential (php: {php}, werkzeug: {werkzeug}): {:?} {:?}",
        ct.as_deref().map(String::from_utf8_lossy),
        String::from_utf8_lossy(&body)
    );
    // The sniffed readings never panic on anything either.
    let _ = finds_credential(&body, &BodyReadings::sniffed());
});
