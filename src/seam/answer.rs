//! What the layers that may answer by themselves share: the future that is either the inner
//! service's or the layer's own answer, and the refusal of a request before any rule applies.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::pages::{Lang, Topic, WithPages, error_page};
use crate::vocab::{PageBody, random_uuid};

pin_project_lite::pin_project! {
    /// The inner service's response future, or an answer the layer made itself.
    #[project = InnerOrOwnProj]
    pub enum InnerOrOwn<F> {
        Inner { #[pin] future: F },
        Own { response: Option<Response<PageBody>> },
    }
}

impl<F> InnerOrOwn<F> {
    pub fn own(response: Response<PageBody>) -> Self {
        InnerOrOwn::Own {
            response: Some(response),
        }
    }
}

impl<F, ResB, E> Future for InnerOrOwn<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: WithPages,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            InnerOrOwnProj::Inner { future } => future.poll(cx),
            InnerOrOwnProj::Own { response } => Poll::Ready(Ok(ResB::response(
                response.take().expect("polled after completion"),
            ))),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future at once, or one that calls it later (after the body was
    /// read, after the store answered): boxed, since that path is the rare one.
    #[project = DeferredProj]
    pub enum Deferred<F, R> {
        Now { #[pin] future: F },
        Later { future: R },
    }
}

impl<F, R, T, E> Future for Deferred<F, R>
where
    F: Future<Output = Result<T, E>>,
    R: Future<Output = Result<T, E>> + Unpin,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DeferredProj::Now { future } => future.poll(cx),
            DeferredProj::Later { future } => Pin::new(future).poll(cx),
        }
    }
}

/// Why a request is refused at the seam, before any MedMij rule applies: each with its status
/// and page topic, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeamRefusal {
    BodyWithoutMethod,
    RepeatedHost,
    HostNotAHost,
    NoHost,
    TargetAuthorityNotAHost,
    HostDisagrees,
    Expectation,
    UnreadableTarget,
    /// A stack built without the router: nothing decided which route it is.
    NoRoute,
    TargetTooLong,
    BodyTooLarge,
    BodyTimedOut,
    BodyUnreadable,
    /// OAuth parameters on a path below the authorize or token path.
    BelowAGuardedPath,
}

impl SeamRefusal {
    /// Status, page topic and the log line's reason.
    pub fn answer(self) -> (StatusCode, Topic, &'static str) {
        use SeamRefusal::*;
        let bad = |reason| (StatusCode::BAD_REQUEST, Topic::BadRequest, reason);
        match self {
            BodyWithoutMethod => bad("a body on a method that has none"),
            RepeatedHost => bad("repeated Host"),
            HostNotAHost => bad("Host is not a host"),
            NoHost => bad("HTTP/1.1 without Host"),
            TargetAuthorityNotAHost => bad("userinfo or no host in the request target"),
            HostDisagrees => bad("Host disagrees with the request target"),
            Expectation => (
                StatusCode::EXPECTATION_FAILED,
                Topic::BadRequest,
                "an expectation other than 100-continue",
            ),
            UnreadableTarget => bad(
                "request target that does not read one way (raw bytes beyond ASCII, or a path that cannot be decoded)",
            ),
            NoRoute => bad("request without a route"),
            // A sealed state grows with the client's; an AS has limits of its own.
            TargetTooLong => (
                StatusCode::URI_TOO_LONG,
                Topic::UriTooLong,
                "request target longer than listen.max_uri_length",
            ),
            BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Topic::TooLarge,
                "body larger than listen.max_body_bytes",
            ),
            BodyTimedOut => (
                StatusCode::REQUEST_TIMEOUT,
                Topic::BodyTimedOut,
                "body not read within listen.body_read_timeout",
            ),
            BodyUnreadable => bad("body not readable"),
            BelowAGuardedPath => {
                bad("OAuth parameters on a path below the authorize or token path")
            }
        }
    }
}

/// A request refused at the seam: a page in the person's language, and a log line with the
/// page's trace id and the reason (never the request target: it may hold a state or a code).
/// The connection closes after it: what the client sent next on it, or the rest of a body, is
/// not read as a request.
pub fn refuse(request_headers: &HeaderMap, refusal: SeamRefusal) -> Response<PageBody> {
    let (status, topic, reason) = refusal.answer();
    let lang = Lang::from_accept_language(request_headers.get(header::ACCEPT_LANGUAGE));
    let trace_id = random_uuid();
    tracing::info!(%trace_id, status = status.as_u16(), reason, "request refused");
    let mut response = error_page(topic, status, lang, trace_id);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
