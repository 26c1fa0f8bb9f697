//! [`ResponseFuture`]: the one place that looks at upstream responses ([`Guard::inspect`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use http::header::HeaderValue;

use super::Guard;
use crate::pages::{PageBody, WithPages};
use crate::vert::Flow;

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
            // The flow of the authorization request this answers (boxed: most requests have
            // none, and every future carries the field).
            answering: Option<Box<Flow>>,
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
        answering: Option<Box<Flow>>,
    ) -> Self {
        ResponseFuture {
            stage: Stage::Inspect {
                future,
                guard,
                accept_language,
                answering,
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
                answering,
            } => {
                let response = ready!(future.poll(cx))?;
                let answering = answering.as_deref();
                Poll::Ready(Ok(guard.inspect(
                    response,
                    accept_language.as_ref(),
                    answering,
                )))
            }
            StageProj::Ready { response } => Poll::Ready(Ok(ResB::response(
                response.take().expect("polled after completion"),
            ))),
        }
    }
}
