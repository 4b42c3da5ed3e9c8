//! Stored hash strings → `hashes::StoredHash::parse`, which reads operator input (`hash:`,
//! `hash_file:`) in three formats and checks OWASP's floors; and any text →
//! `hashes::is_new_secret`. Checks: never panics; whatever parses is of the algorithm its
//! prefix names, and parsing what it keeps (`text()`) gives the same result again (so the
//! verify cache, keyed by that text, is stable). No hash is computed here: verifying with
//! fuzzed parameters would cost seconds per input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secretgate::hashes::{is_new_secret, HashAlgorithm, StoredHash};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = is_new_secret(text);
    let Ok(hash) = StoredHash::parse(text) else {
        return;
    };
    let trimmed = text.trim();
    let expected = if trimmed.starts_with("$argon2id$") {
        HashAlgorithm::Argon2id
    } else if trimmed.starts_with("$pbkdf2-sha256$") {
        HashAlgorithm::Pbkdf2Sha256
    } else {
        assert!(
            ["$2a$", "$2b$", "$2y$"]
                .iter()
                .any(|p| trimmed.starts_with(p)),
            "parsed a hash of no known prefix: {text:?}"
        );
        HashAlgorithm::Bcrypt
    };
    assert_eq!(hash.algorithm(), expected);
    let again = StoredHash::parse(hash.text()).expect("what parsed parses again");
    assert_eq!(again.text(), hash.text());
});
