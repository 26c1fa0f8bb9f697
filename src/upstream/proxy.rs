//! The innermost service: requests to the legacy AS over the worker's [`Pool`], with the
//! headers the proxy owns (`X-Forwarded-*`, `Host` for HTTP/1.0). The request arrives clean
//! ([`crate::seam::sanitize`]) and buffered ([`crate::seam::limits`]); the response body streams back with
//! its hop-by-hop headers removed. A failed exchange is an [`UpstreamError`], which
//! [`crate::upstream::error_pages`] turns into a page.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::Either;
use uuid::Uuid;

use crate::config;
use crate::ops::metrics::{Metrics, UpstreamFailure};
use crate::seam::forwarded::{set_forwarded, strip_hop_by_hop};
use crate::upstream::error::PoolError;
use crate::upstream::pool::{Pool, PooledBody, Sending};
use crate::vocab::{Buffered, PageBody, Peer, random_uuid};

/// Every response body: the upstream's, streamed, or one the proxy wrote.
pub type Body = Either<PooledBody, PageBody>;

/// One worker's way to the upstream, from which each client connection gets its [`Upstream`].
pub struct UpstreamFactory {
    pool: Pool,
    default_host: HeaderValue,
    metrics: Arc<Metrics>,
}

impl UpstreamFactory {
    /// `pool` belongs to the worker that serves with the services made here.
    pub fn new(pool: Pool, cfg: &config::UpstreamConfig, metrics: Arc<Metrics>) -> Self {
        UpstreamFactory {
            pool,
            default_host: HeaderValue::from_str(cfg.authority.as_str())
                .expect("an authority is a header value"),
            metrics,
        }
    }

    /// The service for a connection from `peer`.
    pub fn for_peer(&self, peer: Peer) -> Upstream {
        Upstream {
            pool: self.pool.clone(),
            default_host: self.default_host.clone(),
            peer,
            metrics: self.metrics.clone(),
        }
    }
}

/// Sends a request to the upstream AS, for one client connection.
#[derive(Clone)]
pub struct Upstream {
    pool: Pool,
    /// `Host` for a request that came without one (HTTP/1.0; HTTP/1.1 without one is refused
    /// by [`crate::seam::sanitize`]).
    default_host: HeaderValue,
    peer: Peer,
    metrics: Arc<Metrics>,
}

impl tower::Service<Request<Buffered>> for Upstream {
    type Response = Response<Body>;
    type Error = UpstreamError;
    type Future = UpstreamFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Buffered>) -> UpstreamFuture {
        // Keep-alive to the upstream whatever the client speaks (HTTP/1.0 included).
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        // A scan, not a hashed lookup: cheaper over the few headers of a request (callgrind).
        let host = headers.iter().find(|(name, _)| *name == header::HOST);
        let host = match host {
            Some((_, host)) => host.clone(),
            None => {
                headers.insert(header::HOST, self.default_host.clone());
                self.default_host.clone()
            }
        };
        set_forwarded(&self.peer, headers, host);
        UpstreamFuture {
            sending: self.pool.send(req),
            started: Instant::now(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The upstream gave no response. Logged where it happened, with the trace id the page shows.
#[derive(Debug, Clone, thiserror::Error)]
#[error("upstream gave no response (trace id {trace_id}): {cause}")]
pub struct UpstreamError {
    #[source]
    pub cause: Arc<PoolError>,
    /// In the log line and on the page.
    pub trace_id: Uuid,
}

impl UpstreamError {
    /// No response head within `upstream.response_timeout` (504, not 502).
    pub fn timed_out(&self) -> bool {
        matches!(*self.cause, PoolError::ResponseTimeout)
    }
}

/// The upstream's response with hop-by-hop headers removed.
pub struct UpstreamFuture {
    /// Small: the request is with hyper, or boxed while it waits for a connection.
    sending: Sending,
    /// For `medmij_vert_upstream_response_seconds`.
    started: Instant,
    metrics: Arc<Metrics>,
}

impl Future for UpstreamFuture {
    type Output = Result<Response<Body>, UpstreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let error = match ready!(Pin::new(&mut self.sending).poll(cx)) {
            Ok(response) => {
                self.metrics.upstream_response(self.started.elapsed());
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                return Poll::Ready(Ok(Response::from_parts(parts, Either::Left(body))));
            }
            Err(error) => error,
        };
        let trace_id = random_uuid();
        if matches!(error, PoolError::ResponseTimeout) {
            self.metrics.upstream_error(UpstreamFailure::Timeout);
            tracing::warn!(
                %trace_id,
                "upstream did not answer within upstream.response_timeout: 504"
            );
        } else {
            self.metrics.upstream_error(UpstreamFailure::Failed);
            tracing::warn!(
                %trace_id,
                %error,
                connect = error.is_connect(),
                "upstream request failed: 502"
            );
        }
        Poll::Ready(Err(UpstreamError {
            cause: Arc::new(error),
            trace_id,
        }))
    }
}
