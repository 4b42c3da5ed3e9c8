//! urlencoded bodies → `auth::form::parse_urlencoded`, the strict decoder the auth layer runs
//! on every `application/x-www-form-urlencoded` protected request. Checks: never panics;
//! at most 256 parameters; whatever it accepts, a lenient WHATWG decoder (`form_urlencoded`,
//! what url-based upstreams use) reads as exactly the same pairs, so the gateway and the
//! upstream cannot disagree about a body; and the body the gateway forwards
//! (`form::encode` of the pairs) decodes to the same pairs again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secretgate::auth::form;

fuzz_target!(|data: &[u8]| {
    let Ok(params) = form::parse_urlencoded(data) else {
        return;
    };
    assert!(params.len() <= 256);

    let whatwg: Vec<_> = form_urlencoded::parse(data).collect();
    assert_eq!(whatwg, params, "strict and WHATWG decoders disagree");

    let encoded = form::encode(params.iter().map(|(n, v)| (&**n, &**v)));
    let again = form::parse_urlencoded(encoded.as_bytes()).expect("re-encoded form parses");
    assert_eq!(again, params);
});
