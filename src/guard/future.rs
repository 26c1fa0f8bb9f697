//! [`ResponseFuture`]: the one place that looks at upstream responses ([`Guard::inspect`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use http::header::HeaderValue;

use super::Guard;
use crate::pages::{PageBody, WithPages};

pin_project_lite::pin_project! {
    /// The inner service's response, inspected; or an answer the guard made itself.
    pub struct ResponseFuture<F> {
        #[pin]
        stage: Stage<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Inspect {
            #[pin]
            future: F,
            guard: Arc<Guard>,
            accept_language: Option<HeaderValue>,
        },
        Ready {
            response: Option<Response<PageBody>>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn inspect(
        future: F,
        guard: Arc<Guard>,
        accept_language: Option<HeaderValue>,
    ) -> Self {
        ResponseFuture {
            stage: Stage::Inspect {
                future,
                guard,
                accept_language,
            },
        }
    }

    pub(super) fn ready(response: Response<PageBody>) -> Self {
        ResponseFuture {
            stage: Stage::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: WithPages,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().stage.project() {
            StageProj::Inspect {
                future,
                guard,
                accept_language,
            } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(guard.inspect(response, accept_language.as_ref())))
            }
            StageProj::Ready { response } => Poll::Ready(Ok(ResB::response(
                response.take().expect("polled after completion"),
            ))),
        }
    }
}
