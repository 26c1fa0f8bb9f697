//! [`VertGuard`]: requests to the authorize endpoint are decided before they go upstream;
//! every other request goes on as it is. Every response comes back through
//! [`ResponseFuture`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use uuid::Uuid;

use super::answers::{Outcome, Subject, Then};
use super::future::ResponseFuture;
use super::{Guard, remove_if_present, unix_now};
use crate::pages::{Lang, Topic, WithPages, error_page};
use crate::seam::answer::{SeamRefusal as Refusal, refuse};
use crate::state::store::Source;
use crate::vert::authorize::{self, Decision};
use crate::vert::events::RequestAnswer;
use crate::vert::fresh_login;
use crate::vert::resume::{self, Resumed};
use crate::vert::{Exception, Flow, Kind};
use crate::vocab::{Peer, Route, random_uuid};

#[derive(Clone)]
pub struct VertGuard<S> {
    inner: S,
    guard: Arc<Guard>,
    peer: Option<Peer>,
}

impl<S> VertGuard<S> {
    pub(super) fn new(inner: S, guard: Arc<Guard>, peer: Option<Peer>) -> Self {
        VertGuard { inner, guard, peer }
    }
}

impl<S, B, ResB> tower::Service<Request<B>> for VertGuard<S>
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
        // SPEC §3.1: only the proxy tells the AS that representation was asked for.
        remove_if_present(req.headers_mut(), &self.guard.request_header);
        // The router decided the route; a request that did not pass it is not guessed at.
        match req.extensions().get::<Route>() {
            Some(Route::Authorize) => self.authorize(req),
            Some(Route::Token | Route::Other) => self.forward(req, None),
            Some(Route::Below) if names_oauth_parameters(&req) => {
                ResponseFuture::ready(refuse(req.headers(), Refusal::BelowAGuardedPath))
            }
            Some(Route::Below) => self.forward(req, None),
            Some(Route::Unreadable) | None => {
                ResponseFuture::ready(refuse(req.headers(), Refusal::NoRoute))
            }
        }
    }
}

impl<S> VertGuard<S> {
    /// `answering`: the flow of the authorization request being forwarded.
    fn forward<B, ResB>(
        &mut self,
        req: Request<B>,
        answering: Option<Box<Flow>>,
    ) -> ResponseFuture<S::Future, ResB>
    where
        S: tower::Service<Request<B>>,
    {
        let accept_language = req.headers().get(header::ACCEPT_LANGUAGE).cloned();
        // Any response may be a flow return; its release counts against this source's share.
        // A client a trusted balancer names unreadably shares the unknown source's bucket.
        let source = self
            .peer
            .as_ref()
            .and_then(|peer| peer.client(req.headers()))
            .map_or_else(Source::unknown, Source::new);
        let future = self.inner.call(req);
        ResponseFuture::inspect(
            future,
            self.guard.clone(),
            accept_language,
            answering,
            source,
        )
    }

    /// An authorization request: decided here, forwarded only when accepted.
    fn authorize<B, ResB>(&mut self, mut req: Request<B>) -> ResponseFuture<S::Future, ResB>
    where
        S: tower::Service<Request<B>>,
    {
        let guard = &*self.guard;
        let lang = Lang::from_accept_language(req.headers().get(header::ACCEPT_LANGUAGE));
        let query = req.uri().query().unwrap_or("");
        // The client's ids: from the query (core.authint.200), else from its request headers;
        // a correlation id is made up when there is none, and shown on the Persoon's pages.
        let parsed = authorize::Parsed::new(query);
        let (request_id, correlation_id) = parsed.request_ids();
        let request_id = request_id
            .and_then(|id| Uuid::try_parse(&id).ok())
            .or_else(|| header_uuid(req.headers(), &MEDMIJ_REQUEST_ID));
        let correlation_id = correlation_id
            .and_then(|id| Uuid::try_parse(&id).ok())
            .or_else(|| header_uuid(req.headers(), &X_CORRELATION_ID))
            .unwrap_or_else(random_uuid);
        let mut subject = Subject {
            request_id,
            correlation_id,
            ..Subject::default()
        };

        let clock = guard.clock();
        let keys = guard.keys.load();
        let open = |state: &str| keys.open(state);
        // A consent form posted back to the client's own request: its query's state restated.
        let mut restated = None;
        let resumed = match *req.method() {
            // SPEC §3.6: a sealed state is the AS sending the browser back into its flow.
            Method::GET => resume::get(&parsed, &guard.clients.load(), clock, open),
            // A consent form posting back; without a sealed state, no authorization request.
            Method::POST => match form_body(&req) {
                Some(body) => {
                    let body = authorize::Parsed::new(body);
                    let resumed = resume::post(&parsed, &body, &guard.clients.load(), clock, open);
                    if let Some(Resumed::Flow(flow)) = &resumed {
                        restated = resume::restated(&parsed, &body, flow, guard.strip_scope_token);
                    }
                    resumed
                }
                None => None,
            },
            _ => None,
        };
        if let Some(resumed) = resumed {
            return self.resume(req, resumed, restated, request_id, lang);
        }
        if req.method() != Method::GET {
            // core.authint.200: the authorization request is a GET.
            guard.request_decision(
                Outcome::Refused,
                "core.authint.200",
                RequestAnswer::ErrorPage,
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
        let now = chrono::Utc::now();
        let today = (now + chrono::Duration::hours(14)).date_naive();
        let clients = guard.clients.load();
        let settings = authorize::Settings {
            clients: &clients,
            enabled: &guard.enabled,
            today,
            age_today: guard.age_today(),
            issuer: guard.issuer.as_deref(),
            fresh_login: guard.fresh_login,
        };
        let (path_and_query, kind, flow) = match authorize::decide(parsed, &settings) {
            Decision::Refuse(refusal) => {
                let name = refusal.client.as_ref().map(|c| c.name.as_str());
                subject.client_id = refusal.client.as_ref().map(|c| c.hostname.as_str());
                guard.request_decision(
                    Outcome::Refused,
                    Exception::Auth1a.row().rule,
                    RequestAnswer::of(Exception::Auth1a),
                    Some(Exception::Auth1a),
                    refusal.reason.describe(),
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
                guard.request_decision(
                    Outcome::ErrorRedirect,
                    redirect.exception.row().rule,
                    RequestAnswer::of(redirect.exception),
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
                let sealed = guard.keys.load().seal(&flow);
                // Whatever spelling of the path reached here, the AS gets the canonical one.
                let path_and_query = accepted.forward_target(
                    &guard.authorize_path,
                    &sealed,
                    guard.strip_scope_token,
                );
                let kind = accepted.requested.map(|r| r.kind);
                // ext.vert.authint.201/.204: the AS is told to ask DigiD for representation.
                let rule = match kind {
                    None => "core.authint.200",
                    Some(Kind::OnBehalfOf) => "ext.vert.authint.201",
                    Some(Kind::OnBehalfOfChild) => "ext.vert.authint.204",
                };
                subject.client_id = Some(accepted.client.hostname.as_str());
                subject.representation = Some(kind.map_or("none", Kind::token));
                guard.request_decision(
                    Outcome::Forwarded,
                    rule,
                    RequestAnswer::Forwarded,
                    None,
                    "state sealed, forwarded upstream",
                    &subject,
                );
                (path_and_query, kind, Box::new(flow))
            }
        };
        // The query was checked character by character, so this is a valid target; the
        // sanitizing front made it origin-form.
        let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
            return ResponseFuture::ready(error_page(
                Topic::BadRequest,
                StatusCode::BAD_REQUEST,
                lang,
                correlation_id,
            ));
        };
        *req.uri_mut() = Uri::from(path_and_query);
        self.forward_in_flow(req, kind, correlation_id, request_id, flow)
    }

    /// An authorization request going to the AS in its flow: with the representation asked
    /// (ext.vert.authint.201/.204) and the ids the proxy logs, which reach the AS too, so that
    /// its logs match the helpdesk code (the client's own copies of these headers replaced).
    fn forward_in_flow<B, ResB>(
        &mut self,
        mut req: Request<B>,
        kind: Option<Kind>,
        correlation_id: Uuid,
        request_id: Option<Uuid>,
        flow: Box<Flow>,
    ) -> ResponseFuture<S::Future, ResB>
    where
        S: tower::Service<Request<B>>,
    {
        let headers = req.headers_mut();
        if let Some(kind) = kind {
            headers.insert(
                self.guard.request_header.clone(),
                HeaderValue::from_static(kind.token()),
            );
        }
        headers.insert(X_CORRELATION_ID.clone(), uuid_value(correlation_id));
        match request_id {
            Some(id) => headers.insert(MEDMIJ_REQUEST_ID.clone(), uuid_value(id)),
            None => headers.remove(&MEDMIJ_REQUEST_ID),
        };
        self.forward(req, Some(flow))
    }

    /// A request that returns into its flow ([`resume`]): on to the AS as it came (the
    /// configured path, the query and any body as sent, the state still sealed), in the flow;
    /// or a page. `restated`: the query of a consent form posted to the client's own request,
    /// its state the sealed one.
    fn resume<B, ResB>(
        &mut self,
        mut req: Request<B>,
        resumed: Resumed,
        restated: Option<String>,
        request_id: Option<Uuid>,
        lang: Lang,
    ) -> ResponseFuture<S::Future, ResB>
    where
        S: tower::Service<Request<B>>,
    {
        let guard = self.guard.clone();
        let flow = match resumed {
            Resumed::Flow(flow) => flow,
            Resumed::Refused {
                exception,
                detail,
                flow,
            } => {
                return ResponseFuture::ready(guard.withhold(
                    exception,
                    detail,
                    flow.as_deref(),
                    lang,
                ));
            }
        };
        // The proxy's own fresh-login request comes off the AS's round trip (its login's
        // `?next=` keeps the URL it received): asked once, never in a loop. Flows without
        // it (the key off) never look.
        let query = restated.as_deref().or(req.uri().query());
        let unasked = match query {
            Some(query) if flow.fresh_login.prompt_login => {
                match fresh_login::on_return(query, flow.fresh_login) {
                    Ok(unasked) => unasked,
                    Err(detail) => {
                        return ResponseFuture::ready(guard.withhold(
                            Exception::FailClosed,
                            detail,
                            Some(&flow),
                            lang,
                        ));
                    }
                }
            }
            _ => None,
        };
        let kind = flow.requested.map(|r| r.kind);
        guard.decision(
            Outcome::Resumed,
            kind.map_or("core.authint.200", |k| match k {
                Kind::OnBehalfOf => "ext.vert.authint.201",
                Kind::OnBehalfOfChild => "ext.vert.authint.204",
            }),
            None,
            "a return into its flow, forwarded without sealing again",
            &Subject {
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
        let target = match (unasked.as_deref(), query) {
            (Some(""), _) | (None, None) => path.to_owned(),
            (Some(query), _) | (None, Some(query)) => format!("{path}?{query}"),
        };
        match PathAndQuery::try_from(target) {
            Ok(target) => *req.uri_mut() = Uri::from(target),
            Err(_) => {
                return ResponseFuture::ready(guard.withhold(
                    Exception::FailClosed,
                    "unusable target",
                    Some(&flow),
                    lang,
                ));
            }
        }
        let correlation_id = flow.correlation_id;
        self.forward_in_flow(req, kind, correlation_id, request_id, flow)
    }
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

static X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
static MEDMIJ_REQUEST_ID: HeaderName = HeaderName::from_static("medmij-request-id");

/// A request header holding one UUID; anything else is no id.
fn header_uuid(headers: &HeaderMap, name: &HeaderName) -> Option<Uuid> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Uuid::try_parse_ascii(value.as_bytes()).ok(),
        _ => None,
    }
}

fn uuid_value(id: Uuid) -> HeaderValue {
    let mut buffer = Uuid::encode_buffer();
    HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut buffer).as_bytes())
        .expect("a UUID is a header value")
}
