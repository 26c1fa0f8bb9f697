//! [`ResponseFuture`]: the one place that looks at upstream responses ([`Guard::inspect`]); a
//! release waits there for the store (one code per flow, the token guard's record).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use http::header::HeaderValue;

use super::{Guard, Inspected};
use crate::pages::WithPages;
use crate::state::store::Source;
use crate::vert::Flow;
use crate::vocab::PageBody;

pin_project_lite::pin_project! {
    /// The inner service's response, inspected; or an answer the guard made itself.
    pub struct ResponseFuture<F, ResB> {
        #[pin]
        stage: Stage<F, ResB>,
    }
}

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<F, ResB> {
        Inspect {
            #[pin]
            future: F,
            guard: Arc<Guard>,
            accept_language: Option<HeaderValue>,
            // The flow of the authorization request this answers (boxed: most requests have
            // none, and every future carries the field).
            answering: Option<Box<Flow>>,
            source: Source,
        },
        Releasing {
            release: Pin<Box<dyn Future<Output = Response<ResB>> + Send>>,
        },
        Ready {
            response: Option<Response<PageBody>>,
            body: PhantomData<fn() -> ResB>,
        },
    }
}

impl<F, ResB> ResponseFuture<F, ResB> {
    pub(super) fn inspect(
        future: F,
        guard: Arc<Guard>,
        accept_language: Option<HeaderValue>,
        answering: Option<Box<Flow>>,
        source: Source,
    ) -> Self {
        ResponseFuture {
            stage: Stage::Inspect {
                future,
                guard,
                accept_language,
                answering,
                source,
            },
        }
    }

    pub(super) fn ready(response: Response<PageBody>) -> Self {
        ResponseFuture {
            stage: Stage::Ready {
                response: Some(response),
                body: PhantomData,
            },
        }
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, ResB>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: WithPages + Send + 'static,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = loop {
            match this.stage.as_mut().project() {
                StageProj::Inspect {
                    future,
                    guard,
                    accept_language,
                    answering,
                    source,
                } => {
                    let response = ready!(future.poll(cx))?;
                    let answering = answering.as_deref();
                    match guard.inspect(response, accept_language.as_ref(), answering, *source) {
                        Inspected::Done(response) => break response,
                        Inspected::Release(release) => {
                            this.stage.set(Stage::Releasing { release });
                        }
                    }
                }
                StageProj::Releasing { release } => break ready!(release.as_mut().poll(cx)),
                StageProj::Ready { response, .. } => {
                    break ResB::response(response.take().expect("polled after completion"));
                }
            }
        };
        Poll::Ready(Ok(response))
    }
}
