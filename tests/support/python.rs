//! Python for the interoperability tests: a virtualenv under target/ made from
//! tests/interop/requirements.txt (pinned), so `cargo test` alone suffices on a machine
//! with python3 (`SECRETGATE_PYTHON` names another interpreter).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtualenv `name` under target/, created or brought up to date: rebuilt only when
/// the requirements changed since it was made. Each test binary uses a name of its own,
/// so that two binaries never build one venv at once. Returns its `python`.
pub fn venv(name: &str) -> PathBuf {
    venv_from(name, "tests/interop/requirements.txt")
}

/// Like [`venv`], with the pinned `requirements` file of another directory of the
/// repository (relative to its root), such as a kit program's own.
pub fn venv_from(name: &str, requirements: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shown = requirements;
    let requirements = root.join(requirements);
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.stamp");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && python.exists() {
        return python;
    }
    let base = std::env::var("SECRETGATE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let status = Command::new(&base)
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .unwrap_or_else(|e| panic!("these tests need python3 with venv ({base}): {e}"));
    assert!(status.success(), "creating the virtualenv {name} failed");
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "-r",
        ])
        .arg(&requirements)
        .status()
        .unwrap();
    assert!(status.success(), "pip install -r {shown} failed");
    std::fs::write(&stamp, wanted).unwrap();
    python
}
