//! Mutual TLS client authentication (RFC 8705) end to end, over real TLS against a
//! recording upstream: `tls_client_auth` and `self_signed_tls_client_auth` with curl
//! (HTTP/1.1 and HTTP/2), Python requests (HTTP/1.1), httpx (HTTP/2) and the crate's own
//! TLS client; the internal header's `cnf.x5t#S256` checked with PyJWT against a
//! thumbprint Python computes from the certificate; refusals; secret clients on the same
//! listener; the CA file and the registered certificates following a reload; and the
//! discovery metadata rewrite.
//!
//! Every certificate (CAs, clients, expired, another CA's, self-signed) is made here at
//! run time with rcgen, into a temporary directory.

#[path = "../support/python.rs"]
mod python_venv;
#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bytes::Bytes;
use support::*;

const PAYMENTS: &str = "payments";
const PAYMENTS_DN: &str = "CN=payments,O=Example Corp";
const DEVICE: &str = "edge-device";
const OTHER_DEVICE: &str = "edge-device-2";

fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| python_venv::venv("mtls-venv"))
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// The certificates one test run uses.
struct Certs {
    ca: Ca,
    other_ca: Ca,
    payments: ClientCert,
    wrong_subject: ClientCert,
    other_ca_payments: ClientCert,
    expired: ClientCert,
    device: ClientCert,
    other_device: ClientCert,
    unregistered: ClientCert,
}

fn certs(dir: &Path) -> Certs {
    let ca = Ca::new("client CA");
    let other_ca = Ca::new("another CA");
    let subject = ("payments", "Example Corp");
    Certs {
        payments: ClientCert::make(dir, "payments", subject, Some(&ca), false),
        wrong_subject: ClientCert::make(
            dir,
            "wrong-subject",
            ("payment", "Example Corp"),
            Some(&ca),
            false,
        ),
        other_ca_payments: ClientCert::make(dir, "other-ca", subject, Some(&other_ca), false),
        expired: ClientCert::make(dir, "expired", subject, Some(&ca), true),
        device: ClientCert::make(dir, "device", ("edge-device", "Devices"), None, false),
        other_device: ClientCert::make(dir, "device-2", ("edge-device-2", "Devices"), None, false),
        unregistered: ClientCert::make(dir, "unregistered", subject, None, false),
        ca,
        other_ca,
    }
}

/// The test gateway's YAML with `tls.client_auth` and the two certificate clients.
fn mtls_yaml(pki: &Pki, upstream: std::net::SocketAddr, certs: &Certs, extra: &str) -> String {
    let ca_file = pki.path().join("client-ca.pem");
    std::fs::write(&ca_file, &certs.ca.pem).unwrap();
    let clients = format!(
        r#"  - client_id: {PAYMENTS}
    auth_method: tls_client_auth
    tls_client_auth_subject_dn: "{PAYMENTS_DN}"
  - client_id: {DEVICE}
    auth_method: self_signed_tls_client_auth
    certificates: [{{ file: "{device}" }}]
  - client_id: {OTHER_DEVICE}
    auth_method: self_signed_tls_client_auth
    certificates: [{{ file: "{other}" }}]
{extra}"#,
        device = certs.device.cert_file.display(),
        other = certs.other_device.cert_file.display(),
    );
    let yaml = config_yaml(pki, upstream, &clients);
    let key_line = format!("  key_file: \"{}\"\n", pki.key_file.display());
    assert!(yaml.contains(&key_line));
    yaml.replace(
        &key_line,
        &format!(
            "{key_line}  client_auth:\n    ca_file: \"{}\"\n",
            ca_file.display()
        ),
    )
}

/// One form POST to the token endpoint with `cert`, over HTTP/1.1 and HTTP/2.
async fn both_protocols(
    gw: &Gateway,
    cert: Option<&ClientCert>,
    headers: &[(&str, &str)],
    body: &str,
) -> [Reply; 2] {
    let mut out = Vec::new();
    for h2 in [false, true] {
        let req = post(
            TOKEN_PATH,
            Some("application/x-www-form-urlencoded"),
            headers,
            body.to_owned(),
        );
        out.push(client_with_cert(gw, cert, h2).await.send(req).await);
    }
    out.try_into().unwrap()
}

/// Verifies the internal header of the last request the upstream received and returns
/// its claims.
fn last_claims(gw: &Gateway, upstream: &RecordingUpstream) -> secretgate::InternalClaims {
    let rec = upstream.last();
    assert_no_secret(&rec);
    let values: Vec<_> = rec
        .headers
        .get_all("x-authenticated-client")
        .iter()
        .collect();
    assert_eq!(values.len(), 1, "exactly one internal header");
    let keys = secretgate::verify::keys_of(&gw.config.internal_header.keys);
    let url = format!("{PUBLIC_URL}{TOKEN_PATH}");
    secretgate::verify_internal_header(
        values[0].to_str().unwrap(),
        &keys,
        &secretgate::Expected::request(
            "secretgate",
            "legacy-token-service",
            "POST",
            &url,
            rec.uri.query(),
            &rec.body,
        ),
    )
    .expect("the internal header verifies")
}

fn x5t(claims: &secretgate::InternalClaims) -> Option<&str> {
    claims.cnf.as_ref().map(|c| c.x5t_s256.as_str())
}

fn curl(gw: &Gateway, cert: &ClientCert, client_id: &str, http2: bool) -> (String, String) {
    let url = format!("https://127.0.0.1:{}{TOKEN_PATH}", gw.addr.port());
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--cacert"])
        .arg(&gw.pki.ca_file)
        .arg("--cert")
        .arg(&cert.cert_file)
        .arg("--key")
        .arg(&cert.key_file)
        .arg(if http2 { "--http2" } else { "--http1.1" })
        .args([
            "-d",
            "grant_type=client_credentials",
            "-d",
            &format!("client_id={client_id}"),
            "-w",
            "\n%{http_code} %{http_version}",
            &url,
        ])
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (body.to_owned(), status.to_owned())
}

fn pyjwt_checks_cnf(gw: &Gateway, upstream: &RecordingUpstream, cert: &ClientCert) {
    let rec = upstream.last();
    let header = rec.headers["x-authenticated-client"].to_str().unwrap();
    let body = gw.pki.path().join("forwarded-body");
    std::fs::write(&body, &rec.body).unwrap();
    let url = format!("{PUBLIC_URL}{TOKEN_PATH}");
    let out = Command::new(python())
        .arg(script("pyjwt_verify.py"))
        .args(["--token", header, "--key-file"])
        .arg(gw.pki.path().join("signing.key"))
        .args([
            "--issuer",
            "secretgate",
            "--audience",
            "legacy-token-service",
            "--kid",
            "k1",
            "--htm",
            "POST",
            "--htu",
            &url,
        ])
        .arg("--body-file")
        .arg(&body)
        .arg("--cert-file")
        .arg(&cert.cert_file)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "pyjwt_verify.py printed {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{json}");
    assert_eq!(json["claims"]["cnf"]["x5t#S256"], cert.x5t());
}

/// Runs the Python client `tool` (mtls_requests.py or mtls_httpx.py) with `cert` for
/// `client_id` (and `secret`, a second method, if given): its exit status and the JSON
/// line it printed.
fn python_client(
    gw: &Gateway,
    tool: &str,
    cert: &ClientCert,
    client_id: &str,
    secret: Option<&str>,
) -> (std::process::ExitStatus, serde_json::Value) {
    let token_url = format!("https://127.0.0.1:{}{TOKEN_PATH}", gw.addr.port());
    let out = tokio::task::block_in_place(|| {
        let mut cmd = Command::new(python());
        cmd.arg(script(tool))
            .args(["--token-url", &token_url, "--ca"])
            .arg(&gw.pki.ca_file)
            .arg("--cert")
            .arg(&cert.cert_file)
            .arg("--key")
            .arg(&cert.key_file)
            .args(["--client-id", client_id]);
        if let Some(secret) = secret {
            cmd.args(["--secret", secret]);
        }
        cmd.output().unwrap()
    });
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{tool} printed {:?}: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_requests_get_tokens_with_both_certificate_methods() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let certs = certs(pki.path());
    let yaml = mtls_yaml(&pki, upstream.addr, &certs, "");
    let gw = Gateway::start_yaml(pki, &yaml).await;

    for (client_id, cert, method) in [
        (PAYMENTS, &certs.payments, "tls_client_auth"),
        (DEVICE, &certs.device, "self_signed_tls_client_auth"),
    ] {
        // curl, over HTTP/1.1 and HTTP/2.
        for (http2, version) in [(false, "1.1"), (true, "2")] {
            let (body, status) = tokio::task::block_in_place(|| curl(&gw, cert, client_id, http2));
            assert_eq!(status, format!("200 {version}"), "{method}: {body}");
            let token: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(token["access_token"], "upstream-token");
            let claims = last_claims(&gw, &upstream);
            assert_eq!(
                (claims.client_id.as_str(), claims.auth_method.as_str()),
                (client_id, method)
            );
            assert_eq!(x5t(&claims), Some(cert.x5t().as_str()), "{method}");
            let forwarded = String::from_utf8_lossy(&upstream.last().body).into_owned();
            assert_eq!(
                forwarded,
                format!("grant_type=client_credentials&client_id={client_id}")
            );
        }
        // The same header checked by PyJWT, cnf against Python's own thumbprint.
        tokio::task::block_in_place(|| pyjwt_checks_cnf(&gw, &upstream, cert));

        // Python: requests (HTTP/1.1) and httpx (HTTP/2), the same requests.
        for (tool, version) in [
            ("mtls_requests.py", "HTTP/1.1"),
            ("mtls_httpx.py", "HTTP/2"),
        ] {
            let (status, json) = python_client(&gw, tool, cert, client_id, None);
            assert!(status.success(), "{tool} {method}: {json}");
            assert_eq!(json["status"], 200, "{tool} {method}: {json}");
            assert_eq!(json["body"]["access_token"], "upstream-token", "{tool}");
            assert_eq!(json["http_version"], version, "{tool} {method}: {json}");
            let claims = last_claims(&gw, &upstream);
            assert_eq!(
                (claims.client_id.as_str(), claims.auth_method.as_str()),
                (client_id, method),
                "{tool}"
            );
            assert_eq!(x5t(&claims), Some(cert.x5t().as_str()), "{tool} {method}");
            tokio::task::block_in_place(|| pyjwt_checks_cnf(&gw, &upstream, cert));

            // Sending a secret as well: two methods.
            let (_, json) = python_client(&gw, tool, cert, client_id, Some("some-secret"));
            assert_eq!(json["status"], 400, "{tool}: {json}");
            assert_eq!(json["body"]["error"], "invalid_request", "{tool}");
            assert_eq!(json["http_version"], version, "{tool} {method}: {json}");
        }
    }
    let metrics = gw.metrics().await;
    for (series, n) in [
        (
            "secretgate_authentications_total{method=\"tls_client_auth\",outcome=\"ok\"}",
            4.0,
        ),
        (
            "secretgate_authentications_total{method=\"self_signed_tls_client_auth\",outcome=\"ok\"}",
            4.0,
        ),
        (
            "secretgate_client_certificates_total{method=\"tls_client_auth\",outcome=\"ok\"}",
            4.0,
        ),
        ("secretgate_certificate_bound_headers_total", 8.0),
    ] {
        assert_eq!(sample(&metrics, series), n, "{series} in\n{metrics}");
    }
}

#[tokio::test]
async fn refused_certificates_get_401_and_a_secret_next_to_a_certificate_400() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let certs = certs(pki.path());
    // Certificate failures count towards the throttle like any other (more than ten here).
    let yaml = mtls_yaml(
        &pki,
        upstream.addr,
        &certs,
        "throttle: { max_failures: 100, max_failures_per_address: 100 }\n",
    );
    let gw = Gateway::start_yaml(pki, &yaml).await;
    let only_id = |id: &str| format!("grant_type=client_credentials&client_id={id}");

    for (case, cert, client_id) in [
        ("wrong subject", Some(&certs.wrong_subject), PAYMENTS),
        ("another CA", Some(&certs.other_ca_payments), PAYMENTS),
        ("expired", Some(&certs.expired), PAYMENTS),
        (
            "self-signed with the right subject",
            Some(&certs.unregistered),
            PAYMENTS,
        ),
        ("no certificate", None, PAYMENTS),
        ("no certificate", None, DEVICE),
        (
            "another client's registered certificate",
            Some(&certs.other_device),
            DEVICE,
        ),
        ("a CA-issued certificate", Some(&certs.payments), DEVICE),
        ("unknown client", Some(&certs.payments), "nobody"),
        (
            "a secret client without its secret",
            Some(&certs.payments),
            POST_ID,
        ),
    ] {
        for reply in both_protocols(&gw, cert, &[], &only_id(client_id)).await {
            assert_eq!(
                reply.status, 401,
                "{case} ({client_id}, {:?})",
                reply.version
            );
            assert_eq!(reply.error(), "invalid_client", "{case}");
            assert!(!reply.has_basic_challenge(), "{case}");
            assert_eq!(reply.headers["cache-control"], "no-store");
        }
    }
    // Refused alike: the same body whatever the reason.
    let [a, _] = both_protocols(&gw, Some(&certs.expired), &[], &only_id(PAYMENTS)).await;
    let [b, _] = both_protocols(&gw, None, &[], &only_id("nobody")).await;
    assert_eq!(a.body, b.body);

    // RFC 6749 §2.3: the certificate authenticates the client, and a secret, an assertion
    // or Basic comes with it: two methods.
    let basic_header = basic(PAYMENTS, "some-secret");
    let mut claims = jwt_claims();
    claims["iss"] = PAYMENTS.into();
    claims["sub"] = PAYMENTS.into();
    let payments_assertion = mint(hs256(), claims, JWT_SECRET.as_bytes());
    for (case, headers, body) in [
        (
            "client_secret",
            vec![],
            format!("{}&client_secret=some-secret", only_id(PAYMENTS)),
        ),
        (
            "Basic",
            vec![("authorization", basic_header.as_str())],
            "grant_type=client_credentials".to_owned(),
        ),
        (
            "assertion",
            vec![],
            format!(
                "{}&client_id={PAYMENTS}",
                assertion_body(&payments_assertion)
            ),
        ),
    ] {
        for reply in both_protocols(&gw, Some(&certs.payments), &headers, &body).await {
            assert_eq!(reply.status, 400, "{case}: {:?}", reply.body);
            assert_eq!(reply.error(), "invalid_request", "{case}");
        }
    }
    // Without a certificate that authenticates it, a secret for a certificate client is
    // just the wrong method: 401, nothing said about how the client is registered.
    let body = format!("{}&client_secret=some-secret", only_id(PAYMENTS));
    for cert in [None, Some(&certs.other_ca_payments)] {
        for reply in both_protocols(&gw, cert, &[], &body).await {
            assert_eq!(reply.status, 401, "{:?}", reply.body);
        }
    }
    assert!(
        upstream.records().is_empty(),
        "nothing reached the upstream"
    );

    let metrics = gw.metrics().await;
    for (outcome, n) in [
        ("name_mismatch", 2.0),
        ("untrusted", 4.0),
        ("expired", 4.0),
        ("missing", 2.0),
    ] {
        let series = format!(
            "secretgate_client_certificates_total{{method=\"tls_client_auth\",outcome=\"{outcome}\"}}"
        );
        assert_eq!(sample(&metrics, &series), n, "{series} in\n{metrics}");
    }
    assert_eq!(
        sample(
            &metrics,
            "secretgate_client_certificates_total{method=\"self_signed_tls_client_auth\",outcome=\"not_registered\"}"
        ),
        4.0
    );
}

#[tokio::test]
async fn secret_clients_keep_working_on_the_same_listener() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let certs = certs(pki.path());
    let yaml = mtls_yaml(&pki, upstream.addr, &certs, "");
    let gw = Gateway::start_yaml(pki, &yaml).await;
    let post_body =
        format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={POST_SECRET}");
    let basic_header = basic(BASIC_ID, BASIC_SECRET);

    // No certificate: Basic, post and jwt, over HTTP/1.1 and HTTP/2; no cnf.
    for (method, headers, body) in [
        (
            "client_secret_basic",
            vec![("authorization", basic_header.as_str())],
            "grant_type=client_credentials".to_owned(),
        ),
        ("client_secret_post", vec![], post_body.clone()),
        ("client_secret_jwt", vec![], String::new()),
    ] {
        for h2 in [false, true] {
            let body = if method == "client_secret_jwt" {
                assertion_body(&assertion())
            } else {
                body.clone()
            };
            let req = post(
                TOKEN_PATH,
                Some("application/x-www-form-urlencoded"),
                &headers,
                body,
            );
            let reply = client_with_cert(&gw, None, h2).await.send(req).await;
            assert_eq!(reply.status, 200, "{method}: {:?}", reply.body);
            let claims = last_claims(&gw, &upstream);
            assert_eq!(claims.auth_method, method);
            assert_eq!(claims.cnf, None, "{method}: no certificate, no cnf");
        }
    }

    // A secret client presenting a certificate from ca_file: authenticated by its
    // secret, tokens bound to the certificate (RFC 8705 §3).
    for reply in both_protocols(&gw, Some(&certs.payments), &[], &post_body).await {
        assert_eq!(reply.status, 200);
        let claims = last_claims(&gw, &upstream);
        assert_eq!(claims.auth_method, "client_secret_post");
        assert_eq!(x5t(&claims), Some(certs.payments.x5t().as_str()));
    }
    // One nothing vouches for (self-signed, unregistered; another CA; expired) binds
    // nothing, and does not stand in the way.
    for cert in [
        &certs.unregistered,
        &certs.other_ca_payments,
        &certs.expired,
    ] {
        for reply in both_protocols(&gw, Some(cert), &[], &post_body).await {
            assert_eq!(reply.status, 200);
            assert_eq!(last_claims(&gw, &upstream).cnf, None);
        }
    }
    // And the internal header cannot be forged by the client, certificate or not.
    for reply in both_protocols(
        &gw,
        Some(&certs.payments),
        &[("x-authenticated-client", "forged")],
        &post_body,
    )
    .await
    {
        assert_eq!(reply.status, 200);
        last_claims(&gw, &upstream);
    }
}

/// A public client (`none`) on the mTLS listener: a certificate from `ca_file` binds its
/// tokens (RFC 8705 §3, §4); any other certificate is a credential it is not registered
/// with (401); none at all is the plain public client.
#[tokio::test]
async fn a_public_client_binds_tokens_to_a_certificate_from_the_ca_file_only() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let certs = certs(pki.path());
    let yaml = mtls_yaml(
        &pki,
        upstream.addr,
        &certs,
        "  - { client_id: spa, auth_method: none }\n",
    );
    let gw = Gateway::start_yaml(pki, &yaml).await;
    let body = "grant_type=refresh_token&refresh_token=rt&client_id=spa";
    for reply in both_protocols(&gw, None, &[], body).await {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let claims = last_claims(&gw, &upstream);
        assert_eq!((claims.auth_method.as_str(), claims.cnf), ("none", None));
    }
    for reply in both_protocols(&gw, Some(&certs.payments), &[], body).await {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let claims = last_claims(&gw, &upstream);
        assert_eq!(claims.auth_method, "none");
        assert_eq!(x5t(&claims), Some(certs.payments.x5t().as_str()));
    }
    let forwarded = upstream.records().len();
    for cert in [
        &certs.unregistered,
        &certs.other_ca_payments,
        &certs.expired,
        &certs.device,
    ] {
        for reply in both_protocols(&gw, Some(cert), &[], body).await {
            assert_eq!(reply.status, 401, "{:?}", reply.body);
            assert_eq!(reply.error(), "invalid_client");
        }
    }
    assert_eq!(
        upstream.records().len(),
        forwarded,
        "nothing refused was forwarded"
    );
}

mod reload_and_metadata;
