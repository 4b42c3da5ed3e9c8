//! The command line as an operator meets it: help texts, `--log-format`, `check`'s
//! messages and `check --skip-files` (issue 22's friction list, one test per item).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

fn secretgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(args)
        .env_remove("SECRETGATE_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `check --config PATH [more]`.
fn check(path: &Path, more: &[&str]) -> Output {
    let mut args = vec!["check", "--config", path.to_str().unwrap()];
    args.extend_from_slice(more);
    secretgate(&args)
}

/// A config whose files all exist (the test PKI; client certificates requested from its
/// CA), with `extra` appended.
fn valid_config(pki: &Pki, name: &str, extra: &str) -> PathBuf {
    let path = pki.path().join(name);
    let yaml = config_yaml(pki, "127.0.0.1:9".parse().unwrap(), extra).replacen(
        "tls:\n",
        &format!(
            "tls:\n  client_auth: {{ ca_file: \"{}\" }}\n",
            pki.ca_file.display()
        ),
        1,
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn help_texts_describe_what_each_command_takes() {
    let demo = text(&secretgate(&["demo", "--help"]).stdout);
    assert!(demo.contains("demo CA"), "{demo}");
    assert!(!demo.contains("self-signed"), "{demo}");
    for command in ["run", "check"] {
        let help = text(&secretgate(&[command, "--help"]).stdout);
        let line = help
            .lines()
            .find(|l| l.contains("--config <CONFIG>"))
            .unwrap_or_else(|| panic!("{command} --help: {help}"));
        assert!(
            line.trim().len() > "-c, --config <CONFIG>".len(),
            "{command} --help shows --config without a description: {help}"
        );
        assert!(help.contains("--log-format"), "{command} --help: {help}");
    }
    // Offered only where it does something.
    for command in [
        "hash-secret",
        "new-secret",
        "assertion",
        "verify-header",
        "new-key",
    ] {
        let help = text(&secretgate(&[command, "--help"]).stdout);
        assert!(!help.contains("--log-format"), "{command} --help: {help}");
    }
    let out = secretgate(&["--log-format", "json", "new-secret"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("applies to run, check and demo"));
}

#[test]
fn start_up_config_errors_are_one_json_object_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: nowhere\nupstream: { url: \"ftp://x\" }\nclients: []\n",
    )
    .unwrap();
    // Before the command (as the manifests write it) and after it.
    for args in [
        vec!["--log-format", "json", "run", "--config"],
        vec!["run", "--log-format", "json", "--config"],
        vec!["check", "--log-format", "json", "--config"],
    ] {
        let mut args = args;
        args.push(path.to_str().unwrap());
        let out = secretgate(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        let lines: Vec<serde_json::Value> = stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(lines.len() >= 3, "{args:?}: {stderr}");
        for line in &lines {
            assert_eq!(line["level"], "ERROR", "{line}");
            assert_eq!(line["message"], "invalid configuration");
            assert!(line["problem"].as_str().is_some_and(|p| !p.is_empty()));
        }
        let keys: Vec<&str> = lines.iter().filter_map(|l| l["key"].as_str()).collect();
        for key in ["listen", "upstream.url", "tls"] {
            assert!(
                keys.contains(&key),
                "{args:?}: no problem at {key}: {keys:?}"
            );
        }
    }
}

#[test]
fn check_skip_files_validates_without_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ci.yaml");
    let yaml = r#"
listen: "0.0.0.0:8443"
tls: { cert_file: /run/secrets/tls.crt, key_file: /run/secrets/tls.key }
upstream: { url: "http://127.0.0.1:8080" }
public_url: "https://auth.example.com"
issuer: "https://auth.example.com"
internal_header: { keys: [{ id: k1, file: /run/secrets/header.key }] }
state:
  backend: redis
  redis: { url: "rediss://redis:6380", password: { file: /run/secrets/redis }, ca_file: /run/secrets/redis-ca.pem }
clients:
  - client_id: billing
    auth_method: client_secret_basic
    secrets: [{ file: /run/secrets/billing }]
  - client_id: reports
    auth_method: client_secret_jwt
    secrets: [{ env: REPORTS_SECRET_UNSET_IN_CI }]
"#;
    std::fs::write(&path, yaml).unwrap();
    let out = check(&path, &["--skip-files"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok (2 clients; files not read)"));

    // Without the flag, the same config names every file it could not read.
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tls.cert_file: no such file"), "{stderr}");
    assert!(
        stderr.contains("REPORTS_SECRET_UNSET_IN_CI is not set"),
        "{stderr}"
    );

    // What does not depend on a file's content is still checked.
    let broken = yaml
        .replace("client_secret_jwt", "client_secret_magic")
        .replace("rediss://redis:6380", "http://redis");
    std::fs::write(&path, broken).unwrap();
    let out = check(&path, &["--skip-files"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("clients[1].auth_method"), "{stderr}");
    assert!(stderr.contains("state.redis.url"), "{stderr}");
    assert!(
        !stderr.contains("/run/secrets"),
        "a skipped file reported: {stderr}"
    );
}

#[test]
fn a_memory_backend_does_not_read_the_redis_files() {
    let pki = Pki::generate();
    let path = valid_config(
        &pki,
        "memory.yaml",
        "state:\n  backend: memory\n  redis: { url: \"rediss://redis:6380\", password: { file: /nonexistent/redis }, ca_file: /nonexistent/ca.pem }\n",
    );
    let out = check(&path, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not used while state.backend is memory"));
    // Its URL is still checked.
    let path = valid_config(
        &pki,
        "memory-bad-url.yaml",
        "state:\n  backend: memory\n  redis: { url: \"http://redis\" }\n",
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("state.redis.url"));
}

#[test]
fn durations_take_decimals_and_compound_forms() {
    let pki = Pki::generate();
    let path = valid_config(
        &pki,
        "durations.yaml",
        "limits: { header_read_timeout: 1.5s, body_read_timeout: 1m30s }\n",
    );
    let out = check(&path, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = valid_config(
        &pki,
        "bad-duration.yaml",
        "limits: { header_read_timeout: 30s1m }\n",
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("limits.header_read_timeout"), "{stderr}");
    assert!(stderr.contains("largest first"), "{stderr}");
}

#[test]
fn a_duplicate_key_is_named_in_the_operators_terms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.yaml");
    std::fs::write(&path, "listen: \"127.0.0.1:1\"\nlisten: \"127.0.0.1:2\"\n").unwrap();
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("`listen` is written twice"), "{stderr}");
    assert!(!stderr.contains("DuplicateKeyPolicy"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn a_secret_file_with_trailing_white_space_is_flagged() {
    let pki = Pki::generate();
    let secret = pki.path().join("spacey.secret");
    std::fs::write(&secret, "a-secret-of-sufficient-length-for-basic \n").unwrap();
    let path = valid_config(
        &pki,
        "spacey.yaml",
        &format!(
            "  - client_id: spacey\n    auth_method: client_secret_basic\n    secrets: [{{ file: \"{}\" }}]\n",
            secret.display()
        ),
    );
    let out = check(&path, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ends with white space after the secret"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("a-secret-of-sufficient"),
        "the secret was printed: {stderr}"
    );
}

#[test]
fn a_subject_dn_in_openssl_order_is_flagged() {
    let pki = Pki::generate();
    let path = valid_config(
        &pki,
        "dn.yaml",
        "  - client_id: payments\n    auth_method: tls_client_auth\n    tls_client_auth_subject_dn: \"C=DE, O=Example Corp, CN=payments\"\n",
    );
    let out = check(&path, &[]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("most general first"), "{stderr}");
    assert!(stderr.contains("-nameopt RFC2253"), "{stderr}");
    // The RFC 4514 order is not flagged.
    let path = valid_config(
        &pki,
        "dn-ok.yaml",
        "  - client_id: payments\n    auth_method: tls_client_auth\n    tls_client_auth_subject_dn: \"CN=payments, O=Example Corp, C=DE\"\n",
    );
    let stderr = text(&check(&path, &[]).stderr);
    assert!(!stderr.contains("most general first"), "{stderr}");
}

#[test]
fn assertion_refuses_a_secret_the_gateway_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("short.secret");
    std::fs::write(&secret, "x".repeat(27)).unwrap();
    let out = secretgate(&[
        "assertion",
        "--client-id",
        "reports",
        "--secret-file",
        secret.to_str().unwrap(),
        "--aud",
        "https://auth.example.com",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "a token was printed");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("27 bytes") && stderr.contains("at least 32"),
        "{stderr}"
    );
}
