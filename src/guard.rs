//! The tower middleware that applies [`crate::vert`] to HTTP: [`VertGuardLayer`] /
//! [`VertGuard`] / [`ResponseFuture`]. Requests to the authorize endpoint are decided before they
//! go upstream; every upstream response passes through [`ResponseFuture`], the one place that
//! looks at responses, where flow returns are released or withheld. [`Guard::answer`] is the one
//! place that maps the exception table to HTTP.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use uuid::Uuid;

use crate::config::Config;
use crate::pages::{self, Details, Lang, Topic};
use crate::paths::{GuardedPaths, Route};
use crate::proxy::{Body, UpstreamError, error_page};
use crate::resources::Resources;
use crate::seal::{KeyRing, random_uuid};
use crate::vert::authorize::{self, Decision};
use crate::vert::exceptions::{Answer, error_redirect};
use crate::vert::flow_return::{self, Location, Signal, Verdict};
use crate::vert::{ClientList, Exception, Flow, Kind};

/// Log lines of decisions go to this target (`RUST_LOG=medmij_vert_proxy::decision=info`).
const DECISION: &str = "medmij_vert_proxy::decision";

/// Everything the guard needs, shared by all connections.
pub struct Guard {
    paths: GuardedPaths,
    authorize_path: String,
    clients: ClientList,
    enabled: Vec<Kind>,
    strip_scope_token: bool,
    request_header: HeaderName,
    used_header: HeaderName,
    birthdate_header: HeaderName,
    keys: KeyRing,
    flow_ttl: Duration,
    clock_skew: Duration,
    max_uri_length: usize,
}

impl Guard {
    pub fn new(config: &Config, resources: Resources) -> Self {
        let r = &config.representation;
        Guard {
            paths: GuardedPaths::new(
                &config.oauth.authorize_path,
                config.oauth.case_insensitive_paths,
            ),
            authorize_path: config.oauth.authorize_path.clone(),
            clients: resources.clients,
            enabled: r.scopes.clone(),
            strip_scope_token: r.strip_scope_token,
            request_header: r.request_header.clone(),
            used_header: r.used_header.clone(),
            birthdate_header: r.birthdate_header.clone(),
            keys: resources.keys,
            flow_ttl: config.state.flow_ttl,
            clock_skew: config.state.clock_skew,
            max_uri_length: config.listen.max_uri_length,
        }
    }
}

#[derive(Clone)]
pub struct VertGuardLayer {
    guard: Arc<Guard>,
}

impl VertGuardLayer {
    pub fn new(guard: Guard) -> Self {
        VertGuardLayer {
            guard: Arc::new(guard),
        }
    }
}

impl<S> tower::Layer<S> for VertGuardLayer {
    type Service = VertGuard<S>;

    fn layer(&self, inner: S) -> VertGuard<S> {
        VertGuard {
            inner,
            guard: self.guard.clone(),
        }
    }
}

#[derive(Clone)]
pub struct VertGuard<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S> tower::Service<Request<Incoming>> for VertGuard<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<Body>, Error = UpstreamError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // An inner service that failed here fails the call too, which gets its error page.
        let _ = ready!(self.inner.poll_ready(cx));
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        // SPEC §3.1: only the proxy tells the AS that representation was asked for.
        remove_if_present(req.headers_mut(), &self.guard.request_header);
        let target_length = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if target_length > self.guard.max_uri_length {
            // A sealed state grows with the client's; an AS has limits of its own.
            return refuse(&req, Topic::UriTooLong, StatusCode::URI_TOO_LONG);
        }
        match self.guard.paths.route(req.uri().path()) {
            Route::Other => self.forward(req),
            Route::Authorize => self.authorize(req),
            Route::Unreadable => refuse(&req, Topic::BadRequest, StatusCode::BAD_REQUEST),
        }
    }
}

/// A request refused before any rule applies; the log line carries the page's trace id.
fn refuse<F>(req: &Request<Incoming>, topic: Topic, status: StatusCode) -> ResponseFuture<F> {
    let lang = Lang::from_accept_language(req.headers().get(header::ACCEPT_LANGUAGE));
    let trace_id = random_uuid();
    tracing::info!(%trace_id, status = status.as_u16(), path_bytes = req.uri().path().len(), "request refused");
    ResponseFuture::ready(error_page(topic, status, lang, trace_id))
}

impl<S> VertGuard<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<Body>, Error = UpstreamError>,
{
    fn forward(&mut self, req: Request<Incoming>) -> ResponseFuture<S::Future> {
        let accept_language = req.headers().get(header::ACCEPT_LANGUAGE).cloned();
        ResponseFuture {
            kind: Stage::Inspect {
                future: self.inner.call(req),
                guard: self.guard.clone(),
                accept_language,
            },
        }
    }

    /// An authorization request: decided here, forwarded only when accepted.
    fn authorize(&mut self, mut req: Request<Incoming>) -> ResponseFuture<S::Future> {
        let guard = &*self.guard;
        let lang = Lang::from_accept_language(req.headers().get(header::ACCEPT_LANGUAGE));
        let query = req.uri().query().unwrap_or("");
        let (request_id, correlation_id) = authorize::request_ids(query);
        let request_id = request_id.and_then(|id| Uuid::try_parse(&id).ok());
        let correlation_id = correlation_id
            .and_then(|id| Uuid::try_parse(&id).ok())
            .unwrap_or_else(random_uuid);
        let mut subject = Subject {
            request_id,
            correlation_id,
            ..Subject::default()
        };

        if req.method() != Method::GET {
            // core.authint.200: the authorization request is a GET.
            decision(
                "refused",
                "core.authint.200",
                None,
                "method not allowed",
                &subject,
            );
            let mut response = error_page(
                Topic::MethodNotAllowed,
                StatusCode::METHOD_NOT_ALLOWED,
                lang,
                correlation_id,
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return ResponseFuture::ready(response);
        }

        // Birth dates may be "today" anywhere on Earth: a child born just after midnight in
        // the Netherlands is born "tomorrow" in UTC.
        let today = (chrono::Utc::now() + chrono::Duration::hours(14)).date_naive();
        let settings = authorize::Settings {
            clients: &guard.clients,
            enabled: &guard.enabled,
            today,
        };
        let (path_and_query, kind) = match authorize::decide(query, &settings) {
            Decision::Refuse(refusal) => {
                let name = refusal.client.as_ref().map(|c| c.name.as_str());
                subject.client_id = refusal.client.as_ref().map(|c| c.hostname.as_str());
                decision(
                    "refused",
                    Exception::Auth1a.row().rule,
                    Some(Exception::Auth1a),
                    refusal.reason,
                    &subject,
                );
                return ResponseFuture::ready(guard.answer(
                    Exception::Auth1a,
                    lang,
                    name,
                    correlation_id,
                    None,
                ));
            }
            Decision::Redirect(redirect) => {
                decision(
                    "error_redirect",
                    redirect.exception.row().rule,
                    Some(redirect.exception),
                    redirect.description,
                    &subject,
                );
                return ResponseFuture::ready(guard.answer(
                    redirect.exception,
                    lang,
                    None,
                    correlation_id,
                    Some(Then::Redirect(&redirect.location)),
                ));
            }
            Decision::Forward(accepted) => {
                let flow = accepted.flow(unix_now(), correlation_id);
                let sealed = guard.keys.seal(&flow);
                let query = accepted.forward_query(&sealed, guard.strip_scope_token);
                let kind = accepted.requested.map(|r| r.kind);
                // ext.vert.authint.201/.204: the AS is told to ask DigiD for representation.
                let rule = match kind {
                    None => "core.authint.200",
                    Some(Kind::OnBehalfOf) => "ext.vert.authint.201",
                    Some(Kind::OnBehalfOfChild) => "ext.vert.authint.204",
                };
                subject.client_id = Some(accepted.client.hostname.as_str());
                subject.representation = Some(kind.map_or("none", Kind::token));
                decision(
                    "forwarded",
                    rule,
                    None,
                    "state sealed, forwarded upstream",
                    &subject,
                );
                let path_and_query = format!("{}?{query}", guard.authorize_path);
                (path_and_query, kind)
            }
        };
        // The query was checked character by character, so this is a valid URI. An
        // absolute-form target keeps its authority: the upstream service turns it into `Host`.
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
        let Ok(uri) = Uri::from_parts(parts) else {
            return ResponseFuture::ready(error_page(
                Topic::BadRequest,
                StatusCode::BAD_REQUEST,
                lang,
                correlation_id,
            ));
        };
        *req.uri_mut() = uri;
        if let Some(kind) = kind {
            req.headers_mut().insert(
                guard.request_header.clone(),
                HeaderValue::from_static(kind.token()),
            );
        }
        self.forward(req)
    }
}

/// What follows an exception besides the page: the error redirect of 1b / Vert 3, or the flow
/// whose `redirect_uri` a page may link back to.
enum Then<'a> {
    Redirect(&'a str),
    Flow(&'a Flow),
}

impl Guard {
    /// The exception table's answer, as HTTP. The only place that turns an [`Exception`] into
    /// a response.
    fn answer(
        &self,
        exception: Exception,
        lang: Lang,
        client_name: Option<&str>,
        trace_id: Uuid,
        then: Option<Then<'_>>,
    ) -> Response<Body> {
        match (exception.row().answer, then) {
            (Answer::ErrorRedirect, Some(Then::Redirect(location))) => pages::redirect(location),
            (Answer::Page { status, link_back }, then) => {
                let link = match (link_back, then) {
                    (Some(link), Some(Then::Flow(flow))) => Some(error_redirect(
                        &flow.redirect_uri,
                        link.error,
                        link.description,
                        Some(&flow.state),
                    )),
                    _ => None,
                };
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                pages::render(
                    Topic::Exception(exception),
                    status,
                    &Details {
                        lang,
                        client_name,
                        link_back: link.as_deref(),
                        trace_id,
                        ttl_minutes: self.flow_ttl.as_secs() / 60,
                    },
                )
            }
            // An error redirect without its location cannot happen; answer with a page rather
            // than redirect anywhere unvalidated.
            (Answer::ErrorRedirect, _) => pages::render(
                Topic::Exception(Exception::FailClosed),
                StatusCode::BAD_REQUEST,
                &Details {
                    lang,
                    client_name,
                    link_back: None,
                    trace_id,
                    ttl_minutes: 0,
                },
            ),
        }
    }

    /// Every upstream response: signal headers removed; a 3xx inspected by
    /// [`flow_return::inspect`].
    fn inspect(
        &self,
        mut response: Response<Body>,
        accept_language: Option<&HeaderValue>,
    ) -> Response<Body> {
        // The signal is for the proxy only: it never reaches the browser.
        let (used, birthdate, repeated) = self.take_signal(response.headers_mut());
        if !response.status().is_redirection() {
            return response;
        }
        let mut values = response.headers().get_all(header::LOCATION).iter();
        let location = match (values.next(), values.next()) {
            (None, _) => return response,
            (Some(value), None) => match value.to_str() {
                Ok(text) => Location::Text(text),
                Err(_) => Location::Unreadable,
            },
            (Some(_), Some(_)) => Location::Unreadable,
        };
        let settings = flow_return::Settings {
            clients: &self.clients,
            now: unix_now(),
            ttl: self.flow_ttl.as_secs(),
            skew: self.clock_skew.as_secs(),
        };
        let signal = Signal {
            used: used.as_ref().and_then(|v| v.to_str().ok()),
            birthdate: birthdate.as_ref().and_then(|v| v.to_str().ok()),
            repeated,
        };
        let verdict = flow_return::inspect(location, &settings, |s| self.keys.open(s), signal);
        let (location, flow, outcome, detail) = match verdict {
            Verdict::PassThrough => return response,
            Verdict::Restore { location, flow } => (location, flow, "restored", "state restored"),
            Verdict::Release { location, flow } => (location, flow, "released", "code released"),
            Verdict::Withhold {
                exception,
                detail,
                flow,
            } => {
                // The upstream response, code and all, is dropped here.
                let lang = Lang::from_accept_language(accept_language);
                return self.withhold(exception, detail, flow.as_ref(), lang);
            }
        };
        // Built from a readable Location and a state that passed strict decoding, so it is a
        // valid header value; were it not, nothing is released.
        let Ok(value) = HeaderValue::from_str(&location) else {
            let lang = Lang::from_accept_language(accept_language);
            return self.withhold(
                Exception::FailClosed,
                "unusable Location",
                Some(&flow),
                lang,
            );
        };
        decision(
            outcome,
            "ext.vert.authint.202",
            None,
            detail,
            &Subject::flow(&flow),
        );
        response.headers_mut().insert(header::LOCATION, value);
        response
    }

    /// Removes the signal headers, and says whether one came more than once. One scan of the
    /// names first: on every response, and for the few headers a response has, comparing
    /// names is cheaper than hashing them.
    fn take_signal(
        &self,
        headers: &mut http::HeaderMap,
    ) -> (Option<HeaderValue>, Option<HeaderValue>, bool) {
        let (mut used, mut birthdate) = (0usize, 0usize);
        for (name, _) in headers.iter() {
            used += usize::from(name == self.used_header);
            birthdate += usize::from(name == self.birthdate_header);
        }
        let mut take = |name: &HeaderName, count: usize| match count {
            0 => None,
            _ => headers.remove(name),
        };
        (
            take(&self.used_header, used),
            take(&self.birthdate_header, birthdate),
            used > 1 || birthdate > 1,
        )
    }

    /// A withheld code: the log line, then the exception's answer.
    fn withhold(
        &self,
        exception: Exception,
        detail: &str,
        flow: Option<&Flow>,
        lang: Lang,
    ) -> Response<Body> {
        let rule = exception.row().rule;
        let (trace_id, name) = match flow {
            Some(flow) => {
                decision(
                    "withheld",
                    rule,
                    Some(exception),
                    detail,
                    &Subject::flow(flow),
                );
                let name = self.clients.get(flow.client_id()).map(|c| c.name.as_str());
                (flow.correlation_id, name)
            }
            None => {
                // No flow to name: the page's trace id finds this line.
                let subject = Subject {
                    correlation_id: random_uuid(),
                    ..Subject::default()
                };
                decision("withheld", rule, Some(exception), detail, &subject);
                (subject.correlation_id, None)
            }
        };
        self.answer(exception, lang, name, trace_id, flow.map(Then::Flow))
    }
}

/// `HeaderMap::remove`, after a scan of the names: on every request and response, and for
/// the few headers a message has, comparing names is cheaper than hashing one.
fn remove_if_present(headers: &mut http::HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    if headers.keys().any(|k| k == name) {
        headers.remove(name)
    } else {
        None
    }
}

/// Who a decision is about, as its log line names it. Never a code, a state, a birth date.
#[derive(Default)]
struct Subject<'a> {
    /// `MedMij-Request-ID` of the authorization request (flow returns have none).
    request_id: Option<Uuid>,
    /// The flow's `X-Correlation-ID`, or the trace id of a page about no flow.
    correlation_id: Uuid,
    client_id: Option<&'a str>,
    /// The representation kind asked for (`none` when none).
    representation: Option<&'a str>,
}

impl<'a> Subject<'a> {
    fn flow(flow: &'a Flow) -> Self {
        Subject {
            request_id: None,
            correlation_id: flow.correlation_id,
            client_id: Some(flow.client_id()),
            representation: Some(flow.requested.map_or("none", |r| r.kind.token())),
        }
    }
}

/// The one log line of a decision (target `medmij_vert_proxy::decision`).
fn decision(
    outcome: &str,
    rule: &str,
    exception: Option<Exception>,
    detail: &str,
    subject: &Subject<'_>,
) {
    tracing::info!(
        target: DECISION,
        outcome,
        rule,
        exception = exception.map(|e| e.row().id),
        detail,
        client_id = subject.client_id,
        representation = subject.representation,
        request_id = subject.request_id.map(tracing::field::display),
        correlation_id = %subject.correlation_id,
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pin_project_lite::pin_project! {
    /// The response of the inner service, inspected; or an answer the guard made itself.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Stage<F>,
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
            response: Option<Response<Body>>,
        },
    }
}

impl<F> ResponseFuture<F> {
    fn ready(response: Response<Body>) -> Self {
        ResponseFuture {
            kind: Stage::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, UpstreamError>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            StageProj::Inspect {
                future,
                guard,
                accept_language,
            } => {
                let accept_language = accept_language.as_ref();
                Poll::Ready(Ok(match ready!(future.poll(cx)) {
                    Ok(response) => guard.inspect(response, accept_language),
                    Err(error) => error.page(Lang::from_accept_language(accept_language)),
                }))
            }
            StageProj::Ready { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
