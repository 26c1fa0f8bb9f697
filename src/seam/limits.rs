//! [`LimitsLayer`]: the request target's length, and the request body buffered before the
//! upstream exchange opens (nginx's `proxy_request_buffering on`). A client that sends its
//! body slowly, or too much of it, holds no upstream connection: the body is read within
//! `listen.body_read_timeout` (else 408) and up to `listen.max_body_bytes` (else 413), and only
//! then does the request go on. Requests without a body (nearly all: every authorization
//! request) go straight on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};

use crate::config::Listen;
use crate::pages::WithPages;
use crate::seam::answer::{Deferred, InnerOrOwn, SeamRefusal, refuse};
use crate::seam::form::BufferedBody;
use crate::vocab::{Buffered, PageBody};

#[derive(Clone, Copy, Debug)]
pub struct LimitsLayer {
    max_uri_length: usize,
    max_body_bytes: usize,
    body_read_timeout: Duration,
}

impl LimitsLayer {
    pub fn new(listen: &Listen) -> Self {
        LimitsLayer {
            max_uri_length: listen.max_uri_length,
            max_body_bytes: listen.max_body_bytes,
            body_read_timeout: listen.body_read_timeout,
        }
    }
}

impl<S> tower::Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    fn layer(&self, inner: S) -> Limits<S> {
        Limits {
            inner,
            limits: *self,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Limits<S> {
    inner: S,
    limits: LimitsLayer,
}

type BoxedResult<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, ResB> tower::Service<Request<B>> for Limits<S>
where
    S: tower::Service<Request<Buffered>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
    ResB: WithPages + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = InnerOrOwn<Deferred<S::Future, BoxedResult<Response<ResB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let target_length = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if target_length > self.limits.max_uri_length {
            return InnerOrOwn::own(refuse(req.headers(), SeamRefusal::TargetTooLong));
        }
        if req.body().is_end_stream() {
            // The head moved once, not taken apart and put back together.
            let req = req.map(|_| Buffered::default());
            return InnerOrOwn::Inner {
                future: Deferred::Now {
                    future: self.inner.call(req),
                },
            };
        }
        let (parts, body) = req.into_parts();
        let max = self.limits.max_body_bytes;
        if body.size_hint().lower() > max as u64 {
            return InnerOrOwn::own(too_large(&parts.headers));
        }
        // The service that was polled ready goes with the request; a clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let read_timeout = self.limits.body_read_timeout;
        let future = Box::pin(async move {
            let read = tokio::time::timeout(read_timeout, Limited::new(body, max).collect());
            let refusal = match read.await {
                Ok(Ok(collected)) => {
                    let mut parts = parts;
                    let bytes = collected.to_bytes();
                    // For the guards to read the form (a consent post-back) without taking the
                    // body from the AS: a reference count, not a copy.
                    parts.extensions.insert(BufferedBody(bytes.clone()));
                    let req = Request::from_parts(parts, Full::new(bytes));
                    return inner.call(req).await;
                }
                Err(_) => refuse(&parts.headers, SeamRefusal::BodyTimedOut),
                Ok(Err(e)) if e.is::<LengthLimitError>() => too_large(&parts.headers),
                Ok(Err(_)) => refuse(&parts.headers, SeamRefusal::BodyUnreadable),
            };
            Ok(ResB::response(refusal))
        });
        InnerOrOwn::Inner {
            future: Deferred::Later { future },
        }
    }
}

fn too_large(headers: &http::HeaderMap) -> Response<PageBody> {
    refuse(headers, SeamRefusal::BodyTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::Either;
    use http_body_util::channel::Channel;
    use tower::{Layer, ServiceExt};

    type ResBody = Either<Full<Bytes>, Full<Bytes>>;

    fn layer(max_body_bytes: usize) -> LimitsLayer {
        LimitsLayer {
            max_uri_length: 64,
            max_body_bytes,
            body_read_timeout: Duration::from_secs(10),
        }
    }

    /// An inner service that answers with the body it got, and counts its calls.
    fn echo(
        calls: Arc<AtomicUsize>,
    ) -> impl tower::Service<
        Request<Buffered>,
        Response = Response<ResBody>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |req: Request<Buffered>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                Ok::<_, Infallible>(Response::new(Either::Left(Full::new(body))))
            }
        })
    }

    async fn text(response: Response<ResBody>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_body_is_buffered_and_passed_on_whole() {
        let calls = Arc::new(AtomicUsize::new(0));
        let service = layer(1024).layer(echo(calls.clone()));
        let req = Request::post("/token")
            .body(Full::new(Bytes::from_static(b"grant_type=x")))
            .unwrap();
        let response = service.oneshot(req).await.unwrap();
        assert_eq!(text(response).await, "grant_type=x");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn too_large_a_body_is_413_and_nothing_goes_on() {
        let calls = Arc::new(AtomicUsize::new(0));
        let service = layer(4).layer(echo(calls.clone()));
        let req = Request::post("/token")
            .body(Full::new(Bytes::from_static(b"12345")))
            .unwrap();
        let response = service.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()["connection"], "close");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn too_long_a_target_is_414() {
        let calls = Arc::new(AtomicUsize::new(0));
        let service = layer(4).layer(echo(calls.clone()));
        let req = Request::get(format!("/{}", "a".repeat(64)))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = service.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_post_a_stalled_body_is_408_and_nothing_goes_on() {
        let calls = Arc::new(AtomicUsize::new(0));
        let service = layer(1024).layer(echo(calls.clone()));
        let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
        let req = Request::post("/token").body(body).unwrap();
        let answer = tokio::spawn(service.oneshot(req));
        tx.send_data(Bytes::from_static(b"a")).await.unwrap();
        // The paused clock jumps to the deadline once nothing else can happen.
        let response = answer.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()["connection"], "close");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        drop(tx);
    }

    #[tokio::test]
    async fn a_streamed_body_over_the_limit_is_413() {
        let calls = Arc::new(AtomicUsize::new(0));
        let service = layer(4).layer(echo(calls.clone()));
        let (mut tx, body) = Channel::<Bytes, Infallible>::new(4);
        tx.send_data(Bytes::from_static(b"123")).await.unwrap();
        tx.send_data(Bytes::from_static(b"456")).await.unwrap();
        drop(tx);
        let req = Request::post("/token").body(body).unwrap();
        let response = service.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_streamed_body_within_the_limit_goes_on() {
        let calls = Arc::new(AtomicUsize::new(0));
        let service = layer(8).layer(echo(calls.clone()));
        let (mut tx, body) = Channel::<Bytes, Infallible>::new(4);
        tx.send_data(Bytes::from_static(b"123")).await.unwrap();
        tx.send_data(Bytes::from_static(b"456")).await.unwrap();
        drop(tx);
        let req = Request::post("/token").body(body).unwrap();
        let response = service.oneshot(req).await.unwrap();
        assert_eq!(text(response).await, "123456");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
