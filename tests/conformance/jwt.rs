//! client_secret_jwt rows (J1–J35): the assertion and its parameters (RFC 7523 §2.2, §3;
//! OIDC Core §9), the HMAC over the JWS (RFC 7515, its Appendix A.1 vector), the time and
//! replay claims `exp`, `nbf`, `iat` and `jti` (RFC 7519 §4.1), and the minimum size of a
//! client's HMAC secret (RFC 7518 §3.2).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::StatusCode;
use serde_json::json;

use crate::rig::*;
use crate::support::*;

fn endpoint() -> String {
    format!("{PUBLIC_URL}{TOKEN_PATH}")
}

#[tokio::test]
async fn j1_authlib_assertion() {
    let rig = Rig::start().await;
    // Authlib's client_secret_jwt_sign: header {"typ":"JWT","alg":"HS256"}, aud = token
    // endpoint, iat now, exp = iat + 3600, a 36-character jti; no client_id in the body.
    let iat = now();
    let jti: String = format!("{:0>36}", format!("authlib{}", std::process::id()));
    let a = mint(
        json!({"typ": "JWT", "alg": "HS256"}),
        json!({
            "iss": JWT_ID, "sub": JWT_ID, "aud": endpoint(),
            "iat": iat, "exp": iat + 3600, "jti": jti,
        }),
        JWT_SECRET.as_bytes(),
    );
    let body = format!(
        "{GRANT}&client_assertion_type={}&client_assertion={a}",
        secretgate::auth::form::form_encode_component(ASSERTION_TYPE)
    );
    let o = rig.send(form(TOKEN_PATH, &body)).await;
    let rec = rig.accepted(&o, JWT_ID, "client_secret_jwt");
    assert!(!rec.everything().contains(&a));
}

#[tokio::test]
async fn j2_openid_client_assertion() {
    let rig = Rig::start().await;
    // openid-client v6 (oauth4webapi): header {"alg":"HS256"}, aud = issuer, iat = nbf =
    // now, exp = now + 60; client_id in the body.
    let t = now();
    let a = mint(
        json!({"alg": "HS256"}),
        json!({
            "jti": format!("oidc-{}-{t}", std::process::id()), "aud": ISSUER,
            "exp": t + 60, "iat": t, "nbf": t, "iss": JWT_ID, "sub": JWT_ID,
        }),
        JWT_SECRET.as_bytes(),
    );
    let body = format!(
        "{GRANT}&client_id={JWT_ID}&client_assertion_type={}&client_assertion={a}",
        secretgate::auth::form::form_encode_component(ASSERTION_TYPE)
    );
    let o = rig.send(form(TOKEN_PATH, &body)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[tokio::test]
async fn j3_audience_array_compat_accepts_strict_refuses() {
    let both = || {
        claims_with(|c| {
            c.insert("aud".into(), json!([ISSUER, endpoint()]));
        })
    };
    let compat = Rig::start().await;
    let o = compat.send(jwt_form(&both())).await;
    compat.accepted(&o, JWT_ID, "client_secret_jwt");

    let strict = Rig::with("assertion: { audience: strict }\n").await;
    let o = strict.send(jwt_form(&both())).await;
    ic(&o);
    // Strict still takes the issuer as the sole string, and nothing else.
    let endpoint_only = mint(hs256(), jwt_claims(), JWT_SECRET.as_bytes());
    ic(&strict.send(jwt_form(&endpoint_only)).await);
    let issuer = claims_with(|c| {
        c.insert("aud".into(), json!(ISSUER));
    });
    let o = strict.send(jwt_form(&issuer)).await;
    strict.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[tokio::test]
async fn j7_audience_missing_or_wrong() {
    let rig = Rig::start().await;
    for edit in [
        None,
        Some(json!("https://evil.example/oauth2/token")),
        Some(json!([])),
        Some(json!(format!("{PUBLIC_URL}/oauth2/introspect"))),
        Some(json!(format!("{ISSUER}/"))),
    ] {
        let a = claims_with(|c| match edit {
            None => {
                c.remove("aud");
            }
            Some(v) => {
                c.insert("aud".into(), v);
            }
        });
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j8_alg_none() {
    let rig = Rig::start().await;
    for alg in ["none", "None", "NONE"] {
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        let p = URL_SAFE_NO_PAD.encode(jwt_claims().to_string());
        ic(&rig.send(jwt_form(&format!("{h}.{p}."))).await);
    }
}

#[tokio::test]
async fn j9_alg_wrong_case() {
    let rig = Rig::start().await;
    for alg in ["hs256", "Hs256"] {
        // The MAC itself is right (HS256 with the right key); only the name is wrong.
        let a = mint(json!({"alg": alg}), jwt_claims(), JWT_SECRET.as_bytes());
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j10_algorithm_not_allowed_for_client() {
    let rig = Rig::start().await;
    let hs512 = json!({"alg": "HS512", "typ": "JWT"});
    // The default client allows only HS256.
    let a = mint(hs512.clone(), jwt_claims(), JWT_SECRET.as_bytes());
    ic(&rig.send(jwt_form(&a)).await);
    // A client allowing only HS512 takes HS512 ...
    let claims = || {
        let mut c = jwt_claims();
        c["iss"] = json!(JWT512_ID);
        c["sub"] = json!(JWT512_ID);
        c
    };
    let a = mint(hs512, claims(), JWT512_SECRET.as_bytes());
    let o = rig.send(jwt_form(&a)).await;
    rig.accepted(&o, JWT512_ID, "client_secret_jwt");
    // ... and refuses HS256.
    let a = mint(hs256(), claims(), JWT512_SECRET.as_bytes());
    ic(&rig.send(jwt_form(&a)).await);
}

#[tokio::test]
async fn j12_rs256_header() {
    let rig = Rig::start().await;
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        let a = mint(
            json!({"alg": alg, "typ": "JWT"}),
            jwt_claims(),
            JWT_SECRET.as_bytes(),
        );
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j13_mac_keyed_with_base64_decoded_secret() {
    let rig = Rig::start().await;
    let claims = || {
        let mut c = jwt_claims();
        c["iss"] = json!(B64_ID);
        c["sub"] = json!(B64_ID);
        c
    };
    let decoded = STANDARD.decode(B64_SECRET).unwrap();
    assert_eq!(decoded.len(), 32);
    ic(&rig.send(jwt_form(&mint(hs256(), claims(), &decoded))).await);
    // The UTF-8 bytes of the same secret are the key.
    let o = rig
        .send(jwt_form(&mint(hs256(), claims(), B64_SECRET.as_bytes())))
        .await;
    rig.accepted(&o, B64_ID, "client_secret_jwt");
}

/// RFC 7515 Appendix A.1.
const A1_JWS: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A1_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

#[tokio::test]
async fn j14_rfc7515_a1_vector() {
    use hmac::Mac;
    // The vector itself is a valid HS256 JWS ...
    let (input, sig) = A1_JWS.rsplit_once('.').unwrap();
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(&URL_SAFE_NO_PAD.decode(A1_KEY).unwrap())
            .unwrap();
    mac.update(input.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap())
        .expect("RFC 7515 A.1 verifies");
    // ... but as a client assertion it is expired and has no sub, aud or jti.
    let rig = Rig::start().await;
    ic(&rig.send(jwt_form(A1_JWS)).await);
}

#[tokio::test]
async fn j15_expired_beyond_and_within_leeway() {
    let rig = Rig::start().await;
    let t = now();
    let a = claims_with(|c| {
        c.insert("iat".into(), json!(t - 120));
        c.insert("exp".into(), json!(t - 60));
    });
    ic(&rig.send(jwt_form(&a)).await);
    // Leeway is 30 s: expired 10 s ago is still accepted.
    let a = claims_with(|c| {
        c.insert("iat".into(), json!(t - 70));
        c.insert("exp".into(), json!(t - 10));
    });
    let o = rig.send(jwt_form(&a)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[tokio::test]
async fn j16_exp_missing_or_a_string() {
    let rig = Rig::start().await;
    let t = now();
    for exp in [None, Some(json!((t + 60).to_string())), Some(json!(null))] {
        let a = claims_with(|c| match exp {
            None => {
                c.remove("exp");
            }
            Some(v) => {
                c.insert("exp".into(), v);
            }
        });
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j18_iat_too_old_in_future_or_missing_with_far_exp() {
    let rig = Rig::start().await;
    let t = now();
    // max_age 5 min (+ 30 s leeway).
    let old = claims_with(|c| {
        c.insert("iat".into(), json!(t - 400));
        c.insert("exp".into(), json!(t + 60));
    });
    ic(&rig.send(jwt_form(&old)).await);
    let future = claims_with(|c| {
        c.insert("iat".into(), json!(t + 120));
        c.insert("exp".into(), json!(t + 180));
    });
    ic(&rig.send(jwt_form(&future)).await);
    let no_iat_far_exp = claims_with(|c| {
        c.remove("iat");
        c.insert("exp".into(), json!(t + 3600));
    });
    ic(&rig.send(jwt_form(&no_iat_far_exp)).await);
    // Without iat, an exp within max_age is fine.
    let no_iat = claims_with(|c| {
        c.remove("iat");
        c.insert("exp".into(), json!(t + 60));
    });
    let o = rig.send(jwt_form(&no_iat)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[tokio::test]
async fn j19_nbf_in_the_future() {
    let rig = Rig::start().await;
    let t = now();
    let a = claims_with(|c| {
        c.insert("nbf".into(), json!(t + 120));
    });
    ic(&rig.send(jwt_form(&a)).await);
    let a = claims_with(|c| {
        c.insert("nbf".into(), json!("soon"));
    });
    ic(&rig.send(jwt_form(&a)).await);
}

#[tokio::test]
async fn j20_jti_missing() {
    let rig = Rig::start().await;
    for jti in [None, Some(json!("")), Some(json!(12345))] {
        let a = claims_with(|c| match jti {
            None => {
                c.remove("jti");
            }
            Some(v) => {
                c.insert("jti".into(), v);
            }
        });
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j21_replayed_jti() {
    let rig = Rig::start().await;
    let a = assertion();
    let o = rig.send(jwt_form(&a)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
    ic(&rig.send(jwt_form(&a)).await);
    // A different assertion reusing the jti is a replay too.
    let jti = {
        let payload = a.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["jti"].clone()
    };
    let again = claims_with(|c| {
        c.insert("jti".into(), jti);
        c.insert("aud".into(), json!(ISSUER));
    });
    ic(&rig.send_h2(jwt_form(&again)).await);
}

#[tokio::test]
async fn j23_sub_missing_or_unknown_client() {
    let rig = Rig::start().await;
    let a = claims_with(|c| {
        c.remove("sub");
    });
    ic(&rig.send(jwt_form(&a)).await);
    let a = claims_with(|c| {
        c.insert("sub".into(), json!("ghost"));
        c.insert("iss".into(), json!("ghost"));
    });
    ic(&rig.send(jwt_form(&a)).await);
    // A client registered for another method, MAC keyed with its own secret.
    let mut c = jwt_claims();
    c["iss"] = json!(POST_ID);
    c["sub"] = json!(POST_ID);
    ic(&rig
        .send(jwt_form(&mint(hs256(), c, POST_SECRET.as_bytes())))
        .await);
}

#[tokio::test]
async fn j24_iss_differs_from_sub() {
    let rig = Rig::start().await;
    for iss in [Some(json!("someone-else")), None, Some(json!(ISSUER))] {
        let a = claims_with(|c| match iss {
            None => {
                c.remove("iss");
            }
            Some(v) => {
                c.insert("iss".into(), v);
            }
        });
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j25_body_client_id_differs_from_sub() {
    let rig = Rig::start().await;
    for id in [POST_ID, "nobody"] {
        let body = format!("{}&client_id={id}", assertion_body(&assertion()));
        ir(&rig.send(form(TOKEN_PATH, &body)).await);
    }
}

#[tokio::test]
async fn j27_assertion_type_missing_or_wrong_or_empty_assertion() {
    let rig = Rig::start().await;
    let enc = secretgate::auth::form::form_encode_component;
    for body in [
        format!("{GRANT}&client_assertion={}", assertion()),
        format!(
            "{GRANT}&client_assertion_type={}&client_assertion={}",
            enc("urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
            assertion()
        ),
        format!(
            "{GRANT}&client_assertion_type={}&client_assertion={}",
            enc("URN:IETF:PARAMS:OAUTH:CLIENT-ASSERTION-TYPE:JWT-BEARER"),
            assertion()
        ),
        format!(
            "{GRANT}&client_assertion_type=&client_assertion={}",
            assertion()
        ),
        format!(
            "{GRANT}&client_assertion_type={}&client_assertion=",
            enc(ASSERTION_TYPE)
        ),
        format!("{GRANT}&client_assertion_type={}", enc(ASSERTION_TYPE)),
    ] {
        ir(&rig.send(form(TOKEN_PATH, &body)).await);
    }
}

#[tokio::test]
async fn j28_assertion_plus_basic_or_secret_or_repeated() {
    let rig = Rig::start().await;
    // Plus Basic.
    ir(&rig
        .send(with_auth(
            &basic(BASIC_ID, BASIC_SECRET),
            &assertion_body(&assertion()),
        ))
        .await);
    ir(&rig
        .send(with_auth(
            &basic(JWT_ID, JWT_SECRET),
            &assertion_body(&assertion()),
        ))
        .await);
    // Plus client_secret.
    let body = format!(
        "{}&client_id={JWT_ID}&client_secret={JWT_SECRET}",
        assertion_body(&assertion())
    );
    ir(&rig.send(form(TOKEN_PATH, &body)).await);
    // Assertion repeated (twice the same, or two different ones).
    let a = assertion();
    let body = format!("{}&client_assertion={a}", assertion_body(&a));
    ir(&rig.send(form(TOKEN_PATH, &body)).await);
    let body = format!(
        "{}&client_assertion={}",
        assertion_body(&assertion()),
        assertion()
    );
    ir(&rig.send(form(TOKEN_PATH, &body)).await);
    // Assertion type repeated.
    let body = format!(
        "{}&client_assertion_type={}",
        assertion_body(&assertion()),
        secretgate::auth::form::form_encode_component(ASSERTION_TYPE)
    );
    ir(&rig.send(form(TOKEN_PATH, &body)).await);
}

#[tokio::test]
async fn j29_unparseable_assertion() {
    let rig = Rig::start().await;
    ir(&rig.send(jwt_form("this.notatall.valid")).await);
}

/// Turns a valid assertion into a structurally broken one.
type Mangle = Box<dyn Fn(&str) -> String>;

#[tokio::test]
async fn j30_two_or_four_segments_padding_whitespace() {
    let rig = Rig::start().await;
    let enc = secretgate::auth::form::form_encode_component;
    let cases: Vec<Mangle> = vec![
        // Two segments.
        Box::new(|a: &str| a.rsplit_once('.').unwrap().0.to_owned()),
        // Four segments.
        Box::new(|a: &str| format!("{a}.{}", a.split('.').nth(2).unwrap())),
        Box::new(|a: &str| format!("{a}.")),
        // `=` padding on the signature (32 bytes: one `=`), and on every segment.
        Box::new(|a: &str| format!("{a}=")),
        Box::new(|a: &str| {
            a.split('.')
                .map(|s| format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4)))
                .collect::<Vec<_>>()
                .join(".")
        }),
        // Whitespace: inside, leading, trailing, a trailing newline.
        Box::new(|a: &str| a.replacen('.', ". ", 1)),
        Box::new(|a: &str| format!(" {a}")),
        Box::new(|a: &str| format!("{a} ")),
        Box::new(|a: &str| format!("{a}\n")),
        Box::new(|a: &str| a.replacen('.', "\r\n.", 1)),
    ];
    for case in cases {
        // A fresh, otherwise valid assertion each time: acceptance would show as a 200.
        let bad = case(&assertion());
        let body = format!(
            "{GRANT}&client_assertion_type={}&client_assertion={}",
            enc(ASSERTION_TYPE),
            enc(&bad)
        );
        let o = rig.send(form(TOKEN_PATH, &body)).await;
        assert_eq!(o.reply.status, StatusCode::BAD_REQUEST, "{bad:?}");
        ir(&o);
    }
}

#[tokio::test]
async fn j34_tampered_payload() {
    let rig = Rig::start().await;
    let a = assertion();
    let mut parts: Vec<String> = a.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(now() + 240);
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    ic(&rig.send(jwt_form(&parts.join("."))).await);
    // Tampered signature, and a header swapped for another alg's.
    let mut sig = URL_SAFE_NO_PAD
        .decode(a.split('.').nth(2).unwrap())
        .unwrap();
    sig[0] ^= 1;
    let (input, _) = a.rsplit_once('.').unwrap();
    ic(&rig
        .send(jwt_form(&format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(sig)
        )))
        .await);
    let h384 = URL_SAFE_NO_PAD.encode(json!({"alg": "HS384"}).to_string());
    let (_, rest) = a.split_once('.').unwrap();
    ic(&rig.send(jwt_form(&format!("{h384}.{rest}"))).await);
    // The untouched assertion still works: the rejections were about the tampering.
    let o = rig.send(jwt_form(&a)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[test]
fn j35_short_jwt_secret_is_a_config_error() {
    let pki = Pki::generate();
    let upstream = "127.0.0.1:9".parse().unwrap();
    let short = "a".repeat(31);
    let extra = format!(
        "  - client_id: shortjwt\n    auth_method: client_secret_jwt\n    secrets: [{{ value: \"{short}\" }}]\n"
    );
    let err = secretgate::Config::from_yaml(&config_yaml(&pki, upstream, &extra), pki.path())
        .expect_err("a 31-byte jwt secret is refused");
    let problems = err.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("clients[3]") && p.contains("shortjwt")),
        "the problem names the client: {problems:?}"
    );
    assert!(
        problems.iter().all(|p| !p.contains(&short)),
        "the secret itself is not printed: {problems:?}"
    );
    // 32 bytes is enough; the same short secret is fine for a Basic client.
    let ok = format!(
        "  - client_id: okjwt\n    auth_method: client_secret_jwt\n    secrets: [{{ value: \"{}\" }}]\n  - client_id: shortbasic\n    auth_method: client_secret_basic\n    secrets: [{{ value: \"{short}\" }}]\n",
        "a".repeat(32)
    );
    secretgate::Config::from_yaml(&config_yaml(&pki, upstream, &ok), pki.path())
        .expect("32 bytes is enough");
    // And the CLI refuses to start on it.
    let path = pki.path().join("short.yaml");
    std::fs::write(&path, config_yaml(&pki, upstream, &extra)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shortjwt"));
}
