//! A real `redis-server` for the tests of `state.backend: redis`: started on a loopback
//! port with no persistence, awaited by reading its log ("Ready to accept connections"),
//! killed (SIGKILL) and restarted on the same port on demand, and killed on drop.
//!
//! The tests need the real server: if `redis-server` is missing they fail, saying how to
//! install it (`REDIS_SERVER` names another binary).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest wait for a server to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Everything the current server printed, for failure messages.
    log: Arc<Mutex<String>>,
}

fn binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A loopback port nothing listens on right now, below the kernel's range of ephemeral
/// ports. A port from that range (what binding port 0 gives) can be taken before redis
/// binds it, or while it is down between a kill and a restart, by any outgoing
/// connection's source port; a gateway retrying a redis that is not listening can even
/// be connected to itself on it (TCP simultaneous open), which then holds the port. Seen:
/// `Address already in use` when a test restarted redis on its port.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low >= 4096 {
        // From a random start in [low / 2, low), so that tests running at once try
        // different ports.
        let span = u64::from(low / 2);
        let start = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        for i in 0..span {
            let port = low - 1 - ((start.wrapping_add(i)) % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Why a server did not come up.
enum StartError {
    /// Another process took the port between `free_port` and the bind.
    PortTaken(String),
    Other(String),
}

impl RedisServer {
    /// A server on a fresh port.
    pub fn start() -> RedisServer {
        Self::start_with(None)
    }

    /// A server that requires `password` (`--requirepass`).
    pub fn start_with_password(password: &str) -> RedisServer {
        Self::start_with(Some(password))
    }

    fn start_with(password: Option<&str>) -> RedisServer {
        // A port picked free can be taken before redis binds it: try a few.
        for _ in 0..5 {
            let mut server = Self::stopped_on(free_port(), password);
            match server.try_launch() {
                Ok(()) => return server,
                Err(StartError::PortTaken(_)) => continue,
                Err(StartError::Other(e)) => panic!("{e}"),
            }
        }
        panic!("redis-server: no free loopback port after 5 attempts");
    }

    /// A server that will listen on `port` once [`RedisServer::restart`] is called (for a
    /// gateway that must start while Redis is down).
    pub fn stopped_on(port: u16, password: Option<&str>) -> RedisServer {
        RedisServer {
            port,
            password: password.map(str::to_owned),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            log: Arc::new(Mutex::new(String::new())),
        }
    }

    /// `redis://127.0.0.1:PORT/0` (never with the password: it belongs in
    /// `state.redis.password`).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// What the current (or last) server printed.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: no shutdown, connections drop at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`], or for the
    /// first time after [`RedisServer::stopped_on`]), empty.
    pub fn restart(&mut self) {
        self.kill();
        match self.try_launch() {
            Ok(()) => {}
            Err(StartError::PortTaken(e) | StartError::Other(e)) => panic!("{e}"),
        }
    }

    fn try_launch(&mut self) -> Result<(), StartError> {
        let mut cmd = Command::new(binary());
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--logfile", ""])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let mut child = match cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`{}` not found: these tests need a real Redis server \
                 (install it with `apt-get install redis-server`, or set REDIS_SERVER to its path)",
                binary()
            ),
            Err(e) => panic!("cannot start `{}`: {e}", binary()),
        };
        let log = Arc::new(Mutex::new(String::new()));
        self.log = log.clone();
        // Read the log on threads until the server exits (also so that a full pipe never
        // blocks it); tell the caller when it is ready, or that it exited.
        let (tx, rx) = mpsc::channel::<bool>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (out, ready_tx) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, Some(tx)),
            (Box::new(stderr), None),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let ready = line.contains("Ready to accept connections");
                    {
                        let mut log = log.lock().unwrap();
                        log.push_str(&line);
                        log.push('\n');
                    }
                    if ready {
                        if let Some(tx) = &ready_tx {
                            let _ = tx.send(true);
                        }
                    }
                }
                if let Some(tx) = &ready_tx {
                    let _ = tx.send(false);
                }
            });
        }
        match rx.recv_timeout(READY_WITHIN) {
            Ok(true) => {
                self.child = Some(child);
                Ok(())
            }
            outcome => {
                let _ = child.kill();
                let status = child.wait();
                // Let the readers finish: the whole log tells why.
                let _ = rx.recv_timeout(Duration::from_secs(2));
                let log = log.lock().unwrap().clone();
                let message = format!(
                    "redis-server on port {} did not become ready ({}; {status:?}):\n{log}",
                    self.port,
                    if outcome.is_err() {
                        "timed out"
                    } else {
                        "exited"
                    }
                );
                if log.contains("Address already in use") {
                    Err(StartError::PortTaken(message))
                } else {
                    Err(StartError::Other(message))
                }
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
