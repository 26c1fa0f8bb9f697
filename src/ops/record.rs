//! [`RecordLayer`]: counts every answered request in `medmij_vert_requests_total` by route
//! class and status class. Outermost but for the access log, so refusals at the seam count
//! too. The route comes from the router ([`crate::seam::router`]), which marks the responses of
//! the authorize and token endpoints ([`Route`] in the response's extensions); everything else
//! is `other`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};

use crate::ops::metrics::Metrics;
use crate::vocab::Route;

#[derive(Clone)]
pub struct RecordLayer {
    metrics: Arc<Metrics>,
}

impl RecordLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        RecordLayer { metrics }
    }
}

impl<S> tower::Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Record<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, ResB> tower::Service<Request<B>> for Record<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RecordFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        RecordFuture {
            inner: self.inner.call(req),
            metrics: self.metrics.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct RecordFuture<F> {
        #[pin]
        inner: F,
        metrics: Arc<Metrics>,
    }
}

impl<F, ResB, E> Future for RecordFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = response
                .extensions()
                .get::<Route>()
                .copied()
                .unwrap_or(Route::Other);
            this.metrics.request(route, response.status());
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{Layer, ServiceExt};

    #[tokio::test]
    async fn counts_by_route_and_status_class() {
        let metrics = Metrics::new();
        let layer = RecordLayer::new(metrics.clone());
        let inner = tower::service_fn(|req: Request<()>| async move {
            let mut response = Response::builder().status(302).body(()).unwrap();
            if req.uri().path() == "/authorize" {
                response.extensions_mut().insert(Route::Authorize);
            }
            Ok::<_, Infallible>(response)
        });
        for path in ["/authorize", "/authorize", "/other"] {
            let req = Request::get(path).body(()).unwrap();
            layer.layer(inner).oneshot(req).await.unwrap();
        }
        let text = metrics.encode();
        assert!(
            text.contains("medmij_vert_requests_total{route=\"authorize\",status=\"3xx\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("medmij_vert_requests_total{route=\"other\",status=\"3xx\"} 1"),
            "{text}"
        );
    }
}
