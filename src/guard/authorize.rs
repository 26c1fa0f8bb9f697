//! [`AuthorizeLayer`] and [`Authorize`]: the request side. An authorization request is decided
//! ([`vert::authorize`]) before it goes upstream, a return into its flow is checked
//! ([`vert::resume`]); the flow either one belongs to goes on in the request's extensions
//! ([`Answering`]) for the release point to answer. Every other route goes on as it is.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use uuid::Uuid;

use super::Guard;
use super::answers::Then;
use super::decision::{Outcome, Point, Subject};
use super::target;
use crate::pages::{Lang, Topic, WithPages, error_page};
use crate::seam::answer::{InnerOrOwn, SeamRefusal, refuse};
use crate::vert::authorize::{self, Accepted, Decision};
use crate::vert::events::RequestAnswer;
use crate::vert::flow::FlowId;
use crate::vert::fresh_login;
use crate::vert::resume::{self, Resumed};
use crate::vert::{Exception, Flow, Kind, Rule};
use crate::vocab::{PageBody, Route, random_uuid};

/// The flow an authorization request (or a return into it) belongs to, handed from the
/// authorize point to the release point in the request's extensions: a redirect that answers
/// it may get the client's state added. Boxed: most requests have none, and the release
/// point's future keeps it as it came.
#[derive(Clone)]
pub(super) struct Answering(pub Box<Answered>);

#[derive(Clone)]
pub(super) struct Answered {
    pub flow: Flow,
    /// On an authorization request the proxy sealed: the state it forwarded, and the flow's
    /// id. A response that carries exactly this state back (an AS that answers at once, with
    /// a login it already had) is this flow's return: this proxy wrote that state for this
    /// request, so opening it again could only say so (issue 31: the open cost ~2,000
    /// instructions). Any other state is opened.
    pub sealed: Option<(String, FlowId)>,
}

#[derive(Clone)]
pub struct AuthorizeLayer {
    guard: Arc<Guard>,
}

impl AuthorizeLayer {
    pub fn new(guard: Arc<Guard>) -> Self {
        AuthorizeLayer { guard }
    }
}

impl<S> tower::Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            guard: self.guard.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S, B, ResB> tower::Service<Request<B>> for Authorize<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>>,
    ResB: WithPages,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = InnerOrOwn<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // SPEC §3.1: only the proxy tells the AS that representation was asked for.
        remove_if_present(req.headers_mut(), &self.guard.request_header);
        // The router decided the route; a request that did not pass it is not guessed at.
        let route = req.extensions().get::<Route>().copied();
        let req = match route {
            Some(Route::Authorize) => match self.authorize(req) {
                Ok(req) => req,
                Err(answer) => return InnerOrOwn::own(*answer),
            },
            Some(Route::Below) if names_oauth_parameters(&req) => {
                return InnerOrOwn::own(refuse(req.headers(), SeamRefusal::BelowAGuardedPath));
            }
            Some(Route::Token | Route::Other | Route::Below) => req,
            Some(Route::Unreadable) | None => {
                return InnerOrOwn::own(refuse(req.headers(), SeamRefusal::NoRoute));
            }
        };
        InnerOrOwn::Inner {
            future: self.inner.call(req),
        }
    }
}

/// An answer the authorize point gives itself: a page or an error redirect (boxed: the rare
/// path, and a `Result` stays small).
type Own = Box<Response<PageBody>>;

impl<S> Authorize<S> {
    /// An authorization request: the request to forward (in its flow, on the configured path),
    /// or the answer.
    fn authorize<B>(&self, mut req: Request<B>) -> Result<Request<B>, Own> {
        let guard = &*self.guard;
        let lang = Lang::from_accept_language(req.headers().get(header::ACCEPT_LANGUAGE));
        let parsed = authorize::Parsed::new(req.uri().query().unwrap_or(""));
        let (request_id, correlation_id) = ids(&parsed, req.headers());
        match *req.method() {
            Method::GET | Method::POST => {}
            _ => return Err(not_a_get(guard, request_id, correlation_id, lang).into()),
        }
        if let Some((resumed, restated)) = self.resumed(&req, &parsed) {
            return self.resume(req, resumed, restated, request_id, lang);
        }
        if req.method() != Method::GET {
            return Err(not_a_get(guard, request_id, correlation_id, lang).into());
        }
        let clients = guard.clients.load();
        let settings = authorize::Settings {
            clients: &clients,
            enabled: &guard.enabled,
            today: || crate::vert::birthdate::latest_today(chrono::Utc::now()),
            age_today: guard.age_today(),
            issuer: guard.issuer.as_deref(),
            fresh_login: guard.fresh_login,
        };
        let mut subject = Subject {
            request_id,
            correlation_id,
            ..Subject::default()
        };
        let accepted = match authorize::decide(&parsed, &settings) {
            Decision::Forward(accepted) => accepted,
            Decision::Refuse(refusal) => {
                subject.client_id = refusal.client.as_ref().map(|c| c.hostname.as_str());
                let name = refusal.client.as_ref().map(|c| c.name.as_str());
                let exception = Exception::Auth1a;
                request_decision(guard, exception, refusal.reason.describe(), subject);
                return Err(guard
                    .answer(exception, lang, name, correlation_id, None)
                    .into());
            }
            Decision::Redirect(redirect) => {
                let (exception, location) = (redirect.exception, &redirect.location);
                request_decision(guard, exception, redirect.description, subject);
                let then = Some(Then::Redirect(location));
                return Err(guard
                    .answer(exception, lang, None, correlation_id, then)
                    .into());
            }
        };
        let (uri, answering) = self.seal(&accepted, subject, lang)?;
        *req.uri_mut() = uri;
        Ok(self.in_flow(req, answering, request_id))
    }

    /// An accepted authorization request: its flow sealed into the state, and the target the
    /// AS gets.
    fn seal(
        &self,
        accepted: &Accepted<'_>,
        subject: Subject<'_>,
        lang: Lang,
    ) -> Result<(http::Uri, Answering), Own> {
        let guard = &*self.guard;
        let correlation_id = subject.correlation_id;
        let flow = accepted.flow(super::shared::unix_now(), correlation_id);
        let (sealed, id) = guard.keys.load().seal_with_id(&flow);
        // Whatever spelling of the path reached here, the AS gets the canonical one.
        let built =
            accepted.forward_target(&guard.authorize_path, &sealed, guard.strip_scope_token);
        // The query was checked character by character, so this is a valid target; were it
        // not, nothing goes upstream.
        let Some(uri) = target::parse(built) else {
            let (status, topic) = (StatusCode::BAD_REQUEST, Topic::BadRequest);
            return Err(error_page(topic, status, lang, correlation_id).into());
        };
        let kind = accepted.requested.map(|r| r.kind);
        let subject = Subject {
            client_id: Some(accepted.client.hostname.as_str()),
            representation: Some(kind.map_or("none", Kind::token)),
            medmij_event: Some(RequestAnswer::Forwarded.events()),
            ..subject
        };
        // ext.vert.authint.201/.204: the AS is told to ask DigiD for representation.
        guard.decision(
            Point::Authorize,
            Outcome::Forwarded,
            Rule::for_kind(kind),
            None,
            "state sealed, forwarded upstream",
            subject,
        );
        let answering = Answering(Box::new(Answered {
            flow,
            sealed: Some((sealed, id)),
        }));
        Ok((uri, answering))
    }

    /// Whether the request returns into a flow ([`resume`]): a `GET` whose sealed state is the
    /// AS sending the browser back (SPEC §3.6), or a consent form posting back. With it, the
    /// query of a consent form posted to the client's own request, its state restated.
    fn resumed<B>(
        &self,
        req: &Request<B>,
        parsed: &authorize::Parsed<'_>,
    ) -> Option<(Resumed, Option<String>)> {
        let guard = &*self.guard;
        if req.method() == Method::GET {
            // Most carry the client's own state: nothing is loaded to look at it (a return
            // into a flow is one whose state opens).
            let state = parsed.single(authorize::Param::State)?;
            if !crate::state::seal::could_be_sealed(state) {
                return None;
            }
        }
        let (clock, clients, keys) = (guard.clock(), guard.clients.load(), guard.keys.load());
        let open = |state: &str| keys.open(state);
        if req.method() == Method::GET {
            return resume::get(parsed, &clients, clock, open).map(|r| (r, None));
        }
        // Without a sealed state, a POST is no authorization request.
        let body = authorize::Parsed::new(form_body(req)?);
        let resumed = resume::post(parsed, &body, &clients, clock, open)?;
        let restated = match &resumed {
            Resumed::Flow(flow) => resume::restated(parsed, &body, flow, guard.strip_scope_token),
            Resumed::Refused { .. } => None,
        };
        Some((resumed, restated))
    }

    /// A request that returns into its flow: on to the AS as it came (the configured path, the
    /// query and any body as sent, the state still sealed), in the flow; or a page.
    fn resume<B>(
        &self,
        mut req: Request<B>,
        resumed: Resumed,
        restated: Option<String>,
        request_id: Option<Uuid>,
        lang: Lang,
    ) -> Result<Request<B>, Own> {
        let guard = &*self.guard;
        let refused = |exception, detail, flow: Option<&Flow>| {
            Box::new(guard.withhold(Point::Authorize, exception, detail, flow, lang))
        };
        let flow = match resumed {
            Resumed::Flow(flow) => flow,
            Resumed::Refused {
                exception,
                detail,
                flow,
            } => return Err(refused(exception, detail, flow.as_deref())),
        };
        // The proxy's own fresh-login request comes off the AS's round trip (its login's
        // `?next=` keeps the URL it received): asked once, never in a loop. Flows without
        // it (the key off) never look.
        let query = restated.as_deref().or(req.uri().query());
        let unasked = match query {
            Some(query) if flow.fresh_login.prompt_login => {
                fresh_login::on_return(query, flow.fresh_login)
                    .map_err(|detail| refused(Exception::FailClosed, detail, Some(&flow)))?
            }
            _ => None,
        };
        guard.decision(
            Point::Authorize,
            Outcome::Resumed,
            Rule::for_kind(flow.requested.map(|r| r.kind)),
            None,
            "a return into its flow, forwarded without sealing again",
            Subject {
                request_id,
                ..Subject::flow(&flow)
            },
        );
        // Whatever spelling of the path came back, the AS gets the configured one; but the
        // AS's own trailing-slash redirect (APPEND_SLASH) is followed as it sent it, so that a
        // path configured without the slash does not send the browser round in circles.
        let configured = guard.authorize_path.trim_end_matches('/');
        let path = match req.uri().path() {
            p if p.strip_suffix('/').unwrap_or(p) == configured => p,
            _ => &guard.authorize_path,
        };
        let query = match unasked.as_deref() {
            Some("") => None,
            Some(query) => Some(query),
            None => query,
        };
        let Some(uri) = target::on_path(path, query) else {
            return Err(refused(
                Exception::FailClosed,
                "unusable target",
                Some(&flow),
            ));
        };
        *req.uri_mut() = uri;
        let answering = Answering(Box::new(Answered {
            flow: *flow,
            sealed: None,
        }));
        Ok(self.in_flow(req, answering, request_id))
    }

    /// An authorization request going to the AS in its flow: with the representation asked
    /// (ext.vert.authint.201/.204) and the ids the proxy logs, which reach the AS too, so that
    /// its logs match the helpdesk code (the client's own copies of these headers replaced);
    /// the flow in the extensions for the release point.
    fn in_flow<B>(
        &self,
        mut req: Request<B>,
        answering: Answering,
        request_id: Option<Uuid>,
    ) -> Request<B> {
        let headers = req.headers_mut();
        if let Some(requested) = answering.0.flow.requested {
            headers.insert(
                self.guard.request_header.clone(),
                HeaderValue::from_static(requested.kind.token()),
            );
        }
        set_ids(headers, answering.0.flow.correlation_id, request_id);
        req.extensions_mut().insert(answering);
        req
    }
}

/// core.authint.200: the authorization request is a `GET` (a `POST` only as a return into its
/// flow).
fn not_a_get(
    guard: &Guard,
    request_id: Option<Uuid>,
    correlation_id: Uuid,
    lang: Lang,
) -> Response<PageBody> {
    let subject = Subject {
        request_id,
        correlation_id,
        medmij_event: Some(RequestAnswer::ErrorPage.events()),
        ..Subject::default()
    };
    guard.decision(
        Point::Authorize,
        Outcome::Refused,
        Rule::CoreAuthint200,
        None,
        "method not allowed",
        subject,
    );
    let status = StatusCode::METHOD_NOT_ALLOWED;
    let mut response = error_page(Topic::MethodNotAllowed, status, lang, correlation_id);
    let allow = HeaderValue::from_static("GET");
    response.headers_mut().insert(header::ALLOW, allow);
    response
}

/// The decision on an authorization request the proxy answers itself (1a, 1b, Vert 3, the
/// age limits): its line carries the MedMij logging interface's events for the answer.
fn request_decision(guard: &Guard, exception: Exception, detail: &str, subject: Subject<'_>) {
    let answer = RequestAnswer::of(exception);
    let outcome = match answer {
        RequestAnswer::ErrorRedirect => Outcome::ErrorRedirect,
        RequestAnswer::ErrorPage | RequestAnswer::Forwarded => Outcome::Refused,
    };
    let subject = Subject {
        medmij_event: Some(answer.events()),
        ..subject
    };
    let rule = exception.row().rule;
    guard.decision(
        Point::Authorize,
        outcome,
        rule,
        Some(exception),
        detail,
        subject,
    );
}

/// The client's ids: from the query (core.authint.200), else from its request headers; a
/// correlation id is made up when there is none, and shown on the Persoon's pages.
fn ids(parsed: &authorize::Parsed<'_>, headers: &HeaderMap) -> (Option<Uuid>, Uuid) {
    let (request_id, correlation_id) = parsed.request_ids();
    let sent = header_ids(headers);
    let request_id = request_id
        .and_then(|id| Uuid::try_parse(&id).ok())
        .or(sent.request_id);
    let correlation_id = correlation_id
        .and_then(|id| Uuid::try_parse(&id).ok())
        .or(sent.correlation_id)
        .unwrap_or_else(random_uuid);
    (request_id, correlation_id)
}

/// Whether a request below the authorize or token path could be an OAuth request to a router
/// that hands it to that endpoint (issue 27: Rack's `URLMap`): its query or its body names a
/// parameter the guards judge, in any spelling, or it has a body that is not a plain form.
fn names_oauth_parameters<B>(req: &Request<B>) -> bool {
    let names = |text: &str| {
        authorize::Parsed::new(text).names_a_judged_parameter()
            || !crate::vert::token::query_is_clean(text)
    };
    let has_body = req
        .extensions()
        .get::<crate::seam::form::BufferedBody>()
        .is_some_and(|body| !body.0.is_empty());
    names(req.uri().query().unwrap_or("")) || (has_body && form_body(req).is_none_or(names))
}

/// The form a `POST` carries, when it is a plain UTF-8 form the limits layer read whole.
fn form_body<B>(req: &Request<B>) -> Option<&str> {
    crate::seam::form::check_content_type(req.headers()).ok()?;
    let body = req.extensions().get::<crate::seam::form::BufferedBody>()?;
    std::str::from_utf8(&body.0).ok()
}

pub(super) static X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
pub(super) static MEDMIJ_REQUEST_ID: HeaderName = HeaderName::from_static("medmij-request-id");

/// The ids a client sent as request headers: each a header holding one UUID; anything else
/// (absent, repeated, not a UUID) is no id.
#[derive(Clone, Copy, Default)]
pub(super) struct HeaderIds {
    pub request_id: Option<Uuid>,
    pub correlation_id: Option<Uuid>,
}

/// One scan of the names for both ids: on every authorization and token request, and for the
/// few headers a request has, comparing names is cheaper than hashing each (callgrind).
pub(super) fn header_ids(headers: &HeaderMap) -> HeaderIds {
    let (mut request, mut correlation) = ((0u8, None), (0u8, None));
    for (name, value) in headers.iter() {
        let seen = if name == MEDMIJ_REQUEST_ID {
            &mut request
        } else if name == X_CORRELATION_ID {
            &mut correlation
        } else {
            continue;
        };
        *seen = (seen.0.saturating_add(1), Some(value));
    }
    let one = |(count, value): (u8, Option<&HeaderValue>)| match (count, value) {
        (1, Some(value)) => Uuid::try_parse_ascii(value.as_bytes()).ok(),
        _ => None,
    };
    HeaderIds {
        request_id: one(request),
        correlation_id: one(correlation),
    }
}

/// The ids the proxy logs, on a request to the AS: the client's own copies replaced.
pub(super) fn set_ids(headers: &mut HeaderMap, correlation_id: Uuid, request_id: Option<Uuid>) {
    headers.insert(X_CORRELATION_ID.clone(), uuid_value(correlation_id));
    match request_id {
        Some(id) => headers.insert(MEDMIJ_REQUEST_ID.clone(), uuid_value(id)),
        None => remove_if_present(headers, &MEDMIJ_REQUEST_ID),
    };
}

pub(super) fn uuid_value(id: Uuid) -> HeaderValue {
    let mut buffer = Uuid::encode_buffer();
    HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut buffer).as_bytes())
        .expect("a UUID is a header value")
}

/// `HeaderMap::remove`, after a scan of the names: on every request and response, and for
/// the few headers a message has, comparing names is cheaper than hashing one.
pub(super) fn remove_if_present(headers: &mut HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    if headers.keys().any(|k| k == name) {
        headers.remove(name)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_ids_each_one_uuid_once_or_none() {
        const ID: &str = "11111111-2222-4333-8444-555555555555";
        let ids = |headers: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            let ids = header_ids(&map);
            (ids.request_id.is_some(), ids.correlation_id.is_some())
        };
        assert_eq!(ids(&[]), (false, false));
        assert_eq!(
            ids(&[("medmij-request-id", ID), ("x-correlation-id", ID)]),
            (true, true)
        );
        // Twice, even the same, is no id; nor is anything but a UUID.
        assert_eq!(
            ids(&[("x-correlation-id", ID), ("X-Correlation-ID", ID)]),
            (false, false)
        );
        assert_eq!(ids(&[("medmij-request-id", "not-a-uuid")]), (false, false));
        assert_eq!(ids(&[("x-request-id", ID)]), (false, false));
    }
}
