//! Public clients, PKCE and endpoint kinds over real TLS (issue 18, docs/design.md §2.12,
//! §2.13), against a recording upstream that keeps every byte.
//!
//! - A public client (`auth_method: none`) gets tokens with `client_id` and no credential
//!   at every kind of endpoint but introspection; the signed header says `none`.
//! - Every refusal (no or malformed `code_verifier`, a credential from a public client,
//!   a grant type the client may not use, introspection, PAR or authorize without a
//!   valid S256 challenge, `pkce.required: all`) answers its status and error, and the
//!   upstream receives nothing.
//! - The authorization endpoint passes what it should (a valid challenge, `request_uri`,
//!   a confidential client under `required: public`) untouched, and the upstream's 302
//!   with the code comes back untouched.
//! - The discovery documents say what is enforced; every endpoint kind has its
//!   lookalikes refused and its containment applied.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use secretgate::{verify_internal_header, Expected};
use support::*;

const INTERNAL: &str = "x-authenticated-client";
const FORM: &str = "application/x-www-form-urlencoded";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const WEB_SECRET: &str = "web-secret-0123456789";
const REDIRECT: &str = "https://app.example.com/callback";

/// Two public clients (one restricted to the code grant) and a confidential client
/// restricted to client credentials, next to the support rig's Basic, post and jwt ones.
const CLIENTS: &str = r#"  - { client_id: spa, auth_method: none }
  - { client_id: cli, auth_method: none, grant_types: [authorization_code] }
  - { client_id: web, auth_method: client_secret_basic, secrets: [{ value: "web-secret-0123456789" }], grant_types: [client_credentials] }
"#;

struct Rig {
    upstream: RecordingUpstream,
    gw: Gateway,
}

impl Rig {
    async fn start(extra: &str) -> Rig {
        Self::with(Behaviour::Token, extra).await
    }

    async fn with(behaviour: Behaviour, extra: &str) -> Rig {
        let upstream = RecordingUpstream::start(behaviour).await;
        let gw = Gateway::start_with(upstream.addr, &format!("{CLIENTS}{extra}")).await;
        Rig { upstream, gw }
    }

    /// Sends over a fresh connection; returns the reply and what reached the upstream.
    async fn send(&self, req: Request<Full<Bytes>>) -> (Reply, Option<Recorded>) {
        let before = self.upstream.records().len();
        let reply = self.gw.send(req).await;
        let records = self.upstream.records();
        assert!(records.len() <= before + 1, "forwarded more than once");
        (reply, records.get(before).cloned())
    }

    /// Sends `req`, which must be forwarded (200 from the upstream): returns what the
    /// upstream received.
    async fn forwarded(&self, what: &str, req: Request<Full<Bytes>>) -> Recorded {
        let (reply, rec) = self.send(req).await;
        assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
        assert_eq!(reply.headers["x-upstream"], "yes", "{what}");
        rec.unwrap_or_else(|| panic!("{what}: not forwarded"))
    }

    /// Sends `req`, which the gateway must refuse with `status` and `error`.
    async fn refused(
        &self,
        what: &str,
        req: Request<Full<Bytes>>,
        status: u16,
        error: &str,
    ) -> Reply {
        let (reply, rec) = self.send(req).await;
        assert_eq!(reply.status.as_u16(), status, "{what}: {:?}", reply.body);
        assert_eq!(reply.headers["content-type"], "application/json", "{what}");
        assert_eq!(reply.headers["cache-control"], "no-store", "{what}");
        assert!(reply.headers.get("x-upstream").is_none(), "{what}");
        // Never a redirect: the gateway cannot check redirect_uri.
        assert!(reply.headers.get("location").is_none(), "{what}");
        assert_eq!(reply.error(), error, "{what}: {:?}", reply.body);
        assert!(rec.is_none(), "{what}: reached the upstream");
        reply
    }

    /// The claims of the one internal header `rec` carries, verified against `rec`.
    fn claims(&self, rec: &Recorded) -> secretgate::InternalClaims {
        let values: Vec<_> = rec.headers.get_all(INTERNAL).iter().collect();
        assert_eq!(values.len(), 1, "exactly one internal header");
        verify_internal_header(
            values[0].to_str().unwrap(),
            &secretgate::verify::keys_of(&self.gw.config.internal_header.keys),
            &Expected {
                now: Some(now()),
                ..Expected::request(
                    "secretgate",
                    "legacy-token-service",
                    rec.method.as_str(),
                    &format!("{PUBLIC_URL}{}", rec.uri.path()),
                    rec.uri.query(),
                    &rec.body,
                )
            },
        )
        .expect("the internal header verifies")
    }

    async fn metric(&self, series: &str) -> f64 {
        sample(&self.gw.metrics().await, series)
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

fn authorize(query: &str) -> Request<Full<Bytes>> {
    get(&format!("/oauth2/authorize?{query}"))
}

fn code_exchange(client: &str, verifier: Option<&str>) -> String {
    let mut body = format!(
        "grant_type=authorization_code&code=abc123&redirect_uri={}&client_id={client}",
        secretgate::auth::form::form_encode_component(REDIRECT)
    );
    if let Some(v) = verifier {
        body.push_str(&format!("&code_verifier={v}"));
    }
    body
}

fn authorize_query(client: &str, challenge: Option<(&str, Option<&str>)>) -> String {
    let mut q = format!("response_type=code&client_id={client}&state=xyz&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback");
    if let Some((c, method)) = challenge {
        q.push_str(&format!("&code_challenge={c}"));
        if let Some(m) = method {
            q.push_str(&format!("&code_challenge_method={m}"));
        }
    }
    q
}

#[tokio::test]
async fn a_public_client_uses_every_endpoint_but_introspection() {
    let rig = Rig::start("").await;
    let requests = [
        ("code exchange", "/oauth2/token", code_exchange("spa", Some(VERIFIER))),
        (
            "refresh",
            "/oauth2/token",
            "grant_type=refresh_token&refresh_token=rt-1&client_id=spa".to_owned(),
        ),
        (
            "device code",
            "/oauth2/token",
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=dc&client_id=spa"
                .to_owned(),
        ),
        (
            "revocation",
            "/oauth2/revoke",
            "token=rt-1&token_type_hint=refresh_token&client_id=spa".to_owned(),
        ),
        (
            "device authorization",
            "/oauth2/device_authorization",
            "client_id=spa&scope=read".to_owned(),
        ),
        (
            "PAR",
            "/oauth2/par",
            format!(
                "response_type=code&client_id=spa&redirect_uri=x&code_challenge={CHALLENGE}&code_challenge_method=S256"
            ),
        ),
    ];
    for (what, path, body) in requests {
        let rec = rig.forwarded(what, form(path, &body)).await;
        assert_eq!(rec.uri.path(), path, "{what}");
        let claims = rig.claims(&rec);
        assert_eq!(claims.client_id, "spa", "{what}");
        assert_eq!(claims.auth_method, "none", "{what}");
        assert!(claims.cnf.is_none(), "{what}");
        // The body is forwarded whole (it held no secret), client_id included once.
        let sent: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let got: Vec<(String, String)> = form_urlencoded::parse(&rec.body).into_owned().collect();
        assert_eq!(got, sent, "{what}");
        assert!(rec.headers.get("authorization").is_none(), "{what}");
    }
    let m = rig.gw.metrics().await;
    assert_eq!(
        sample(
            &m,
            "secretgate_authentications_total{method=\"none\",outcome=\"ok\"}"
        ),
        6.0
    );
}

#[tokio::test]
async fn refusals_for_public_clients_reach_the_upstream_with_nothing() {
    let rig = Rig::start("").await;
    let token = |body: String| form(TOKEN_PATH, &body);
    let assertion = {
        let mut claims = jwt_claims();
        claims["iss"] = "spa".into();
        claims["sub"] = "spa".into();
        mint(hs256(), claims, JWT_SECRET.as_bytes())
    };
    let long = "a".repeat(129);
    let short = "a".repeat(42);
    let cases: Vec<(&str, Request<Full<Bytes>>, u16, &str)> = vec![
        ("no verifier", token(code_exchange("spa", None)), 400, "invalid_request"),
        ("empty verifier", token(code_exchange("spa", Some(""))), 400, "invalid_request"),
        ("42-character verifier", token(code_exchange("spa", Some(&short))), 400, "invalid_request"),
        ("129-character verifier", token(code_exchange("spa", Some(&long))), 400, "invalid_request"),
        (
            "verifier with +",
            token(code_exchange("spa", Some(&format!("{}%2B", &VERIFIER[..42])))),
            400,
            "invalid_request",
        ),
        (
            "verifier with a space",
            token(code_exchange("spa", Some(&format!("{}+", &VERIFIER[..42])))),
            400,
            "invalid_request",
        ),
        (
            "verifier with /",
            token(code_exchange("spa", Some(&format!("{}%2F", &VERIFIER[..42])))),
            400,
            "invalid_request",
        ),
        (
            "client_secret from a public client",
            token(format!("{}&client_secret=guess-0123456789", code_exchange("spa", Some(VERIFIER)))),
            401,
            "invalid_client",
        ),
        (
            "client_credentials for a public client",
            token("grant_type=client_credentials&client_id=spa".to_owned()),
            400,
            "unauthorized_client",
        ),
        (
            "password grant: outside the public default",
            token("grant_type=password&username=u&password=p&client_id=spa".to_owned()),
            400,
            "unauthorized_client",
        ),
        (
            "refresh outside cli's grant_types",
            token("grant_type=refresh_token&refresh_token=r&client_id=cli".to_owned()),
            400,
            "unauthorized_client",
        ),
        (
            "no grant_type for a restricted client",
            token("code=abc&client_id=spa".to_owned()),
            400,
            "invalid_request",
        ),
        (
            "a confidential client outside its grant_types",
            post(
                TOKEN_PATH,
                Some(FORM),
                &[("authorization", &basic("web", WEB_SECRET))],
                code_exchange("web", None),
            ),
            400,
            "unauthorized_client",
        ),
        (
            "introspection by a public client",
            form("/oauth2/introspect", "token=at-1&client_id=spa"),
            401,
            "invalid_client",
        ),
        (
            "PAR without a challenge",
            form("/oauth2/par", "response_type=code&client_id=spa&redirect_uri=x"),
            400,
            "invalid_request",
        ),
        (
            "PAR with a plain challenge",
            form(
                "/oauth2/par",
                &format!("response_type=code&client_id=spa&code_challenge={VERIFIER}&code_challenge_method=plain"),
            ),
            400,
            "invalid_request",
        ),
        (
            "an assertion for a public client",
            form(TOKEN_PATH, &assertion_body(&assertion)),
            401,
            "invalid_client",
        ),
    ];
    for (what, req, status, error) in cases {
        rig.refused(what, req, status, error).await;
    }
    // Basic from a public client, with an empty password or a guessed one: the failure
    // names the scheme used (RFC 6749 §5.2).
    for secret in ["", "guess-0123456789"] {
        let reply = rig
            .refused(
                &format!("Basic spa:{secret}"),
                post(
                    TOKEN_PATH,
                    Some(FORM),
                    &[("authorization", &basic_raw(&format!("spa:{secret}")))],
                    code_exchange("spa", Some(VERIFIER)),
                ),
                401,
                "invalid_client",
            )
            .await;
        assert!(reply.has_basic_challenge());
    }
    let m = rig.gw.metrics().await;
    // (An empty verifier is an absent one, RFC 6749 §3.1.)
    for (reason, n) in [("missing_verifier", 2.0), ("malformed_verifier", 5.0)] {
        assert_eq!(
            sample(
                &m,
                &format!(
                    "secretgate_pkce_refusals_total{{endpoint=\"token\",reason=\"{reason}\"}}"
                )
            ),
            n,
            "{reason}"
        );
    }
    assert_eq!(
        sample(
            &m,
            "secretgate_pkce_refusals_total{endpoint=\"par\",reason=\"missing_challenge\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "secretgate_authentications_total{method=\"none\",outcome=\"unauthorized_client\"}"
        ),
        3.0
    );
    assert!(rig.upstream.records().is_empty());
    // The right exchange still goes through: nothing refused consumed anything.
    rig.forwarded(
        "the right exchange",
        form(TOKEN_PATH, &code_exchange("spa", Some(VERIFIER))),
    )
    .await;
}

/// `Authorization: Basic` with exactly this text base64-encoded (no form-encoding).
fn basic_raw(raw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[tokio::test]
async fn authorize_requires_an_s256_challenge_for_public_clients() {
    let rig = Rig::with(
        Behaviour::Found("https://app.example.com/callback?code=c0de&state=xyz"),
        "",
    )
    .await;
    let short = &CHALLENGE[..42];
    let object = |claims: serde_json::Value| {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };
    let refusals: Vec<(&str, Request<Full<Bytes>>)> = vec![
        ("no challenge", authorize(&authorize_query("spa", None))),
        (
            "plain",
            authorize(&authorize_query("spa", Some((VERIFIER, Some("plain"))))),
        ),
        (
            "no method (plain)",
            authorize(&authorize_query("spa", Some((CHALLENGE, None)))),
        ),
        (
            "short challenge",
            authorize(&authorize_query("spa", Some((short, Some("S256"))))),
        ),
        (
            "method in lower case",
            authorize(&authorize_query("spa", Some((CHALLENGE, Some("s256"))))),
        ),
        (
            "the id spelled in capitals",
            authorize(&authorize_query("SPA", None)),
        ),
        (
            "the parameter name spelled leniently",
            authorize(&authorize_query("spa", None).replace("client_id", "Client_Id")),
        ),
        (
            "a second challenge under a lenient spelling",
            authorize(&format!(
                "{}&Code_Challenge={short}",
                authorize_query("spa", Some((CHALLENGE, Some("S256"))))
            )),
        ),
        (
            "a request object without the challenge",
            authorize(&format!(
                "{}&request={}",
                authorize_query("spa", Some((CHALLENGE, Some("S256")))),
                object(serde_json::json!({"client_id": "spa", "response_type": "code"}))
            )),
        ),
        (
            "a request object naming the public client behind a confidential one",
            authorize(&format!(
                "response_type=code&client_id=web&request={}",
                object(serde_json::json!({"client_id": "spa"}))
            )),
        ),
        (
            "POST without a challenge",
            post(
                "/oauth2/authorize",
                Some(FORM),
                &[],
                authorize_query("spa", None),
            ),
        ),
        (
            "POST: the challenge in the query, another in the body",
            post(
                &format!("/oauth2/authorize?code_challenge={CHALLENGE}&code_challenge_method=S256"),
                Some(FORM),
                &[],
                authorize_query("spa", Some((short, Some("S256")))),
            ),
        ),
    ];
    for (what, req) in refusals {
        rig.refused(what, req, 400, "invalid_request").await;
    }
    let m = rig.gw.metrics().await;
    assert_eq!(
        sample(&m, "secretgate_pkce_refusals_total{endpoint=\"authorization\",reason=\"missing_challenge\"}"),
        5.0
    );
    assert_eq!(
        sample(&m, "secretgate_pkce_refusals_total{endpoint=\"authorization\",reason=\"method_not_allowed\"}"),
        3.0
    );

    // Passed untouched: a valid challenge (query, and POST form), a PAR request_uri, a
    // confidential client, an unknown one; and the upstream's 302 comes back as it was.
    let object_ok = object(serde_json::json!({
        "client_id": "spa", "code_challenge": CHALLENGE, "code_challenge_method": "S256"
    }));
    let passes = [
        authorize_query("spa", Some((CHALLENGE, Some("S256")))),
        "client_id=spa&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Abwc4JK".to_owned(),
        authorize_query("web", None),
        authorize_query("someone-else", None),
        format!("client_id=spa&request={object_ok}"),
    ];
    for query in passes {
        let (reply, rec) = rig.send(authorize(&query)).await;
        assert_eq!(reply.status, StatusCode::FOUND, "{query}: {:?}", reply.body);
        assert_eq!(
            reply.headers["location"], "https://app.example.com/callback?code=c0de&state=xyz",
            "{query}"
        );
        let rec = rec.expect("forwarded");
        assert_eq!(
            rec.uri.path_and_query().unwrap().as_str(),
            format!("/oauth2/authorize?{query}")
        );
        assert!(
            rec.headers.get(INTERNAL).is_none(),
            "the front channel is not signed"
        );
    }
    let body = authorize_query("spa", Some((CHALLENGE, Some("S256"))));
    let (reply, rec) = rig
        .send(post("/oauth2/authorize", Some(FORM), &[], body.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::FOUND, "{:?}", reply.body);
    assert_eq!(
        rec.expect("forwarded").body,
        body.as_bytes(),
        "the body as sent"
    );
}

#[tokio::test]
async fn pkce_required_all_and_off() {
    let all = Rig::start("pkce: { required: all }").await;
    let basic_exchange = |verifier| {
        post(
            TOKEN_PATH,
            Some(FORM),
            &[("authorization", &basic(BASIC_ID, BASIC_SECRET))],
            code_exchange(BASIC_ID, verifier),
        )
    };
    all.refused(
        "confidential code exchange without verifier",
        basic_exchange(None),
        400,
        "invalid_request",
    )
    .await;
    all.refused(
        "authorize for a confidential client without a challenge",
        authorize(&authorize_query(BASIC_ID, None)),
        400,
        "invalid_request",
    )
    .await;
    all.refused(
        "authorize naming no client",
        authorize("response_type=code"),
        400,
        "invalid_request",
    )
    .await;
    let rec = all
        .forwarded(
            "confidential exchange with verifier",
            basic_exchange(Some(VERIFIER)),
        )
        .await;
    assert_eq!(all.claims(&rec).auth_method, "client_secret_basic");
    all.forwarded(
        "authorize for a confidential client with a challenge",
        authorize(&authorize_query(BASIC_ID, Some((CHALLENGE, Some("S256"))))),
    )
    .await;

    let off = Rig::start("pkce: { required: off }").await;
    off.forwarded(
        "authorize without a challenge",
        authorize(&authorize_query("spa", None)),
    )
    .await;
    off.forwarded(
        "exchange without a verifier",
        form(TOKEN_PATH, &code_exchange("spa", None)),
    )
    .await;
    // Off: the gateway still refuses what public clients may never do.
    off.refused(
        "client_credentials for a public client",
        form(TOKEN_PATH, "grant_type=client_credentials&client_id=spa"),
        400,
        "unauthorized_client",
    )
    .await;
}

#[tokio::test]
async fn discovery_documents_state_none_and_pkce() {
    let document = r#"{"issuer":"https://auth.example.com","revocation_endpoint":"https://auth.example.com/oauth2/revoke","introspection_endpoint":"https://auth.example.com/oauth2/introspect","token_endpoint_auth_methods_supported":["client_secret_basic","private_key_jwt"],"introspection_endpoint_auth_methods_supported":["none"],"code_challenge_methods_supported":["plain","S256"]}"#;
    let rig = Rig::with(
        Behaviour::Document {
            content_type: "application/json",
            body: Bytes::from_static(document.as_bytes()),
        },
        "",
    )
    .await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let (reply, _) = rig.send(get(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let json = reply.json();
        let methods = [
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "none",
        ];
        assert_eq!(
            json["token_endpoint_auth_methods_supported"],
            serde_json::json!(methods),
            "{path}"
        );
        assert_eq!(
            json["revocation_endpoint_auth_methods_supported"],
            serde_json::json!(methods),
            "{path}"
        );
        assert_eq!(
            json["introspection_endpoint_auth_methods_supported"],
            serde_json::json!([
                "client_secret_basic",
                "client_secret_post",
                "client_secret_jwt"
            ]),
            "{path}"
        );
        assert_eq!(
            json["code_challenge_methods_supported"],
            serde_json::json!(["S256"]),
            "{path}"
        );
        assert_eq!(json["issuer"], "https://auth.example.com", "{path}");
    }
}

/// Lookalikes of every kind's path are refused, and the authorization endpoint refuses
/// credentials as any path that does not authenticate does.
#[tokio::test]
async fn every_endpoint_kind_has_its_lookalikes_refused_and_containment() {
    let rig = Rig::start("").await;
    for path in [
        "/oauth2/introspect",
        "/oauth2/revoke",
        "/oauth2/par",
        "/oauth2/device_authorization",
        "/oauth2/authorize",
    ] {
        let (dir, last) = path.rsplit_once('/').unwrap();
        let first = last.chars().next().unwrap();
        let lookalikes = [
            format!("{path};x"),
            format!("{path};jsessionid=1"),
            format!("{dir}/{}", last.to_uppercase()),
            format!("{path}."),
            format!("{path}%20"),
            format!("{path}::$DATA"),
            format!("{path}.json"),
            format!("{dir}/%25{:02X}{}", first as u8, &last[1..]),
            format!("{dir}/x/%252e%252e/{last}"),
            format!(
                "{dir}/%EF%BD{:02X}{}",
                (first as u8 - b'a' + 0x81),
                &last[1..]
            ),
        ];
        for lookalike in lookalikes {
            for req in [
                form(&lookalike, "client_id=spa&token=x"),
                post(
                    &lookalike,
                    Some(FORM),
                    &[("authorization", &basic(BASIC_ID, BASIC_SECRET))],
                    "token=x",
                ),
                get(&format!("{lookalike}?{}", authorize_query("spa", None))),
            ] {
                let reply = rig.refused(&lookalike, req, 400, "invalid_request").await;
                assert_eq!(
                    reply.json()["error_description"],
                    "The request path is not in canonical form.",
                    "{lookalike}"
                );
            }
        }
    }
    let credentials_refused =
        "Client credentials are accepted only by the endpoints that authenticate clients.";
    let ok = authorize_query("spa", Some((CHALLENGE, Some("S256"))));
    let boundary = "------------------------d74496d66958873e";
    let contained = [
        ("Basic at authorize", Request::get(format!("/oauth2/authorize?{ok}")).header("authorization", basic(BASIC_ID, BASIC_SECRET)).body(Full::new(Bytes::new())).unwrap()),
        ("client_secret in the query", authorize(&format!("{ok}&client_secret={POST_SECRET}"))),
        ("Client.Secret in the query", authorize(&format!("{ok}&Client.Secret={POST_SECRET}"))),
        ("client_assertion in a form body", post("/oauth2/authorize", Some(FORM), &[], format!("{ok}&client_assertion=a.b.c"))),
        (
            "client_secret in a multipart body",
            post(
                "/oauth2/authorize",
                Some(&format!("multipart/form-data; boundary={boundary}")),
                &[],
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"client_secret\"\r\n\r\n{POST_SECRET}\r\n--{boundary}--\r\n"),
            ),
        ),
    ];
    for (what, req) in contained {
        let reply = rig.refused(what, req, 400, "invalid_request").await;
        assert_eq!(
            reply.json()["error_description"],
            credentials_refused,
            "{what}"
        );
    }
    assert!(rig.upstream.records().is_empty());
    assert_eq!(
        rig.metric("secretgate_requests_total{route=\"authorization\",status=\"400\"}")
            .await,
        5.0
    );
}
