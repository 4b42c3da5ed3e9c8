//! The new-secret and hash-secret commands, the binary's trace logs, and config errors about hashes.

use super::*;

/// Runs the secretgate binary with `stdin` (if any) as its input; asserts it succeeded.
fn secretgate(args: &[&str], stdin: Option<&str>, envs: &[(&str, &str)]) -> Output {
    let out = secretgate_output(args, stdin, envs);
    assert!(
        out.status.success(),
        "secretgate {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the secretgate binary with `stdin` (if any) as its input, whatever its exit.
fn secretgate_output(args: &[&str], stdin: Option<&str>, envs: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(stdin) = stdin {
        input.write_all(stdin.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

async fn run_secretgate(args: &'static [&'static str], stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || secretgate(args, stdin.as_deref(), &[]))
        .await
        .unwrap()
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `^sgcs_[A-Za-z0-9_-]{49}$`, and the checksum holds.
fn assert_new_secret_shape(s: &str) {
    let rest = s
        .strip_prefix("sgcs_")
        .unwrap_or_else(|| panic!("no sgcs_ prefix: {s:?}"));
    assert_eq!(rest.len(), 49, "{s:?}");
    assert!(
        rest.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{s:?}"
    );
    assert!(secretgate::hashes::is_new_secret(s), "checksum: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_secret_and_hash_secret_commands() {
    let _shared = ALONE.read().await;
    let (one, two) = tokio::join!(
        run_secretgate(&["new-secret"], None),
        run_secretgate(&["new-secret"], None)
    );
    let (one, two) = (lines(&one), lines(&two));
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(two.len(), 1, "{two:?}");
    assert_new_secret_shape(&one[0]);
    assert_new_secret_shape(&two[0]);
    assert_ne!(one[0], two[0], "two runs made the same secret");

    // new-secret --hash: the secret, then its argon2id hash.
    let out = lines(&run_secretgate(&["new-secret", "--hash"], None).await);
    assert_eq!(out.len(), 2, "{out:?}");
    let (new_secret, new_hash) = (out[0].clone(), out[1].clone());
    assert_new_secret_shape(&new_secret);
    assert!(
        new_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{new_hash}"
    );
    assert!(!new_hash.contains(&new_secret));
    assert!(python_verifies(&new_secret, &new_hash).await, "argon2-cffi");
    assert!(!python_verifies(&one[0], &new_hash).await);

    // hash-secret --alg bcrypt, the secret on stdin without a newline (`echo -n`).
    let bcrypt_secret = "bcrypt-cli-secret-0123456789";
    let out = lines(
        &run_secretgate(
            &["hash-secret", "--alg", "bcrypt"],
            Some(bcrypt_secret.to_owned()),
        )
        .await,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let bcrypt_hash = out[0].clone();
    assert!(bcrypt_hash.starts_with("$2"), "{bcrypt_hash}");
    assert!(python_verifies(bcrypt_secret, &bcrypt_hash).await, "bcrypt");
    assert!(!python_verifies("bcrypt-cli-secret-012345678", &bcrypt_hash).await);

    // hash-secret --alg pbkdf2-sha256, with the newline `echo` leaves (not hashed).
    let pbkdf2_secret = "pbkdf2-cli-secret-0123456789";
    let out = lines(
        &run_secretgate(
            &["hash-secret", "--alg", "pbkdf2-sha256"],
            Some(format!("{pbkdf2_secret}\n")),
        )
        .await,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].starts_with("$pbkdf2-sha256$i=600000"), "{}", out[0]);
    assert!(python_verifies(pbkdf2_secret, &out[0]).await, "hashlib");
    assert!(!python_verifies(&format!("{pbkdf2_secret}\n"), &out[0]).await);

    // Both hashes in a gateway: they authenticate their secrets.
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "{}{}{NO_THROTTLE}",
        client(HASHED_BASIC, "client_secret_basic", &hash_source(&new_hash)),
        client(
            HASHED_POST,
            "client_secret_post",
            &hash_source(&bcrypt_hash)
        ),
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let needles = [
        new_secret.as_str(),
        new_hash.as_str(),
        bcrypt_secret,
        bcrypt_hash.as_str(),
    ];
    let mut c = gw.client(false).await;
    assert_accepted(
        &gw,
        &upstream,
        &mut c,
        basic_request(HASHED_BASIC, &new_secret),
        (HASHED_BASIC, "client_secret_basic"),
        &needles,
    )
    .await;
    assert_accepted(
        &gw,
        &upstream,
        &mut c,
        post_request(HASHED_POST, bcrypt_secret),
        (HASHED_POST, "client_secret_post"),
        &needles,
    )
    .await;
    assert_refused(&upstream, &mut c, true, HASHED_BASIC, &two[0]).await;

    // Bad input: refused with exit status 2, a message saying what is wrong, nothing on
    // stdout, and the refused secret not repeated.
    let long = "x".repeat(80);
    for (args, stdin, says) in [
        (
            &["hash-secret", "--alg", "nope"][..],
            Some("alg-nope-secret-0123456789"),
            &[
                "invalid value 'nope'",
                "argon2id",
                "bcrypt",
                "pbkdf2-sha256",
            ][..],
        ),
        (&["hash-secret"], None, &["error: the secret is empty"]),
        (
            &["hash-secret"],
            Some("\n"),
            &["error: the secret is empty"],
        ),
        (
            &["hash-secret"],
            Some("tab\tin-secret-0123456789"),
            &["error: a client secret is visible ASCII"],
        ),
        (
            &["hash-secret"],
            Some("non-ascii-s\u{e9}cret-0123456789"),
            &["error: a client secret is visible ASCII"],
        ),
        (
            &["hash-secret", "--alg", "bcrypt"],
            Some(long.as_str()),
            &["bcrypt reads at most 72 bytes", "this one is 80 bytes"],
        ),
        (
            &["new-secret", "--alg", "bcrypt"],
            None,
            &["required", "--hash"],
        ),
    ] {
        let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let input = stdin.map(str::to_owned);
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = owned.iter().map(String::as_str).collect();
            secretgate_output(&args, input.as_deref(), &[])
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {stdin:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} {stdin:?}: printed {out:?}");
        for text in says {
            assert!(stderr.contains(text), "{args:?} {stdin:?}: {stderr}");
        }
        if let Some(secret) = stdin.map(str::trim).filter(|s| !s.is_empty()) {
            assert!(!stderr.contains(secret), "{args:?}: {stderr}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. No secret and no hash in the logs.

/// Waits for the binary's admin listener to answer `/readyz` with 200.
async fn wait_ready(admin: std::net::SocketAddr, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(admin).await.is_ok()
            && admin_get(admin, "/readyz").await.0 == 200
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("secretgate exited during start-up: {status}");
        }
        assert!(Instant::now() < deadline, "secretgate never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every piece of `hash` worth hiding: the whole, and its last `$` field (the digest).
fn hash_pieces(hash: &str) -> Vec<String> {
    vec![hash.to_owned(), hash.rsplit('$').next().unwrap().to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_hash_in_the_binarys_trace_logs() {
    let _shared = ALONE.read().await;
    let secret = "logged-secret-never-0123456789";
    let wrong = "wrong-logged-secret-9876543210";
    let (basic_hash, post_hash) = (argon2id(secret), argon2id(secret));
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let hash_file = pki.path().join("hashed-post.hash");
    std::fs::write(&hash_file, format!("{post_hash}\n")).unwrap();
    let listen = free_addr().await;
    let admin = free_addr().await;
    let extra = format!(
        "{}{}{NO_THROTTLE}admin: {{ listen: \"{admin}\" }}\nreload: {{ watch: false }}\n",
        client(
            HASHED_BASIC,
            "client_secret_basic",
            &hash_source(&basic_hash)
        ),
        client(
            HASHED_POST,
            "client_secret_post",
            &format!("{{ hash_file: \"{}\" }}", hash_file.display())
        ),
    );
    let yaml = config_yaml(&pki, upstream.addr, &extra).replacen(
        "listen: \"127.0.0.1:0\"",
        &format!("listen: \"{listen}\""),
        1,
    );
    let config_file = pki.path().join("secretgate.yaml");
    std::fs::write(&config_file, yaml).unwrap();
    let log_file = pki.path().join("stderr.log");
    // A file, not a pipe: trace logs would fill a pipe nobody reads until the end.
    let mut child = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["run", "--config"])
        .arg(&config_file)
        .env("SECRETGATE_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    wait_ready(admin, &mut child).await;

    let tcp = tokio::net::TcpStream::connect(listen).await.unwrap();
    let mut c = Client::H1(h1_over_tls(tcp, &pki.ca_der).await);
    let mut statuses = Vec::new();
    for (basic, id, s) in [
        (true, HASHED_BASIC, secret),
        (true, HASHED_BASIC, wrong),
        (true, HASHED_BASIC, secret),
        (false, HASHED_POST, secret),
        (false, HASHED_POST, wrong),
        (true, "no-such-client", wrong),
    ] {
        statuses.push(c.send(request(basic, id, s)).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 401, 200, 200, 401, 401]);
    let (_, metrics) = admin_get(admin, "/metrics").await;
    assert_eq!(sample(&metrics, MATCHED), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, CACHE_HIT), 1.0, "{metrics}");
    drop(c);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let logs = std::fs::read_to_string(&log_file).unwrap();
    // The capture works: trace lines of the crates that saw the bytes, and access lines.
    assert!(logs.contains("TRACE"), "no trace lines:\n{logs}");
    assert!(
        logs.matches("secretgate::access").count() >= 6
            && logs.contains(HASHED_BASIC)
            && logs.contains(HASHED_POST),
        "access lines missing:\n{logs}"
    );
    let mut needles = vec![
        secret.to_owned(),
        wrong.to_owned(),
        basic(HASHED_BASIC, secret),
        basic(HASHED_BASIC, wrong),
        basic("no-such-client", wrong),
    ];
    needles.extend(hash_pieces(&basic_hash));
    needles.extend(hash_pieces(&post_hash));
    for needle in &needles {
        let needle = needle.strip_prefix("Basic ").unwrap_or(needle);
        assert!(!logs.contains(needle), "the logs hold `{needle}`");
    }

    // hash-secret: the hash on stdout and nothing else; no secret anywhere.
    let out = tokio::task::spawn_blocking(move || {
        secretgate(
            &["hash-secret"],
            Some(&format!("{secret}\n")),
            &[("SECRETGATE_LOG", "trace")],
        )
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(!stdout.contains(secret), "{stdout}");
    assert!(!stderr.contains(secret), "{stderr}");
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed.len(), 1, "{stdout}");
    assert!(printed[0].starts_with("$argon2id$"), "{stdout}");
    let hash = StoredHash::parse(printed[0]).expect("a hash the gateway accepts");
    assert!(hash.verify(secret.as_bytes()));
}

// ---------------------------------------------------------------------------------------
// 7. Config errors name the key and the floor.

fn problems_with(extra: &str) -> Vec<String> {
    let pki = Pki::generate();
    let yaml = config_yaml(&pki, "127.0.0.1:9".parse().unwrap(), extra);
    match secretgate::Config::from_yaml(&yaml, pki.path()) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(e) => e.problems(),
    }
}

/// The one problem reported, at `path`.
fn one_problem(extra: &str, path: &str) -> String {
    let problems = problems_with(extra);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let message = problems[0]
        .strip_prefix(&format!("{path}: "))
        .unwrap_or_else(|| panic!("not at {path}: {problems:#?}"));
    message.to_owned()
}

#[test]
fn hash_config_errors_name_the_key_path_and_the_reason() {
    // support's config has three clients: the one added is clients[3].
    let weak_bcrypt = make_hash(b"cost-eight-secret", HashParams::Bcrypt(8)).unwrap();
    let message = one_problem(
        &client(
            HASHED_BASIC,
            "client_secret_basic",
            &hash_source(&weak_bcrypt),
        ),
        "clients[3].secrets[0].hash",
    );
    assert!(
        message.contains("bcrypt cost 8") && message.contains("minimum of 10"),
        "{message}"
    );
    assert!(!message.contains(&weak_bcrypt[7..]), "{message}");

    let weak_pbkdf2 = make_hash(b"few-rounds-secret", HashParams::Pbkdf2(1000)).unwrap();
    let pki = Pki::generate();
    let file = pki.path().join("weak.hash");
    std::fs::write(&file, &weak_pbkdf2).unwrap();
    let message = one_problem(
        &client(
            HASHED_POST,
            "client_secret_post",
            &format!("{{ hash_file: \"{}\" }}", file.display()),
        ),
        "clients[3].secrets[0].hash_file",
    );
    assert!(message.contains("600000"), "{message}");

    let hash = argon2id("jwt-secret-must-stay-plain-0123456789");
    let message = one_problem(
        &client("hashed-jwt", "client_secret_jwt", &hash_source(&hash)),
        "clients[3].secrets[0]",
    );
    assert!(message.contains("client_secret_jwt"), "{message}");

    let message = one_problem(
        &client(
            HASHED_BASIC,
            "client_secret_basic",
            &hash_source("$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$aGFzaA"),
        ),
        "clients[3].secrets[0].hash",
    );
    assert!(message.contains("argon2id"), "{message}");

    // The second secret of a rotation window: its own index.
    let weak_argon = make_hash(b"x", HashParams::Argon2id(4096, 3, 1)).unwrap();
    let message = one_problem(
        &client(
            HASHED_BASIC,
            "client_secret_basic",
            &format!("{}, {}", hash_source(&hash), hash_source(&weak_argon)),
        ),
        "clients[3].secrets[1].hash",
    );
    assert!(message.contains("m=19456,t=2"), "{message}");
}
