//! The most lenient readings of a request body that common servers make, for containment
//! (docs/design.md §4.3): if any of them finds a credential, the request is refused.
//!
//! The gateway does not guess which server is behind it; it reads a body every way one of
//! them does and takes the union:
//!
//! | reading | servers |
//! |---|---|
//! | a `Content-Type` naming a form anywhere in it (`text/x, application/x-www-form-urlencoded`, `application/x-www-form-urlencodedfoo`, missing `;`, other parameters and charsets) | PHP (prefix match), Rack and Werkzeug (first type of a list, parameters ignored), IIS/ASP.NET (`StartsWith`), CGI.pm |
//! | no `Content-Type`, or `text/plain`, whose bytes are `name=value` pairs | Rack (no type on a POST is a form), CGI.pm, HTML `text/plain` forms (pairs on lines) |
//! | pairs split at `&`, `;`, CR and LF | CGI, older Python and Perl parsers, `text/plain` forms |
//! | names decoded once or twice, cut at NUL, PHP's `[` and `.` rules, case folded (lenient.rs) | PHP, ASP.NET, frameworks that decode again |
//! | every `boundary` parameter of a multipart type, any `multipart/*` subtype | parsers that take the first or the last `boundary`; PHP, Werkzeug |
//! | multipart parts after the closing delimiter, LF-only line ends, every `name` and `name*` (RFC 2231) of a part, any case | PHP (reads past the close), Werkzeug and busboy (LF lines), RFC 7578 vs RFC 2231 parsers |
//! | a JSON document: member names at any depth, also without `_`/`-` (`clientSecret`) | Express, Spring/Jackson, ASP.NET model binding, Rails `params` |
//! | a leading UTF-8 byte order mark ignored | .NET and Java readers skip it |
//!
//! These functions are pure: the fuzz target (`fuzz/fuzz_targets/readings.rs`) calls
//! [`finds_credential`] exactly as containment does.

use crate::lenient;
use crate::oauth::{CLIENT_ASSERTION, CLIENT_SECRET};

/// How a body is to be read, from its `Content-Type`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyReadings {
    /// As `name=value` pairs.
    pub urlencoded: bool,
    /// As multipart, with each of these boundaries.
    pub boundaries: Vec<String>,
    /// As a JSON document.
    pub json: bool,
    /// The `Content-Type` names a form: some server parses the body as one whatever it
    /// holds, so it is read in full (not merely sniffed).
    pub form_type: bool,
}

impl BodyReadings {
    /// A type that names a form: some server parses the body as one.
    pub fn is_form(&self) -> bool {
        self.form_type
    }

    /// No reading at all: the body is streamed unread.
    pub fn is_empty(&self) -> bool {
        !self.urlencoded && self.boundaries.is_empty() && !self.json
    }

    /// Pairs and JSON, for a body without a type a server would name.
    pub fn sniffed() -> Self {
        BodyReadings {
            urlencoded: true,
            boundaries: Vec::new(),
            json: true,
            form_type: false,
        }
    }
}

/// The readings a `Content-Type` value (of a request that does not authenticate) calls
/// for. `None` in `boundaries` terms means a multipart type without any boundary, which
/// the caller refuses.
pub fn of_content_type(value: &[u8]) -> Result<BodyReadings, NoBoundary> {
    let lower = String::from_utf8_lossy(value).to_ascii_lowercase();
    let mut r = BodyReadings::default();
    let essence = lower.split([';', ',']).next().unwrap_or("").trim();
    if essence.is_empty() || essence == "text/plain" || !essence.contains('/') {
        r = BodyReadings::sniffed();
    }
    if lower.contains("form-urlencoded") || lower.contains("x-www-form") {
        r.urlencoded = true;
        r.form_type = true;
    }
    if lower.contains("json") {
        r.json = true;
    }
    if lower.contains("multipart") {
        r.boundaries = boundaries(value);
        r.form_type = true;
        if r.boundaries.is_empty() {
            return Err(NoBoundary);
        }
    }
    Ok(r)
}

/// A multipart `Content-Type` with no `boundary` at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoBoundary;

/// Every `boundary` value, as several parsers would take it: after each `boundary`
/// anywhere in the value (PHP takes the first `boundary` substring, `xboundary=` too;
/// others the parameter of that name, first or last), up to `;` or `,`, quoted or not,
/// cut at white space or a quote or not.
fn boundaries(value: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(value);
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut add = |b: &str| {
        if !b.is_empty() && !out.iter().any(|o: &String| o == b) {
            out.push(b.to_owned());
        }
    };
    for (at, _) in lower.match_indices("boundary") {
        let after = text[at + "boundary".len()..].trim_start();
        let Some(val) = after.strip_prefix('=') else {
            continue;
        };
        let raw = val.split([';', ',']).next().unwrap_or("").trim();
        add(raw);
        add(raw.trim_matches('"'));
        add(raw.split_whitespace().next().unwrap_or(""));
        add(raw.trim_matches('"').split('"').next().unwrap_or(""));
        // A quoted value may hold `;` or `,` (RFC 2046 bchars allow `,`).
        if let Some(quoted) = val.trim_start().strip_prefix('"') {
            add(quoted.split('"').next().unwrap_or(""));
        }
    }
    out
}

/// Whether `name` (still form-encoded, as in a body) is read as a credential by some
/// lenient server.
pub fn is_credential_name(raw: &[u8]) -> bool {
    lenient::credential_readings(raw)
        .iter()
        .any(|n| n == CLIENT_SECRET || n == CLIENT_ASSERTION)
}

/// The whole check: whether any reading of `body` finds a credential.
pub fn finds_credential(body: &[u8], readings: &BodyReadings) -> bool {
    // .NET and Java readers skip a leading UTF-8 byte order mark.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    (readings.urlencoded && pair_names(body).any(is_credential_name))
        || readings.boundaries.iter().any(|b| {
            multipart_names(body, b.as_bytes())
                .iter()
                .any(|n| is_credential_name(n))
        })
        || (readings.json && json_has_credential(body))
}

/// The names of `name=value` pairs, split at `&`, `;`, CR and LF.
pub fn pair_names(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| matches!(b, b'&' | b';' | b'\r' | b'\n'))
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split(|&b| b == b'=').next().unwrap_or(b""))
}

/// Every field name of every part of a multipart body, read leniently: parts are found at
/// every delimiter line (`--boundary` after a line end, CRLF or LF alone), also after the
/// closing one; in each part's `Content-Disposition` (any case) every `name` and `name*`
/// parameter (RFC 2231 `charset''percent-encoded`), quoted or not.
pub fn multipart_names(body: &[u8], boundary: &[u8]) -> Vec<Vec<u8>> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut names = Vec::new();
    let mut starts = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&body[at..], &delimiter) {
        let pos = at + i;
        let line_start = pos == 0 || body[pos - 1] == b'\n';
        if line_start {
            starts.push(pos + delimiter.len());
        }
        at = pos + delimiter.len();
    }
    for (k, &start) in starts.iter().enumerate() {
        let end = starts
            .get(k + 1)
            .map_or(body.len(), |&next| next - delimiter.len());
        let part = &body[start.min(end)..end];
        // The rest of the delimiter line, then the part's header lines up to a blank one.
        let mut lines = part.split(|&b| b == b'\n').skip(1);
        for line in lines.by_ref() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = split_once(line, b':') {
                if name
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"content-disposition")
                {
                    names.extend(disposition_names(value));
                }
            }
        }
    }
    names
}

/// Every `name` / `name*` value of a `Content-Disposition` value.
fn disposition_names(value: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for param in value.split(|&b| b == b';') {
        let Some((key, val)) = split_once(param, b'=') else {
            continue;
        };
        let key = key.trim_ascii();
        let val = val.trim_ascii();
        if key.eq_ignore_ascii_case(b"name") {
            out.push(unquote(val).to_vec());
        } else if key.eq_ignore_ascii_case(b"name*") {
            // RFC 2231 §4: charset'language'percent-encoded.
            let encoded = val.rsplit(|&b| b == b'\'').next().unwrap_or(val);
            out.push(percent_encoding::percent_decode(unquote(encoded)).collect());
        }
    }
    out
}

fn unquote(v: &[u8]) -> &[u8] {
    let v = v.strip_prefix(b"\"").unwrap_or(v);
    v.strip_suffix(b"\"").unwrap_or(v)
}

fn split_once(v: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = v.iter().position(|&b| b == sep)?;
    Some((&v[..i], &v[i + 1..]))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether a JSON document has a member named after a credential, at any depth. Names are
/// read leniently (lenient.rs) and also without `_` and `-` (`clientSecret`, as a camel-case
/// binding reads it). Not JSON: no.
pub fn json_has_credential(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let mut stack = vec![&value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                for (name, member) in map {
                    if is_credential_name(name.as_bytes()) || squashed_credential(name) {
                        return true;
                    }
                    stack.push(member);
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    false
}

fn squashed_credential(name: &str) -> bool {
    let squashed: String = lenient::fold(name)
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .collect();
    squashed == "clientsecret" || squashed == "clientassertion"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(v: &str) -> BodyReadings {
        of_content_type(v.as_bytes()).unwrap()
    }

    #[test]
    fn content_types_servers_read_as_forms() {
        for form in [
            "application/x-www-form-urlencoded",
            "APPLICATION/X-WWW-FORM-URLENCODED; charset=latin1",
            "application/x-www-form-urlencoded;foo=bar;charset=utf-16",
            "text/html, application/x-www-form-urlencoded",
            "application/x-www-form-urlencodedfoo",
            "application/x-www-form-urlencoded charset=utf-8",
            "text/plain",
            "",
            "garbage",
        ] {
            assert!(ct(form).urlencoded, "{form}");
            let named = form.to_ascii_lowercase().contains("form");
            assert_eq!(ct(form).is_form(), named, "{form}");
        }
        assert_eq!(
            ct("multipart/form-data; boundary=a; boundary=\"b c\"").boundaries,
            ["a", "\"b c\"", "b c", "\"b"]
        );
        assert_eq!(ct("multipart/mixed;boundary=x").boundaries, ["x"]);
        assert_eq!(
            ct("multipart/form-data; xboundary=A; BOUNDARY = \"b,c\"").boundaries,
            ["A", "\"b", "b", "b,c"]
        );
        assert_eq!(of_content_type(b"multipart/form-data"), Err(NoBoundary));
        assert!(ct("application/vnd.api+json").json);
        assert!(ct("application/json; charset=utf-8").json);
        for streamed in ["application/octet-stream", "image/png", "application/xml"] {
            assert!(ct(streamed).is_empty(), "{streamed}");
        }
    }

    #[test]
    fn urlencoded_and_sniffed_bodies() {
        let pairs = BodyReadings::sniffed();
        for body in [
            "a=1&client_secret=s",
            "a=1;Client.Secret=s",
            "a=1\r\nclient_secret=s\r\n",
            "client%255Fsecret=s",
            "client[secret=s",
            "client_secret%00x=s",
            "\u{FEFF}client_secret=s",
            "client_assertion=a.b.c",
        ] {
            assert!(finds_credential(body.as_bytes(), &pairs), "{body}");
        }
        for body in [
            "username=a&password=b",
            "client_id=x&scope=client_secret",
            "",
        ] {
            assert!(!finds_credential(body.as_bytes(), &pairs), "{body}");
        }
    }

    #[test]
    fn multipart_is_read_every_way() {
        let r = ct("multipart/form-data; boundary=XyZ");
        let part = |disp: &str| format!("--XyZ\r\nContent-Disposition: {disp}\r\n\r\nv\r\n");
        for body in [
            part("form-data; name=\"client_secret\""),
            part("form-data; name=\"a\"; name=\"client_secret\""),
            part("form-data; NAME=\"Client_Secret\""),
            part("form-data; name*=UTF-8''client%5Fsecret"),
            part("form-data; name=client_secret"),
            format!(
                "{}--XyZ--\r\n{}",
                part("form-data; name=a"),
                part("form-data; name=client_assertion")
            ),
            "--XyZ\nContent-Disposition: form-data; name=\"client_secret\"\n\nv\n--XyZ--\n"
                .to_owned(),
            format!("\u{FEFF}{}", part("form-data; name=client_secret")),
            format!(
                "--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n{}",
                "x"
            ),
        ] {
            let expect = !body.contains("filename");
            assert_eq!(finds_credential(body.as_bytes(), &r), expect, "{body}");
        }
        // The content of a part is not a name.
        let upload = format!(
            "{}--XyZ--\r\n",
            part("form-data; name=\"file\"; filename=\"a.txt\"")
        )
        .replace("\r\nv\r\n", "\r\nclient_secret=x\r\n");
        assert!(!finds_credential(upload.as_bytes(), &r));
        // A second boundary parameter is read too.
        let two = ct("multipart/form-data; boundary=A; boundary=XyZ");
        assert!(finds_credential(
            part("form-data; name=client_secret").as_bytes(),
            &two
        ));
    }

    #[test]
    fn json_members_at_any_depth() {
        let r = ct("application/json");
        for body in [
            r#"{"client_secret":"s"}"#,
            r#"{"a":[{"b":{"Client_Secret":"s"}}]}"#,
            r#"{"clientSecret":"s"}"#,
            r#"{"client-assertion":"a"}"#,
            "\u{FEFF}{\"client_secret\":1}",
        ] {
            assert!(finds_credential(body.as_bytes(), &r), "{body}");
        }
        for body in [
            r#"{"note":"client_secret=abc"}"#,
            r#"["client_secret"]"#,
            "{bad",
        ] {
            assert!(!finds_credential(body.as_bytes(), &r), "{body}");
        }
    }
}
