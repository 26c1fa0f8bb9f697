//! [`TokenGuardLayer`] (`[token_guard] path`, off unless set): a token request with
//! `grant_type=authorization_code` reaches the AS only if the proxy released its code and it
//! was not redeemed before; the record is consumed. Otherwise `400 {"error":"invalid_grant"}`
//! (RFC 6749 §5.2), without contacting the AS. So a code that left the AS some way the proxy
//! does not inspect (a form post, a script, a withheld redirect) never becomes a token. Other
//! grants pass. The body is read whole by [`crate::limits`] before this layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::Full;

use crate::answer::{Answer, Deferred};
use crate::limits::Buffered;
use crate::pages::{PageBody, WithPages};
use crate::paths::{GuardedPaths, Route};
use crate::store::Records;
use crate::vert::token::{self, TokenRequest};

#[derive(Clone)]
pub struct TokenGuardLayer {
    /// None: the token guard is off, and every request passes.
    paths: Option<Arc<GuardedPaths>>,
    records: Arc<Records>,
}

impl TokenGuardLayer {
    /// `path`: the AS's token endpoint, matched under every spelling (like the authorize path).
    pub fn new(path: &str, case_insensitive: bool, records: Arc<Records>) -> Self {
        TokenGuardLayer {
            paths: Some(Arc::new(GuardedPaths::new(path, case_insensitive))),
            records,
        }
    }

    /// Off: one branch per request, and the stack keeps one type either way.
    pub fn off(records: Arc<Records>) -> Self {
        TokenGuardLayer {
            paths: None,
            records,
        }
    }
}

impl<S> tower::Layer<S> for TokenGuardLayer {
    type Service = TokenGuard<S>;

    fn layer(&self, inner: S) -> TokenGuard<S> {
        TokenGuard {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct TokenGuard<S> {
    inner: S,
    layer: TokenGuardLayer,
}

type Boxed<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ResB> tower::Service<Request<Buffered>> for TokenGuard<S>
where
    S: tower::Service<Request<Buffered>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ResB: WithPages + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Answer<Deferred<S::Future, Boxed<Response<ResB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Buffered>) -> Self::Future {
        let guarded = self
            .layer
            .paths
            .as_ref()
            .is_some_and(|paths| paths.route(req.uri().path()) == Route::Guarded);
        if !guarded {
            return Answer::Inner {
                future: Deferred::Now {
                    future: self.inner.call(req),
                },
            };
        }
        // RFC 6749 §3.2: token requests are POSTs. Anything else on this path, or a query that
        // carries a code beside the body's, never reaches the AS.
        if req.method() != Method::POST {
            let mut answer = oauth_error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
            answer
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Answer::own(answer);
        }
        if !token::query_is_clean(req.uri().query().unwrap_or("")) {
            tracing::info!("token request refused: a code or grant in the query");
            return Answer::own(oauth_error(StatusCode::BAD_REQUEST, "invalid_request"));
        }
        let (parts, body) = req.into_parts();
        let body = full_bytes(body);
        let code = match token::parse(&body) {
            TokenRequest::OtherGrant => {
                let req = Request::from_parts(parts, Full::new(body));
                return Answer::Inner {
                    future: Deferred::Now {
                        future: self.inner.call(req),
                    },
                };
            }
            TokenRequest::Invalid(why) => {
                tracing::info!(reason = why, "token request refused: invalid_request");
                return Answer::own(oauth_error(StatusCode::BAD_REQUEST, "invalid_request"));
            }
            TokenRequest::Code(code) => code.into_owned(),
        };
        // The service that was polled ready goes with the request; a clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let records = self.layer.records.clone();
        let future = Box::pin(async move {
            let answer = match records.redeem(&code).await {
                Ok(true) => {
                    let req = Request::from_parts(parts, Full::new(body));
                    return inner.call(req).await;
                }
                Ok(false) => {
                    tracing::info!(
                        "token request refused: invalid_grant (a code the proxy did not release, or one redeemed before)"
                    );
                    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant")
                }
                Err(_) => oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
            };
            Ok(ResB::response(answer))
        });
        Answer::Inner {
            future: Deferred::Later { future },
        }
    }
}

/// The bytes of a buffered body: a `Full` yields them at its first poll, without waiting.
fn full_bytes(mut body: Buffered) -> Bytes {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// An OAuth error response (RFC 6749 §5.2): JSON, never cached.
fn oauth_error(status: StatusCode, error: &'static str) -> Response<PageBody> {
    let body = format!("{{\"error\":\"{error}\"}}");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use arc_swap::ArcSwap;
    use http_body_util::{BodyExt, Either};
    use tower::{Layer, ServiceExt};

    use crate::metrics::Metrics;
    use crate::seal::KeyRing;
    use crate::store::{MemoryStore, Store};

    fn records(store: Arc<dyn Store>) -> Arc<Records> {
        Arc::new(Records::new(
            store,
            Arc::new(ArcSwap::from_pointee(KeyRing::random())),
            Duration::from_secs(60),
            Some(Duration::from_secs(600)),
            Metrics::new(),
        ))
    }

    fn post(body: &'static str) -> Request<Buffered> {
        Request::post("/oauth2/token")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    async fn call(
        records: &Arc<Records>,
        calls: &Arc<AtomicUsize>,
        req: Request<Buffered>,
    ) -> (StatusCode, String) {
        let calls = calls.clone();
        let inner = tower::service_fn(move |req: Request<Buffered>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                Ok::<_, Infallible>(Response::new(Either::Left(Full::new(body))))
            }
        });
        let layer = TokenGuardLayer::new("/oauth2/token", true, records.clone());
        let response = layer.layer(inner).oneshot(req).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_released_code_is_redeemed_once() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let calls = Arc::new(AtomicUsize::new(0));
        records.release([7; 32], "C0DE").await.unwrap();
        let body = "grant_type=authorization_code&code=C0DE";
        assert_eq!(
            call(&records, &calls, post(body)).await,
            (StatusCode::OK, body.into())
        );
        let refused = call(&records, &calls, post(body)).await;
        assert_eq!(
            refused,
            (
                StatusCode::BAD_REQUEST,
                "{\"error\":\"invalid_grant\"}".into()
            )
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_code_the_proxy_did_not_release_never_reaches_the_as() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let calls = Arc::new(AtomicUsize::new(0));
        let (status, body) = call(
            &records,
            &calls,
            post("grant_type=authorization_code&code=OTHER"),
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_grant\"}")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_repeated_code_is_invalid_request_and_other_grants_pass() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let calls = Arc::new(AtomicUsize::new(0));
        let (status, body) = call(
            &records,
            &calls,
            post("grant_type=authorization_code&code=a&code=b"),
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let (status, _) = call(
            &records,
            &calls,
            post("grant_type=refresh_token&refresh_token=r"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        // Another path: not this layer's business.
        let other = Request::get("/oauth2/authorize?code=x")
            .body(Full::default())
            .unwrap();
        assert_eq!(call(&records, &calls, other).await.0, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_token_path_takes_only_posts_without_a_code_in_the_query() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let calls = Arc::new(AtomicUsize::new(0));
        records.release([9; 32], "C0DE").await.unwrap();
        let get = Request::get("/oauth2/token?grant_type=authorization_code&code=OTHER")
            .body(Full::default())
            .unwrap();
        assert_eq!(
            call(&records, &calls, get).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        // A released code in the body, another in the query (merged by some frameworks).
        let merged = Request::post("/OAuth2/token.json?code=OTHER")
            .body(Full::new(Bytes::from_static(
                b"grant_type=authorization_code&code=C0DE",
            )))
            .unwrap();
        let (status, body) = call(&records, &calls, merged).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    /// A store that is down.
    struct Down;

    impl Store for Down {
        fn claim(&self, _: [u8; 32], _: Duration) -> crate::store::StoreFuture<'_, bool> {
            Box::pin(std::future::ready(Err(
                crate::store::StoreError::Unavailable("down".into()),
            )))
        }
        fn take(&self, _: [u8; 32]) -> crate::store::StoreFuture<'_, bool> {
            Box::pin(std::future::ready(Err(
                crate::store::StoreError::Unavailable("down".into()),
            )))
        }
    }

    #[tokio::test]
    async fn store_unavailable_is_503_temporarily_unavailable() {
        let records = records(Arc::new(Down));
        let calls = Arc::new(AtomicUsize::new(0));
        let (status, body) = call(
            &records,
            &calls,
            post("grant_type=authorization_code&code=C0DE"),
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"error\":\"temporarily_unavailable\"}"
            )
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
