//! Log capture for the test binaries that read what the gateway logs: a global subscriber
//! at TRACE for every crate, in JSON as `--log-format json` writes it, into memory. The
//! subscriber is process-global, so the tests of one binary take turns
//! ([`one_at_a_time`]) and each reads only what was logged since it began.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    /// Woken after every write.
    written: Arc<Notify>,
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.lock().unwrap().extend_from_slice(buf);
        self.written.notify_waiters();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Where the next byte logged will be.
    pub fn end(&self) -> usize {
        self.bytes.lock().unwrap().len()
    }

    /// Everything logged from `from` on.
    pub fn since(&self, from: usize) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()[from..]).into_owned()
    }

    /// The access lines logged from `from` on.
    pub fn access_lines(&self, from: usize) -> Vec<serde_json::Value> {
        access_lines(&self.since(from))
    }

    /// Waits (20 s at most) for an access line logged from `from` on that `wanted` accepts.
    pub async fn wait_for_access(
        &self,
        from: usize,
        what: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                // Registered before looking, so a line written in between still wakes us.
                let written = self.written.notified();
                tokio::pin!(written);
                written.as_mut().enable();
                if let Some(line) = self.access_lines(from).into_iter().find(&wanted) {
                    return line;
                }
                written.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "no access line for {what} within 20 s; access lines: {:#?}",
                self.access_lines(from)
            )
        })
    }
}

pub fn access_lines(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter(|l| l.contains("secretgate::access"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "secretgate::access")
        .collect()
}

pub fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(move || writer.clone())
            .init();
        capture
    })
}

/// Held by each test while it runs: the capture is shared, and a test counts the lines
/// logged since it began.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}
