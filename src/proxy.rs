//! The upstream side: requests to the legacy AS over the worker's [`Pool`], header hygiene, and
//! the 502 / 504 answers. Bodies stream through in both directions; nothing is buffered.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::time::error::Elapsed;
use uuid::Uuid;

use crate::config;
use crate::forwarded::{Peer, strip_hop_by_hop};
use crate::pages::{self, Details, Lang, Topic};
use crate::pool::{Pool, PoolError, PooledBody};
use crate::seal::random_uuid;

/// Every response body: the upstream's, streamed, or one the proxy wrote.
pub type Body = Either<PooledBody, Full<Bytes>>;

struct Shared {
    /// `Host` for a request that came without one (HTTP/1.0).
    host: HeaderValue,
    response_timeout: Duration,
}

/// One worker's way to the upstream, from which each client connection gets its [`Upstream`].
pub struct UpstreamFactory {
    pool: Pool,
    shared: Arc<Shared>,
}

impl UpstreamFactory {
    /// `pool` belongs to the worker that serves with the services made here.
    pub fn new(pool: Pool, cfg: &config::Upstream) -> Self {
        UpstreamFactory {
            pool,
            shared: Arc::new(Shared {
                host: HeaderValue::from_str(cfg.authority.as_str())
                    .expect("an authority is a header value"),
                response_timeout: cfg.response_timeout,
            }),
        }
    }

    /// The service for a connection from `peer`.
    pub fn for_peer(&self, peer: Peer) -> Upstream {
        Upstream {
            pool: self.pool.clone(),
            shared: self.shared.clone(),
            peer,
        }
    }
}

/// The innermost service: sends a request to the upstream AS, for one client connection.
#[derive(Clone)]
pub struct Upstream {
    pool: Pool,
    shared: Arc<Shared>,
    peer: Peer,
}

impl tower::Service<Request<Incoming>> for Upstream {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = UpstreamFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> UpstreamFuture {
        // Only for the error page, which must be rendered after the request is gone.
        let lang = Lang::from_accept_language(req.headers().get(header::ACCEPT_LANGUAGE));
        // An absolute-form target names the host itself (RFC 9112 §3.2.2); the upstream gets
        // origin-form.
        if let Some(host) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(header::HOST, host);
        }
        let path_and_query = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path_and_query);
        // Keep-alive to the upstream whatever the client speaks (HTTP/1.0 included).
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        if !headers.contains_key(header::HOST) {
            headers.insert(header::HOST, self.shared.host.clone());
        }
        strip_hop_by_hop(headers);
        self.peer.set_forwarded(headers);
        let pool = self.pool.clone();
        let timeout = self.shared.response_timeout;
        UpstreamFuture {
            inner: Box::pin(async move { tokio::time::timeout(timeout, pool.send(req)).await }),
            lang,
        }
    }
}

type Sent = Result<Result<Response<PooledBody>, PoolError>, Elapsed>;

/// The upstream's response with hop-by-hop headers removed, or a 502 / 504 page.
pub struct UpstreamFuture {
    inner: Pin<Box<dyn Future<Output = Sent> + Send>>,
    lang: Lang,
}

impl Future for UpstreamFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match ready!(self.inner.as_mut().poll(cx)) {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            Ok(Err(error)) => {
                let trace_id = random_uuid();
                tracing::warn!(
                    %trace_id,
                    %error,
                    connect = error.is_connect(),
                    "upstream request failed: 502"
                );
                error_page(
                    Topic::Unreachable,
                    StatusCode::BAD_GATEWAY,
                    self.lang,
                    trace_id,
                )
            }
            Err(_elapsed) => {
                let trace_id = random_uuid();
                tracing::warn!(
                    %trace_id,
                    "upstream did not answer within upstream.response_timeout: 504"
                );
                error_page(
                    Topic::TimedOut,
                    StatusCode::GATEWAY_TIMEOUT,
                    self.lang,
                    trace_id,
                )
            }
        };
        Poll::Ready(Ok(response))
    }
}

/// A page for the proxy's own trouble (no flow, no client); `trace_id` is in the log line.
pub fn error_page(topic: Topic, status: StatusCode, lang: Lang, trace_id: Uuid) -> Response<Body> {
    pages::render(
        topic,
        status,
        &Details {
            lang,
            client_name: None,
            link_back: None,
            trace_id,
            ttl_minutes: 0,
        },
    )
}
