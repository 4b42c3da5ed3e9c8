//! Tests of loading and validating configurations: every problem found, with its key path.

use super::*;

/// The shipped example uses every key: it must parse (no unknown or misspelt key), and
/// the only problems must be the files and variables it points to on a real host.
#[test]
fn example_config_has_only_missing_file_problems() {
    let text = include_str!("../../config/secretgate.yaml");
    let err = Config::from_yaml(text, Path::new("/nonexistent")).unwrap_err();
    let ConfigError::Invalid(problems) = err else {
        panic!("example config does not parse: {err}");
    };
    for p in &problems {
        assert!(
            p.message.starts_with("no such file")
                || p.message.starts_with("no such directory")
                || p.message.starts_with("cannot read")
                || p.message.contains("is not set"),
            "unexpected problem in the example: {p}"
        );
    }
    assert!(problems.iter().any(|p| p.path == "tls.cert_file"));
    assert!(problems
        .iter()
        .any(|p| p.path == "clients[1].secrets[0].env"));
}

#[test]
fn unknown_and_duplicate_keys_are_rejected() {
    let err = Config::from_yaml("listen: a\nlisten: b\n", Path::new(".")).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)), "{err}");
    let err = Config::from_yaml("lisen: a\n", Path::new(".")).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)), "{err}");
    assert!(err.problems()[0].contains("lisen"), "{:?}", err.problems());
    let err = Config::from_yaml("limits: { max_bdy: 1KiB }\n", Path::new(".")).unwrap_err();
    assert!(
        err.problems()[0].contains("max_bdy"),
        "{:?}",
        err.problems()
    );
}

#[test]
fn missing_required_keys_are_all_listed() {
    let err = Config::from_yaml("{}", Path::new(".")).unwrap_err();
    let problems = err.problems();
    for key in [
        "listen",
        "tls",
        "upstream",
        "public_url",
        "issuer",
        "internal_header",
        "clients",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(key)),
            "{key} not reported in {problems:?}"
        );
    }
}

/// Certificate clients (RFC 8705): every misuse is a problem naming its key.
#[test]
fn certificate_clients_are_checked_with_their_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not.pem"), "no certificate here").unwrap();
    let problems = |tls_extra: &str, clients: &str| {
        let yaml = format!("tls: {{ cert_file: c, key_file: k{tls_extra} }}\nclients:\n{clients}");
        Config::from_yaml(&yaml, dir.path()).unwrap_err().problems()
    };
    let has = |problems: &[String], want: &str| {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "{want} not in {problems:#?}"
        )
    };
    let p = problems(
        "",
        r#"  - { client_id: a, auth_method: tls_client_auth, tls_client_auth_subject_dn: "CN=a" }
  - { client_id: b, auth_method: self_signed_tls_client_auth, certificates: [{ file: not.pem }] }
  - { client_id: c, auth_method: client_secret_basic, secrets: [{ value: s }], tls_client_auth_san_dns: c.example, certificates: [{ file: x }] }
"#,
    );
    has(
        &p,
        "clients[0].auth_method: tls_client_auth needs `tls.client_auth.ca_file`",
    );
    has(
        &p,
        "clients[1].auth_method: self_signed_tls_client_auth needs `tls.client_auth`",
    );
    has(&p, "clients[1].certificates[0].file: ");
    assert!(p
        .iter()
        .any(|p| p.ends_with("not.pem holds no PEM certificate")));
    has(
        &p,
        "clients[2].tls_client_auth_san_dns: only tls_client_auth clients",
    );
    has(
        &p,
        "clients[2].certificates: only self_signed_tls_client_auth clients",
    );

    let p = problems(
        ", client_auth: { ca_file: not.pem }",
        r#"  - { client_id: a, auth_method: tls_client_auth }
  - { client_id: b, auth_method: tls_client_auth, tls_client_auth_san_dns: b, tls_client_auth_san_uri: "urn:b" }
  - { client_id: c, auth_method: tls_client_auth, tls_client_auth_subject_dn: "CN=c,XX=1" }
  - { client_id: d, auth_method: tls_client_auth, tls_client_auth_san_ip: "10.0.0.300" }
  - { client_id: e, auth_method: tls_client_auth, tls_client_auth_san_email: "nobody", secrets: [{ value: s }] }
  - { client_id: f, auth_method: self_signed_tls_client_auth }
"#,
    );
    has(&p, "tls.client_auth.ca_file: ");
    assert!(p
        .iter()
        .any(|p| p.ends_with("not.pem holds no PEM certificate")));
    has(
        &p,
        "clients[0]: give exactly one of `tls_client_auth_subject_dn`",
    );
    has(&p, "clients[1]: give exactly one of");
    has(
        &p,
        "clients[2].tls_client_auth_subject_dn: attribute type `XX`",
    );
    has(
        &p,
        "clients[3].tls_client_auth_san_ip: `10.0.0.300` is not an IPv4 or IPv6 address",
    );
    has(
        &p,
        "clients[4].tls_client_auth_san_email: must be an e-mail address",
    );
    has(
        &p,
        "clients[4].secrets: client `e` authenticates with its TLS certificate",
    );
    has(&p, "clients[5].certificates: required key is missing");
    assert!(
        !p.iter().any(|p| p.contains("needs `tls.client_auth")),
        "ca_file was given: {p:#?}"
    );
}

#[test]
fn workers_is_auto_or_a_bounded_count() {
    let problems = |yaml: &str| {
        Config::from_yaml(yaml, Path::new("."))
            .unwrap_err()
            .problems()
            .into_iter()
            .filter(|p| p.starts_with("workers"))
            .collect::<Vec<_>>()
    };
    for ok in ["workers: auto", "workers: 1", "workers: 64"] {
        assert!(problems(ok).is_empty(), "{ok}: {:?}", problems(ok));
    }
    for bad in [
        "workers: 0",
        "workers: 5000",
        "workers: many",
        "workers: -1",
        "workers: 1.5",
    ] {
        let p = problems(bad);
        assert_eq!(p.len(), 1, "{bad}: {p:?}");
        assert!(p[0].contains("`auto` or a number from 1 to 1024"), "{p:?}");
    }
}

/// A valid base for the tests below, with `extra` appended at top level and `clients`.
fn problems_with(extra: &str, clients: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let yaml = format!(
        r#"
listen: "127.0.0.1:0"
tls: {{ cert_file: tls.crt, key_file: tls.key }}
upstream: {{ url: "http://127.0.0.1:9" }}
public_url: "https://auth.example.com"
issuer: "https://auth.example.com"
internal_header:
  keys: [{{ id: k1, value: "internal-signing-key-0123456789abcdef" }}]
{extra}
clients:
{clients}"#
    );
    match Config::from_yaml(&yaml, dir.path()) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems(),
    }
}

fn assert_problem(problems: &[String], want: &str) {
    assert!(
        problems.iter().any(|p| p.starts_with(want)),
        "{want} not in {problems:#?}"
    );
}

/// Public clients hold no credential: a secret, a hash, certificates or a certificate
/// name registered for one is a problem naming the client's key.
#[test]
fn public_clients_have_no_credential() {
    let p = problems_with(
        "",
        r#"  - { client_id: spa, auth_method: none, secrets: [{ value: s }] }
  - { client_id: cli, auth_method: none, secrets: [{ hash: "$2b$10$abcdefghijklmnopqrstuu5Ee6Gmb7Wt0nBkK7pOjB7lqNNKV0m4S" }] }
  - { client_id: tv, auth_method: none, certificates: [{ file: x.pem }] }
  - { client_id: app, auth_method: none, tls_client_auth_subject_dn: "CN=app" }
  - { client_id: ok, auth_method: none }
"#,
    );
    assert_problem(
        &p,
        "clients[0].secrets: client `spa` is public (auth_method: none)",
    );
    assert_problem(&p, "clients[1].secrets: client `cli` is public");
    assert_problem(
        &p,
        "clients[2].certificates: only self_signed_tls_client_auth clients",
    );
    assert_problem(
        &p,
        "clients[3].tls_client_auth_subject_dn: only tls_client_auth clients",
    );
    assert!(!p.iter().any(|p| p.starts_with("clients[4]")), "{p:#?}");
    assert_eq!(p.len(), 4, "{p:#?}");
}

#[test]
fn grant_types_are_checked() {
    let p = problems_with(
        "",
        r#"  - { client_id: spa, auth_method: none, grant_types: [authorization_code, client_credentials] }
  - { client_id: web, auth_method: client_secret_basic, secrets: [{ value: s }], grant_types: [authorisation_code, refresh_token, refresh_token] }
  - { client_id: b2b, auth_method: client_secret_basic, secrets: [{ value: s }], grant_types: [] }
  - { client_id: ext, auth_method: client_secret_basic, secrets: [{ value: s }], grant_types: ["urn:example:grant", "urn:ietf:params:oauth:grant-type:device_code"] }
"#,
    );
    assert_problem(&p, "clients[0].grant_types[1]: client `spa` is public (auth_method: none): client_credentials needs a confidential client");
    assert_problem(
        &p,
        "clients[1].grant_types[0]: `authorisation_code` is not a grant type",
    );
    assert_problem(
        &p,
        "clients[1].grant_types[2]: `refresh_token` is listed twice",
    );
    assert_problem(&p, "clients[2].grant_types: list at least one grant type");
    assert_eq!(p.len(), 4, "{p:#?}");
}

/// `protected_paths` was renamed: `check` says how to write it as `endpoints`, with the
/// same paths under the kinds their last segment suggests.
#[test]
fn protected_paths_says_how_to_write_endpoints() {
    let p = problems_with(
        r#"protected_paths: [/oauth2/token, "/{t}/oauth2/token", /oauth2/introspect, /oauth2/revoke]"#,
        "  - { client_id: spa, auth_method: none }",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("protected_paths: was replaced by `endpoints`"),
        "{}",
        p[0]
    );
    assert!(
        p[0].ends_with(
            "Write:\n  endpoints:\n    token: [/oauth2/token, /{t}/oauth2/token]\n    introspection: [/oauth2/introspect]\n    revocation: [/oauth2/revoke]"
        ),
        "{}",
        p[0]
    );
}

/// A path may be one kind of endpoint only, read strictly or leniently, defaults
/// included.
#[test]
fn a_path_is_one_kind_of_endpoint() {
    let client = "  - { client_id: spa, auth_method: none }";
    let p = problems_with(
        "endpoints: { token: [/oauth2/token], revocation: [/OAuth2/Token] }",
        client,
    );
    assert_problem(
        &p,
        "endpoints.revocation[0]: `/OAuth2/Token` is also `/oauth2/token` under endpoints.token[0]",
    );
    // Against a default: the message says how to turn the default off.
    let p = problems_with("endpoints: { token: [/oauth2/revoke] }", client);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(
        p[0],
        "endpoints.revocation: `/oauth2/revoke` is also `/oauth2/revoke` under endpoints.token[0]: a path may be one kind of endpoint only (`revocation` keeps its default path unless listed: turn it off with `revocation: []`, or list its own path)"
    );
    let p = problems_with(
        "endpoints: { token: [/oauth2/revoke], revocation: [] }",
        client,
    );
    assert!(p.is_empty(), "{p:#?}");
    let p = problems_with("endpoints: { token: [\"/{t}/x\"], par: [/a/x] }", client);
    assert_problem(&p, "endpoints.par[0]: `/a/x` is also `/{t}/x`");
    let p = problems_with("endpoints: { token: [/a, /a] }", client);
    assert_problem(&p, "endpoints.token[1]: `/a` is listed twice as `/a`");
    let p = problems_with(
        "endpoints: { token: [], introspection: [], revocation: [], par: [], device_authorization: [] }",
        client,
    );
    assert_problem(
        &p,
        "endpoints: every endpoint that authenticates clients is turned off",
    );
}

#[test]
fn endpoints_and_pkce_defaults_and_choices() {
    let p = problems_with(
        "pkce: { required: sometimes, methods: [S256, s256, S256] }\nendpoints: { tokn: [/x] }",
        "  - { client_id: spa, auth_method: none }",
    );
    // An unknown kind is a syntax error, reported alone.
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].contains("tokn"), "{p:#?}");
    let p = problems_with(
        "pkce: { required: sometimes, methods: [S256, s256, S256] }",
        "  - { client_id: spa, auth_method: none }",
    );
    assert_problem(
        &p,
        "pkce.required: `sometimes` is not one of: public, all, off",
    );
    assert_problem(&p, "pkce.methods[1]: `s256` is not a code_challenge_method");
    assert_problem(&p, "pkce.methods[2]: `S256` is listed twice");
}

/// Internal-header keys: the algorithm must fit the key, HS256 keys are never
/// publish_only, one key must sign, `jwks_file`'s directory must exist.
#[test]
fn internal_header_keys_are_checked_with_their_names() {
    use crate::keys::generate_pem;
    use crate::oauth::AsymmetricAlgorithm::{EdDsa, Es256};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ec.pem"), generate_pem(Es256).unwrap()).unwrap();
    std::fs::write(dir.path().join("ed.pem"), generate_pem(EdDsa).unwrap()).unwrap();
    std::fs::write(
        dir.path().join("sec1.pem"),
        crate::keys::sec1_labelled_pem(),
    )
    .unwrap();
    let problems = |keys: &str| {
        let yaml = format!(
            "internal_header:\n  jwks_file: nowhere/jwks.json\n  keys:\n{keys}clients: []\n"
        );
        Config::from_yaml(&yaml, dir.path()).unwrap_err().problems()
    };
    let p = problems(
        "    - { id: a, algorithm: ES256, file: ed.pem }\n    - { id: b, algorithm: EdDSA, file: sec1.pem }\n    - { id: c, algorithm: RS256, file: ec.pem }\n    - { id: d, value: internal-signing-key-0123456789abcdef, publish_only: true }\n",
    );
    assert_problem(
        &p,
        "internal_header.keys[0]: key `a` (ES256): an Ed25519 key, but ES256 needs a P-256 key",
    );
    assert_problem(&p, "internal_header.keys[1]: key `b` (EdDSA): a SEC1 (EC PRIVATE KEY) PEM key: convert it to PKCS#8");
    assert_problem(
        &p,
        "internal_header.keys[2].algorithm: `RS256` is not one of: HS256, ES256, EdDSA",
    );
    assert_problem(
        &p,
        "internal_header.keys[3].publish_only: HS256 keys are shared, never published",
    );
    assert_problem(&p, "internal_header.jwks_file: no such directory");
    let p = problems("    - { id: a, algorithm: ES256, file: ec.pem, publish_only: true }\n");
    assert_problem(&p, "internal_header.keys: every key is publish_only");
}

/// The marker of a file `check --skip-files` did not read hides nothing when files are read:
/// a bad value that happens to contain its text is still a problem.
#[test]
fn the_skip_files_marker_in_a_value_hides_no_problem() {
    let err = Config::from_yaml_in(
        "listen: \"not read (--skip-files)\"\n",
        std::path::Path::new("/cfg"),
        &crate::config::MemoryFiles::new(),
    )
    .unwrap_err();
    assert!(
        err.problems().iter().any(|p| p.starts_with("listen:")),
        "{:?}",
        err.problems()
    );
}
