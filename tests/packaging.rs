//! What ships besides the binary: the container build and the repository's legal files.
//! The image cannot be built on CI (no Docker daemon), so its inputs are checked here.

use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The workspace members named in Cargo.toml, other than the root package.
fn workspace_members() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("Cargo.toml has a [workspace] members list");
    line.split('"')
        .skip(1)
        .step_by(2)
        .filter(|m| *m != ".")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dockerfile_copies_every_workspace_member_and_pins_its_builder() {
    let dockerfile = read("deploy/Dockerfile");
    let copies: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        .collect();
    let members = workspace_members();
    assert!(!members.is_empty());
    for member in members {
        let top = member.split('/').next().unwrap_or(&member);
        assert!(
            copies
                .iter()
                .any(|c| c.split_whitespace().nth(1) == Some(top)
                    || c.split_whitespace().nth(1) == Some(member.as_str())),
            "deploy/Dockerfile does not COPY workspace member {member}: {copies:?}"
        );
    }
    // The builder is the exact Rust release the crate is tested with, never a moving tag.
    let from = dockerfile
        .lines()
        .find(|l| l.starts_with("FROM rust:"))
        .expect("a rust builder stage");
    let tag = from
        .split_whitespace()
        .nth(1)
        .and_then(|image| image.strip_prefix("rust:"))
        .expect("FROM rust:TAG");
    let version = tag.split('-').next().unwrap_or("");
    assert_eq!(
        version.split('.').count(),
        3,
        "builder `{from}` is not pinned to an exact Rust version"
    );
    assert!(
        version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{from}"
    );
}

#[test]
fn the_build_context_leaves_out_build_output_and_keeps_the_sources() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target/", ".git/"] {
        assert!(patterns.contains(&must), ".dockerignore lacks {must}");
    }
    // What the image build reads must not be ignored.
    for needed in ["src", "crates", "benches", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !patterns
                .iter()
                .any(|p| p.trim_end_matches('/') == needed || p.trim_start_matches("**/") == needed),
            ".dockerignore drops {needed}, which deploy/Dockerfile copies"
        );
    }
}

#[test]
fn the_license_file_is_the_one_cargo_toml_names() {
    let manifest = read("Cargo.toml");
    assert!(manifest.contains("license = \"Apache-2.0\""));
    let license = read("LICENSE");
    assert!(license.contains("Apache License"));
    assert!(license.contains("Version 2.0, January 2004"));
    assert!(license.contains("END OF TERMS AND CONDITIONS"));
    let security = read("SECURITY.md");
    assert!(security.contains("## Reporting") && security.contains("## In scope"));
}
