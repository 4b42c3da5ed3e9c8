//! A gateway in front of a recording upstream, for tests that check what was forwarded.

use super::*;

/// A gateway in front of a recording upstream: a request and what reached the upstream
/// because of it. Test files name it `Rig` and add their own methods in `impl Rig` blocks.
pub struct RecordingRig {
    pub upstream: RecordingUpstream,
    pub gw: Gateway,
}

impl RecordingRig {
    pub async fn start(extra: &str) -> RecordingRig {
        let upstream = RecordingUpstream::start(Behaviour::Token).await;
        let gw = Gateway::start_with(upstream.addr, extra).await;
        RecordingRig { upstream, gw }
    }

    /// Sends over a fresh connection of either protocol; returns the reply and what the
    /// upstream received because of it. The upstream records a request before it answers,
    /// and the gateway answers a forwarded request only after the upstream did.
    pub async fn send_on(&self, h2: bool, req: Request<Full<Bytes>>) -> (Reply, Option<Recorded>) {
        let before = self.upstream.records().len();
        let reply = self.gw.client(h2).await.send(req).await;
        let records = self.upstream.records();
        assert!(records.len() <= before + 1, "forwarded more than once");
        (reply, records.get(before).cloned())
    }

    /// [`RecordingRig::send_on`] over HTTP/1.1.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> (Reply, Option<Recorded>) {
        self.send_on(false, req).await
    }
}
