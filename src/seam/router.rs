//! [`RouteLayer`]: right after the sanitizing front, the one place that decides where a request
//! goes ([`Route`]: authorize, token, other), from one canonical reading of its path
//! ([`crate::seam::paths`]). The route goes into the request's extensions; the guard, the token guard
//! and the request counter read it there and never read the path again, so that no two of them
//! can disagree on what a spelling means.
//!
//! Refused here with 400, for every path:
//! - a request target with raw bytes beyond ASCII. RFC 3986 has no place for them (a browser
//!   sends `%C4%B1`, never the raw bytes), but hyper and `http::Uri` accept bytes 0x80–0xFF,
//!   and a Java or .NET router folds a raw `ı` onto `i`: refusing costs no legitimate client
//!   anything, where reading them would mean guessing each AS's charset;
//! - a path that does not read one way ([`Route::Unreadable`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};

use crate::pages::WithPages;
use crate::seam::answer::{InnerOrOwn, SeamRefusal, refuse};
use crate::seam::paths::Routes;
use crate::vocab::Route;

#[derive(Clone, Debug)]
pub struct RouteLayer {
    routes: Arc<Routes>,
}

impl RouteLayer {
    pub fn new(routes: Routes) -> Self {
        RouteLayer {
            routes: Arc::new(routes),
        }
    }
}

impl<S> tower::Layer<S> for RouteLayer {
    type Service = Router<S>;

    fn layer(&self, inner: S) -> Router<S> {
        Router {
            inner,
            routes: self.routes.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Router<S> {
    inner: S,
    routes: Arc<Routes>,
}

impl<S, B, ResB> tower::Service<Request<B>> for Router<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>>,
    ResB: WithPages,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RouteFuture<InnerOrOwn<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let target = req.uri().path_and_query().map_or("", |pq| pq.as_str());
        let route = if target.is_ascii() {
            self.routes.route(req.uri().path())
        } else {
            Route::Unreadable
        };
        let inner = match route {
            Route::Unreadable => {
                InnerOrOwn::own(refuse(req.headers(), SeamRefusal::UnreadableTarget))
            }
            route => {
                req.extensions_mut().insert(route);
                InnerOrOwn::Inner {
                    future: self.inner.call(req),
                }
            }
        };
        RouteFuture {
            inner,
            counted: route.counted(),
        }
    }
}

pin_project_lite::pin_project! {
    /// Marks the response with its route as counted ([`Route::counted`]), for the request
    /// counter ([`crate::ops::record`]).
    pub struct RouteFuture<F> {
        #[pin]
        inner: F,
        counted: Route,
    }
}

impl<F, ResB, E> Future for RouteFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        // `other` is the counter's default: most responses carry no mark, and allocate no
        // extensions map for one.
        if let Ok(response) = &mut result
            && *this.counted != Route::Other
        {
            response.extensions_mut().insert(*this.counted);
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::{Either, Full};
    use tower::{Layer, ServiceExt};

    type Body = Either<Full<Bytes>, Full<Bytes>>;

    async fn route_of(target: http::Uri) -> (StatusCode, Option<Route>, Option<Route>) {
        let inner = tower::service_fn(|req: Request<()>| async move {
            let route = req.extensions().get::<Route>().copied();
            let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
            response.extensions_mut().insert(route);
            Ok::<_, Infallible>(response)
        });
        let layer = RouteLayer::new(Routes::new(
            "/oauth2/authorize",
            Some("/oauth2/token"),
            true,
        ));
        let req = Request::get(target).body(()).unwrap();
        let response: Response<Body> = layer.layer(inner).oneshot(req).await.unwrap();
        let route = response
            .extensions()
            .get::<Option<Route>>()
            .copied()
            .flatten();
        let counted = response.extensions().get::<Route>().copied();
        (response.status(), route, counted)
    }

    #[tokio::test]
    async fn the_route_is_decided_once_and_handed_on() {
        for (target, route, counted) in [
            ("/oauth2/authorize?x=1", Route::Authorize, Route::Authorize),
            ("/OAuth2/%61uthorize", Route::Authorize, Route::Authorize),
            ("/oauth2/token", Route::Token, Route::Token),
            ("/oauth2/to%E2%84%AAen", Route::Token, Route::Token),
            ("/static/app.css", Route::Other, Route::Other),
            ("/oauth2/authorize/x", Route::Below, Route::Other),
        ] {
            let got = route_of(target.parse().unwrap()).await;
            // `other` is the counter's default, left unmarked.
            let counted = (counted != Route::Other).then_some(counted);
            assert_eq!(got, (StatusCode::OK, Some(route), counted), "{target}");
        }
    }

    #[tokio::test]
    async fn raw_utf8_in_the_target_is_refused_for_every_path() {
        // Built from bytes, as hyper parses them off the wire.
        for target in [
            "/oauth2/author\u{131}ze",
            "/OAUTH2/AUTHOR\u{130}ZE",
            "/oauth2/\u{ff41}uthorize",
            "/oauth2\u{ff0f}authorize",
            "/oauth2/to\u{212a}en",
            "/static/caf\u{e9}",
            "/x?name=caf\u{e9}",
        ] {
            // `http` takes bytes beyond ASCII in a target, as hyper does off the wire.
            let uri = http::Uri::from_maybe_shared(Bytes::copy_from_slice(target.as_bytes()))
                .expect("http::Uri accepts raw UTF-8");
            let got = route_of(uri).await;
            assert_eq!(got, (StatusCode::BAD_REQUEST, None, None), "{target}");
        }
    }

    #[tokio::test]
    async fn an_unreadable_path_is_refused_here() {
        let got = route_of("/oauth2/%zz".parse().unwrap()).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST);
        assert_eq!(got.1, None);
    }
}
