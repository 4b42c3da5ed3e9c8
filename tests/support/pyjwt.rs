//! tests/interop/pyjwt_verify.py, started ahead of time: Python is up and PyJWT imported
//! before the gateway signs, so the 30 s header lifetime is never spent on interpreter
//! start-up on a loaded machine. The token goes in on stdin; the body to check, when it
//! is known only once the upstream received it, is written just before (the script reads
//! its `--body-file` after the token).

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct PyjwtVerify {
    child: Child,
    body_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pyjwt_verify.py")
}

impl PyjwtVerify {
    /// Starts the verifier with the venv's `python`, the HMAC key in `key_file`, issuer
    /// `secretgate`, audience `legacy-token-service`, and the `extra` arguments; with
    /// `body`, `body_sha256` is checked against it.
    pub fn spawn(python: &Path, key_file: &Path, body: Option<&[u8]>, extra: &[&str]) -> Self {
        let v = Self::start(python, key_file, body.is_some(), extra);
        if let Some(body) = body {
            std::fs::write(&v.body_file, body).unwrap();
        }
        v
    }

    /// Like [`PyjwtVerify::spawn`], for a body given later to [`PyjwtVerify::verify_body`].
    pub fn spawn_for_body(python: &Path, key_file: &Path, extra: &[&str]) -> Self {
        Self::start(python, key_file, true, extra)
    }

    fn start(python: &Path, key_file: &Path, with_body: bool, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let body_file = dir.path().join("body");
        let mut cmd = Command::new(python);
        cmd.arg(script())
            .args(["--token", "-", "--key-file"])
            .arg(key_file)
            .args([
                "--issuer",
                "secretgate",
                "--audience",
                "legacy-token-service",
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if with_body {
            cmd.arg("--body-file").arg(&body_file);
        }
        Self {
            child: cmd.spawn().unwrap(),
            body_file,
            _dir: dir,
        }
    }

    /// The verdict on `token`: (exit 0, the JSON line printed).
    pub fn verify(mut self, token: &str) -> (bool, serde_json::Value) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(token.as_bytes()).unwrap();
        drop(stdin);
        let out = self.child.wait_with_output().unwrap();
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "pyjwt_verify.py printed {:?}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), json)
    }

    /// [`PyjwtVerify::verify`] with `body` as the body the header must be bound to.
    pub fn verify_body(self, token: &str, body: &[u8]) -> (bool, serde_json::Value) {
        std::fs::write(&self.body_file, body).unwrap();
        self.verify(token)
    }
}
