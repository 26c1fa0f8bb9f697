//! [`TokenGuardLayer`] and [`TokenGuard`]: the token point (`[token_guard] path`, off unless
//! set). A token request with `grant_type=authorization_code` reaches the AS only if the proxy
//! released its code, it has not become a token, and no other presentation of it is at the AS;
//! the record is used up when the AS issues a token (2xx), and stays when it refuses (a wrong
//! `code_verifier`, a 5xx). Otherwise `400 {"error":"invalid_grant"}` (RFC 6749 §5.2), without
//! contacting the AS. So a code that left the AS some way the proxy does not inspect (a form
//! post, a script, a withheld redirect) never becomes a token. Other grants pass. The body is
//! read whole by [`crate::seam::limits`] before this layer.
//!
//! Every answer on the token path is one decision line and one count
//! ([`super::decision`]): forwarded, redeemed, refused, withheld, busy, store unavailable,
//! passed. Its `X-Correlation-ID` (the client's, or one made up) is on the line, goes to the
//! AS, and comes back on the answer, so that a PGO's support desk can quote it.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::Full;
use uuid::Uuid;

use super::authorize::{X_CORRELATION_ID, header_ids, set_ids, uuid_value};
use super::decision::{self, DecisionLine, Outcome, Point, Subject};
use super::target;
use crate::ops::metrics::Metrics;
use crate::pages::WithPages;
use crate::seam::answer::{Deferred, InnerOrOwn};
use crate::state::store::{Presented, Records};
use crate::vert::token::{self, TokenRequest};
use crate::vert::{ClientList, Rule};
use crate::vocab::{Buffered, PageBody, Route, random_uuid};

#[derive(Clone)]
pub struct TokenGuardLayer {
    /// Off: every request passes.
    on: bool,
    /// `token_guard.path`: what the AS gets, whatever spelling of it came (Django's
    /// APPEND_SLASH would answer `/o/token` with a 301 that a client follows as a `GET`).
    path: Arc<str>,
    records: Arc<Records>,
    /// The client list in use: a code released to a client taken off it is not redeemed.
    clients: Arc<ArcSwap<ClientList>>,
    /// The decisions' counts.
    metrics: Arc<Metrics>,
}

impl TokenGuardLayer {
    /// On: requests the router marked [`Route::Token`] (the configured path under every
    /// spelling) are guarded.
    pub fn new(
        records: Arc<Records>,
        clients: Arc<ArcSwap<ClientList>>,
        path: &str,
        metrics: Arc<Metrics>,
    ) -> Self {
        // The series the code alerts watch, there (at 0) from the start.
        decision::declare(
            &metrics,
            &[
                (Outcome::Withheld, Rule::TokenReleasedOnly, None),
                (Outcome::Refused, Rule::TokenReleasedOnly, None),
                (Outcome::Refused, Rule::TokenOnce, None),
                (Outcome::Refused, Rule::TokenListedClient, None),
                (Outcome::Redeemed, Rule::TokenReleasedOnly, None),
            ],
        );
        TokenGuardLayer {
            on: true,
            path: path.into(),
            records,
            clients,
            metrics,
        }
    }

    /// Off: one branch per request, and the stack keeps one type either way.
    pub fn off(records: Arc<Records>) -> Self {
        TokenGuardLayer {
            on: false,
            path: "".into(),
            records,
            clients: Arc::default(),
            metrics: Arc::default(),
        }
    }
}

impl<S> tower::Layer<S> for TokenGuardLayer {
    type Service = TokenGuard<S>;

    fn layer(&self, inner: S) -> TokenGuard<S> {
        TokenGuard {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct TokenGuard<S> {
    inner: S,
    layer: TokenGuardLayer,
}

type Boxed<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ResB> tower::Service<Request<Buffered>> for TokenGuard<S>
where
    S: tower::Service<Request<Buffered>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResB: WithPages + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = InnerOrOwn<Deferred<S::Future, Boxed<Response<ResB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Buffered>) -> Self::Future {
        // The router decided the route; a request it did not mark is not guessed at.
        let route = req.extensions().get::<Route>().copied();
        if !self.layer.on || route.is_some_and(|r| r != Route::Token) {
            return InnerOrOwn::Inner {
                future: Deferred::Now {
                    future: self.inner.call(req),
                },
            };
        }
        let ids = Ids::of(req.headers());
        let judged = match route {
            Some(_) => judge(req, &self.layer.path, &ids),
            None => Err(BadRequest::invalid_request(
                "a request the router did not mark",
            )),
        };
        let (req, code) = match judged {
            Ok(judged) => judged,
            Err(refusal) => return InnerOrOwn::own(refusal.answer(&self.layer.metrics, &ids)),
        };
        // The service that was polled ready goes with the request; a clone stays.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let presenting = Presenting {
            records: self.layer.records.clone(),
            clients: self.layer.clients.clone(),
            metrics: self.layer.metrics.clone(),
            ids,
        };
        // A task of its own: a client that goes away mid-presentation drops the answer, not
        // the exchange, so the AS's answer is always settled (a token issued uses the code
        // up, the lock is let go). Dropped with the connection instead, the lock would stay
        // until it expired and the code then reach the AS a second time.
        let presentation = tokio::spawn(presenting.run(inner, req, code));
        let future = Box::pin(async move {
            match presentation.await {
                Ok(answered) => answered,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // The runtime is shutting down.
                Err(_) => Ok(ResB::response(oauth_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                ))),
            }
        });
        InnerOrOwn::Inner {
            future: Deferred::Later { future },
        }
    }
}

/// The ids of a token request: the client's `X-Correlation-ID` (one UUID), or one made up;
/// its `MedMij-Request-ID`, when it sent one.
#[derive(Clone, Copy)]
struct Ids {
    correlation_id: Uuid,
    request_id: Option<Uuid>,
}

impl Ids {
    fn of(headers: &http::HeaderMap) -> Self {
        let sent = header_ids(headers);
        Ids {
            correlation_id: sent.correlation_id.unwrap_or_else(random_uuid),
            request_id: sent.request_id,
        }
    }

    /// The token point's decision: its line, its count.
    fn decide(&self, metrics: &Metrics, outcome: Outcome, rule: Rule, detail: &str) {
        DecisionLine {
            point: Point::Token,
            outcome,
            rule,
            exception: None,
            detail,
            subject: Subject {
                request_id: self.request_id,
                correlation_id: self.correlation_id,
                ..Subject::default()
            },
        }
        .record(metrics);
    }

    /// The answer, with the id that finds its line.
    fn stamp<B>(&self, mut answer: Response<B>) -> Response<B> {
        let headers = answer.headers_mut();
        headers.insert(X_CORRELATION_ID.clone(), uuid_value(self.correlation_id));
        answer
    }
}

/// What the token point reads a request as: on to the AS as it is (another grant, a
/// preflight: no code), or a code to present. Either way on the configured path, with the
/// proxy's ids.
fn judge(
    req: Request<Buffered>,
    path: &str,
    ids: &Ids,
) -> Result<(Request<Buffered>, Option<String>), BadRequest> {
    let query = req.uri().query().unwrap_or("");
    // A CORS preflight (a PGO's browser-side component redeeming its code) carries no code:
    // no body (the seam refuses one on OPTIONS; checked again here, where a code would
    // matter) and nothing of a token request in the query. It goes to the AS, whose CORS
    // answer comes back as it is.
    let preflight = req.method() == Method::OPTIONS;
    if preflight && (!is_bodiless(&req) || !token::query_is_clean(query)) {
        return Err(BadRequest::invalid_request(
            "a preflight with a body or a code",
        ));
    }
    // RFC 6749 §3.2: token requests are POSTs. Anything else on this path, or a query that
    // carries a code beside the body's, never reaches the AS.
    if !preflight && req.method() != Method::POST {
        return Err(BadRequest::not_a_post());
    }
    if !token::query_is_clean(query) {
        return Err(BadRequest::invalid_request("a code or grant in the query"));
    }
    if !preflight && let Err(why) = crate::seam::form::check_content_type(req.headers()) {
        // A framework that reads multipart or JSON bodies, or inflates them, would find
        // parameters in it that the form reading below does not.
        return Err(BadRequest::invalid_request(why.to_string()));
    }
    let (mut parts, body) = req.into_parts();
    parts.uri = target::on_path(path, parts.uri.query())
        .ok_or_else(|| BadRequest::invalid_request("an unusable target"))?;
    set_ids(&mut parts.headers, ids.correlation_id, ids.request_id);
    if preflight {
        return Ok((Request::from_parts(parts, body), None));
    }
    let body = full_bytes(body);
    let code = match token::parse(&body) {
        TokenRequest::OtherGrant => None,
        TokenRequest::Invalid(why) => return Err(BadRequest::invalid_request(why.reason())),
        TokenRequest::Code(code) => Some(code.into_owned()),
    };
    Ok((Request::from_parts(parts, Full::new(body)), code))
}

/// A token request answered by the proxy itself, before the store is asked.
struct BadRequest {
    status: StatusCode,
    allow: Option<&'static str>,
    detail: Cow<'static, str>,
}

impl BadRequest {
    /// `invalid_request`: read otherwise than the AS might.
    fn invalid_request(detail: impl Into<Cow<'static, str>>) -> Self {
        BadRequest {
            status: StatusCode::BAD_REQUEST,
            allow: None,
            detail: detail.into(),
        }
    }

    fn not_a_post() -> Self {
        BadRequest {
            status: StatusCode::METHOD_NOT_ALLOWED,
            allow: Some("POST"),
            detail: "method not allowed".into(),
        }
    }

    fn answer(self, metrics: &Metrics, ids: &Ids) -> Response<PageBody> {
        let rule = Rule::TokenOneReading;
        ids.decide(metrics, Outcome::Refused, rule, &self.detail);
        let mut answer = oauth_error(self.status, "invalid_request");
        if let Some(allow) = self.allow {
            let allow = HeaderValue::from_static(allow);
            answer.headers_mut().insert(header::ALLOW, allow);
        }
        ids.stamp(answer)
    }
}

/// A request on its way: what it needs once in its own task.
struct Presenting {
    records: Arc<Records>,
    clients: Arc<ArcSwap<ClientList>>,
    metrics: Arc<Metrics>,
    ids: Ids,
}

impl Presenting {
    /// Another grant or a preflight goes on; a code is looked up, presented, and settled by
    /// the AS's answer.
    async fn run<S, ResB>(
        self,
        mut inner: S,
        req: Request<Buffered>,
        code: Option<String>,
    ) -> Result<Response<ResB>, S::Error>
    where
        S: tower::Service<Request<Buffered>, Response = Response<ResB>>,
        ResB: WithPages,
    {
        let (ids, metrics) = (self.ids, &*self.metrics);
        let Some(code) = code else {
            let (rule, detail) = match *req.method() {
                Method::OPTIONS => (Rule::TokenOneReading, "a preflight without a code"),
                _ => (Rule::TokenReleasedOnly, "another grant than a code's"),
            };
            ids.decide(metrics, Outcome::Passed, rule, detail);
            return inner.call(req).await.map(|answer| ids.stamp(answer));
        };
        let clients = &self.clients;
        let listed = |client: &str| clients.load().get(client).is_some();
        let presentation = match self.records.present(&code, listed).await {
            Ok(Presented::Go(presentation)) => presentation,
            presented => {
                let answer = refused(&presented, metrics, &ids);
                return Ok(ids.stamp(ResB::response(answer)));
            }
        };
        let answered = inner.call(req).await;
        // Used up only when the AS issued a token; any other answer leaves the code as the AS
        // left it, presentable again.
        let issued = matches!(&answered, Ok(r) if r.status().is_success());
        self.records.settle(presentation, issued).await;
        let (outcome, detail) = match issued {
            true => (
                Outcome::Redeemed,
                "the AS issued a token: the code is used up",
            ),
            false => (
                Outcome::Forwarded,
                "the AS issued no token: the code stays presentable",
            ),
        };
        ids.decide(metrics, outcome, Rule::TokenReleasedOnly, detail);
        answered.map(|answer| ids.stamp(answer))
    }
}

/// The answer to a code that may not go to the AS, and its decision.
fn refused(
    presented: &Result<Presented, crate::state::store::StoreError>,
    metrics: &Metrics,
    ids: &Ids,
) -> Response<PageBody> {
    use Outcome::{Busy, Refused, StoreUnavailable, Withheld};
    let (outcome, rule, detail) = match presented {
        Ok(Presented::Withheld) => (
            Withheld,
            Rule::TokenReleasedOnly,
            "a code the proxy withheld",
        ),
        Ok(Presented::NotReleased) => (
            Refused,
            Rule::TokenReleasedOnly,
            "a code the proxy did not release, or one expired",
        ),
        Ok(Presented::Redeemed) => (Refused, Rule::TokenOnce, "a code that became a token"),
        Ok(Presented::ClientNotListed) => (
            Refused,
            Rule::TokenListedClient,
            "the code's client is no longer on the client list",
        ),
        Ok(Presented::InFlight) => (
            Busy,
            Rule::TokenOnce,
            "the same code is at the AS now (retry after it answered)",
        ),
        Ok(Presented::Go(_)) | Err(_) => (
            StoreUnavailable,
            Rule::TokenReleasedOnly,
            "store unavailable: whether the code was released is not known",
        ),
    };
    ids.decide(metrics, outcome, rule, detail);
    match outcome {
        Busy => {
            let mut answer =
                oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
            let retry = HeaderValue::from_static("1");
            answer.headers_mut().insert(header::RETRY_AFTER, retry);
            answer
        }
        StoreUnavailable => oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        _ => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
    }
}

/// No body, announced or buffered.
fn is_bodiless(req: &Request<Buffered>) -> bool {
    let headers = req.headers();
    let announced = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0");
    !announced && req.body().size_hint().exact() == Some(0)
}

/// The bytes of a buffered body: a `Full` yields them at its first poll, without waiting.
fn full_bytes(mut body: Buffered) -> Bytes {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// An OAuth error response (RFC 6749 §5.2): JSON, never cached.
fn oauth_error(status: StatusCode, error: &'static str) -> Response<PageBody> {
    let body = format!("{{\"error\":\"{error}\"}}");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use arc_swap::ArcSwap;
    use http_body_util::{BodyExt, Either};
    use tower::{Layer, ServiceExt};

    use crate::ops::metrics::Metrics;
    use crate::state::seal::KeyRing;
    use crate::state::store::{MemoryStore, Source, Store};

    fn records(store: Arc<dyn Store>) -> Arc<Records> {
        Arc::new(Records::new(
            store,
            Arc::new(ArcSwap::from_pointee(KeyRing::random())),
            Duration::from_secs(60),
            Some(Duration::from_secs(600)),
            100,
            Metrics::new(),
        ))
    }

    /// The client list in use: the one client the tests release codes to.
    fn clients() -> Arc<ArcSwap<ClientList>> {
        Arc::new(ArcSwap::from_pointee(ClientList::new([
            crate::vert::Client {
                hostname: "pgo.example.nl".into(),
                name: "Voorbeeld PGO".into(),
            },
        ])))
    }

    fn post(body: &'static str) -> Request<Buffered> {
        Request::post("/oauth2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    /// The request with the route the router gives it (the token guard reads it from there).
    fn routed(mut req: Request<Buffered>) -> Request<Buffered> {
        let routes =
            crate::seam::paths::Routes::new("/oauth2/authorize", Some("/oauth2/token"), true);
        let route = routes.route(req.uri().path());
        req.extensions_mut().insert(route);
        req
    }

    async fn call(
        records: &Arc<Records>,
        calls: &Arc<AtomicUsize>,
        req: Request<Buffered>,
    ) -> (StatusCode, String) {
        let calls = calls.clone();
        let inner = tower::service_fn(move |req: Request<Buffered>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                Ok::<_, Infallible>(Response::new(Either::Left(Full::new(body))))
            }
        });
        let layer =
            TokenGuardLayer::new(records.clone(), clients(), "/oauth2/token", Metrics::new());
        let response = layer.layer(inner).oneshot(routed(req)).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// The guard's own answer to `form`, and the AS never asked.
    async fn answered_before_the_as(
        records: &Arc<Records>,
        form: &'static str,
        status: StatusCode,
        error: &str,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let (got, body) = call(records, &calls, post(form)).await;
        let wanted = format!("{{\"error\":\"{error}\"}}");
        assert_eq!((got, body.as_str()), (status, wanted.as_str()));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_released_code_is_redeemed_once() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let calls = Arc::new(AtomicUsize::new(0));
        records
            .release([7; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        let body = "grant_type=authorization_code&code=C0DE";
        assert_eq!(
            call(&records, &calls, post(body)).await,
            (StatusCode::OK, body.into())
        );
        let refused = call(&records, &calls, post(body)).await;
        assert_eq!(
            refused,
            (
                StatusCode::BAD_REQUEST,
                "{\"error\":\"invalid_grant\"}".into()
            )
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// Issue 26, finding 5: the client goes away while the AS is issuing the token.
    #[tokio::test]
    async fn a_presentation_whose_client_went_away_is_settled_and_never_reaches_the_as_twice() {
        let records = records(Arc::new(MemoryStore::new(100)));
        records
            .release([4; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let (reached, mut at_the_as) = tokio::sync::mpsc::unbounded_channel();
        let (answered, mut settled) = tokio::sync::mpsc::unbounded_channel::<()>();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let inner = {
            let (calls, gate) = (calls.clone(), gate.clone());
            tower::service_fn(move |_req: Request<Buffered>| {
                calls.fetch_add(1, Ordering::SeqCst);
                let (reached, answered, gate) = (reached.clone(), answered.clone(), gate.clone());
                async move {
                    reached.send(()).unwrap();
                    // The AS issues the token only once the client is gone.
                    gate.acquire().await.unwrap().forget();
                    let _ = answered.send(());
                    Ok::<_, Infallible>(Response::new(Either::Left(Full::new(Bytes::new()))))
                }
            })
        };
        let layer =
            TokenGuardLayer::new(records.clone(), clients(), "/oauth2/token", Metrics::new());
        let body = "grant_type=authorization_code&code=C0DE";
        let first = tokio::spawn(layer.layer(inner).oneshot(routed(post(body))));
        at_the_as.recv().await.unwrap();
        first.abort(); // the client's connection closes
        assert!(first.await.unwrap_err().is_cancelled());
        gate.add_permits(1);
        settled.recv().await.unwrap();
        // The settlement follows the AS's answer in the same task: wait for the lock to go.
        let again = loop {
            let answer = call(&records, &calls, post(body)).await;
            if answer.0 != StatusCode::SERVICE_UNAVAILABLE {
                break answer;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(
            again,
            (
                StatusCode::BAD_REQUEST,
                "{\"error\":\"invalid_grant\"}".into()
            )
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the code reached the AS once"
        );
    }

    /// Issue 26, finding 6: released before its client was taken off the client list.
    #[tokio::test]
    async fn delisted_a_code_released_to_a_client_no_longer_listed_is_invalid_grant() {
        let records = records(Arc::new(MemoryStore::new(100)));
        records
            .release([3; 32], "C0DE", "gone.example.nl", Source::unknown())
            .await
            .unwrap();
        let form = "grant_type=authorization_code&code=C0DE";
        answered_before_the_as(&records, form, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }

    #[tokio::test]
    async fn a_code_the_proxy_did_not_release_never_reaches_the_as() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let form = "grant_type=authorization_code&code=OTHER";
        answered_before_the_as(&records, form, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }

    #[tokio::test]
    async fn a_repeated_code_is_invalid_request_and_other_grants_pass() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let calls = Arc::new(AtomicUsize::new(0));
        let (status, body) = call(
            &records,
            &calls,
            post("grant_type=authorization_code&code=a&code=b"),
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let (status, _) = call(
            &records,
            &calls,
            post("grant_type=refresh_token&refresh_token=r"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        // Another path: not this layer's business.
        let other = Request::get("/oauth2/authorize?code=x")
            .body(Full::default())
            .unwrap();
        assert_eq!(call(&records, &calls, other).await.0, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_cors_preflight_on_the_token_path_reaches_the_as_and_its_answer_comes_back() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let inner = {
            let seen = seen.clone();
            tower::service_fn(move |req: Request<Buffered>| {
                seen.lock()
                    .unwrap()
                    .push((req.method().clone(), req.uri().to_string()));
                async move {
                    let mut answer = Response::new(Either::Left(Full::new(Bytes::new())));
                    *answer.status_mut() = StatusCode::NO_CONTENT;
                    answer.headers_mut().insert(
                        "access-control-allow-origin",
                        HeaderValue::from_static("https://pgo.example.nl"),
                    );
                    Ok::<_, Infallible>(answer)
                }
            })
        };
        let layer = TokenGuardLayer::new(records, clients(), "/oauth2/token", Metrics::new());
        let preflight = |uri: &str, body: &'static [u8]| {
            let req = Request::builder()
                .method(Method::OPTIONS)
                .uri(uri)
                .header("origin", "https://pgo.example.nl")
                .header("access-control-request-method", "POST")
                .body(Full::new(Bytes::from_static(body)))
                .unwrap();
            routed(req)
        };
        // No body: to the AS on the configured path, whatever spelling came; its CORS answer back.
        let answer = layer
            .layer(inner.clone())
            .oneshot(preflight("/OAuth2/token/", b""))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            answer.headers()["access-control-allow-origin"],
            "https://pgo.example.nl"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [(Method::OPTIONS, "/oauth2/token".to_owned())]
        );
        // A body, or a code or grant in the query: it could be read as a token request.
        for (uri, body) in [
            (
                "/oauth2/token",
                &b"grant_type=authorization_code&code=C0DE"[..],
            ),
            ("/oauth2/token?code=C0DE", b""),
            ("/oauth2/token?grant_type=authorization_code", b""),
        ] {
            let answer = layer
                .layer(inner.clone())
                .oneshot(preflight(uri, body))
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{uri}");
        }
        // A body announced by its header alone counts too.
        let mut announced = preflight("/oauth2/token", b"");
        announced
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        let answer = layer.layer(inner).oneshot(announced).await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_token_path_takes_only_posts_without_a_code_in_the_query() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let calls = Arc::new(AtomicUsize::new(0));
        records
            .release([9; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        let get = Request::get("/oauth2/token?grant_type=authorization_code&code=OTHER")
            .body(Full::default())
            .unwrap();
        assert_eq!(
            call(&records, &calls, get).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        // A released code in the body, another in the query (merged by some frameworks).
        let merged = Request::post("/OAuth2/token.json?code=OTHER")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(
                b"grant_type=authorization_code&code=C0DE",
            )))
            .unwrap();
        let (status, body) = call(&records, &calls, merged).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    /// A store that is down.
    struct Down;

    impl Store for Down {
        fn claim(
            &self,
            _: [u8; 32],
            _: &[u8],
            _: Duration,
        ) -> crate::state::store::StoreFuture<'_, bool> {
            Box::pin(std::future::ready(Err(
                crate::state::store::StoreError::Unavailable("down".into()),
            )))
        }
        fn take(&self, _: [u8; 32]) -> crate::state::store::StoreFuture<'_, bool> {
            Box::pin(std::future::ready(Err(
                crate::state::store::StoreError::Unavailable("down".into()),
            )))
        }
        fn get(&self, _: [u8; 32]) -> crate::state::store::StoreFuture<'_, Option<Vec<u8>>> {
            Box::pin(std::future::ready(Err(
                crate::state::store::StoreError::Unavailable("down".into()),
            )))
        }
    }

    #[tokio::test]
    async fn store_unavailable_is_503_temporarily_unavailable() {
        let records = records(Arc::new(Down));
        let form = "grant_type=authorization_code&code=C0DE";
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        answered_before_the_as(&records, form, unavailable, "temporarily_unavailable").await;
    }

    /// Issue 28: every answer on the token path is one decision, counted in
    /// `medmij_vert_decisions_total` by outcome and rule (the line and the count are written
    /// together, by `DecisionLine::record`; `tests/logs.rs` reads the lines end to end); a
    /// withheld code presented says `withheld`; each answer carries an `X-Correlation-ID`
    /// (the client's, or one made up); no label names a code.
    #[tokio::test]
    async fn token_decisions_each_outcome_is_one_line_and_one_count_and_names_no_code() {
        let metrics = Metrics::new();
        let records = records(Arc::new(MemoryStore::new(100)));
        for (id, code, client) in [
            (2, "c0de-issued", "pgo.example.nl"),
            (3, "c0de-refused-by-the-as", "pgo.example.nl"),
            (4, "c0de-delisted", "gone.example.nl"),
            (5, "c0de-busy", "pgo.example.nl"),
        ] {
            records
                .release([id; 32], code, client, Source::unknown())
                .await
                .unwrap();
        }
        records.withhold("c0de-withheld", Source::unknown()).await;
        // Another presentation of this one is at the AS now.
        let Ok(Presented::Go(_at_the_as)) = records.present("c0de-busy", |_| true).await else {
            panic!("a released code goes")
        };
        let inner = tower::service_fn(|req: Request<Buffered>| async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let mut answer = Response::new(Either::Left(Full::new(Bytes::new())));
            if body.windows(6).any(|w| w == b"by-the") {
                *answer.status_mut() = StatusCode::BAD_REQUEST; // a wrong code_verifier
            }
            Ok::<_, Infallible>(answer)
        });
        let form = |code: &str| format!("grant_type=authorization_code&code={code}");
        let cases: Vec<(String, u16, &str, &str)> = vec![
            (
                form("c0de-issued"),
                200,
                "redeemed",
                "proxy.token.released_only",
            ),
            (form("c0de-issued"), 400, "refused", "proxy.token.once"),
            (
                form("c0de-refused-by-the-as"),
                400,
                "forwarded",
                "proxy.token.released_only",
            ),
            (
                form("c0de-never"),
                400,
                "refused",
                "proxy.token.released_only",
            ),
            (
                form("c0de-withheld"),
                400,
                "withheld",
                "proxy.token.released_only",
            ),
            (
                form("c0de-delisted"),
                400,
                "refused",
                "proxy.token.listed_client",
            ),
            (form("c0de-busy"), 503, "busy", "proxy.token.once"),
            (
                "grant_type=refresh_token&refresh_token=r".into(),
                200,
                "passed",
                "proxy.token.released_only",
            ),
            (
                "code=c0de-issued".into(),
                400,
                "refused",
                "proxy.token.one_reading",
            ),
            (String::new(), 405, "refused", "proxy.token.one_reading"),
        ];
        let layer =
            TokenGuardLayer::new(records.clone(), clients(), "/oauth2/token", metrics.clone());
        for (i, (body, status, ..)) in cases.iter().enumerate() {
            let mut req = match body.is_empty() {
                true => Request::get("/oauth2/token").body(Full::default()).unwrap(),
                false => post_owned(body.clone()),
            };
            // Every other request brings its own id; the rest get one made up.
            let sent = (i % 2 == 0).then(|| format!("00000000-0000-4000-8000-00000000000{i}"));
            if let Some(id) = &sent {
                req.headers_mut()
                    .insert("x-correlation-id", id.parse().unwrap());
            }
            let answer = layer.layer(inner).oneshot(routed(req)).await.unwrap();
            assert_eq!(answer.status().as_u16(), *status, "{body}");
            let id = answer.headers()["x-correlation-id"]
                .to_str()
                .unwrap()
                .to_owned();
            match sent {
                Some(sent) => assert_eq!(id, sent, "the client's id comes back"),
                None => assert!(uuid::Uuid::try_parse(&id).is_ok(), "one made up: {id}"),
            }
        }
        // The store down: nothing known, nothing released.
        let down = TokenGuardLayer::new(
            self::records(Arc::new(Down)),
            clients(),
            "/oauth2/token",
            metrics.clone(),
        );
        let answer = down
            .layer(inner)
            .oneshot(routed(post_owned(form("c0de-issued"))))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);

        let encoded = metrics.encode();
        assert!(!encoded.contains("c0de"));
        let count = |outcome: &str, rule: &str| {
            let series = format!(
                "medmij_vert_decisions_total{{outcome=\"{outcome}\",rule=\"{rule}\",exception=\"\"}} "
            );
            encoded
                .lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .map_or(0, |n| n.parse::<u32>().unwrap())
        };
        for (outcome, rule, want) in [
            ("redeemed", "proxy.token.released_only", 1),
            ("refused", "proxy.token.once", 1),
            ("forwarded", "proxy.token.released_only", 1),
            ("refused", "proxy.token.released_only", 1),
            ("withheld", "proxy.token.released_only", 1),
            ("refused", "proxy.token.listed_client", 1),
            ("busy", "proxy.token.once", 1),
            ("passed", "proxy.token.released_only", 1),
            ("refused", "proxy.token.one_reading", 2),
            ("store_unavailable", "proxy.token.released_only", 1),
        ] {
            assert_eq!(count(outcome, rule), want, "{outcome} {rule}\n{encoded}");
        }
    }

    fn post_owned(body: String) -> Request<Buffered> {
        Request::post("/oauth2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }

    #[tokio::test]
    async fn token_bodies_other_than_a_plain_form_are_invalid_request() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let calls = Arc::new(AtomicUsize::new(0));
        records
            .release([5; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        let multipart = "--b\r\ncontent-disposition: form-data; name=\"grant_type\"\r\n\r\nauthorization_code\r\n--b\r\ncontent-disposition: form-data; name=\"code\"\r\n\r\nNEVER\r\n--b--\r\n";
        for (headers, body) in [
            // The preamble holds an innocent form; the parts hold the code.
            (
                vec![("content-type", "multipart/form-data; boundary=b")],
                format!("grant_type=refresh_token&x=\r\n{multipart}"),
            ),
            (
                vec![("content-type", "application/json")],
                r#"{"grant_type":"authorization_code","code":"NEVER"}"#.to_string(),
            ),
            (
                vec![],
                "grant_type=refresh_token&refresh_token=r".to_string(),
            ),
            (
                vec![(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=latin1",
                )],
                "grant_type=refresh_token&refresh_token=r".to_string(),
            ),
            (
                vec![
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("content-encoding", "gzip"),
                ],
                "grant_type=refresh_token&refresh_token=r".to_string(),
            ),
            (
                vec![
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("content-type", "multipart/form-data; boundary=b"),
                ],
                "grant_type=refresh_token&refresh_token=r".to_string(),
            ),
        ] {
            let mut builder = Request::post("/oauth2/token");
            for (name, value) in &headers {
                builder = builder.header(*name, *value);
            }
            let req = builder.body(Full::new(Bytes::from(body))).unwrap();
            let (status, answer) = call(&records, &calls, req).await;
            assert_eq!(
                (status, answer.as_str()),
                (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}"),
                "{headers:?}"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // charset=utf-8 (any case, quoted or not) is the form still.
        for content_type in [
            "application/x-www-form-urlencoded; charset=UTF-8",
            "Application/X-WWW-Form-Urlencoded;charset=\"utf-8\"",
        ] {
            let req = Request::post("/oauth2/token")
                .header("content-type", content_type)
                .body(Full::new(Bytes::from_static(
                    b"grant_type=refresh_token&refresh_token=r",
                )))
                .unwrap();
            assert_eq!(
                call(&records, &calls, req).await.0,
                StatusCode::OK,
                "{content_type}"
            );
        }
    }

    #[tokio::test]
    async fn lenient_grant_types_next_to_a_released_code_never_reach_the_as() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let calls = Arc::new(AtomicUsize::new(0));
        records
            .release([6; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        for body in [
            "grant_type=Authorization_Code&code=C0DE",
            "grant_type=authorization_code%20&code=C0DE",
            "grant_type=&code=C0DE",
            "grant_type=authorization_code;x=1&code=C0DE",
            "code=C0DE",
        ] {
            let (status, answer) = call(&records, &calls, post(body)).await;
            assert_eq!(
                (status, answer.as_str()),
                (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}"),
                "{body}"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // The code was not used up by those: the exact form still redeems it.
        let (status, _) = call(
            &records,
            &calls,
            post("grant_type=authorization_code&code=C0DE"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn token_retries_a_refused_presentation_leaves_the_code_presentable() {
        let records = records(Arc::new(MemoryStore::new(100)));
        records
            .release([8; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        let statuses = Arc::new(std::sync::Mutex::new(vec![200u16, 500, 400]));
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = {
            let (statuses, calls) = (statuses.clone(), calls.clone());
            tower::service_fn(move |_: Request<Buffered>| {
                calls.fetch_add(1, Ordering::SeqCst);
                let status = statuses.lock().unwrap().pop().unwrap();
                async move {
                    let mut r = Response::new(Either::Left(Full::new(Bytes::new())));
                    *r.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(r)
                }
            })
        };
        let layer =
            TokenGuardLayer::new(records.clone(), clients(), "/oauth2/token", Metrics::new());
        let body = "grant_type=authorization_code&code=C0DE";
        // A wrong code_verifier (400), then a 5xx: the AS keeps the code, so does the proxy.
        for want in [400, 500, 200] {
            let r = layer
                .layer(inner.clone())
                .oneshot(routed(post(body)))
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), want);
        }
        // The token was issued: never to the AS again.
        let r = layer
            .layer(inner)
            .oneshot(routed(post(body)))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn token_retries_presentations_of_one_code_never_overlap_at_the_as() {
        let records = records(Arc::new(MemoryStore::new(100)));
        records
            .release([9; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (arrived_tx, arrived) = tokio::sync::oneshot::channel::<()>();
        let waiting = Arc::new(std::sync::Mutex::new(Some((rx, arrived_tx))));
        let inner = tower::service_fn(move |_: Request<Buffered>| {
            let first = waiting.lock().unwrap().take();
            async move {
                // The first presentation says it arrived, and waits at the AS until the test
                // lets it answer.
                if let Some((rx, arrived)) = first {
                    let _ = arrived.send(());
                    let _ = rx.await;
                }
                Ok::<_, Infallible>(Response::new(Either::Left(Full::new(Bytes::new()))))
            }
        });
        let metrics = Metrics::new();
        let layer =
            TokenGuardLayer::new(records.clone(), clients(), "/oauth2/token", metrics.clone());
        let body = "grant_type=authorization_code&code=C0DE";
        let first = tokio::spawn(layer.layer(inner.clone()).oneshot(routed(post(body))));
        arrived.await.unwrap();
        let second = layer
            .layer(inner.clone())
            .oneshot(routed(post(body)))
            .await
            .unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()["retry-after"], "1");
        tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        let third = layer
            .layer(inner)
            .oneshot(routed(post(body)))
            .await
            .unwrap();
        assert_eq!(third.status(), StatusCode::BAD_REQUEST, "it became a token");
        assert!(metrics.encode().contains(
            "medmij_vert_decisions_total{outcome=\"busy\",rule=\"proxy.token.once\",exception=\"\"} 1\n"
        ));
    }
}
