//! Node.js for the interoperability tests: the packages of tests/interop/package.json,
//! installed exactly as tests/interop/package-lock.json pins them (`npm ci`) into a
//! directory under target/, so `cargo test` alone suffices on a machine with node (20 or
//! later) and npm. Like support/python.rs: installed again only when the lock changed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest Node.js major version openid-client v6 runs on (global WebCrypto, fetch).
const NODE_MAJOR: u32 = 20;

/// The directory `name` under target/ with the pinned packages in its node_modules,
/// installed or brought up to date, and a copy of each `.mjs` script of tests/interop (an
/// ES module resolves its imports from where the file is): run them from there. Each
/// test binary uses a name of its own, so that two binaries never install into one
/// directory at once.
pub fn modules(name: &str) -> PathBuf {
    modules_from(name, "tests/interop")
}

/// Like [`modules`], for the `package.json`, `package-lock.json` and `.mjs` scripts of
/// another directory of the repository (relative to its root), such as a kit program's.
pub fn modules_from(name: &str, source: &str) -> PathBuf {
    let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
    let dir = install(name, &interop);
    for entry in std::fs::read_dir(&interop).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "mjs") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

fn install(name: &str, interop: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let stamp = dir.join("lock.stamp");
    let manifest = std::fs::read_to_string(interop.join("package.json")).unwrap();
    let lock = std::fs::read_to_string(interop.join("package-lock.json")).unwrap();
    let wanted = format!("{manifest}\n{lock}");
    check_node();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
        && dir.join("node_modules").exists()
    {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("package.json"), &manifest).unwrap();
    std::fs::write(dir.join("package-lock.json"), &lock).unwrap();
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(&dir)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need npm (with node {NODE_MAJOR} or later): apt-get install npm (.ci/run installs it): {e}"
            )
        });
    assert!(
        status.success(),
        "npm ci of {}/package-lock.json into {} failed",
        interop.display(),
        dir.display()
    );
    std::fs::write(&stamp, wanted).unwrap();
    dir
}

/// Fails the test, saying what to install, unless `node` is there and recent enough.
fn check_node() {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need node {NODE_MAJOR} or later and npm: apt-get install nodejs npm (.ci/run installs them): {e}"
            )
        });
    let version = String::from_utf8_lossy(&out.stdout);
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= NODE_MAJOR,
        "these tests need node {NODE_MAJOR} or later, found {version:?}"
    );
}
