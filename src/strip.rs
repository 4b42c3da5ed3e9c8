//! Removes every inbound copy of the internal header, on every request, protected or not.
//!
//! The upstream trusts that header as proof of authentication; if a client could send it,
//! it could claim to be any client. So it is deleted before routing even looks at the
//! request, and only the signer (from verified state) ever sets it again. Same rule as
//! linkerd's identity header.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HeaderName;
use http::Request;
use tower::{Layer, Service};

#[derive(Debug, Clone)]
pub struct StripInternalHeaderLayer {
    name: Arc<HeaderName>,
}

impl StripInternalHeaderLayer {
    pub fn new(name: HeaderName) -> Self {
        Self {
            name: Arc::new(name),
        }
    }
}

impl<S> Layer<S> for StripInternalHeaderLayer {
    type Service = StripInternalHeader<S>;
    fn layer(&self, inner: S) -> Self::Service {
        StripInternalHeader {
            inner,
            name: self.name.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StripInternalHeader<S> {
    inner: S,
    name: Arc<HeaderName>,
}

impl<S, B> Service<Request<B>> for StripInternalHeader<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // docs/design.md §5: inbound copies are never forwarded. `remove` drops all values.
        req.headers_mut().remove(&*self.name);
        self.inner.call(req)
    }
}
