//! The real binary as a subprocess (`secretgate run`), for what only a whole process
//! shows: its resident memory, read from `/proc/PID/status`. Started with the test config
//! (support/mod.rs) on a free port with an admin listener, its descriptor limit raised to
//! the hard limit (it serves a thousand connections at once in the memory test), awaited
//! through `/readyz`, and killed on drop.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::{admin_get, config_yaml, free_addr, Pki};

pub struct GatewayProcess {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub pki: Pki,
    /// Where its stderr goes (a file: nobody reads a pipe while it runs).
    pub log: PathBuf,
}

impl GatewayProcess {
    /// Starts the binary in front of `upstream` with the test config plus `extra`.
    pub async fn start(upstream: SocketAddr, extra: &str) -> GatewayProcess {
        let pki = Pki::generate();
        let listen = free_addr().await;
        let admin = free_addr().await;
        let yaml = config_yaml(
            &pki,
            upstream,
            &format!("admin: {{ listen: \"{admin}\" }}\n{extra}"),
        )
        .replacen(
            "listen: \"127.0.0.1:0\"",
            &format!("listen: \"{listen}\""),
            1,
        );
        let config = pki.path().join("secretgate.yaml");
        std::fs::write(&config, yaml).unwrap();
        let log = pki.path().join("stderr.log");
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#)
            .arg(env!("CARGO_BIN_EXE_secretgate"))
            .args(["run", "--config"])
            .arg(&config)
            .env("SECRETGATE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut gw = GatewayProcess {
            child,
            listen,
            admin,
            pki,
            log,
        };
        gw.wait_ready().await;
        gw
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(self.admin).await.is_ok()
                && admin_get(self.admin, "/readyz").await.0 == 200
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "secretgate exited during start-up: {status}\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "secretgate never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `VmRSS` from `/proc/PID/status`, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS")
    }

    /// A `... kB` line of `/proc/PID/status` (`VmRSS`, `RssAnon`, `RssFile`), in KiB.
    pub fn status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the gateway process is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in /proc/PID/status"))
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let (status, body) = admin_get(self.admin, "/metrics").await;
        assert_eq!(status, 200);
        body
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
