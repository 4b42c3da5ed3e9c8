//! The binary itself: SIGHUP reloads, SIGTERM drains.

use super::*;

/// Waits for the binary's admin listener to answer `/readyz` with 200.
async fn wait_ready(admin: std::net::SocketAddr, child: &mut std::process::Child) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(admin).await.is_ok() && admin_get(admin, "/readyz").await.0 == 200 {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("secretgate exited during start-up: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "secretgate never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The real binary: SIGHUP reloads; SIGTERM turns `/readyz` false, lets the request in
/// flight finish, then exits 0. Its JSON logs hold no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_sigterm_drains_the_binary() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut upstream = RecordingUpstream::start(Behaviour::Gate(gate.clone())).await;
    let pki = Pki::generate();
    write_secrets(pki.path());
    std::fs::write(pki.path().join("billing.secret"), format!("{OLD_SECRET}\n")).unwrap();
    let listen = free_addr().await;
    let admin = free_addr().await;
    let config = yaml(
        &pki,
        upstream.addr,
        &["billing.secret"],
        &["k1"],
        &format!("admin: {{ listen: \"{admin}\" }}\nreload: {{ watch: false }}"),
    )
    .replace("listen: \"127.0.0.1:0\"", &format!("listen: \"{listen}\""));
    let config_file = pki.path().join("secretgate.yaml");
    std::fs::write(&config_file, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(admin, &mut child).await;
    let client = || async {
        let tcp = TcpStream::connect(listen).await.unwrap();
        Client::H1(h1_over_tls(tcp, &pki.ca_der).await)
    };

    let mut c = client().await;
    gate.notify_one(); // let this one through the upstream at once
    assert_eq!(
        c.send(token_request(OLD_SECRET)).await.status,
        StatusCode::OK
    );
    upstream.arrivals.recv().await.unwrap();

    // Rotate the secret file and send SIGHUP (watching is off: only the signal reloads).
    std::fs::write(pki.path().join("billing.secret"), format!("{NEW_SECRET}\n")).unwrap();
    signal(&child, "-HUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = admin_get(admin, "/metrics").await;
        if sample(&m, "secretgate_reloads_total{outcome=\"ok\"}") == 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not reload:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        c.send(token_request(OLD_SECRET)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A request held by the upstream, then SIGTERM.
    let in_flight = tokio::spawn(async move { c.send(token_request(NEW_SECRET)).await });
    upstream.arrivals.recv().await.unwrap();
    signal(&child, "-TERM");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while admin_get(admin, "/readyz").await.0 != 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never turned false"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "still draining");
    gate.notify_one();
    assert_eq!(in_flight.await.unwrap().status, StatusCode::OK);
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(status.status.success(), "exit status {:?}", status.status);

    let logs = String::from_utf8_lossy(&status.stderr);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(lines
        .iter()
        .any(|v| v["fields"]["message"] == "configuration reloaded"));
    // One access line per request, none lost: worker threads batch their lines
    // (logsink.rs), and the last one, answered during the drain, is written at exit.
    let outcomes: Vec<&str> = lines
        .iter()
        .filter(|v| v["target"] == "secretgate::access")
        .map(|v| v["fields"]["outcome"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(outcomes, ["ok", "invalid_client", "ok"], "{logs}");
    for secret in [OLD_SECRET, NEW_SECRET, K1] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}
