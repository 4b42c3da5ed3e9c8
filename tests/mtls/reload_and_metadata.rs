//! The CA file and registered certificates across a reload; discovery metadata on both well-known paths.

use super::*;

#[tokio::test]
async fn the_ca_file_and_registered_certificates_follow_a_reload() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let certs = certs(pki.path());
    let yaml = mtls_yaml(&pki, upstream.addr, &certs, "reload: { watch: false }\n");
    let ca_file = pki.path().join("client-ca.pem");
    let device_file = certs.device.cert_file.clone();
    let gw = Gateway::start_file(pki, &yaml).await;
    let only_id = |id: &str| format!("grant_type=client_credentials&client_id={id}");
    let status = |replies: [Reply; 2]| replies.map(|r| r.status.as_u16());

    assert_eq!(
        status(both_protocols(&gw, Some(&certs.payments), &[], &only_id(PAYMENTS)).await),
        [200, 200]
    );
    assert_eq!(
        status(both_protocols(&gw, Some(&certs.other_ca_payments), &[], &only_id(PAYMENTS)).await),
        [401, 401]
    );
    // A kept-alive connection, opened before the rotation.
    let mut kept = client_with_cert(&gw, Some(&certs.payments), false).await;

    // Rotate the CA: the other CA's certificate is now the trusted one.
    std::fs::write(&ca_file, &certs.other_ca.pem).unwrap();
    // And replace the device's registered certificate by the unregistered one's.
    std::fs::copy(&certs.unregistered.cert_file, &device_file).unwrap();
    gw.reloader.reload().await.expect("reload succeeds");

    assert_eq!(
        status(both_protocols(&gw, Some(&certs.other_ca_payments), &[], &only_id(PAYMENTS)).await),
        [200, 200]
    );
    assert_eq!(
        status(both_protocols(&gw, Some(&certs.payments), &[], &only_id(PAYMENTS)).await),
        [401, 401]
    );
    let reply = kept.send(form(TOKEN_PATH, &only_id(PAYMENTS))).await;
    assert_eq!(
        reply.status, 401,
        "the next request on a kept-alive connection"
    );
    assert_eq!(
        status(both_protocols(&gw, Some(&certs.device), &[], &only_id(DEVICE)).await),
        [401, 401]
    );
    assert_eq!(
        status(both_protocols(&gw, Some(&certs.unregistered), &[], &only_id(DEVICE)).await),
        [200, 200]
    );
    let claims = last_claims(&gw, &upstream);
    assert_eq!(x5t(&claims), Some(certs.unregistered.x5t().as_str()));

    // A broken CA file is a failed reload: the last good configuration keeps serving.
    std::fs::write(&ca_file, "not a certificate").unwrap();
    assert!(gw.reloader.reload().await.is_err());
    assert_eq!(
        status(both_protocols(&gw, Some(&certs.other_ca_payments), &[], &only_id(PAYMENTS)).await),
        [200, 200]
    );
}

#[tokio::test]
async fn discovery_metadata_is_rewritten_on_both_well_known_paths() {
    let document = serde_json::json!({
        "issuer": ISSUER,
        "token_endpoint": format!("{PUBLIC_URL}{TOKEN_PATH}"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["read", "write"],
    })
    .to_string();
    let upstream = RecordingUpstream::start(Behaviour::Document {
        content_type: "application/json; charset=utf-8",
        body: Bytes::from(document.clone()),
    })
    .await;
    let pki = Pki::generate();
    let certs = certs(pki.path());
    let yaml = mtls_yaml(
        &pki,
        upstream.addr,
        &certs,
        "discovery: { max_size: 1KiB }\n",
    );
    let gw = Gateway::start_yaml(pki, &yaml).await;

    let get = |path: &str| {
        http::Request::get(path)
            .header("accept-encoding", "gzip")
            .header("if-none-match", "\"x\"")
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap()
    };
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/acme/default",
        "/acme/default/.well-known/openid-configuration",
    ] {
        for h2 in [false, true] {
            let reply = gw.client(h2).await.send(get(path)).await;
            assert_eq!(reply.status, 200, "{path}");
            let json = reply.json();
            assert_eq!(
                json["token_endpoint_auth_methods_supported"],
                serde_json::json!([
                    "client_secret_basic",
                    "client_secret_post",
                    "client_secret_jwt",
                    "tls_client_auth",
                    "self_signed_tls_client_auth"
                ]),
                "{path}"
            );
            assert_eq!(
                json["token_endpoint_auth_signing_alg_values_supported"],
                serde_json::json!(["HS256"])
            );
            assert_eq!(json["tls_client_certificate_bound_access_tokens"], true);
            // Everything else as the upstream wrote it.
            let original: serde_json::Value = serde_json::from_str(&document).unwrap();
            for key in ["issuer", "token_endpoint", "scopes_supported"] {
                assert_eq!(json[key], original[key], "{key}");
            }
            assert_eq!(
                reply.headers["content-length"],
                reply.body.len().to_string().as_str()
            );
            assert!(
                reply.headers.get("etag").is_none(),
                "the upstream's validator goes"
            );
            let rec = upstream.last();
            assert_eq!(rec.uri.path(), path);
            assert!(rec.headers.get("accept-encoding").is_none());
            assert!(rec.headers.get("if-none-match").is_none());
        }
    }
    // Another path: untouched.
    let reply = gw
        .client(false)
        .await
        .send(get("/.well-known/jwks.json"))
        .await;
    assert_eq!(reply.body, document.as_bytes());
    assert_eq!(reply.headers["etag"], "\"upstream-etag\"");
    let metrics = gw.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "secretgate_metadata_responses_total{outcome=\"rewritten\"}"
        ),
        8.0
    );

    // A document that is not JSON, and one over discovery.max_size: passed through
    // unchanged, and counted.
    for (content_type, body, outcome) in [
        (
            "text/html",
            Bytes::from_static(b"<html>metadata</html>"),
            "not_json",
        ),
        (
            "application/json",
            Bytes::from_static(b"{\"a\":"),
            "not_json",
        ),
        (
            "application/json",
            Bytes::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(4096))),
            "too_large",
        ),
    ] {
        let upstream = RecordingUpstream::start(Behaviour::Document {
            content_type,
            body: body.clone(),
        })
        .await;
        let pki = Pki::generate();
        let yaml = mtls_yaml(
            &pki,
            upstream.addr,
            &certs,
            "discovery: { max_size: 1KiB }\n",
        );
        let gw = Gateway::start_yaml(pki, &yaml).await;
        for h2 in [false, true] {
            let reply = gw
                .client(h2)
                .await
                .send(get("/.well-known/openid-configuration"))
                .await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.body, body, "{outcome}: passed through unchanged");
        }
        let metrics = gw.metrics().await;
        assert_eq!(
            sample(
                &metrics,
                &format!("secretgate_metadata_responses_total{{outcome=\"{outcome}\"}}")
            ),
            2.0,
            "{metrics}"
        );
    }

    // discovery.rewrite: false leaves the document alone.
    let pki = Pki::generate();
    let yaml = mtls_yaml(
        &pki,
        upstream.addr,
        &certs,
        "discovery: { rewrite: false }\n",
    );
    let off = Gateway::start_yaml(pki, &yaml).await;
    let reply = off
        .client(false)
        .await
        .send(get("/.well-known/openid-configuration"))
        .await;
    assert_eq!(reply.body, document.as_bytes());
}
