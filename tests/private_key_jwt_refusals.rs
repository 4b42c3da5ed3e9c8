//! `private_key_jwt` refusals (RFC 7523 §3, RFC 8725, docs/design.md §2.14), each through a
//! running gateway over TLS: `401 invalid_client` and nothing forwarded to the recording
//! upstream. The hostile assertions are signed by the library's signer or by `openssl`
//! (tests/support/client_keys.rs), with keys made at run time; a valid assertion next to
//! each shows the refusal is the assertion's fault, not the rig's.

#[path = "support/client_keys.rs"]
mod client_keys;
#[path = "support/redis.rs"]
mod redis_server;
mod support;

use client_keys::{claims, jwk_set, ClientKey};
use secretgate::oauth::AsymmetricAlgorithm::{EdDsa, Es256, Ps256, Rs256};
use serde_json::json;
use support::*;

const A: &str = "pk-a";
const B: &str = "pk-b";

/// The keys of client A (RSA, P-256, Ed25519) and B (P-256), and a stranger's P-256 key
/// nobody registered.
struct Keys {
    a_rsa: ClientKey,
    a_ec: ClientKey,
    a_ed: ClientKey,
    b_ec: ClientKey,
    stranger: ClientKey,
    _dir: tempfile::TempDir,
}

impl Keys {
    fn generate() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        Keys {
            a_rsa: ClientKey::rsa(d, "a-rsa", 2048),
            a_ec: ClientKey::ec(d, "a-ec"),
            a_ed: ClientKey::ed(d, "a-ed"),
            b_ec: ClientKey::ec(d, "b-ec"),
            stranger: ClientKey::ec(d, "stranger"),
            _dir: dir,
        }
    }

    /// A (PS256 not in its allow-list) and B, their sets inline; throttling out of the
    /// way, so that every refusal below is the verifier's.
    fn clients(&self) -> String {
        format!(
            "  - client_id: {A}\n    auth_method: private_key_jwt\n    algorithms: [RS256, ES256, EdDSA]\n    jwks: {{ value: '{}' }}\n  - client_id: {B}\n    auth_method: private_key_jwt\n    jwks: {{ value: '{}' }}\nthrottle:\n  max_failures: 1000\n  max_failures_per_address: 1000\n",
            jwk_set(&[&self.a_rsa, &self.a_ec, &self.a_ed]),
            jwk_set(&[&self.b_ec]),
        )
    }
}

async fn send(gw: &Gateway, assertion: &str) -> Reply {
    gw.send(form(TOKEN_PATH, &assertion_body(assertion))).await
}

/// `401 invalid_client`, without a Basic challenge.
fn assert_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {:?}", reply.body);
    assert_eq!(reply.error(), "invalid_client", "{what}");
    assert!(!reply.has_basic_challenge(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_assertions_are_refused_and_nothing_is_forwarded() {
    let keys = tokio::task::spawn_blocking(Keys::generate).await.unwrap();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(upstream.addr, &keys.clients()).await;
    let header = |alg: &str, kid: Option<&str>| {
        let mut h = json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            h["kid"] = kid.into();
        }
        h
    };

    // The controls: each of A's keys with its algorithm, and B's, are accepted.
    for (key, client) in [
        (&keys.a_rsa, A),
        (&keys.a_ec, A),
        (&keys.a_ed, A),
        (&keys.b_ec, B),
    ] {
        let reply = send(&gw, &key.assertion(client)).await;
        assert_eq!(
            reply.status, 200,
            "{} for {client}: {:?}",
            key.kid, reply.body
        );
    }
    // Without a kid, every key of the algorithm's type is tried.
    let no_kid = keys.a_ec.sign_as(&header("ES256", None), &claims(A), Es256);
    assert_eq!(send(&gw, &no_kid).await.status, 200);
    let forwarded = upstream.records().len();
    assert_eq!(forwarded, 5);

    let fixed: Vec<(&str, String)> = vec![
        // A key nobody registered, under A's kid and without a kid.
        (
            "wrong key under a registered kid",
            keys.stranger
                .sign_as(&header("ES256", Some("a-ec")), &claims(A), Es256),
        ),
        (
            "wrong key, no kid",
            keys.stranger
                .sign_as(&header("ES256", None), &claims(A), Es256),
        ),
        // B's key presenting itself as A: under B's kid, A's kid, no kid.
        (
            "another client's key and kid",
            keys.b_ec
                .sign_as(&header("ES256", Some("b-ec")), &claims(A), Es256),
        ),
        (
            "another client's key under a registered kid",
            keys.b_ec
                .sign_as(&header("ES256", Some("a-ec")), &claims(A), Es256),
        ),
        (
            "another client's key, no kid",
            keys.b_ec.sign_as(&header("ES256", None), &claims(A), Es256),
        ),
        // PS256 by A's own RSA key: a good signature, an algorithm A may not use.
        (
            "alg not in the client's allow-list",
            keys.a_rsa
                .sign_as(&header("PS256", Some("a-rsa")), &claims(A), Ps256),
        ),
        // Algorithms that do not fit the key the kid names (RFC 8725 §3.1): each signature
        // is good under the key's own algorithm, the header says another.
        (
            "ES256 naming the RSA key",
            keys.a_rsa
                .sign_as(&header("ES256", Some("a-rsa")), &claims(A), Rs256),
        ),
        (
            "RS256 naming the P-256 key",
            keys.a_ec
                .sign_as(&header("RS256", Some("a-ec")), &claims(A), Es256),
        ),
        (
            "EdDSA naming the P-256 key",
            keys.a_ed
                .sign_as(&header("EdDSA", Some("a-ec")), &claims(A), EdDsa),
        ),
        (
            "ES256 over an RSA signature, no kid",
            keys.a_rsa
                .sign_as(&header("ES256", None), &claims(A), Rs256),
        ),
        // Time and audience (RFC 7523 §3 items 3-4), with A's own key.
        ("expired", {
            let mut c = claims(A);
            c["iat"] = (now() - 600).into();
            c["exp"] = (now() - 300).into();
            keys.a_ec.sign_as(&keys.a_ec.header(), &c, Es256)
        }),
        ("aud another server", {
            let mut c = claims(A);
            c["aud"] = "https://other.example.com/oauth2/token".into();
            keys.a_ec.sign_as(&keys.a_ec.header(), &c, Es256)
        }),
        // A client_secret_jwt client is never tried with a public key.
        (
            "a public-key assertion for a client_secret_jwt client",
            keys.a_ec
                .sign_as(&keys.a_ec.header(), &claims(JWT_ID), Es256),
        ),
        // A private_key_jwt client is never tried with a secret.
        (
            "HS256 with a client secret for a private_key_jwt client",
            mint(hs256(), claims(A), JWT_SECRET.as_bytes()),
        ),
    ];
    let mut hostile: Vec<(String, String)> =
        fixed.into_iter().map(|(w, a)| (w.to_owned(), a)).collect();
    // Algorithm confusion (RFC 8725 §2.1): HS256 keyed with what an attacker has, the
    // client's public key, as PEM and as the JWK JSON of the registered set.
    for key in [&keys.a_rsa, &keys.a_ec, &keys.a_ed] {
        for (form, mac_key) in [
            ("PEM", key.public_pem.clone()),
            (
                "PEM without its final newline",
                key.public_pem.trim_end().to_owned(),
            ),
            ("JWK JSON", key.jwk.to_string()),
        ] {
            let what = format!("HS256 keyed with {}'s public {form}", key.kid);
            let h = json!({"alg": "HS256", "typ": "JWT", "kid": key.kid});
            hostile.push((what, mint(h, claims(A), mac_key.as_bytes())));
        }
    }
    // `alg: none` (RFC 8725 §3.1): with no signature and with one.
    let unsigned = format!(
        "{}.{}.",
        secretgate::jws::encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        secretgate::jws::encode(claims(A).to_string())
    );
    hostile.push(("alg none, no signature".into(), unsigned));
    hostile.push((
        "alg none, with a signature".into(),
        keys.a_ec
            .sign_as(&header("none", Some("a-ec")), &claims(A), Es256),
    ));

    for (what, assertion) in &hostile {
        assert_refused(&send(&gw, assertion).await, what);
    }
    assert_eq!(
        upstream.records().len(),
        forwarded,
        "a hostile assertion was forwarded"
    );

    // A replayed jti (RFC 7523 §3 item 7): the same assertion twice, and a new signature
    // over claims with a jti already used.
    let once = keys.a_ed.assertion(A);
    assert_eq!(send(&gw, &once).await.status, 200);
    assert_refused(&send(&gw, &once).await, "the same assertion again");
    let mut c = claims(A);
    let used: serde_json::Value =
        serde_json::from_slice(&secretgate::jws::decode(once.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    c["jti"] = used["jti"].clone();
    let resigned = keys.a_ec.sign_as(&keys.a_ec.header(), &c, Es256);
    assert_refused(&send(&gw, &resigned).await, "a used jti, signed again");
    assert_eq!(upstream.records().len(), forwarded + 1);
}

#[test]
fn a_short_rsa_key_in_a_jwks_file_is_a_config_error_naming_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let short = ClientKey::rsa(dir.path(), "short", 1024);
    let good = ClientKey::ec(dir.path(), "good");
    std::fs::write(dir.path().join("a.jwks.json"), jwk_set(&[&good, &short])).unwrap();
    let pki = Pki::generate();
    let extra = format!(
        "  - client_id: {A}\n    auth_method: private_key_jwt\n    jwks: {{ file: \"{}\" }}\n",
        dir.path().join("a.jwks.json").display()
    );
    let yaml = config_yaml(&pki, "127.0.0.1:9".parse().unwrap(), &extra);
    let err = secretgate::Config::from_yaml(&yaml, pki.path()).unwrap_err();
    let text = secretgate::error::error_chain(&err);
    assert!(text.contains("clients[3].jwks"), "{text}");
    assert!(text.contains(&format!("client `{A}`: key 1")), "{text}");
    assert!(text.contains("1024 bits"), "{text}");
    // The same set without the short key loads.
    std::fs::write(dir.path().join("a.jwks.json"), jwk_set(&[&good])).unwrap();
    secretgate::Config::from_yaml(&yaml, pki.path()).unwrap();
}

/// Two gateways sharing one real Redis (`state.backend: redis`): an assertion accepted by
/// one is a replay at the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jti_is_single_use_across_gateways_sharing_redis() {
    let redis = redis_server::RedisServer::start();
    let keys = tokio::task::spawn_blocking(Keys::generate).await.unwrap();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "{}state:\n  backend: redis\n  redis:\n    url: \"{}\"\n    timeout: 2s\n",
        keys.clients(),
        redis.url()
    );
    let one = Gateway::start_with(upstream.addr, &extra).await;
    let two = Gateway::start_with(upstream.addr, &extra).await;
    for (first, second, key) in [(&one, &two, &keys.a_rsa), (&two, &one, &keys.a_ed)] {
        let a = key.assertion(A);
        assert_eq!(send(first, &a).await.status, 200, "{}", key.kid);
        assert_refused(&send(second, &a).await, "replayed at the other gateway");
        assert_refused(&send(first, &a).await, "replayed at the same gateway");
    }
    assert_eq!(upstream.records().len(), 2);
}
