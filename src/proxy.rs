//! The upstream side: a pooled HTTP/1.1 client to the legacy AS, header hygiene, and the 502 /
//! 504 answers. Bodies stream through in both directions; nothing is buffered.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture as ClientFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Timeout;
use uuid::Uuid;

use crate::config;
use crate::forwarded::{Peer, strip_hop_by_hop};
use crate::pages::{self, Details, Lang, Topic};
use crate::seal::random_uuid;

/// Every response body: the upstream's, streamed, or one the proxy wrote.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Builds the pooled client to the upstream. One per worker: each pool lives on the runtime
/// that uses it.
pub fn client(cfg: &config::Upstream) -> Client<HttpConnector, Incoming> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(cfg.connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_max_idle_per_host(cfg.pool_max_idle)
        .build(connector)
}

struct Shared {
    authority: Authority,
    response_timeout: Duration,
}

/// The innermost service: sends a request to the upstream AS, for one client connection.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Incoming>,
    shared: Arc<Shared>,
    peer: Peer,
}

impl Upstream {
    pub fn new(client: Client<HttpConnector, Incoming>, cfg: &config::Upstream) -> Self {
        Upstream {
            client,
            shared: Arc::new(Shared {
                authority: cfg.authority.clone(),
                response_timeout: cfg.response_timeout,
            }),
            peer: Peer::new([127, 0, 0, 1].into(), false),
        }
    }

    /// The same upstream, for a connection from `peer`.
    pub fn for_peer(&self, peer: Peer) -> Self {
        Upstream {
            client: self.client.clone(),
            shared: self.shared.clone(),
            peer,
        }
    }
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
        let lang = Lang::from_accept_language(req.headers().get(http::header::ACCEPT_LANGUAGE));
        let path_and_query = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.shared.authority.clone());
        parts.path_and_query = Some(path_and_query);
        *req.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path are set");
        // Keep-alive to the upstream whatever the client speaks (HTTP/1.0 included).
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        self.peer.set_forwarded(headers);
        UpstreamFuture {
            inner: tokio::time::timeout(self.shared.response_timeout, self.client.request(req)),
            lang,
        }
    }
}

pin_project_lite::pin_project! {
    /// The upstream's response with hop-by-hop headers removed, or a 502 / 504 page.
    pub struct UpstreamFuture {
        #[pin]
        inner: Timeout<ClientFuture>,
        lang: Lang,
    }
}

impl Future for UpstreamFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match ready!(this.inner.poll(cx)) {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            Ok(Err(error)) => {
                let trace_id = random_uuid();
                tracing::warn!(
                    %trace_id,
                    error = %error_chain(&error),
                    connect = error.is_connect(),
                    "upstream request failed: 502"
                );
                error_page(
                    Topic::Unreachable,
                    StatusCode::BAD_GATEWAY,
                    *this.lang,
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
                    *this.lang,
                    trace_id,
                )
            }
        };
        Poll::Ready(Ok(response))
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
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
