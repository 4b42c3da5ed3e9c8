//! What the admin listener reports about the world around the gateway (docs/design.md
//! §8.1, §8.4): `/readyz` following the upstream (`readiness`), and when the certificates
//! the gateway loaded expire (`secretgate_certificate_expiry_timestamp_seconds`).
//!
//! The upstream here is one the test can kill and bring back on the same port. `/readyz`
//! is polled with a bounded retry loop (the probe runs on its own timer), never after a
//! fixed sleep.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::*;
use tokio::net::TcpListener;

/// An upstream that answers every request with `status` and records the paths asked for;
/// killed by dropping it (its listener closes), restarted on the same address.
struct Upstream {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    paths: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(addr: SocketAddr, status: Arc<AtomicU16>) -> Upstream {
        // The port was just released: binding it again may take a moment.
        let listener = {
            let mut tries = 0;
            loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(e) if tries < 100 => {
                        tries += 1;
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("cannot bind {addr} again: {e}"),
                }
            }
        };
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (st, ps) = (status.clone(), paths.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (st, ps) = (st.clone(), ps.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        ps.lock().unwrap().push(req.uri().path().to_owned());
                        let code = st.load(Ordering::SeqCst);
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .status(code)
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            status,
            paths,
            task,
        }
    }

    /// Stops accepting: the listening socket is closed.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Polls `path` on the admin listener until it answers `want` (20 s at most), returning
/// the body.
async fn wait_for(gw: &Gateway, path: &str, want: u16) -> String {
    let admin = gw.admin.expect("admin listener");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = admin_get(admin, path).await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} still {status} ({body:?}) after 20 s, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `secretgate_upstream_up`'s value (its sample line, not its HELP text).
fn upstream_up(metrics: &str) -> Option<i64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("secretgate_upstream_up{upstream="))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_a_killed_and_restarted_upstream() {
    let status = Arc::new(AtomicU16::new(200));
    let upstream = Upstream::start("127.0.0.1:0".parse().unwrap(), status.clone()).await;
    let addr = upstream.addr;
    let gw = Gateway::start_with(addr, "readiness: { upstream: true, window: 400ms }\n").await;
    assert_eq!(wait_for(&gw, "/readyz", 200).await, "ready\n");
    assert_eq!(upstream_up(&gw.metrics().await), Some(1));

    upstream.kill().await;
    assert_eq!(
        wait_for(&gw, "/readyz", 503).await,
        "upstream not answering\n"
    );
    // Liveness never follows the upstream.
    assert_eq!(
        admin_get(gw.admin.unwrap(), "/healthz").await,
        (200, "ok\n".to_owned())
    );
    assert_eq!(upstream_up(&gw.metrics().await), Some(0));

    let upstream = Upstream::start(addr, status).await;
    assert_eq!(wait_for(&gw, "/readyz", 200).await, "ready\n");
    // A TCP probe sends no request.
    assert!(upstream.paths.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_with_a_path_needs_a_2xx_answer() {
    let status = Arc::new(AtomicU16::new(200));
    let upstream = Upstream::start("127.0.0.1:0".parse().unwrap(), status.clone()).await;
    let gw = Gateway::start_with(
        upstream.addr,
        "readiness: { upstream: true, window: 400ms, path: /healthz }\n",
    )
    .await;
    wait_for(&gw, "/readyz", 200).await;
    assert!(upstream
        .paths
        .lock()
        .unwrap()
        .iter()
        .all(|p| p == "/healthz"));
    // Still accepting connections, but answering 503: not ready.
    upstream.status.store(503, Ordering::SeqCst);
    wait_for(&gw, "/readyz", 503).await;
    upstream.status.store(204, Ordering::SeqCst);
    wait_for(&gw, "/readyz", 200).await;
    upstream.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_readiness_readyz_ignores_the_upstream() {
    let gw = Gateway::start(refused_addr().await).await;
    // Ready once started (503 "starting" until then), although the upstream refuses every
    // connection: followed, it would stay 503 "upstream not answering" and this times out.
    assert_eq!(wait_for(&gw, "/readyz", 200).await, "ready\n");
    assert_eq!(
        upstream_up(&gw.metrics().await),
        None,
        "no probe ran, no series"
    );
}

/// A certificate valid until `until` (midnight UTC), with `name` as its CN: self-signed, or
/// issued by `issuer`.
fn cert_until(
    name: &str,
    until: (i32, u8, u8),
    ca: bool,
    issuer: Option<&Issuer<'static, KeyPair>>,
) -> (String, KeyPair, CertificateParams) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let cert = match issuer {
        Some(i) => params.signed_by(&key, i).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.pem(), key, params)
}

/// The value of the expiry series whose labels contain `labels`.
fn expiry(metrics: &str, labels: &str) -> Option<i64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("secretgate_certificate_expiry_timestamp_seconds{"))
        .find(|l| l.contains(labels))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

// Unix times of midnight UTC on these dates (`date -u -d 2031-05-06 +%s` and so on).
const MAY_6_2031: i64 = 1_935_792_000;
const JAN_2_2035: i64 = 2_051_308_800;
const JUL_8_2029: i64 = 1_878_163_200;
const SEP_10_2032: i64 = 1_978_387_200;
const DEC_1_2033: i64 = 2_017_008_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_expiry_is_exported_at_load_and_reload() {
    let pki = Pki::generate();
    let dir = pki.path().to_owned();
    // The served chain: a leaf until 2031-05-06 and an intermediate until 2033-12-01; the
    // chain stops working with the earlier one.
    let (inter_pem, inter_key, inter_params) =
        cert_until("intermediate", (2033, 12, 1), true, None);
    let inter = Issuer::new(inter_params, inter_key);
    let (leaf_pem, leaf_key, _) = cert_until("localhost", (2031, 5, 6), false, Some(&inter));
    std::fs::write(&pki.cert_file, format!("{leaf_pem}{inter_pem}")).unwrap();
    std::fs::write(&pki.key_file, leaf_key.serialize_pem()).unwrap();
    let (ca_pem, _, _) = cert_until("client-ca", (2035, 1, 2), true, None);
    std::fs::write(dir.join("client-ca.pem"), ca_pem).unwrap();
    let (device_pem, _, _) = cert_until("device", (2029, 7, 8), false, None);
    std::fs::write(dir.join("device.pem"), device_pem).unwrap();

    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let with_device = "  - client_id: device-1\n    auth_method: self_signed_tls_client_auth\n    certificates: [{ file: device.pem }]\n";
    let yaml = |clients: &str| {
        let yaml = config_yaml(&pki, upstream.addr, clients);
        let key_line = format!("  key_file: \"{}\"\n", pki.key_file.display());
        yaml.replace(
            &key_line,
            &format!("{key_line}  client_auth:\n    ca_file: client-ca.pem\n"),
        )
    };
    let first = yaml(with_device);
    let second = yaml("");
    let gw = Gateway::start_file(pki, &first).await;
    let m = gw.metrics().await;
    assert_eq!(expiry(&m, "kind=\"server\""), Some(MAY_6_2031), "{m}");
    assert_eq!(expiry(&m, "kind=\"client_ca\""), Some(JAN_2_2035), "{m}");
    assert_eq!(
        expiry(&m, "kind=\"client_certificate\",client_id=\"device-1\""),
        Some(JUL_8_2029),
        "{m}"
    );
    assert!(
        !m.contains(&DEC_1_2033.to_string()),
        "the earliest of the chain only"
    );

    // A renewed server certificate and the self-signed client removed, then a reload.
    let (leaf_pem, leaf_key, _) = cert_until("localhost", (2032, 9, 10), false, None);
    std::fs::write(&gw.pki.cert_file, leaf_pem).unwrap();
    std::fs::write(&gw.pki.key_file, leaf_key.serialize_pem()).unwrap();
    std::fs::write(gw.config_file.as_ref().unwrap(), second).unwrap();
    gw.reloader.reload().await.expect("reload");
    let m = gw.metrics().await;
    assert_eq!(expiry(&m, "kind=\"server\""), Some(SEP_10_2032), "{m}");
    assert_eq!(expiry(&m, "kind=\"client_ca\""), Some(JAN_2_2035), "{m}");
    assert_eq!(
        expiry(&m, "kind=\"client_certificate\""),
        None,
        "a client no longer registered is no longer reported: {m}"
    );
}
