//! Micro-benchmarks of hashed client secrets (docs/design.md §2.7): what one cold
//! verification costs per algorithm, and what the verify cache makes of it.
//!
//! - `hash_verify_cold/*`: one `StoredHash::verify` of the right secret, the work a
//!   request does when its (client, hashes, secret) is not in the verify cache — the
//!   first request of a client, the first after `hashing.verify_cache_ttl`, and every
//!   wrong secret (failures are never cached). Parameters: argon2id at what
//!   `secretgate hash-secret` makes (OWASP's recommendation, m=19456 KiB, t=2, p=1);
//!   bcrypt at the floor config accepts (cost 10) and at `hash-secret --alg bcrypt`'s
//!   cost 12; PBKDF2-SHA256 at 600,000 iterations (floor and default alike). Single
//!   threaded: in the gateway these run on blocking threads, at most
//!   `hashing.max_concurrent` at once.
//! - `hash_verify_warm/*`: `Hasher::verify` answered by the verify cache (the steady
//!   state of a client that authenticates again within the TTL): an HMAC-SHA256 of the
//!   client id, the client's hashes and the presented secret, and a cache lookup. The
//!   key covers the hash text, so an argon2id hash (~100 bytes) and a bcrypt one (60)
//!   cost about the same.
//! - `plain_secret_hmac`: one HMAC-SHA256 over the secret with a prepared key, about what
//!   comparing a plain secret costs (the registry's digest of the presented secret),
//!   for scale.
//!
//! The end-to-end counterpart is `bench/run.sh`'s `sg-hashed` scenario (an argon2id
//! Basic client next to the plain one, warm cache). Runs with the binary's allocator
//! (mimalloc), as `auth_path` does. Short on purpose: a cold verification takes 10 to
//! 200 ms, so each cold benchmark is 10 samples over ~3 s (~35 s for the whole file).
//!
//! Run: `cargo bench --bench hashes` (results in target/criterion/).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use futures_util::FutureExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use secretgate::auth::hashing::Hasher;
use secretgate::config::HashingConfig;
use secretgate::hashes::{make_hash, HashAlgorithm, HashParams, StoredHash, ARGON2_DEFAULT};
use secretgate::metrics::Metrics;
use secretgate::secret::Secret;

/// A secret as `new-secret` makes them (54 characters: under bcrypt's 72 bytes).
const SECRET: &str = "sgcs_Zq3v5m2mHkq0cV8yJ1f0xk3r6c0u1b2n3m4l5k6j7h8g9fAbCdE";
const CLIENT_ID: &str = "ledger";

/// The cases measured: name, parameters.
fn cases() -> Vec<(&'static str, HashParams)> {
    let (m, t, p) = ARGON2_DEFAULT;
    vec![
        ("argon2id/m19456_t2_p1", HashParams::Argon2id(m, t, p)),
        ("bcrypt/cost10", HashParams::Bcrypt(10)),
        ("bcrypt/cost12", HashParams::Bcrypt(12)),
        ("pbkdf2-sha256/600000", HashParams::Pbkdf2(600_000)),
    ]
}

/// A hash of [`SECRET`] with `params`, parsed as config would parse it (floors checked).
fn stored(params: HashParams) -> StoredHash {
    let text = make_hash(SECRET.as_bytes(), params).expect("hash made");
    StoredHash::parse(&text).expect("a hash config accepts")
}

fn benches(c: &mut Criterion) {
    let cases: Vec<(&str, StoredHash)> = cases()
        .into_iter()
        .map(|(name, params)| (name, stored(params)))
        .collect();
    // Sanity: the parameters are the ones named, the right secret matches, a wrong one not.
    assert_eq!(
        HashParams::recommended(HashAlgorithm::Argon2id),
        HashParams::Argon2id(ARGON2_DEFAULT.0, ARGON2_DEFAULT.1, ARGON2_DEFAULT.2)
    );
    for (name, h) in &cases {
        assert!(h.verify(SECRET.as_bytes()), "{name}: right secret refused");
        assert!(!h.verify(b"wrong"), "{name}: wrong secret accepted");
    }

    let mut g = c.benchmark_group("hash_verify_cold");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for (name, h) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| black_box(h.verify(black_box(SECRET.as_bytes()))))
        });
    }
    g.finish();

    // The cache: one Hasher as the gateway builds it (default TTL and pool), primed with
    // one real verification per client; every timed call is then a hit. `verify` is
    // async only for the cold path (spawn_blocking): a hit completes on its first poll.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hasher = Hasher::new(
        &HashingConfig {
            verify_cache_ttl: Duration::from_secs(300),
            max_concurrent: 2,
            max_queued: 64,
        },
        Arc::new(Metrics::new()),
    );
    let secret = Secret::new(SECRET);
    let mut g = c.benchmark_group("hash_verify_warm");
    g.throughput(Throughput::Elements(1));
    for (name, h) in &cases {
        let hashes = [Arc::new(h.clone())];
        assert_eq!(
            rt.block_on(hasher.verify(CLIENT_ID, &hashes, &hashes, &secret)),
            Ok(true),
            "{name}: priming verification"
        );
        g.bench_function(*name, |b| {
            b.iter(|| {
                let hit = hasher
                    .verify(CLIENT_ID, &hashes, &hashes, black_box(&secret))
                    .now_or_never()
                    .expect("a cache hit completes on its first poll");
                black_box(hit)
            })
        });
        // The hit is a hit: the same call with a wrong secret would take a cold verify.
        assert_eq!(
            hasher
                .verify(CLIENT_ID, &hashes, &hashes, &secret)
                .now_or_never(),
            Some(Ok(true)),
            "{name}: not served from the cache"
        );
    }
    g.finish();

    let key = <Hmac<Sha256> as Mac>::new_from_slice(&[7u8; 32]).expect("any key length");
    c.bench_function("plain_secret_hmac", |b| {
        b.iter(|| {
            let mut m = key.clone();
            m.update(black_box(SECRET.as_bytes()));
            black_box(m.finalize().into_bytes())
        })
    });
}

criterion_group! {
    name = hashes;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .noise_threshold(0.05);
    targets = benches
}
criterion_main!(hashes);
