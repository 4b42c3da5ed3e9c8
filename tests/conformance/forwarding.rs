//! Forwarding and the internal header (F1): the upstream sees no secret (docs/design.md §4)
//! and a signed internal header bound to the client, method, URL and body (docs/design.md
//! §5). No RFC covers this part: it is secretgate's contract with the upstream.

use serde_json::json;

use secretgate::{verify_internal_header, Check, Expected, VerifyError};

use crate::rig::*;
use crate::support::*;

#[tokio::test]
async fn f1_upstream_sees_no_secret_and_a_valid_internal_header() {
    let rig = Rig::start().await;
    let tenant_path = "/acme/app/oauth2/token";
    for h2 in [false, true] {
        for path in [TOKEN_PATH, tenant_path] {
            let send = |req| rig.send_on(h2, req);
            let basic_req = post(
                path,
                Some(FORM),
                &[
                    ("authorization", &basic(BASIC_ID, BASIC_SECRET)),
                    ("cookie", "session=1"),
                ],
                GRANT,
            );
            let rec = rig.accepted_at(
                &send(basic_req).await,
                BASIC_ID,
                "client_secret_basic",
                path,
            );
            check_binding(&rig, &rec, path);

            let post_req = post(
                path,
                Some(FORM),
                &[],
                format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}"),
            );
            let rec = rig.accepted_at(&send(post_req).await, POST_ID, "client_secret_post", path);
            check_binding(&rig, &rec, path);

            let a = claims_with(|c| {
                c.insert("aud".into(), json!(ISSUER));
            });
            let jwt_req = post(path, Some(FORM), &[], assertion_body(&a));
            let rec = rig.accepted_at(&send(jwt_req).await, JWT_ID, "client_secret_jwt", path);
            assert!(!rec.everything().contains(&a));
            check_binding(&rig, &rec, path);
        }
    }
}

/// The internal header is bound to its body, URL and key.
fn check_binding(rig: &Rig, rec: &Recorded, path: &str) {
    let value = rec.headers[INTERNAL].to_str().unwrap();
    let keys = secretgate::verify::keys_of(&rig.gw.config.internal_header.keys);
    let url = format!("{PUBLIC_URL}{path}");
    let base = Expected {
        now: Some(now()),
        ..Expected::request(
            "secretgate",
            "legacy-token-service",
            "POST",
            &url,
            rec.uri.query(),
            &rec.body,
        )
    };
    let mut other_body = rec.body.to_vec();
    other_body.extend_from_slice(b"&scope=admin");
    assert_eq!(
        verify_internal_header(
            value,
            &keys,
            &Expected {
                body: Check::Equals(&other_body),
                ..base.clone()
            }
        ),
        Err(VerifyError::BodyHash)
    );
    let other_url = format!("{PUBLIC_URL}/oauth2/introspect");
    assert_eq!(
        verify_internal_header(
            value,
            &keys,
            &Expected {
                url: Check::Equals(&other_url),
                ..base.clone()
            }
        ),
        Err(VerifyError::Url)
    );
    let wrong_key = [secretgate::config::SigningKey::hmac(
        rig.gw.config.internal_header.keys[0].id.clone(),
        secretgate::secret::Secret::new(b"another-key-0123456789abcdefghijk".to_vec()),
    )];
    assert_eq!(
        verify_internal_header(value, &secretgate::verify::keys_of(&wrong_key), &base),
        Err(VerifyError::Signature)
    );
}
