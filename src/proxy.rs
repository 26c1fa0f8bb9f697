//! The upstream side: requests to the legacy AS over the worker's [`Pool`], header hygiene, and
//! the 502 / 504 answers. Bodies stream through in both directions; nothing is buffered.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use uuid::Uuid;

use crate::config;
use crate::forwarded::{Peer, strip_hop_by_hop};
use crate::pages::{self, Details, Lang, Topic};
use crate::pool::{Pool, PoolError, PooledBody, Sending};
use crate::seal::random_uuid;

/// Every response body: the upstream's, streamed, or one the proxy wrote.
pub type Body = Either<PooledBody, Full<Bytes>>;

/// One worker's way to the upstream, from which each client connection gets its [`Upstream`].
pub struct UpstreamFactory {
    pool: Pool,
    default_host: HeaderValue,
}

impl UpstreamFactory {
    /// `pool` belongs to the worker that serves with the services made here.
    pub fn new(pool: Pool, cfg: &config::Upstream) -> Self {
        UpstreamFactory {
            pool,
            default_host: HeaderValue::from_str(cfg.authority.as_str())
                .expect("an authority is a header value"),
        }
    }

    /// The service for a connection from `peer`.
    pub fn for_peer(&self, peer: Peer) -> Upstream {
        Upstream {
            pool: self.pool.clone(),
            default_host: self.default_host.clone(),
            peer,
        }
    }
}

/// The innermost service: sends a request to the upstream AS, for one client connection.
#[derive(Clone)]
pub struct Upstream {
    pool: Pool,
    /// `Host` for a request that came without one (HTTP/1.0).
    default_host: HeaderValue,
    peer: Peer,
}

impl tower::Service<Request<Incoming>> for Upstream {
    type Response = Response<Body>;
    type Error = UpstreamError;
    type Future = UpstreamFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> UpstreamFuture {
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            origin_form(&mut req);
        }
        // Keep-alive to the upstream whatever the client speaks (HTTP/1.0 included).
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        let host = match headers.get(header::HOST) {
            Some(host) => host.clone(),
            None => {
                headers.insert(header::HOST, self.default_host.clone());
                self.default_host.clone()
            }
        };
        strip_hop_by_hop(headers);
        self.peer.set_forwarded(headers, host);
        UpstreamFuture {
            sending: self.pool.send(req),
        }
    }
}

/// An absolute-form target names the host itself (RFC 9112 §3.2.2): that becomes `Host`, and
/// the upstream gets origin-form.
fn origin_form(req: &mut Request<Incoming>) {
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
}

/// The upstream gave no response. Logged where it happened; the page is the caller's, who
/// knows the language of the person.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamError {
    timed_out: bool,
    /// In the log line and on the page.
    trace_id: Uuid,
}

impl UpstreamError {
    /// 504 for a timeout, else 502.
    pub fn page(&self, lang: Lang) -> Response<Body> {
        let (topic, status) = if self.timed_out {
            (Topic::TimedOut, StatusCode::GATEWAY_TIMEOUT)
        } else {
            (Topic::Unreachable, StatusCode::BAD_GATEWAY)
        };
        error_page(topic, status, lang, self.trace_id)
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.timed_out {
            "upstream timed out"
        } else {
            "upstream unreachable"
        };
        write!(f, "{what} (trace id {})", self.trace_id)
    }
}

impl std::error::Error for UpstreamError {}

/// The upstream's response with hop-by-hop headers removed.
pub struct UpstreamFuture {
    sending: Sending,
}

impl Future for UpstreamFuture {
    type Output = Result<Response<Body>, UpstreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let error = match ready!(Pin::new(&mut self.sending).poll(cx)) {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                return Poll::Ready(Ok(Response::from_parts(parts, Either::Left(body))));
            }
            Err(error) => error,
        };
        let trace_id = random_uuid();
        let timed_out = matches!(error, PoolError::ResponseTimeout);
        if timed_out {
            tracing::warn!(
                %trace_id,
                "upstream did not answer within upstream.response_timeout: 504"
            );
        } else {
            tracing::warn!(
                %trace_id,
                %error,
                connect = error.is_connect(),
                "upstream request failed: 502"
            );
        }
        Poll::Ready(Err(UpstreamError {
            timed_out,
            trace_id,
        }))
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
