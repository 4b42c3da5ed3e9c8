//! A gateway on a listener bound first, so its public URL (`https://localhost:PORT`) is the
//! address a third-party client calls and puts in `aud`; and polling a gateway's metrics
//! for what its background tasks do.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use super::{clock, config_yaml, sample, Gateway, Pki, PUBLIC_URL};

/// A gateway whose public URL is the address a third-party client calls (so the endpoint
/// URL it puts in `aud` is the one the gateway expects), with the support clients.
pub async fn gateway_for(upstream: SocketAddr) -> (Gateway, String) {
    let (listener, public) = public_listener().await;
    (serve_gateway(listener, &public, upstream, "").await, public)
}

/// The gateway's listener, bound first so that its public URL (`https://localhost:PORT`)
/// is known before the upstream starts.
pub async fn public_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, format!("https://localhost:{port}"))
}

/// The gateway on `listener`, with the support clients plus `extra`, public at `public`
/// (and its `issuer` under it).
pub async fn serve_gateway(
    listener: TcpListener,
    public: &str,
    upstream: SocketAddr,
    extra: &str,
) -> Gateway {
    serve_gateway_in(Pki::generate(), listener, public, upstream, extra).await
}

/// [`serve_gateway`] in a PKI directory the test already put files in.
pub async fn serve_gateway_in(
    pki: Pki,
    listener: TcpListener,
    public: &str,
    upstream: SocketAddr,
    extra: &str,
) -> Gateway {
    let port = listener.local_addr().unwrap().port();
    let yaml = config_yaml(&pki, upstream, extra).replace(PUBLIC_URL, public);
    let config = secretgate::Config::from_yaml(&yaml, pki.path()).unwrap();
    let gateway = secretgate::Gateway::with_clock(config.clone(), clock()).unwrap();
    let lifecycle = gateway.lifecycle();
    let reloader = gateway.reloader();
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = admin_listener.local_addr().unwrap();
    let task = tokio::spawn(gateway.serve(listener, Some(admin_listener), std::future::pending()));
    Gateway {
        addr: ([127, 0, 0, 1], port).into(),
        pki,
        config,
        shutdown: None,
        task,
        lifecycle,
        admin: Some(admin),
        reloader,
        config_file: None,
    }
}

/// Polls `probe` every 20 ms until it gives `Ok`, for at most `within`; an `Err` says what
/// the state was, for the failure message. For what a background task does, never slept on.
pub async fn poll_until<T, F, Fut>(within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(done) => return done,
            Err(state) => assert!(
                tokio::time::Instant::now() < deadline,
                "not within {within:?}: {state}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the gateway's metrics (every 20 ms, 10 s at most) until `series` is at least
/// `at_least`, for what a background task does (a fetch of a `jwks_uri`, say); returns
/// the metrics then.
pub async fn until_sample(gw: &Gateway, series: &str, at_least: f64) -> String {
    poll_until(Duration::from_secs(10), || async {
        let m = gw.metrics().await;
        if sample(&m, series) >= at_least {
            Ok(m)
        } else {
            Err(format!("{series} did not reach {at_least}:\n{m}"))
        }
    })
    .await
}
