//! `secretgate demo` as a newcomer runs it: start the binary, run every printed curl
//! command exactly as printed (the public client's code exchange with `CODE` set to the
//! code its authorize command got in the 302), expect a token from each, then SIGTERM and
//! a clean exit.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn every_printed_command_returns_a_token() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("Ready.");
            if tx.send(line).is_err() || done {
                break;
            }
        }
    });
    let mut commands = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo prints its commands and `Ready.`");
        if line.starts_with("Ready.") {
            break;
        }
        if line.starts_with("curl ") {
            commands.push(line);
        }
    }
    assert_eq!(
        commands.len(),
        9,
        "basic, post, multipart, jwt, private_key_jwt, mtls, authorize, code exchange and metrics commands"
    );
    let metrics = commands.pop().unwrap();
    assert!(metrics.contains("/metrics"), "{metrics}");

    // The public client's authorize command: a 302 whose Location carries the code.
    let authorize = commands.remove(6);
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let out = Command::new("sh")
        .args(["-c", &authorize])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{authorize}\n{head}");
    assert!(
        head.starts_with("HTTP/2 302") || head.starts_with("HTTP/1.1 302"),
        "{head}"
    );
    let code = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("location:")
                .then(|| l.to_owned())
        })
        .and_then(|l| l.split_once("code=").map(|(_, rest)| rest.to_owned()))
        .and_then(|rest| rest.split('&').next().map(|c| c.trim().to_owned()))
        .unwrap_or_else(|| panic!("a code in the Location of\n{head}"));

    let mut methods = Vec::new();
    for command in &commands {
        let out = Command::new("sh")
            .args(["-c", command])
            .env("CODE", &code)
            .output()
            .expect("sh and curl are installed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{command}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{command}\n{stdout}"));
        assert!(
            token["access_token"].as_str().unwrap().starts_with("demo-"),
            "{token}"
        );
        methods.push(token["auth_method"].as_str().unwrap().to_owned());
        // Only the certificate client's token is bound to a certificate.
        let bound = token["cnf"]["x5t#S256"].as_str().is_some();
        assert_eq!(bound, command.contains("--cert "), "{command}\n{token}");
    }
    assert_eq!(
        methods,
        [
            "client_secret_basic",
            "client_secret_post",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
            "tls_client_auth",
            "none"
        ]
    );

    // The metrics command shows what was just done, by method and outcome.
    let out = Command::new("sh").args(["-c", &metrics]).output().unwrap();
    let counted = String::from_utf8_lossy(&out.stdout);
    for (method, n) in [
        ("client_secret_basic", 1),
        ("client_secret_post", 2),
        ("client_secret_jwt", 1),
        ("private_key_jwt", 1),
        ("tls_client_auth", 1),
        ("none", 1),
    ] {
        let line =
            format!("secretgate_authentications_total{{method=\"{method}\",outcome=\"ok\"}} {n}");
        assert!(
            counted.lines().any(|l| l == line),
            "{line} not in\n{counted}"
        );
    }

    // SIGTERM: drain and exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(demo.wait());
    });
    let exit = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("demo exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}
