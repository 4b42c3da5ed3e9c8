//! An unknown client and a wrong secret alike, a reload that changes a hash, floods of wrong secrets and the throttle before hashing.

use super::*;

/// Headers that differ between any two responses whatever they answer.
fn comparable_headers(reply: &Reply) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<(String, Vec<u8>)> = reply
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date"))
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    headers.sort();
    headers
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_client_and_wrong_secret_look_and_take_the_same() {
    let _alone = ALONE.write().await;
    let secret = "timing-secret-0123456789";
    let hash = argon2id(secret);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "{}{NO_THROTTLE}hashing: {{ verify_cache_ttl: 0s }}\n",
        hashed_pair(&hash)
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    // One connection, kept alive: no handshake in any measured request.
    let mut c = gw.client(false).await;

    for basic in [true, false] {
        let id = if basic { HASHED_BASIC } else { HASHED_POST };
        let unknown = assert_refused(&upstream, &mut c, basic, "no-such-client", "wrong-0").await;
        let wrong = assert_refused(&upstream, &mut c, basic, id, "wrong-0").await;
        assert_eq!(unknown.status, wrong.status);
        assert_eq!(comparable_headers(&unknown), comparable_headers(&wrong));
        assert_eq!(unknown.body, wrong.body);
    }

    // Alternating, distinct wrong secrets (nothing cached either way), medians of 31.
    const N: usize = 31;
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..N + 1 {
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_unknown in order {
            let id = if is_unknown {
                "no-such-client"
            } else {
                HASHED_BASIC
            };
            let req = basic_request(id, &format!("wrong-secret-{i}"));
            let start = Instant::now();
            let reply = c.send(req).await;
            let took = start.elapsed();
            assert_invalid_client(&reply, true);
            // The first round warms up both paths and is not counted.
            if i > 0 {
                if is_unknown {
                    unknown.push(took)
                } else {
                    wrong.push(took)
                }
            }
        }
    }
    let (u, w) = (median(unknown.clone()), median(wrong.clone()));
    let ratio = u.max(w).as_secs_f64() / u.min(w).as_secs_f64();
    eprintln!("median unknown client {u:?}, wrong secret {w:?} (ratio {ratio:.3})");
    assert!(
        ratio <= 1.2,
        "median unknown client {u:?}, wrong secret {w:?} (ratio {ratio:.2})\n\
         unknown: {unknown:?}\nwrong: {wrong:?}"
    );
    // Every one of them was a real verification (the unknown ones against the decoy).
    assert_eq!(
        counter(&gw, MISMATCHED).await,
        (4 + 2 * (N + 1)) as f64,
        "every refusal cost a hash verification"
    );
    assert!(upstream.records().is_empty());
}

// ---------------------------------------------------------------------------------------
// 3. A reload retires a cached verification.

#[tokio::test]
async fn a_reload_that_changes_the_hash_retires_the_cached_secret() {
    let _shared = ALONE.read().await;
    let (a, b) = ("reload-secret-A-0123456789", "reload-secret-B-0123456789");
    let (hash_a, hash_b) = tokio::join!(python_hash(a, "argon2id"), python_hash(b, "argon2id"));
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let yaml = |hash: &str| {
        config_yaml(
            &pki,
            upstream.addr,
            &format!(
                "{}{NO_THROTTLE}reload: {{ watch: false }}\n",
                client(HASHED_BASIC, "client_secret_basic", &hash_source(hash))
            ),
        )
    };
    let (yaml_a, yaml_b) = (yaml(&hash_a), yaml(&hash_b));
    let gw = Gateway::start_file(pki, &yaml_a).await;
    let needles = [a, b, hash_a.as_str(), hash_b.as_str()];
    let who = (HASHED_BASIC, "client_secret_basic");
    let mut c = gw.client(false).await;
    for _ in 0..2 {
        assert_accepted(
            &gw,
            &upstream,
            &mut c,
            basic_request(HASHED_BASIC, a),
            who,
            &needles,
        )
        .await;
    }
    assert_eq!(counter(&gw, MATCHED).await, 1.0);
    assert_eq!(counter(&gw, CACHE_HIT).await, 1.0, "A is cached");

    std::fs::write(gw.config_file.as_ref().unwrap(), &yaml_b).unwrap();
    gw.reloader.reload().await.expect("the new config reloads");
    // At once, on the same connection: A is refused after a real verification.
    assert_refused(&upstream, &mut c, true, HASHED_BASIC, a).await;
    let metrics = gw.metrics().await;
    assert_eq!(sample(&metrics, CACHE_HIT), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, MISMATCHED), 1.0, "{metrics}");
    for _ in 0..2 {
        assert_accepted(
            &gw,
            &upstream,
            &mut c,
            basic_request(HASHED_BASIC, b),
            who,
            &needles,
        )
        .await;
    }
    assert_eq!(counter(&gw, MATCHED).await, 2.0);
    assert_eq!(counter(&gw, CACHE_HIT).await, 2.0, "B is cached");
    assert_refused(&upstream, &mut c, true, HASHED_BASIC, a).await;
}

// ---------------------------------------------------------------------------------------
// 4. A flood of wrong secrets is bounded and stalls no one.

/// A connection from another loopback address (tests/conformance/rig.rs).
async fn connect_from(gw: &Gateway, ip: [u8; 4]) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((ip, 0)))
        .expect("bind another loopback address");
    let tcp = socket.connect(gw.addr).await.unwrap();
    Client::H1(h1_over_tls(tcp, &gw.pki.ca_der).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_secrets_is_bounded_and_stalls_no_one() {
    let _alone = ALONE.write().await;
    let hash = argon2id("flood-secret-0123456789");
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut upstream = RecordingUpstream::start(Behaviour::Gate(gate.clone())).await;
    let extra = format!(
        "{}{NO_THROTTLE}hashing: {{ max_concurrent: 1, max_queued: 4 }}\n",
        client(HASHED_BASIC, "client_secret_basic", &hash_source(&hash))
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(gw.client(false).await);
    }
    let mut probe = connect_from(&gw, [127, 0, 0, 2]).await;

    // 40 connections from 127.0.0.1 send wrong secrets back to back until the probe has
    // its answer (or 20 s pass): the pool stays saturated for as long as the probe runs.
    let stop = Arc::new(AtomicBool::new(false));
    let replies: Arc<Mutex<Vec<(Instant, StatusCode, Reply)>>> = Arc::default();
    let (saturated_tx, mut saturated_rx) = tokio::sync::mpsc::unbounded_channel();
    let deadline = Instant::now() + Duration::from_secs(20);
    let tasks: Vec<_> = flood
        .into_iter()
        .enumerate()
        .map(|(n, mut c)| {
            let (stop, replies, saturated_tx) =
                (stop.clone(), replies.clone(), saturated_tx.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    let reply = c
                        .send(basic_request(HASHED_BASIC, &format!("wrong-{n}-{i}")))
                        .await;
                    i += 1;
                    let at = Instant::now();
                    if reply.status == StatusCode::SERVICE_UNAVAILABLE {
                        let _ = saturated_tx.send(at);
                    }
                    replies.lock().unwrap().push((at, reply.status, reply));
                }
            })
        })
        .collect();
    drop(saturated_tx);
    saturated_rx
        .recv()
        .await
        .expect("some flood request was refused for saturation");

    // The pool is full: a plaintext client from another address gets through at once.
    let sent = Instant::now();
    let probe = tokio::spawn(async move { probe.send(post_request(POST_ID, POST_SECRET)).await });
    upstream
        .arrivals
        .recv()
        .await
        .expect("the probe reached the upstream");
    let passed = Instant::now();
    // The upstream holds the probe until a flood request is seen refused for saturation
    // after the probe got through: the pool was full while the probe was served, whatever
    // the scheduling of the flood tasks.
    loop {
        let at = saturated_rx
            .recv()
            .await
            .expect("the flood is still refused for saturation");
        if at > passed {
            break;
        }
    }
    gate.notify_one();
    let reply = probe.await.unwrap();
    let answered = Instant::now();
    stop.store(true, Ordering::Release);
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(
        passed - sent < Duration::from_secs(2),
        "the probe took {:?} to get through during the flood",
        passed - sent
    );
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "the probe took {:?} to get through the flood",
        passed - sent
    );

    let replies = std::mem::take(&mut *replies.lock().unwrap());
    let (mut refused, mut saturated, mut saturated_during_probe) = (0, 0, 0);
    for (at, status, reply) in &replies {
        match *status {
            StatusCode::UNAUTHORIZED => {
                assert_invalid_client(reply, true);
                refused += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(reply.error(), "temporarily_unavailable");
                assert_eq!(reply.headers["retry-after"], "1");
                saturated += 1;
                if *at > sent && *at < answered {
                    saturated_during_probe += 1;
                }
            }
            other => panic!("flood request answered {other}: {:?}", reply.body),
        }
    }
    assert!(
        saturated_during_probe > 0,
        "the pool was not saturated while the probe ran ({refused} refused, {saturated} saturated)"
    );
    assert!(refused > 0, "some wrong secrets were verified and refused");
    let metrics = gw.metrics().await;
    assert_eq!(sample(&metrics, SATURATED), saturated as f64, "{metrics}");
    assert_eq!(sample(&metrics, MISMATCHED), refused as f64, "{metrics}");
    assert_eq!(
        upstream.records().len(),
        1,
        "only the probe reached the upstream"
    );
}

/// RFC 6749 §2.3.1's brute-force protection comes before any hash work: once a source has
/// used up `throttle.max_failures` on a hashed client, its next requests get 429, a wrong
/// secret and the right one alike, without a verification or a verify-cache lookup.
#[tokio::test]
async fn the_throttle_is_checked_before_any_hash_work() {
    let _shared = ALONE.read().await;
    let secret = "throttled-secret-0123456789";
    let hash = argon2id(secret);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "{}throttle: {{ max_failures: 3, max_failures_per_address: 100 }}\n",
        hashed_pair(&hash)
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let hash_work = |metrics: &str| {
        [MATCHED, MISMATCHED, SATURATED, CACHE_HIT, CACHE_MISS].map(|s| sample(metrics, s))
    };
    let mut c = gw.client(false).await;
    for (n, (basic, id)) in [(true, HASHED_BASIC), (false, HASHED_POST)]
        .into_iter()
        .enumerate()
    {
        for i in 0..3 {
            assert_refused(&upstream, &mut c, basic, id, &format!("wrong-{i}")).await;
        }
        let before = hash_work(&gw.metrics().await);
        let verified = 3.0 * (n + 1) as f64;
        assert_eq!(before, [0.0, verified, 0.0, 0.0, verified], "{id}");
        for presented in ["wrong-3", secret] {
            let reply = c.send(request(basic, id, presented)).await;
            assert_eq!(
                reply.status,
                StatusCode::TOO_MANY_REQUESTS,
                "{id}: {:?}",
                reply.body
            );
            assert_eq!(reply.error(), "slow_down");
            assert!(reply.headers.contains_key("retry-after"));
        }
        let metrics = gw.metrics().await;
        assert_eq!(
            hash_work(&metrics),
            before,
            "{id}: a throttled request cost hash work\n{metrics}"
        );
    }
    assert!(upstream.records().is_empty());
}

// ---------------------------------------------------------------------------------------
// 5. The commands.
