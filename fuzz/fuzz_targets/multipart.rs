//! `multipart/form-data` bodies → `auth::form::parse_multipart`, as the auth layer calls it.
//! Input: the first line is the `boundary=` parameter of the Content-Type (taken through
//! `multer::parse_boundary`, as the auth layer does), the rest is the body.
//! Checks: never panics; never pending on a body that is already in memory (one chunk);
//! at most 256 fields; what it accepts transcodes losslessly, i.e. the urlencoded body the
//! gateway forwards (`form::encode`) decodes to the same fields.
#![no_main]
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;
use secretgate::auth::form;

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (line, body) = (&data[..newline], &data[newline + 1..]);
    // What `HeaderValue::to_str` accepts: visible ASCII, space and tab.
    if !line
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return;
    }
    let line = std::str::from_utf8(line).expect("ASCII");
    let Ok(boundary) = multer::parse_boundary(format!("multipart/form-data; boundary={line}"))
    else {
        return;
    };

    let result = form::parse_multipart(bytes::Bytes::copy_from_slice(body), boundary)
        .now_or_never()
        .expect("parse_multipart is pending on an in-memory body");
    let Ok(params) = result else { return };
    assert!(params.len() <= 256);
    let encoded = form::encode(params.iter().map(|(n, v)| (&**n, &**v)));
    let again = form::parse_urlencoded(encoded.as_bytes()).expect("transcoded form parses");
    assert_eq!(again, params);
});
