//! Basic rows (B1–B18): client_secret_basic as RFC 6749 §2.3.1 defines it (base64, split
//! at the first colon, each half form-url-decoded), one method per request (RFC 6749 §2.3),
//! and one method per client.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::rig::*;
use crate::support::*;

#[tokio::test]
async fn b1_rfc_example() {
    let rig = Rig::start().await;
    let o = rig
        .send(with_auth(RFC_HEADER, &format!("{GRANT}&scope=read")))
        .await;
    let rec = rig.accepted(&o, RFC_ID, "client_secret_basic");
    assert!(!rec.everything().contains("czZCaGRSa3F0Mzo3"));
}

#[tokio::test]
async fn b2_scheme_spelled_basic_lowercase() {
    let rig = Rig::start().await;
    let lower = RFC_HEADER.replacen("Basic", "basic", 1);
    let o = rig.send(with_auth(&lower, GRANT)).await;
    rig.accepted(&o, RFC_ID, "client_secret_basic");
    let upper = basic(BASIC_ID, BASIC_SECRET).replacen("Basic", "BASIC", 1);
    let o = rig.send(with_auth(&upper, GRANT)).await;
    rig.accepted(&o, BASIC_ID, "client_secret_basic");
}

#[tokio::test]
async fn b3_form_encoded_id_and_secret() {
    let rig = Rig::start().await;
    // openid-client v6: each half form-encoded, `-` as %2D and `:` as %3A.
    let raw = "my%2Dclient:se%3Acret%2Dwith%3Acolons%2D0123";
    let o = rig.send(with_auth(&basic_raw(raw), GRANT)).await;
    rig.accepted(&o, DASH_ID, "client_secret_basic");
    // And as this project's own encoder writes it.
    let o = rig
        .send(with_auth(&basic(DASH_ID, DASH_SECRET), GRANT))
        .await;
    rig.accepted(&o, DASH_ID, "client_secret_basic");
}

#[tokio::test]
async fn b4_raw_colon_in_secret() {
    let rig = Rig::start().await;
    let o = rig
        .send(with_auth(
            &basic_raw(&format!("{COLON_ID}:{COLON_SECRET}")),
            GRANT,
        ))
        .await;
    rig.accepted(&o, COLON_ID, "client_secret_basic");
}

#[tokio::test]
async fn b6_space_as_plus_or_percent20() {
    let rig = Rig::start().await;
    for encoded in [
        "with+space+secret",
        "with%20space%20secret",
        "with+space%20secret",
    ] {
        let o = rig
            .send(with_auth(
                &basic_raw(&format!("{SPACE_ID}:{encoded}")),
                GRANT,
            ))
            .await;
        rig.accepted(&o, SPACE_ID, "client_secret_basic");
    }
}

#[tokio::test]
async fn b8_bad_percent_escape() {
    let rig = Rig::start().await;
    for raw in [
        format!("{BASIC_ID}:bad%zz{BASIC_SECRET}"),
        format!("{BASIC_ID}:{BASIC_SECRET}%4"),
        format!("{BASIC_ID}:{BASIC_SECRET}%"),
        format!("bill%g1ing:{BASIC_SECRET}"),
    ] {
        let o = rig.send(with_auth(&basic_raw(&raw), GRANT)).await;
        ir(&o);
    }
}

#[tokio::test]
async fn b10_no_colon_bad_base64_or_no_token() {
    let rig = Rig::start().await;
    for header in [
        basic_raw(BASIC_ID),
        basic_raw(&format!("{BASIC_ID}{BASIC_SECRET}")),
        "Basic !!!notbase64".to_owned(),
        "Basic Zm9v=YmFy".to_owned(),
        format!("Basic {}", URL_SAFE_NO_PAD.encode("bi?ll>ing:s?e>c")),
        "Basic".to_owned(),
        "Basic ".to_owned(),
    ] {
        let o = rig.send(with_auth(&header, GRANT)).await;
        ir(&o);
    }
}

#[tokio::test]
async fn b11_empty_secret_or_empty_id() {
    let rig = Rig::start().await;
    // An empty id is malformed; an empty secret is no secret (RFC 6749 §2.3.1: the
    // password is the client secret), so authentication fails like a missing one, for a
    // confidential client and for a public one (`spa:`, as some libraries send) alike.
    for raw in [format!(":{BASIC_SECRET}"), ":".to_owned()] {
        let o = rig.send(with_auth(&basic_raw(&raw), GRANT)).await;
        ir(&o);
    }
    for raw in [format!("{BASIC_ID}:"), "nobody:".to_owned()] {
        let o = rig.send(with_auth(&basic_raw(&raw), GRANT)).await;
        ic_w3a(&o);
    }
}

#[tokio::test]
async fn b12_wrong_secret_and_unknown_client_look_the_same() {
    let rig = Rig::start().await;
    let wrong = rig
        .send(with_auth(&basic(BASIC_ID, "not-the-secret-0123"), GRANT))
        .await;
    ic_w3a(&wrong);
    let unknown = rig
        .send(with_auth(&basic("nobody", "not-the-secret-0123"), GRANT))
        .await;
    ic_w3a(&unknown);
    assert_eq!(
        wrong.reply.body, unknown.reply.body,
        "byte-identical bodies"
    );
    assert_eq!(
        wrong.reply.headers["www-authenticate"],
        unknown.reply.headers["www-authenticate"]
    );
    // A secret that is a prefix of the right one is still wrong.
    let prefix = rig
        .send(with_auth(
            &basic(BASIC_ID, &BASIC_SECRET[..BASIC_SECRET.len() - 1]),
            GRANT,
        ))
        .await;
    ic_w3a(&prefix);
    assert_eq!(prefix.reply.body, wrong.reply.body);
}

#[tokio::test]
async fn b14_basic_and_body_client_secret() {
    let rig = Rig::start().await;
    let auth = basic(BASIC_ID, BASIC_SECRET);
    for body in [
        format!("{GRANT}&client_secret={BASIC_SECRET}"),
        format!("{GRANT}&client_id={BASIC_ID}&client_secret={BASIC_SECRET}"),
        format!("{GRANT}&client_secret=other"),
    ] {
        let o = rig.send(with_auth(&auth, &body)).await;
        ir(&o);
    }
}

#[tokio::test]
async fn b15_basic_and_same_body_client_id() {
    let rig = Rig::start().await;
    let o = rig
        .send(with_auth(
            &basic(BASIC_ID, BASIC_SECRET),
            &format!("{GRANT}&client_id={BASIC_ID}"),
        ))
        .await;
    // `accepted` also checks client_id appears exactly once.
    rig.accepted(&o, BASIC_ID, "client_secret_basic");
}

#[tokio::test]
async fn b16_basic_and_other_body_client_id() {
    let rig = Rig::start().await;
    let o = rig
        .send(with_auth(
            &basic(BASIC_ID, BASIC_SECRET),
            &format!("{GRANT}&client_id={POST_ID}"),
        ))
        .await;
    ir(&o);
}

#[tokio::test]
async fn b17_client_presents_the_other_secret_method() {
    let rig = Rig::start().await;
    // Registered for client_secret_post, presents Basic (right secret): 401 + challenge.
    let o = rig
        .send(with_auth(&basic(POST_ID, POST_SECRET), GRANT))
        .await;
    ic_w3a(&o);
    // Registered for client_secret_basic, presents post (right secret): 401, no challenge.
    let o = rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id={BASIC_ID}&client_secret={BASIC_SECRET}"),
        ))
        .await;
    ic(&o);
}

#[tokio::test]
async fn b18_jwt_client_presents_basic() {
    let rig = Rig::start().await;
    let o = rig.send(with_auth(&basic(JWT_ID, JWT_SECRET), GRANT)).await;
    ic_w3a(&o);
}
