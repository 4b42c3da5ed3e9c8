//! Memory after attacks (issue 19): one gateway process (the real binary) takes the
//! transport attacks (HTTP/2 PING, SETTINGS and CONTINUATION floods, rapid reset, large
//! bodies over HTTP/1.1 and HTTP/2), then two rounds of 1,000 idle kept-alive TLS
//! connections (`bench/idle.py`). After each round its RSS comes back within 8 MiB of the
//! first round's baseline, and the second round peaks within 10% of the first.
//!
//! RSS is read from `/proc/PID/status`; every wait is a poll of a condition with a
//! deadline.

#[path = "support/attack.rs"]
mod attack;
#[path = "support/process.rs"]
mod process;
mod support;
#[path = "support/wire.rs"]
mod wire;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use process::GatewayProcess;
use support::*;
use tokio::time::Instant;

const MIB: u64 = 1024;
const CONNECTIONS: usize = 1000;

/// The attack sequence, each attack on its own connection.
async fn attacks(gw: &GatewayProcess) {
    let (addr, ca) = (gw.listen, gw.pki.ca_der.clone());
    let report = |what: &str, o: attack::Outcome| {
        eprintln!("{what}: wrote {} B, got {} B back", o.written, o.received)
    };
    report(
        "PING flood",
        attack::h2_flood(addr, &ca, attack::pings(100_000)).await,
    );
    report(
        "SETTINGS flood",
        attack::h2_flood(addr, &ca, attack::settings_frames(50_000)).await,
    );
    report(
        "CONTINUATION flood",
        attack::h2_flood(addr, &ca, attack::continuations(1_000)).await,
    );
    report(
        "rapid reset",
        attack::h2_flood(addr, &ca, attack::rapid_resets(20_000)).await,
    );
    // A large body as a well-behaved HTTP/2 client streams it, to the upstream.
    let mut client = Client::connect(addr, &ca, true).await;
    let reply = client
        .send(post(
            "/upload",
            Some("application/octet-stream"),
            &[],
            vec![b'u'; 16 << 20],
        ))
        .await;
    assert_eq!(
        reply.status,
        http::StatusCode::OK,
        "the 16 MiB upload went through"
    );
    drop(client);
    const FORM: &str = "application/x-www-form-urlencoded";
    for (path, content_type, size) in [
        (TOKEN_PATH, FORM, 4 << 20),
        ("/upload", FORM, 4 << 20),
        ("/upload", "application/octet-stream", 16 << 20),
    ] {
        report(
            &format!("HTTP/1.1 POST {path} {content_type} {size} B"),
            attack::h1_post(addr, &ca, path, content_type, size).await,
        );
        report(
            &format!("HTTP/2 POST {path} {content_type} {size} B"),
            attack::h2_flood(addr, &ca, attack::h2_post(path, content_type, size)).await,
        );
    }
}

/// RSS once it has stopped falling: two samples a purge interval apart (the workers
/// return freed memory once a second) within 256 KiB. Bounded.
async fn settled_rss(gw: &GatewayProcess) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = gw.rss_kib();
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = gw.rss_kib();
        if now + 256 >= last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// One round of `CONNECTIONS` idle connections (bench/idle.py): the RSS with all of them
/// open and answered, in KiB.
async fn idle_round(gw: &GatewayProcess) -> u64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/idle.py");
    let mut idle = Command::new("python3");
    idle.arg(script)
        .arg("--cafile")
        .arg(&gw.pki.ca_file)
        .args(["--pid", &gw.pid().to_string()])
        .args(["--connections", &CONNECTIONS.to_string()])
        .args(["--hold", "0", "--settle", "0", "--after-close", ""])
        .args(["--path", "/idle"])
        .args(["127.0.0.1", &gw.listen.port().to_string()]);
    let out = tokio::task::spawn_blocking(move || idle.output())
        .await
        .unwrap()
        .expect("python3 runs bench/idle.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench/idle.py failed:\n{stderr}");
    let result: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("idle.py JSON:\n{stderr}"));
    assert_eq!(result["established"], CONNECTIONS, "{result}");
    result["rss_kib"]["idle"].as_u64().expect("the idle sample")
}

/// Waits until the RSS is within `bound` KiB of `baseline`; returns the last sample.
async fn rss_back_within(gw: &GatewayProcess, baseline: u64, bound: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rss = gw.rss_kib();
        if rss <= baseline + bound || Instant::now() > deadline {
            return rss;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_given_back_after_attacks_and_two_rounds_of_idle_connections() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = GatewayProcess::start(
        upstream.addr,
        "limits: { keepalive_timeout: 5m, idle_timeout: 5m }\n",
    )
    .await;
    let started = gw.rss_kib();
    attacks(&gw).await;
    let attacked = gw.rss_kib();
    let baseline = settled_rss(&gw).await;
    let peak1 = idle_round(&gw).await;
    let after1 = rss_back_within(&gw, baseline, 8 * MIB).await;
    // Round 2 starts once round 1's memory has stopped being given back (the workers purge
    // once a second): on a loaded machine "within 8 MiB" can come before the purge ends,
    // and round 2's peak would then count round 1's leftovers as its own.
    settled_rss(&gw).await;
    let peak2 = idle_round(&gw).await;
    let after2 = rss_back_within(&gw, baseline, 8 * MIB).await;
    // Not asserted (the bound above is the contract); printed to show what stays for good.
    let settled2 = settled_rss(&gw).await;
    let figures = format!(
        "RSS KiB: started {started}, after the attacks {attacked}, settled {baseline}; \
         round 1 peak {peak1}, after {after1}; round 2 peak {peak2}, after {after2}, \
         settled {settled2}"
    );
    eprintln!("{figures}");
    assert!(
        after1 <= baseline + 8 * MIB,
        "round 1 kept memory: {figures}"
    );
    assert!(
        after2 <= baseline + 8 * MIB,
        "round 2 kept memory: {figures}"
    );
    assert!(
        peak2 * 10 <= peak1 * 11,
        "round 2 peaked over 110% of round 1: {figures}"
    );
}
