//! Operations (issue 5): hot reload under load, bad reloads, the file watcher (including a
//! Kubernetes-style `..data` symlink swap) and the metrics a mixed run leaves behind.

#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::StatusCode;
use rustls::pki_types::ServerName;
use support::*;
use tokio::net::TcpStream;
use tokio::sync::watch;

const OLD_SECRET: &str = "old-basic-secret-0123456789";
const NEW_SECRET: &str = "new-basic-secret-9876543210";
const K1: &str = "first-signing-key-0123456789abcdefgh";
const K2: &str = "second-signing-key-0123456789abcdefg";

/// A config whose Basic client takes `secrets` (file names in the PKI dir) and whose
/// internal header is signed with `keys` (id = file name), first one signing.
fn yaml(
    pki: &Pki,
    upstream: std::net::SocketAddr,
    secrets: &[&str],
    keys: &[&str],
    extra: &str,
) -> String {
    let secrets: Vec<String> = secrets.iter().map(|f| format!("{{ file: {f} }}")).collect();
    let keys: String = keys
        .iter()
        .map(|k| format!("    - {{ id: {k}, file: {k} }}\n"))
        .collect();
    format!(
        r#"listen: "127.0.0.1:0"
tls: {{ cert_file: "{cert}", key_file: "{key}" }}
upstream: {{ url: "http://{upstream}", connect_timeout: 1s, timeout: 5s }}
public_url: "{PUBLIC_URL}"
issuer: "{ISSUER}"
internal_header:
  issuer: secretgate
  audience: legacy-token-service
  keys:
{keys}shutdown_grace: 10s
{extra}
clients:
  - client_id: {BASIC_ID}
    auth_method: client_secret_basic
    secrets: [{secrets}]
"#,
        cert = pki.cert_file.display(),
        key = pki.key_file.display(),
        secrets = secrets.join(", "),
    )
}

fn write_secrets(dir: &Path) {
    std::fs::write(dir.join("old.secret"), format!("{OLD_SECRET}\n")).unwrap();
    std::fs::write(dir.join("new.secret"), format!("{NEW_SECRET}\n")).unwrap();
    std::fs::write(dir.join("k1"), K1).unwrap();
    std::fs::write(dir.join("k2"), K2).unwrap();
}

fn token_request(secret: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
    req.headers_mut()
        .insert("authorization", basic(BASIC_ID, secret).parse().unwrap());
    req
}

/// The certificate a fresh TLS handshake is served.
async fn served_certificate(gw: &Gateway) -> Vec<u8> {
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = tls_connector(&gw.pki.ca_der, &[b"http/1.1"])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The `kid` of the internal header the upstream saw last.
fn last_kid(upstream: &RecordingUpstream) -> String {
    kid_of(&upstream.last())
}

/// The `kid` of the internal header of one upstream request, once it verifies.
fn kid_of(rec: &Recorded) -> String {
    let header = rec.headers["x-authenticated-client"]
        .to_str()
        .unwrap()
        .to_owned();
    let claims = secretgate::verify_internal_header(
        &header,
        &verify_keys(&[("k1", K1), ("k2", K2)]),
        &secretgate::Expected::request(
            "secretgate",
            "legacy-token-service",
            rec.method.as_str(),
            &format!("{PUBLIC_URL}{}", rec.uri.path()),
            rec.uri.query(),
            &rec.body,
        ),
    )
    .expect("the upstream's header verifies with the published keys");
    assert_eq!(claims.client_id, BASIC_ID);
    let h = header.split('.').next().unwrap();
    use base64::Engine;
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap();
    json["kid"].as_str().unwrap().to_owned()
}

/// Clients that keep sending authenticated requests over kept-alive connections.
struct Load {
    ok: watch::Receiver<u64>,
    failed: Arc<AtomicU64>,
    failures: Arc<RwLock<Vec<String>>>,
    /// The secret the tasks send, numbered.
    secret: watch::Sender<(u64, String)>,
    /// Per task: the number of the secret its next request sends. A task moves it only
    /// between requests, so once it reads `n`, every request it sent with an older secret
    /// has been answered.
    using: Vec<watch::Receiver<u64>>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(gw: &Gateway, secret: &str) -> Load {
        let (ok_tx, ok) = watch::channel(0u64);
        let ok_tx = Arc::new(ok_tx);
        let (stop, stop_rx) = watch::channel(false);
        let failed = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(RwLock::new(Vec::new()));
        let (secret, secret_rx) = watch::channel((0u64, secret.to_owned()));
        let mut using = Vec::new();
        let mut tasks = Vec::new();
        // Two HTTP/1.1 and two HTTP/2 connections, each opened once and kept alive.
        for h2 in [false, true, false, true] {
            let mut client = gw.client(h2).await;
            let (ok_tx, stop_rx, failed, failures, mut secret_rx) = (
                ok_tx.clone(),
                stop_rx.clone(),
                failed.clone(),
                failures.clone(),
                secret_rx.clone(),
            );
            let (using_tx, using_rx) = watch::channel(0u64);
            using.push(using_rx);
            tasks.push(tokio::spawn(async move {
                while !*stop_rx.borrow() {
                    let (n, s) = secret_rx.borrow_and_update().clone();
                    using_tx.send_replace(n);
                    let reply = client.send(token_request(&s)).await;
                    if reply.status == StatusCode::OK {
                        ok_tx.send_modify(|n| *n += 1);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        failures.write().unwrap().push(format!(
                            "{} {}",
                            reply.status,
                            reply.error()
                        ));
                    }
                }
            }));
        }
        Load {
            ok,
            failed,
            failures,
            secret,
            using,
            stop,
            tasks,
        }
    }

    /// Moves every task to `secret`, and returns once each has acknowledged it: from then
    /// on no task sends the old one, and none of its requests with it is still in flight.
    async fn switch_to(&mut self, secret: &str) {
        let n = self.secret.borrow().0 + 1;
        self.secret.send_replace((n, secret.to_owned()));
        for using in &mut self.using {
            tokio::time::timeout(Duration::from_secs(30), using.wait_for(|m| *m >= n))
                .await
                .expect("every load task takes the new secret")
                .unwrap();
        }
    }

    /// Waits until `n` more requests have succeeded.
    async fn advance(&mut self, n: u64) {
        let target = *self.ok.borrow() + n;
        tokio::time::timeout(Duration::from_secs(30), self.ok.wait_for(|c| *c >= target))
            .await
            .expect("load keeps succeeding")
            .unwrap();
    }

    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.send(true).unwrap();
        for t in self.tasks {
            t.await.unwrap();
        }
        let ok = *self.ok.borrow();
        let failures = self.failures.read().unwrap().clone();
        (ok, self.failed.load(Ordering::SeqCst), failures)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_drops_nothing() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    write_secrets(pki.path());
    let config_file = pki.path().join("secretgate.yaml");
    // Reloads are triggered explicitly here; the watcher has its own test.
    let no_watch = "reload: { watch: false }";
    let first = yaml(&pki, upstream.addr, &["old.secret"], &["k1"], no_watch);
    let first_cert = pki.leaf_der.to_vec();

    let mut gw = Gateway::start_file(pki, &first).await;
    assert_eq!(served_certificate(&gw).await, first_cert);

    let mut load = Load::start(&gw, OLD_SECRET).await;
    load.advance(20).await;
    assert_eq!(last_kid(&upstream), "k1");

    // 1. Certificate renewal: new handshakes see the new certificate, the kept-alive
    //    connections carry on.
    gw.pki.reissue();
    assert_ne!(gw.pki.leaf_der.to_vec(), first_cert);
    gw.reloader
        .reload()
        .await
        .expect("reload with the renewed certificate");
    assert_eq!(
        served_certificate(&gw).await,
        gw.pki.leaf_der.to_vec(),
        "new handshakes get the new certificate"
    );
    load.advance(20).await;

    // 2. Secret rotation, step one: old and new both valid; clients move to the new one.
    std::fs::write(
        &config_file,
        yaml(
            &gw.pki,
            upstream.addr,
            &["old.secret", "new.secret"],
            &["k1"],
            no_watch,
        ),
    )
    .unwrap();
    gw.reloader
        .reload()
        .await
        .expect("reload with both secrets");
    load.advance(10).await;
    load.switch_to(NEW_SECRET).await;
    load.advance(20).await;

    // A connection opened before the old secret goes, kept alive across the reload.
    let mut kept = gw.client(false).await;
    assert_eq!(
        kept.send(token_request(OLD_SECRET)).await.status,
        StatusCode::OK
    );

    // 3. Step two: the old secret is removed.
    std::fs::write(
        &config_file,
        yaml(&gw.pki, upstream.addr, &["new.secret"], &["k1"], no_watch),
    )
    .unwrap();
    gw.reloader
        .reload()
        .await
        .expect("reload without the old secret");
    load.advance(20).await;

    // 4. Signing-key rotation: k2 signs from now on, k1 stays published.
    std::fs::write(
        &config_file,
        yaml(
            &gw.pki,
            upstream.addr,
            &["new.secret"],
            &["k2", "k1"],
            no_watch,
        ),
    )
    .unwrap();
    gw.reloader
        .reload()
        .await
        .expect("reload with the new signing key");
    load.advance(20).await;
    // A request that starts after the reload is signed with k2. (Requests in flight during
    // the reload may carry k1 and reach the upstream in any order: not "the last one".)
    let mut marked = form(TOKEN_PATH, "grant_type=client_credentials&scope=after-k2");
    marked.headers_mut().insert(
        "authorization",
        basic(BASIC_ID, NEW_SECRET).parse().unwrap(),
    );
    assert_eq!(kept.send(marked).await.status, StatusCode::OK);
    let rec = upstream
        .records()
        .into_iter()
        .rfind(|r| String::from_utf8_lossy(&r.body).contains("scope=after-k2"))
        .expect("the marked request reached the upstream");
    assert_eq!(kid_of(&rec), "k2");

    let (ok, failed, failures) = load.finish().await;
    assert_eq!(failed, 0, "failed requests during reloads: {failures:?}");
    assert!(ok >= 110, "{ok} requests");

    // The removed secret is rejected, also on the connection opened before the removal.
    let reply = kept.send(token_request(OLD_SECRET)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        kept.send(token_request(NEW_SECRET)).await.status,
        StatusCode::OK
    );

    let metrics = gw.metrics().await;
    assert_eq!(
        sample(&metrics, "secretgate_reloads_total{outcome=\"ok\"}"),
        4.0
    );
    assert_eq!(
        sample(&metrics, "secretgate_reloads_total{outcome=\"failed\"}"),
        0.0
    );
}

#[tokio::test]
async fn a_bad_reload_keeps_the_last_good_config() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    write_secrets(pki.path());
    let good = yaml(
        &pki,
        upstream.addr,
        &["old.secret"],
        &["k1"],
        "reload: { watch: false }",
    );
    let gw = Gateway::start_file(pki, &good).await;
    let config_file = gw.config_file.clone().unwrap();
    let cert = served_certificate(&gw).await;
    let mut client = gw.client(true).await;
    assert_eq!(
        client.send(token_request(OLD_SECRET)).await.status,
        StatusCode::OK
    );

    // Invalid YAML (a duplicate key, as a bad merge would leave).
    std::fs::write(&config_file, format!("{good}listen: \"127.0.0.1:1\"\n")).unwrap();
    let err = gw.reloader.reload().await.unwrap_err();
    assert!(err.to_string().contains("YAML"), "{err}");
    assert_eq!(
        client.send(token_request(OLD_SECRET)).await.status,
        StatusCode::OK
    );
    let m = gw.metrics().await;
    assert_eq!(
        sample(&m, "secretgate_reloads_total{outcome=\"failed\"}"),
        1.0
    );
    assert_eq!(sample(&m, "secretgate_config_last_reload_successful"), 0.0);

    // A broken certificate with a valid config.
    std::fs::write(&config_file, &good).unwrap();
    let pem = std::fs::read(&gw.pki.cert_file).unwrap();
    std::fs::write(
        &gw.pki.cert_file,
        b"-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    let err = gw.reloader.reload().await.unwrap_err();
    let problems = match &err {
        secretgate::reload::ReloadError::Config(c) => c.problems().join("\n"),
        other => panic!("unexpected {other}"),
    };
    assert!(problems.starts_with("tls: "), "{problems}");
    assert_eq!(
        served_certificate(&gw).await,
        cert,
        "still the last good certificate"
    );
    assert_eq!(
        client.send(token_request(OLD_SECRET)).await.status,
        StatusCode::OK
    );
    let m = gw.metrics().await;
    assert_eq!(
        sample(&m, "secretgate_reloads_total{outcome=\"failed\"}"),
        2.0
    );

    // A missing secret file: reported with its key path, nothing changes.
    std::fs::write(&gw.pki.cert_file, &pem).unwrap();
    std::fs::write(&config_file, good.replace("old.secret", "gone.secret")).unwrap();
    let err = gw.reloader.reload().await.unwrap_err();
    let secretgate::reload::ReloadError::Config(c) = &err else {
        panic!("unexpected {err}")
    };
    assert!(
        c.problems()
            .iter()
            .any(|p| p.starts_with("clients[0].secrets[0].file: cannot read")),
        "{:?}",
        c.problems()
    );
    assert_eq!(
        client.send(token_request(OLD_SECRET)).await.status,
        StatusCode::OK
    );

    // Fixed: the next reload succeeds and the gauge recovers.
    std::fs::write(&config_file, &good).unwrap();
    gw.reloader.reload().await.expect("good config reloads");
    let m = gw.metrics().await;
    assert_eq!(
        sample(&m, "secretgate_reloads_total{outcome=\"failed\"}"),
        3.0
    );
    assert_eq!(sample(&m, "secretgate_reloads_total{outcome=\"ok\"}"), 1.0);
    assert_eq!(sample(&m, "secretgate_config_last_reload_successful"), 1.0);
}

/// Lays out `dir` the way the kubelet mounts a Secret: `..<timestamp>/<file>`, a `..data`
/// symlink to it, and `<file>` → `..data/<file>`.
fn k8s_secret_volume(dir: &Path, file: &str, content: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let version = dir.join("..2026_11_25_00_00_00.1");
    std::fs::create_dir(&version).unwrap();
    std::fs::write(version.join(file), content).unwrap();
    std::os::unix::fs::symlink("..2026_11_25_00_00_00.1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink(format!("..data/{file}"), dir.join(file)).unwrap();
}

/// What the kubelet does on update: write a new version dir, then atomically rename a new
/// `..data` symlink over the old one. The path the config names never changes.
fn k8s_update(dir: &Path, file: &str, content: &str) {
    let version = dir.join("..2026_11_25_00_05_00.2");
    std::fs::create_dir(&version).unwrap();
    std::fs::write(version.join(file), content).unwrap();
    std::os::unix::fs::symlink("..2026_11_25_00_05_00.2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
}

/// Polls `/metrics` until `series` reaches `value` (the watcher runs on its own clock).
async fn wait_for_sample(gw: &Gateway, series: &str, value: f64) -> String {
    poll_until(Duration::from_secs(20), || async {
        let m = gw.metrics().await;
        if sample(&m, series) >= value {
            Ok(m)
        } else {
            Err(format!("{series} never reached {value}:\n{m}"))
        }
    })
    .await
}

#[tokio::test]
async fn the_watcher_follows_a_kubernetes_secret_symlink_swap() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    write_secrets(pki.path());
    let volume: PathBuf = pki.path().join("client-secrets");
    k8s_secret_volume(&volume, "billing", &format!("{OLD_SECRET}\n"));
    let config = yaml(
        &pki,
        upstream.addr,
        &["client-secrets/billing"],
        &["k1"],
        "reload: { watch: true, poll_interval: 100ms }",
    );
    let gw = Gateway::start_file(pki, &config).await;
    let mut client = gw.client(false).await;
    assert_eq!(
        client.send(token_request(OLD_SECRET)).await.status,
        StatusCode::OK
    );

    k8s_update(&volume, "billing", &format!("{NEW_SECRET}\n"));
    wait_for_sample(&gw, "secretgate_reloads_total{outcome=\"ok\"}", 1.0).await;
    assert_eq!(
        client.send(token_request(NEW_SECRET)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client.send(token_request(OLD_SECRET)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A broken config file is noticed too, counted once, and changes nothing.
    let file = gw.config_file.clone().unwrap();
    std::fs::write(&file, "clients: [").unwrap();
    let m = wait_for_sample(&gw, "secretgate_reloads_total{outcome=\"failed\"}", 1.0).await;
    assert_eq!(sample(&m, "secretgate_config_last_reload_successful"), 0.0);
    assert_eq!(
        client.send(token_request(NEW_SECRET)).await.status,
        StatusCode::OK
    );
}

mod binary;
mod metrics;
