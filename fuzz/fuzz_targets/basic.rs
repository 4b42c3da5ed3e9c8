//! `Authorization` header values → `auth::basic::parse`, the decoder `auth::extract` calls for
//! every protected request. Checks: never panics; anything accepted has the `Basic` scheme
//! (any case), a non-empty VSCHAR client id and secret (RFC 6749 Appendix A.1, A.2); and
//! `encode` (the RFC 6749 §2.3.1 client side) of what was decoded decodes to the same
//! credentials.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secretgate::auth::basic;

fn vschar(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let Ok(c) = basic::parse(data) else { return };
    assert!(data.len() >= 6 && data[..6].eq_ignore_ascii_case(b"basic "));
    assert!(!c.client_id.is_empty() && c.client_id.bytes().all(vschar));
    let secret = c.secret.expose();
    assert!(!secret.is_empty() && secret.iter().copied().all(vschar));
    let secret = std::str::from_utf8(secret).expect("VSCHAR is UTF-8");
    let again = basic::parse(basic::encode(&c.client_id, secret).as_bytes())
        .expect("encoded credentials decode");
    assert_eq!(again, c);
});
