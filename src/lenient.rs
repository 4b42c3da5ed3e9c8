//! How the most lenient server behind the gateway might read a name: the gateway reads
//! strictly, but refuses anything a lenient upstream would read as a protected endpoint
//! or a credential parameter while the gateway did not (docs/design.md §4.5, §4.6).
//!
//! - Case folding as Java's `equalsIgnoreCase` and .NET's `OrdinalIgnoreCase` do it
//!   (upper case, then lower case: the Kelvin sign `K` is `k`, `ſ` is `s`, `ı` is `i`),
//!   with full-width ASCII (U+FF01–U+FF5E) read as ASCII (IIS "best fit").
//! - Parameter names as PHP, ASP.NET and servlet containers decode them: `+` is a space,
//!   `%XX` a byte (a bad escape stays literal), case-insensitive, PHP's `a[]` array suffix
//!   cut off and its `.` and space read as `_`.

use std::borrow::Cow;

/// One character folded: see the module documentation. Lower case is taken as Java's
/// `Character.toLowerCase` takes it, one character for one (`İ` is `i`, not `i` and a
/// combining dot).
pub fn fold_char(c: char) -> impl Iterator<Item = char> {
    c.to_uppercase()
        .filter_map(|u| u.to_lowercase().next())
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
}

/// `text` folded.
pub fn fold(text: &str) -> String {
    text.chars().flat_map(fold_char).collect()
}

/// Characters Windows "best fit" code page conversion (WideCharToMultiByte without
/// `WC_NO_BEST_FIT_CHARS`, as IIS and CGI programs on Windows do) turns into `/`, `\`, `.`
/// or an ASCII letter, where Unicode compatibility decomposition (NFKD) does not already
/// (`／`, `．`, `ｔ` and the mathematical letters are NFKD's).
const BEST_FIT: &[(char, char)] = &[
    ('\u{2215}', '/'),  // DIVISION SLASH
    ('\u{2044}', '/'),  // FRACTION SLASH
    ('\u{29F8}', '/'),  // BIG SOLIDUS
    ('\u{2571}', '/'),  // BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT
    ('\u{27CB}', '/'),  // MATHEMATICAL RISING DIAGONAL
    ('\u{2216}', '\\'), // SET MINUS
    ('\u{29F5}', '\\'), // REVERSE SOLIDUS OPERATOR
    ('\u{29F9}', '\\'), // BIG REVERSE SOLIDUS
    ('\u{2572}', '\\'), // BOX DRAWINGS LIGHT DIAGONAL UPPER LEFT TO LOWER RIGHT
    ('\u{27CD}', '\\'), // MATHEMATICAL FALLING DIAGONAL
    ('\u{3002}', '.'),  // IDEOGRAPHIC FULL STOP (and U+FF61, which NFKD makes it)
    ('\u{2219}', '.'),  // BULLET OPERATOR
    ('\u{0131}', 'i'),  // LATIN SMALL LETTER DOTLESS I
    ('\u{0111}', 'd'),  // LATIN SMALL LETTER D WITH STROKE
    ('\u{0110}', 'D'),
    ('\u{0127}', 'h'), // LATIN SMALL LETTER H WITH STROKE
    ('\u{0126}', 'H'),
    ('\u{0142}', 'l'), // LATIN SMALL LETTER L WITH STROKE
    ('\u{0141}', 'L'),
    ('\u{00F8}', 'o'), // LATIN SMALL LETTER O WITH STROKE
    ('\u{00D8}', 'O'),
    ('\u{0167}', 't'), // LATIN SMALL LETTER T WITH STROKE
    ('\u{0166}', 'T'),
    ('\u{0180}', 'b'), // LATIN SMALL LETTER B WITH STROKE
    ('\u{0268}', 'i'), // LATIN SMALL LETTER I WITH STROKE
    ('\u{019A}', 'l'), // LATIN SMALL LETTER L WITH BAR
    ('\u{0138}', 'k'), // LATIN SMALL LETTER KRA
];

/// `text` with every character replaced by what a lenient server may read it as: the
/// best-fit table above, else its compatibility decomposition (NFKD, so `／` is `/`, `ｔ`
/// and `𝐭` are `t`, `ﬁ` is `fi`) without combining marks (`ť` is `t`, as best fit maps
/// accented letters outside the code page). ASCII text is returned as it is.
pub fn lookalike_text(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    use unicode_normalization::char::{decompose_compatible, is_combining_mark};
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if let Some(&(_, to)) = BEST_FIT.iter().find(|(from, _)| *from == c) {
            out.push(to);
            continue;
        }
        decompose_compatible(c, |d| {
            if let Some(&(_, to)) = BEST_FIT.iter().find(|(from, _)| *from == d) {
                out.push(to);
            } else if !is_combining_mark(d) {
                out.push(d);
            }
        });
    }
    Cow::Owned(out)
}

/// Whether a path segment is one or more ASP.NET cookieless session markers, `(X(...))`
/// (`(S(abc123))`, `(A(x))(S(y))`): IIS removes them before it routes the path.
pub fn is_cookieless_segment(segment: &str) -> bool {
    let mut rest = segment;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let mut chars = rest.chars();
        let well_formed = chars.next() == Some('(')
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.next() == Some('(');
        if !well_formed {
            return false;
        }
        let inner = chars.as_str();
        let Some(close) = inner.find("))") else {
            return false;
        };
        if inner[..close].contains(['(', ')']) {
            return false;
        }
        rest = &inner[close + 2..];
    }
    true
}

/// A path segment with what a lenient server cuts off removed: `;…` path parameters
/// (servlet containers) and `::…` NTFS stream names (IIS).
pub fn cut_segment(segment: &str) -> &str {
    let segment = segment.split(';').next().unwrap_or("");
    segment.split("::").next().unwrap_or("")
}

/// One path segment as a lenient server reads it: cut as [`cut_segment`] does,
/// case-folded, full-width forms made ASCII, trailing dots and white space trimmed.
pub fn path_segment(segment: &str) -> String {
    let folded = fold(cut_segment(segment));
    folded
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .to_owned()
}

/// Whether some server could read `segment` as empty or as a dot segment (`.`, `..`):
/// Tomcat reads `/x/..;/oauth2/token` as `/oauth2/token`, IIS `..::$DATA` as `..`.
/// Both the router (for a request path) and the configuration (for a protected-path
/// pattern) refuse such a segment, so that a pattern can always match its own text.
pub fn ambiguous_segment(segment: &str) -> bool {
    if segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return segment.is_empty();
    }
    let cut = cut_segment(segment);
    cut.is_empty() || cut.bytes().all(|b| b == b'.') || path_segment(segment).is_empty()
}

/// Whether a parameter name is only `a-z`, `0-9` and `_`: every reading of it is itself.
pub fn is_plain_name(raw: &[u8]) -> bool {
    raw.iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// A parameter name (still form-encoded, as it appears in a query or an urlencoded body)
/// as a lenient server reads it. Names made only of `a-z`, `0-9` and `_` (all the OAuth
/// parameters) are returned as they are, without allocating.
pub fn param_name(raw: &[u8]) -> Cow<'_, str> {
    if is_plain_name(raw) {
        // Only ASCII bytes, so this cannot fail.
        if let Ok(s) = std::str::from_utf8(raw) {
            return Cow::Borrowed(s);
        }
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    let text = String::from_utf8_lossy(&decoded);
    // PHP: `name[]` and `name[key]` fill an array called `name`.
    let text = text.split('[').next().unwrap_or("");
    let folded: String = text
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .chars()
        .flat_map(fold_char)
        .map(|c| if c == '.' || c == ' ' { '_' } else { c })
        .collect();
    Cow::Owned(folded)
}

/// Every name a lenient server could read from a parameter name (still form-encoded), for
/// deciding whether it names a credential (docs/design.md §4.3): decoded once and twice
/// (`client%255Fsecret`), each cut at a NUL (PHP and C-based servers end the name there)
/// or not, then PHP's `[` either starting an array suffix (`client_secret[]`) or, unclosed,
/// read as `_` (`client[secret`), and each read as [`param_name`] reads it (case folded,
/// `.` and space as `_`, white space trimmed). Without duplicates; a plain name is one
/// reading.
pub fn credential_readings(raw: &[u8]) -> Vec<String> {
    if is_plain_name(raw) {
        return vec![String::from_utf8_lossy(raw).into_owned()];
    }
    let once = form_decode_lossy(raw);
    let twice = form_decode_lossy(&once);
    let mut out: Vec<String> = Vec::new();
    for decoded in [once, twice] {
        let text = String::from_utf8_lossy(&decoded).into_owned();
        let cut = text.split('\0').next().unwrap_or("").to_owned();
        for t in [text, cut] {
            let array = t.split('[').next().unwrap_or("").to_owned();
            let bracket = t.replace('[', "_");
            for candidate in [array, bracket] {
                let read = fold_name(&candidate);
                if !out.contains(&read) {
                    out.push(read);
                }
            }
        }
    }
    out
}

/// `+` as a space and `%XX` as a byte, a bad escape left literal.
fn form_decode_lossy(raw: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced).collect()
}

/// A decoded name trimmed, case folded, with `.` and space read as `_` (PHP).
fn fold_name(text: &str) -> String {
    text.trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .chars()
        .flat_map(fold_char)
        .map(|c| if c == '.' || c == ' ' { '_' } else { c })
        .collect()
}

/// The names of the parameters in a query string or urlencoded body, read leniently:
/// pairs split at `&` and at `;` (older CGI and Python parsers split at both).
pub fn param_names(form: &[u8]) -> impl Iterator<Item = Cow<'_, str>> {
    form.split(|&b| b == b'&' || b == b';')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let name = match pair.iter().position(|&b| b == b'=') {
                Some(i) => &pair[..i],
                None => pair,
            };
            param_name(name)
        })
}

/// The parameters of a query string or urlencoded body, names read as [`param_names`]
/// reads them and values decoded as lenient servers decode them (`+` is a space, `%XX` a
/// byte, a bad escape left literal, invalid UTF-8 replaced).
pub fn param_pairs(form: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, String)> {
    form.split(|&b| b == b'&' || b == b';')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (param_name(name), param_value(value))
        })
}

/// A parameter value as lenient servers decode it.
pub fn param_value(raw: &[u8]) -> String {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8_lossy(&decoded).into_owned()
}

/// An identifier (a `client_id`) as a lenient store might match it: white space and NUL
/// around it trimmed, case folded (a case-insensitive database collation, say).
pub fn identifier(id: &str) -> String {
    fold(id.trim_matches(|c: char| c.is_whitespace() || c == '\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_as_lenient_as_java_and_dotnet() {
        assert_eq!(fold("To\u{212A}en"), "token");
        assert_eq!(fold("\u{17F}ecret"), "secret");
        assert_eq!(fold("cl\u{131}ent"), "client");
        assert_eq!(fold("CL\u{130}ENT"), "client");
        assert_eq!(fold("ＴＯＫＥＮ"), "token");
    }

    #[test]
    fn parameter_names_as_lenient_servers_read_them() {
        for (raw, read) in [
            ("client_secret", "client_secret"),
            ("Client_Secret", "client_secret"),
            ("client%5Fsecret", "client_secret"),
            ("client.secret", "client_secret"),
            ("client+secret", "client_secret"),
            ("client%20secret", "client_secret"),
            ("client_secret[]", "client_secret"),
            ("client_secret[x]", "client_secret"),
            ("%20client_secret", "client_secret"),
            ("CLIENT_ASSERTION", "client_assertion"),
            ("cl%C4%B1ent_secret", "client_secret"),
            ("client_secret%zz", "client_secret%zz"),
            ("scope", "scope"),
        ] {
            assert_eq!(param_name(raw.as_bytes()), read, "{raw}");
        }
        assert!(matches!(param_name(b"grant_type"), Cow::Borrowed(_)));
        let names: Vec<_> = param_names(b"a=1&Client.Secret=x;b&&c=").collect();
        assert_eq!(names, ["a", "client_secret", "b", "c"]);
        let pairs: Vec<_> = param_pairs(b"Client_Id=sp%61;code_challenge=a+b%zz&x").collect();
        assert_eq!(
            pairs,
            [
                (Cow::from("client_id"), "spa".to_owned()),
                (Cow::from("code_challenge"), "a b%zz".to_owned()),
                (Cow::from("x"), String::new()),
            ]
        );
        assert_eq!(identifier(" SPA\0"), "spa");
    }

    #[test]
    fn lookalike_characters_read_as_ascii() {
        for (text, read) in [
            ("oauth2\u{FF0F}token", "oauth2/token"),
            ("oauth2\u{2215}token", "oauth2/token"),
            ("oauth2\u{2044}token", "oauth2/token"),
            ("oauth2\u{29F8}token", "oauth2/token"),
            ("oauth2\u{FF3C}token", "oauth2\\token"),
            ("oauth2\u{2216}token", "oauth2\\token"),
            ("oauth2\u{FE68}token", "oauth2\\token"),
            ("token\u{FF0E}json", "token.json"),
            ("token\u{2024}json", "token.json"),
            ("\u{FF54}\u{FF4F}\u{FF4B}\u{FF45}\u{FF4E}", "token"),
            ("\u{1D42D}oken", "token"),
            ("t\u{00F6}k\u{00E9}n", "token"),
            ("to\u{0137}en", "token"),
            ("\u{0167}oken", "token"),
            ("oauth\u{2082}", "oauth2"),
        ] {
            assert_eq!(lookalike_text(text), read, "{text}");
        }
        assert!(matches!(lookalike_text("token"), Cow::Borrowed(_)));
    }

    #[test]
    fn cookieless_session_segments() {
        for s in ["(S(abc123))", "(A(x))(S(y))", "(s())", "(F(a-b_c.d))"] {
            assert!(is_cookieless_segment(s), "{s}");
        }
        for s in [
            "",
            "(S(abc)",
            "S(abc))",
            "(SS(a))",
            "(S(a(b)))",
            "(S(a))x",
            "(S(a))(",
            "token",
        ] {
            assert!(!is_cookieless_segment(s), "{s}");
        }
    }

    #[test]
    fn credential_readings_cover_php_and_double_decoding() {
        let reads = |raw: &str| credential_readings(raw.as_bytes());
        for raw in [
            "client_secret",
            "Client_Secret",
            "client%255Fsecret",
            "client%25255Fsecret",
            "client[secret",
            "client_secret[x]",
            "client_secret%00junk",
            "client_secret%2500junk",
            "client.secret",
            "CLIENT+SECRET",
            "%20client_secret%20",
        ] {
            let r = reads(raw);
            // `%25255F` is three decodings away: not read so by anyone we know of.
            let expect = raw != "client%25255Fsecret";
            assert_eq!(
                r.iter().any(|n| n == "client_secret"),
                expect,
                "{raw}: {r:?}"
            );
        }
        assert_eq!(reads("scope"), ["scope"]);
        assert!(!reads("client_secretx").iter().any(|n| n == "client_secret"));
    }
}
