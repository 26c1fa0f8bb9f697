//! [`ReleaseLayer`], [`Release`] and [`ResponseFuture`]: the one place that looks at upstream
//! responses. The AS's signal headers are removed from every response; a redirect is judged by
//! [`flow_return::inspect`]'s two halves (ext.vert.authint.202): a code released waits for the
//! store (one code per flow, the token guard's record), a code withheld becomes the
//! exception's page.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};

use super::Guard;
use super::authorize::{Answered, Answering};
use super::decision::{Outcome, Point, Subject};
use crate::pages::{Lang, WithPages};
use crate::state::store::{Refused, Source, StoreError};
use crate::vert::flow::FlowId;
use crate::vert::flow_return::{self, Location, Opened, Scan, Signal, Verdict};
use crate::vert::{Exception, Flow, Rule};
use crate::vocab::Peer;

#[derive(Clone)]
pub struct ReleaseLayer {
    guard: Arc<Guard>,
    /// The client end of the connection the services are for (releases count against its
    /// share of the records); none in a stack without connections.
    peer: Option<Peer>,
}

impl ReleaseLayer {
    pub fn new(guard: Arc<Guard>) -> Self {
        ReleaseLayer { guard, peer: None }
    }

    /// The layer for one connection's stack: once per connection, not per request.
    pub fn for_peer(&self, peer: Peer) -> Self {
        ReleaseLayer {
            guard: self.guard.clone(),
            peer: Some(peer),
        }
    }
}

impl<S> tower::Layer<S> for ReleaseLayer {
    type Service = Release<S>;

    fn layer(&self, inner: S) -> Release<S> {
        Release {
            inner,
            guard: self.guard.clone(),
            peer: self.peer.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Release<S> {
    inner: S,
    guard: Arc<Guard>,
    peer: Option<Peer>,
}

impl<S, B, ResB> tower::Service<Request<B>> for Release<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>>,
    ResB: WithPages + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let answering = req.extensions_mut().remove::<Answering>().map(|a| a.0);
        // Found by a scan of the names, as the other headers every request is asked for, and
        // read now: a language is a byte in the future, the header's value forty.
        let lang = Lang::from_accept_language(
            req.headers()
                .iter()
                .find(|(name, _)| *name == header::ACCEPT_LANGUAGE)
                .map(|(_, value)| value),
        );
        // Any response may be a flow return; its release counts against this source's share.
        // A client a trusted balancer names unreadably shares the unknown source's bucket.
        let source = self
            .peer
            .as_ref()
            .and_then(|peer| peer.client(req.headers()))
            .map_or_else(Source::unknown, Source::new);
        ResponseFuture {
            stage: Stage::Inspect {
                future: self.inner.call(req),
                guard: self.guard.clone(),
                lang,
                answering,
                source,
            },
            body: PhantomData,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's response, inspected.
    pub struct ResponseFuture<F, ResB> {
        #[pin]
        stage: Stage<F, ResB>,
        body: PhantomData<fn() -> ResB>,
    }
}

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<F, ResB> {
        Inspect {
            #[pin]
            future: F,
            guard: Arc<Guard>,
            lang: Lang,
            answering: Option<Box<Answered>>,
            source: Source,
        },
        /// Waiting for the store: a release, or a withheld code being marked.
        Storing {
            storing: Pin<Box<dyn Future<Output = Response<ResB>> + Send>>,
        },
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
        loop {
            match this.stage.as_mut().project() {
                StageProj::Inspect {
                    future,
                    guard,
                    lang,
                    answering,
                    source,
                } => {
                    let response = ready!(future.poll(cx))?;
                    let lang = *lang;
                    let at = At {
                        guard,
                        lang,
                        source: *source,
                    };
                    match at.inspect(response, answering.as_deref()) {
                        Inspected::Done(response) => return Poll::Ready(Ok(response)),
                        Inspected::Storing(storing) => {
                            this.stage.set(Stage::Storing { storing });
                        }
                    }
                }
                StageProj::Storing { storing } => {
                    return Poll::Ready(Ok(ready!(storing.as_mut().poll(cx))));
                }
            }
        }
    }
}

/// What inspecting a response gave: the response to send, or one that first waits for the
/// store.
enum Inspected<ResB> {
    Done(Response<ResB>),
    Storing(Pin<Box<dyn Future<Output = Response<ResB>> + Send>>),
}

/// A response being inspected: for whom, in which language.
struct At<'a> {
    guard: &'a Arc<Guard>,
    lang: Lang,
    source: Source,
}

impl At<'_> {
    /// Every upstream response: signal headers removed; a 3xx judged.
    fn inspect<ResB: WithPages + Send + 'static>(
        &self,
        mut response: Response<ResB>,
        answering: Option<&Answered>,
    ) -> Inspected<ResB> {
        let guard = &**self.guard;
        // The signal is for the proxy only: it never reaches the browser.
        let (used, birthdate, repeated) = take_signal(guard, response.headers_mut());
        if !response.status().is_redirection() {
            return Inspected::Done(response);
        }
        let Some(location) = location_of(&response) else {
            return Inspected::Done(response);
        };
        // Most redirects are decided by their text: the list, the clock and the keys are
        // loaded for the rest.
        let scanned = match flow_return::scan(location) {
            Scan::Done(verdict) => return self.apply(response, verdict),
            Scan::Judge(scanned) => scanned,
        };
        let clients = guard.clients.load();
        let settings = flow_return::Settings {
            clients: &clients,
            clock: guard.clock(),
            age_today: guard.age_today(),
        };
        let signal = Signal {
            used: used.as_ref().and_then(|v| v.to_str().ok()),
            birthdate: birthdate.as_ref().and_then(|v| v.to_str().ok()),
            repeated,
        };
        let open = |state: &str| match answering {
            // The state this request was sealed into, carried back by the response to it.
            Some(Answered {
                flow,
                sealed: Some((sealed, id)),
            }) if sealed == state => Opened::Flow(flow.clone(), *id),
            _ => guard.keys.load().open(state),
        };
        let flow = answering.map(|a| &a.flow);
        let verdict = scanned.judge(&settings, open, signal, flow);
        self.apply(response, verdict)
    }

    /// What the verdict on a redirect does to it.
    fn apply<ResB: WithPages + Send + 'static>(
        &self,
        response: Response<ResB>,
        verdict: Verdict,
    ) -> Inspected<ResB> {
        let guard = &**self.guard;
        match verdict {
            Verdict::PassThrough => Inspected::Done(response),
            Verdict::StatelessError => {
                // No code to protect and no state to restore; said, so that the AS's habit
                // shows in the logs (see docs/integrating.md).
                guard.decision(
                    Point::Release,
                    Outcome::Passed,
                    Rule::Rfc6749ErrorRedirect,
                    None,
                    "error redirect to a client without state, passed as it is",
                    Subject::anonymous(),
                );
                Inspected::Done(response)
            }
            Verdict::Restore { location, flow } => {
                self.restore(response, location, flow, "state restored")
            }
            Verdict::AddState { location, flow } => self.restore(
                response,
                location,
                flow,
                "client state added to an error redirect without one",
            ),
            Verdict::Release {
                location,
                flow,
                id,
                code,
            } => self.release(response, location, flow, id, code),
            Verdict::Withhold {
                exception,
                detail,
                flow,
            } => {
                // The upstream response, code and all, is dropped here; with the token guard
                // on, the code is marked withheld for its line, should it be presented (the
                // Location read again: a rare path, and the verdict stays free of the code).
                let code = guard
                    .records
                    .marks_withheld()
                    .then(|| response.headers().get(header::LOCATION)?.to_str().ok())
                    .flatten()
                    .and_then(flow_return::withheld_code);
                self.withhold(exception, detail, flow, code)
            }
        }
    }

    /// An error redirect on its way to the client with its state restored.
    fn restore<ResB: WithPages + Send + 'static>(
        &self,
        response: Response<ResB>,
        location: String,
        flow: Flow,
        detail: &'static str,
    ) -> Inspected<ResB> {
        let Some(value) = usable(location) else {
            return self.withhold(Exception::FailClosed, "unusable Location", Some(flow), None);
        };
        Inspected::Done(pass_on(
            self.guard,
            response,
            value,
            Outcome::Restored,
            detail,
            &flow,
        ))
    }

    /// ext.vert.authint.202 held: the code goes out once the store has recorded it.
    fn release<ResB: WithPages + Send + 'static>(
        &self,
        response: Response<ResB>,
        location: String,
        flow: Flow,
        id: FlowId,
        code: String,
    ) -> Inspected<ResB> {
        let Some(value) = usable(location) else {
            let unusable = "unusable Location";
            return self.withhold(Exception::FailClosed, unusable, Some(flow), Some(code));
        };
        let (guard, lang, source) = (self.guard.clone(), self.lang, self.source);
        Inspected::Storing(Box::pin(async move {
            // One code per flow; and, with the token guard, the code recorded for redemption.
            let recorded = guard
                .records
                .release(id, &code, flow.client_id(), source)
                .await;
            let (exception, detail) = match recorded {
                Ok(()) => {
                    let detail = "code released";
                    return pass_on(&guard, response, value, Outcome::Released, detail, &flow);
                }
                Err(ref refused) => refusal(refused),
            };
            // A replayed flow's code is marked; not a source over its share (the mark is a
            // record), nor while the store fails (a second wait for it, and in vain).
            if matches!(recorded, Err(Refused::AlreadyUsed)) {
                guard.records.withhold(&code, source).await;
            }
            let page = guard.withhold(Point::Release, exception, detail, Some(&flow), lang);
            ResB::response(page)
        }))
    }

    /// A code withheld: its page; with a code to mark, once the store was asked.
    fn withhold<ResB: WithPages + Send + 'static>(
        &self,
        exception: Exception,
        detail: &'static str,
        flow: Option<Flow>,
        code: Option<String>,
    ) -> Inspected<ResB> {
        let page = self
            .guard
            .withhold(Point::Release, exception, detail, flow.as_ref(), self.lang);
        match code {
            Some(code) => {
                let (guard, source) = (self.guard.clone(), self.source);
                Inspected::Storing(Box::pin(async move {
                    guard.records.withhold(&code, source).await;
                    ResB::response(page)
                }))
            }
            None => Inspected::Done(ResB::response(page)),
        }
    }
}

/// Built from a readable Location and a state that passed strict decoding, so it is a valid
/// header value; were it not, nothing is released. Validated in the verdict's own buffer,
/// not copied into another.
fn usable(location: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(location)).ok()
}

/// Why a release the verdict allowed was refused by the records.
fn refusal(refused: &Refused) -> (Exception, &'static str) {
    match refused {
        Refused::AlreadyUsed => (
            Exception::AlreadyUsed,
            "a second code for a flow that released one",
        ),
        Refused::OverShare => (
            Exception::FailClosed,
            "the source holds its share of the records (store.source_share_percent)",
        ),
        Refused::Store(StoreError::NotDurable { .. }) => (
            Exception::FailClosed,
            "store not durable: the release reached fewer replicas than store.min_replicas",
        ),
        Refused::Store(_) => (
            Exception::FailClosed,
            "store unavailable: the release cannot be recorded",
        ),
    }
}

/// The one `Location` of a redirect, as text; `None` without one.
fn location_of<ResB>(response: &Response<ResB>) -> Option<Location<'_>> {
    let mut values = response.headers().get_all(header::LOCATION).iter();
    match (values.next(), values.next()) {
        (None, _) => None,
        (Some(value), None) => Some(match value.to_str() {
            Ok(text) => Location::Text(text),
            Err(_) => Location::Unreadable,
        }),
        (Some(_), Some(_)) => Some(Location::Unreadable),
    }
}

/// A flow return on its way to the client with the `Location` the verdict wrote, and its
/// decision line. The AS's body goes: it was written for the sealed `Location` ("Redirecting
/// to …&state=<sealed>"), and nothing of the sealed state may reach the client.
fn pass_on<ResB: WithPages>(
    guard: &Guard,
    response: Response<ResB>,
    location: HeaderValue,
    outcome: Outcome,
    detail: &str,
    flow: &Flow,
) -> Response<ResB> {
    let (rule, subject) = (Rule::ExtVertAuthint202, Subject::flow(flow));
    guard.decision(Point::Release, outcome, rule, None, detail, subject);
    let (mut parts, sealed) = response.into_parts();
    let headers = &mut parts.headers;
    // One scan of the lines, not a hashed lookup a name (issue 31): the `Location` and
    // `Content-Length` the AS sent are written over in place (every line of each, though the
    // verdict came from the one `Location`), the body's description is noted for removal.
    let zero = HeaderValue::from_static("0");
    let (mut located, mut sized, mut described) = (false, false, false);
    for (name, value) in headers.iter_mut() {
        if *name == header::LOCATION {
            *value = location.clone();
            located = true;
        } else if *name == header::CONTENT_LENGTH {
            *value = zero.clone();
            sized = true;
        } else {
            described |= *name == header::CONTENT_TYPE
                || *name == header::CONTENT_ENCODING
                || *name == header::TRANSFER_ENCODING;
        }
    }
    if described {
        for name in [
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::TRANSFER_ENCODING,
        ] {
            headers.remove(&name);
        }
    }
    if !sized {
        headers.insert(header::CONTENT_LENGTH, zero);
    }
    if !located {
        headers.insert(header::LOCATION, location);
    }
    Response::from_parts(parts, sealed.drained())
}

/// Removes the signal headers, and says whether one came more than once. One scan of the
/// names first: on every response, and for the few headers a response has, comparing names
/// is cheaper than hashing them.
fn take_signal(
    guard: &Guard,
    headers: &mut http::HeaderMap,
) -> (Option<HeaderValue>, Option<HeaderValue>, bool) {
    let (mut used, mut birthdate) = (0usize, 0usize);
    for (name, _) in headers.iter() {
        used += usize::from(name == guard.used_header);
        birthdate += usize::from(name == guard.birthdate_header);
    }
    let mut take = |name: &HeaderName, count: usize| match count {
        0 => None,
        _ => headers.remove(name),
    };
    (
        take(&guard.used_header, used),
        take(&guard.birthdate_header, birthdate),
        used > 1 || birthdate > 1,
    )
}
