//! JSON objects read from untrusted bytes, strictly: what serde's derived structs and
//! serde_json alone let through is refused here.
//!
//! - A JSON array: a derived struct also deserializes from a sequence, its fields by
//!   position (`[[]]` is a JWK Set with no keys). RFC 7519 §7.2 (step 10) wants the
//!   header and the claims to be a JSON object, RFC 7517 §4 and §5 a JWK and a JWK Set.
//! - Bytes that are not UTF-8: serde_json does not check a string it skips (an unknown
//!   member's value), but RFC 8259 §8.1 makes JSON text UTF-8, and a reader that decodes
//!   the bytes its own way could see other members where we saw a string (an invalid lead
//!   byte can swallow the quote after it).

use serde::Deserialize;

/// `bytes` as `T` when they are a UTF-8 JSON object (leading JSON white space allowed).
pub fn object<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Option<T> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return None;
    }
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Two {
        a: Option<String>,
        b: Option<u32>,
    }

    #[test]
    fn only_utf8_objects_are_read() {
        let two = |a: &str, b| {
            Some(Two {
                a: Some(a.into()),
                b: Some(b),
            })
        };
        assert_eq!(object(br#"{"a":"x","b":1}"#), two("x", 1));
        assert_eq!(object(b" \r\n\t{\"a\":\"x\",\"b\":1}"), two("x", 1));
        // The same fields by position: what serde_json alone accepts.
        assert_eq!(
            serde_json::from_slice::<Two>(br#"["x",1]"#).ok(),
            two("x", 1)
        );
        assert_eq!(object::<Two>(br#"["x",1]"#), None);
        assert_eq!(object::<Two>(b"[[]]"), None);
        // A byte that is not UTF-8 in a member nobody reads: serde_json skips it.
        let skipped = b"{\"a\":\"x\",\"other\":\"\xb0\",\"b\":1}";
        assert_eq!(serde_json::from_slice::<Two>(skipped).ok(), two("x", 1));
        assert_eq!(object::<Two>(skipped), None);
        assert_eq!(object::<Two>(b""), None);
        assert_eq!(object::<Two>(b"\x0c{}"), None);
    }
}
