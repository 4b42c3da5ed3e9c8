//! Post rows (P1–P6): client_secret_post, credentials in the form body (RFC 6749 §2.3.1);
//! a repeated parameter is refused (RFC 6749 §3.2) and an empty one counts as absent
//! (RFC 6749 §3.1).

use bytes::Bytes;

use crate::rig::*;
use crate::support::*;

#[tokio::test]
async fn p1_correct_client_id_and_secret() {
    let rig = Rig::start().await;
    let o = rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}&scope=a+b"),
        ))
        .await;
    let rec = rig.accepted(&o, POST_ID, "client_secret_post");
    let params: Vec<(String, String)> = form_urlencoded::parse(&rec.body).into_owned().collect();
    assert!(
        params.contains(&("scope".to_owned(), "a b".to_owned())),
        "{params:?}"
    );
    // Over HTTP/2 as well.
    let o = rig
        .send_h2(form(
            TOKEN_PATH,
            &format!("client_id={POST_ID}&{GRANT}&client_secret={POST_SECRET}"),
        ))
        .await;
    rig.accepted(&o, POST_ID, "client_secret_post");
}

#[tokio::test]
async fn p3_repeated_client_id_or_secret() {
    let rig = Rig::start().await;
    for body in [
        format!("{GRANT}&client_id={POST_ID}&client_id={POST_ID}&client_secret={POST_SECRET}"),
        format!(
            "{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}&client_secret={POST_SECRET}"
        ),
        format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}&client_secret=x"),
        format!("{GRANT}&client_id=other&client_id={POST_ID}&client_secret={POST_SECRET}"),
    ] {
        let o = rig.send(form(TOKEN_PATH, &body)).await;
        ir(&o);
    }
}

#[tokio::test]
async fn p4_empty_secret_or_client_id_alone() {
    let rig = Rig::start().await;
    for body in [
        format!("{GRANT}&client_id={POST_ID}&client_secret="),
        format!("{GRANT}&client_id={POST_ID}"),
    ] {
        let o = rig.send(form(TOKEN_PATH, &body)).await;
        ic(&o);
    }
}

#[tokio::test]
async fn p5_no_credentials_at_all() {
    let rig = Rig::start().await;
    let o = rig.send(form(TOKEN_PATH, GRANT)).await;
    ic(&o);
    let o = rig
        .send(post(TOKEN_PATH, Some(FORM), &[], Bytes::new()))
        .await;
    ic(&o);
}

#[tokio::test]
async fn p6_unknown_client_id() {
    let rig = Rig::start().await;
    let unknown = rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id=nobody&client_secret={POST_SECRET}"),
        ))
        .await;
    ic(&unknown);
    // Same answer as a known client with a wrong secret.
    let wrong = rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id={POST_ID}&client_secret=wrong-secret-0123"),
        ))
        .await;
    ic(&wrong);
    assert_eq!(unknown.reply.body, wrong.reply.body);
}
