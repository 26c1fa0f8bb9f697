//! [`ErrorPagesLayer`]: an inner service that gave no response ([`UpstreamError`]) becomes a
//! 502 or 504 page in the person's language. Innermost but one, so the guard sees these pages
//! like any other upstream answer, and everything outside it is infallible.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::pages::{Lang, Topic, WithPages, error_page};
use crate::upstream::proxy::UpstreamError;
use crate::vocab::PageBody;

#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorPagesLayer;

impl<S> tower::Layer<S> for ErrorPagesLayer {
    type Service = ErrorPages<S>;

    fn layer(&self, inner: S) -> ErrorPages<S> {
        ErrorPages {
            inner,
            failed: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ErrorPages<S> {
    inner: S,
    /// The inner service failed `poll_ready`: the next call gets the page, and the inner
    /// service is not called (tower's contract).
    failed: Option<UpstreamError>,
}

impl<S, B, ResB> tower::Service<Request<B>> for ErrorPages<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>, Error = UpstreamError>,
    ResB: WithPages,
{
    type Response = Response<ResB>;
    type Error = Infallible;
    type Future = ErrorPagesFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Infallible outward: an inner service that cannot take the request is answered for
        // by the page of its error, at the call that follows.
        if self.failed.is_some() {
            return Poll::Ready(Ok(()));
        }
        match ready!(self.inner.poll_ready(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(error) => {
                self.failed = Some(error);
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Kept as the header value: it is parsed only when a page is made. Found by a scan:
        // over a request's few names, cheaper than hashing one (callgrind).
        let accept_language = req
            .headers()
            .iter()
            .find(|(name, _)| *name == header::ACCEPT_LANGUAGE)
            .map(|(_, value)| value.clone());
        let inner = match self.failed.take() {
            Some(error) => Inner::Failed { error: Some(error) },
            None => Inner::Called {
                future: self.inner.call(req),
            },
        };
        ErrorPagesFuture {
            inner,
            accept_language,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ErrorPagesFuture<F> {
        #[pin]
        inner: Inner<F>,
        accept_language: Option<HeaderValue>,
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner<F> {
        Called { #[pin] future: F },
        Failed { error: Option<UpstreamError> },
    }
}

impl<F, ResB> Future for ErrorPagesFuture<F>
where
    F: Future<Output = Result<Response<ResB>, UpstreamError>>,
    ResB: WithPages,
{
    type Output = Result<Response<ResB>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.inner.project() {
            InnerProj::Called { future } => ready!(future.poll(cx)),
            InnerProj::Failed { error } => Err(error.take().expect("polled after completion")),
        };
        Poll::Ready(Ok(match result {
            Ok(response) => response,
            Err(error) => {
                let lang = Lang::from_accept_language(this.accept_language.as_ref());
                ResB::response(page(&error, lang))
            }
        }))
    }
}

/// 504 for a timeout, else 502; the page shows the trace id of the log line.
fn page(error: &UpstreamError, lang: Lang) -> Response<PageBody> {
    let (topic, status) = if error.timed_out() {
        (Topic::TimedOut, StatusCode::GATEWAY_TIMEOUT)
    } else {
        (Topic::Unreachable, StatusCode::BAD_GATEWAY)
    };
    error_page(topic, status, lang, error.trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Either, Full};
    use tower::{Service, ServiceExt};
    use uuid::Uuid;

    type Body = Either<Full<Bytes>, Full<Bytes>>;

    fn failing(timed_out: bool) -> UpstreamError {
        use crate::upstream::error::PoolError;
        let cause = match timed_out {
            true => PoolError::ResponseTimeout,
            false => PoolError::ConnectTimeout,
        };
        UpstreamError {
            cause: std::sync::Arc::new(cause),
            trace_id: Uuid::from_u128(7),
        }
    }

    async fn call<S>(service: S, lang: &str) -> Response<Body>
    where
        S: tower::Service<Request<()>, Response = Response<Body>, Error = UpstreamError>,
    {
        let req = Request::builder()
            .header(header::ACCEPT_LANGUAGE, lang)
            .body(())
            .unwrap();
        ErrorPagesLayer.layer(service).oneshot(req).await.unwrap()
    }

    async fn text(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    use tower::Layer;

    #[tokio::test]
    async fn upstream_errors_become_502_and_504_pages_in_the_persons_language() {
        for (timed_out, status) in [(false, 502), (true, 504)] {
            let inner = tower::service_fn(move |_: Request<()>| async move {
                Err::<Response<Body>, _>(failing(timed_out))
            });
            let response = call(inner, "en").await;
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["content-language"], "en");
            assert!(
                text(response)
                    .await
                    .contains(&Uuid::from_u128(7).to_string())
            );
        }
    }

    #[tokio::test]
    async fn responses_pass_unchanged() {
        let inner = tower::service_fn(|_: Request<()>| async {
            Ok::<_, UpstreamError>(
                Response::builder()
                    .status(302)
                    .body(Either::Left(Full::new(Bytes::from_static(b"up"))))
                    .unwrap(),
            )
        });
        let response = call(inner, "nl").await;
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(text(response).await, "up");
    }

    /// An inner service whose readiness fails, and that panics when called anyway.
    #[derive(Clone)]
    struct NotReady;

    impl tower::Service<Request<()>> for NotReady {
        type Response = Response<Body>;
        type Error = UpstreamError;
        type Future = std::future::Ready<Result<Response<Body>, UpstreamError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
            Poll::Ready(Err(failing(false)))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            panic!("called after a failed poll_ready")
        }
    }

    #[tokio::test]
    async fn a_failed_poll_ready_is_answered_without_calling_the_inner_service() {
        let mut service = ErrorPagesLayer.layer(NotReady);
        let ready = service.ready().await.unwrap();
        let response = ready.call(Request::new(())).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }
}
