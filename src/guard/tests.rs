//! The guard alone, with `tower::service_fn` inner services and no sockets: every decision
//! branch, on the way in and on the way out.

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::config::Config;

type Body = Either<Full<Bytes>, Full<Bytes>>;

const PGO: &str = "pgo.example.nl";
const SELF: &str = "response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcb&state=s%2B1&scope=48";
const ONBEHALFOF: &str = "response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcb&state=s%2B1&scope=48%20onbehalfof&MedMij_geboortedatum=19700901";

/// The authorize and release points, as the server stacks them (authorize outside).
type Points = tower::layer::util::Stack<ReleaseLayer, AuthorizeLayer>;

/// One guard for every test: a flow started through it must return through the same keys.
fn layer() -> Points {
    static LAYER: std::sync::LazyLock<Points> = std::sync::LazyLock::new(make_layer);
    LAYER.clone()
}

fn make_layer() -> Points {
    make_layer_with_keys().0
}

/// A guard of its own, and its key ring.
fn make_layer_with_keys() -> (Points, Arc<ArcSwap<crate::state::seal::KeyRing>>) {
    let config = Config::from_toml(
        r#"
        [upstream]
        url = "http://127.0.0.1:9"
        [clients]
        static = [ { hostname = "pgo.example.nl", name = "Voorbeeld PGO" } ]
        [representation]
        scopes = ["onbehalfof"]
        "#,
        Path::new("."),
    )
    .unwrap();
    let resources = crate::server::resources::Resources::load(&config).unwrap();
    let store = Arc::new(crate::state::store::MemoryStore::new(1000));
    let metrics = crate::ops::metrics::Metrics::new();
    let keys = Arc::new(ArcSwap::from_pointee(resources.keys));
    let records = crate::state::store::Records::from_config(&config, keys.clone(), store, &metrics);
    let clients = Arc::new(ArcSwap::from_pointee(resources.clients));
    let guard = Arc::new(Guard::new(
        &config,
        clients,
        keys.clone(),
        Arc::new(records),
        metrics,
    ));
    let points = tower::layer::util::Stack::new(
        ReleaseLayer::new(guard.clone()),
        AuthorizeLayer::new(guard),
    );
    (points, keys)
}

/// What the inner service saw: method, target and headers of each request.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request<()>>>>);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn last(&self) -> Request<()> {
        let seen = self.0.lock().unwrap();
        let last = seen.last().expect("the inner service was called");
        let mut copy = Request::builder()
            .method(last.method())
            .uri(last.uri())
            .body(())
            .unwrap();
        *copy.headers_mut() = last.headers().clone();
        copy
    }
}

/// An inner service that records each request and answers with `respond`'s response.
fn inner(
    seen: &Seen,
    respond: impl Fn() -> Response<Body> + Clone + Send + 'static,
) -> impl Service<Request<()>, Response = Response<Body>, Error = Infallible> + Clone {
    let seen = seen.clone();
    tower::service_fn(move |req: Request<()>| {
        seen.0.lock().unwrap().push(req);
        let response = respond();
        async move { Ok::<_, Infallible>(response) }
    })
}

fn ok() -> Response<Body> {
    Response::new(Either::Left(Full::new(Bytes::from_static(b"upstream"))))
}

async fn call<S>(service: S, req: Request<()>) -> Response<Body>
where
    S: Service<Request<()>, Response = Response<Body>, Error = Infallible>,
{
    layer().layer(service).oneshot(routed(req)).await.unwrap()
}

/// The request with the route the router gives it (the guard reads it from there).
fn routed(mut req: Request<()>) -> Request<()> {
    static ROUTES: std::sync::LazyLock<crate::seam::paths::Routes> =
        std::sync::LazyLock::new(|| {
            crate::seam::paths::Routes::new("/oauth2/authorize", None, true)
        });
    if req.extensions().get::<crate::vocab::Route>().is_none() {
        let route = ROUTES.route(req.uri().path());
        req.extensions_mut().insert(route);
    }
    req
}

fn get(target: &str) -> Request<()> {
    routed(
        Request::get(target)
            .header("host", "as.example.nl")
            .body(())
            .unwrap(),
    )
}

async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    uri.query().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    })
}

/// Starts a flow through the guard; returns the sealed state the AS got.
async fn sealed(query: &str) -> String {
    let seen = Seen::default();
    let response = call(inner(&seen, ok), get(&format!("/oauth2/authorize?{query}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    query_param(seen.last().uri(), "state").expect("a sealed state")
}

/// The AS's answer to a flow: a 302 to `location` with the signal headers given.
fn redirect(location: String, signal: &[(&'static str, &'static str)]) -> Response<Body> {
    let mut builder = Response::builder().status(302).header("location", location);
    for (name, value) in signal {
        builder = builder.header(*name, *value);
    }
    builder.body(Either::Left(Full::default())).unwrap()
}

/// A flow return of a flow started with `query`, answered by the AS with `params` (the sealed
/// state appended) and `signal`.
async fn flow_return(
    query: &str,
    params: &str,
    signal: &'static [(&'static str, &'static str)],
) -> Response<Body> {
    let state = sealed(query).await;
    let location = format!("https://{PGO}/cb?{params}&state={state}");
    let seen = Seen::default();
    call(
        inner(&seen, move || redirect(location.clone(), signal)),
        get("/oauth2/consent"),
    )
    .await
}

#[tokio::test]
async fn ext_vert_authint_201_forwarded_with_sealed_state_and_request_header() {
    let seen = Seen::default();
    let req = Request::get(format!("/oauth2/authorize?{ONBEHALFOF}"))
        .header("x-vert-requested", "onbehalfofchild")
        .body(())
        .unwrap();
    let response = call(inner(&seen, ok), req).await;
    assert_eq!(response.status(), StatusCode::OK);
    let forwarded = seen.last();
    assert_eq!(forwarded.uri().path(), "/oauth2/authorize");
    let state = query_param(forwarded.uri(), "state").unwrap();
    assert_ne!(state, "s+1");
    assert!(
        state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    );
    let requested: Vec<_> = forwarded
        .headers()
        .get_all("x-vert-requested")
        .iter()
        .collect();
    assert_eq!(requested, ["onbehalfof"]);
}

#[tokio::test]
async fn ext_vert_authint_201_no_request_header_without_representation() {
    let seen = Seen::default();
    let req = Request::get(format!("/oauth2/authorize?{SELF}"))
        .header("x-vert-requested", "onbehalfof")
        .body(())
        .unwrap();
    call(inner(&seen, ok), req).await;
    assert!(!seen.last().headers().contains_key("x-vert-requested"));
    // Nor on any other path.
    let req = Request::get("/oauth2/consent")
        .header("x-vert-requested", "onbehalfof")
        .body(())
        .unwrap();
    call(inner(&seen, ok), req).await;
    assert!(!seen.last().headers().contains_key("x-vert-requested"));
}

#[tokio::test]
async fn auth_1a_unknown_client_is_a_page_and_nothing_goes_upstream() {
    let seen = Seen::default();
    let response = call(
        inner(&seen, ok),
        get("/oauth2/authorize?response_type=code&client_id=evil.test&redirect_uri=https%3A%2F%2Fevil.test%2Fcb&state=s"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(!response.headers().contains_key("location"));
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn vert3_missing_birthdate_is_an_error_redirect_and_nothing_goes_upstream() {
    let seen = Seen::default();
    let query = ONBEHALFOF.replace("&MedMij_geboortedatum=19700901", "");
    let response = call(inner(&seen, ok), get(&format!("/oauth2/authorize?{query}"))).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("https://pgo.example.nl/cb?error=invalid_request"));
    assert!(location.ends_with("&state=s%2B1"), "{location}");
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn core_authint_200_authorize_only_by_get() {
    let seen = Seen::default();
    let req = Request::post(format!("/oauth2/authorize?{SELF}"))
        .body(())
        .unwrap();
    let response = call(inner(&seen, ok), req).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn unreadable_path_is_400_and_lookalike_paths_get_the_checks() {
    let seen = Seen::default();
    let response = call(inner(&seen, ok), get("/oauth2/%zz")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    for path in [
        "/oauth2/author%C4%B1ze",
        "/oauth2/authorize.json",
        "//x/oauth2/authorize",
    ] {
        let response = call(
            inner(&seen, ok),
            get(&format!("{path}?client_id=evil.test&state=s")),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // Accepted under a lookalike spelling, the AS gets the canonical path.
    call(
        inner(&seen, ok),
        get(&format!("/oauth2/authorize.json?{SELF}")),
    )
    .await;
    assert_eq!(seen.last().uri().path(), "/oauth2/authorize");
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn ext_vert_authint_202_released_with_the_original_state_and_no_signal() {
    let response = flow_return(SELF, "code=C0DE", &[("x-vert-representation", "none")]).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        "https://pgo.example.nl/cb?code=C0DE&state=s%2B1"
    );
    assert!(!response.headers().contains_key("x-vert-representation"));
}

#[tokio::test]
async fn ext_vert_authint_202_onbehalfof_released_with_matching_birthdate() {
    let response = flow_return(
        ONBEHALFOF,
        "code=C0DE",
        &[
            ("x-vert-representation", "onbehalfof"),
            ("x-vert-birthdate", "19700901"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(!response.headers().contains_key("x-vert-birthdate"));
}

/// A withheld code: the page, no Location, the code nowhere.
async fn assert_withheld(response: Response<Body>, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    assert!(!response.headers().contains_key("location"));
    for (_, value) in response.headers() {
        assert!(!value.as_bytes().windows(4).any(|w| w == b"C0DE"));
    }
    let page = text(response).await;
    assert!(!page.contains("C0DE"));
    page
}

#[tokio::test]
async fn vert1_representation_expected_not_used() {
    let response = flow_return(
        ONBEHALFOF,
        "code=C0DE",
        &[("x-vert-representation", "none")],
    )
    .await;
    assert_withheld(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn vert2_representation_used_not_expected() {
    let response = flow_return(
        SELF,
        "code=C0DE",
        &[
            ("x-vert-representation", "onbehalfof"),
            ("x-vert-birthdate", "19700901"),
        ],
    )
    .await;
    assert_withheld(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn vert4_birthdate_differs_page_links_back_with_access_denied() {
    let response = flow_return(
        ONBEHALFOF,
        "code=C0DE",
        &[
            ("x-vert-representation", "onbehalfof"),
            ("x-vert-birthdate", "19800101"),
        ],
    )
    .await;
    let page = assert_withheld(response, StatusCode::FORBIDDEN).await;
    assert!(page.contains("https://pgo.example.nl/cb?error=access_denied"));
    assert!(page.contains("state=s%2B1"));
}

#[tokio::test]
async fn fail_closed_without_a_signal() {
    let response = flow_return(SELF, "code=C0DE", &[]).await;
    assert_withheld(response, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn code_under_another_name_is_withheld() {
    for params in ["CODE=C0DE", "x=1;code=C0DE", "code=C0DE&Code=C0DE"] {
        let response = flow_return(SELF, params, &[("x-vert-representation", "none")]).await;
        assert_withheld(response, StatusCode::BAD_GATEWAY).await;
    }
}

#[tokio::test]
async fn flow_return_neither_code_nor_error_is_withheld() {
    let response = flow_return(SELF, "foo=C0DE", &[("x-vert-representation", "none")]).await;
    assert_withheld(response, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn a_flow_releases_at_most_one_code() {
    let state = sealed(SELF).await;
    let second_code = move || {
        redirect(
            format!("https://{PGO}/cb?code=C0DE&state={state}"),
            &[("x-vert-representation", "none")],
        )
    };
    let seen = Seen::default();
    let first = call(inner(&seen, second_code.clone()), get("/oauth2/consent")).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    // The AS issues a second code for the same flow (its consent posted twice).
    let again = call(inner(&seen, second_code), get("/oauth2/consent")).await;
    let page = assert_withheld(again, StatusCode::FORBIDDEN).await;
    assert!(page.contains("Deze inlog is al gebruikt"), "{page}");
}

#[tokio::test]
async fn as_error_redirect_is_restored() {
    let response = flow_return(SELF, "error=access_denied", &[]).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        "https://pgo.example.nl/cb?error=access_denied&state=s%2B1"
    );
}

#[tokio::test]
async fn other_responses_pass_with_the_signal_removed() {
    let seen = Seen::default();
    let response = call(
        inner(&seen, || {
            let mut r = ok();
            r.headers_mut()
                .insert("x-vert-representation", "none".parse().unwrap());
            r
        }),
        get("/static/app.css"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key("x-vert-representation"));
    assert_eq!(text(response).await, "upstream");
}

#[tokio::test]
async fn inner_errors_propagate() {
    let failing = tower::service_fn(|_: Request<()>| async { Err::<Response<Body>, _>("down") });
    let error = layer().layer(failing).oneshot(get("/x")).await.unwrap_err();
    assert_eq!(error, "down");
}

/// Fails `poll_ready`, and panics if called anyway.
struct NotReady;

impl Service<Request<()>> for NotReady {
    type Response = Response<Body>;
    type Error = &'static str;
    type Future = std::future::Ready<Result<Response<Body>, &'static str>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
        Poll::Ready(Err("not ready"))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        panic!("called after a failed poll_ready")
    }
}

#[tokio::test]
async fn poll_ready_errors_propagate_and_nothing_is_called() {
    let error = layer()
        .layer(NotReady)
        .oneshot(get("/x"))
        .await
        .unwrap_err();
    assert_eq!(error, "not ready");
}

/// An AS that answers an authorization request at once (a login it already had): a code
/// redirect to the client carrying the state it was sent, passed through `state`.
async fn answered_at_once(
    query: &str,
    state: fn(&str) -> String,
    signal: &'static [(&'static str, &'static str)],
) -> Response<Body> {
    let service = tower::service_fn(move |req: Request<()>| {
        let sent = query_param(req.uri(), "state").expect("a sealed state");
        let location = format!("https://{PGO}/cb?code=C0DE&state={}", state(&sent));
        async move { Ok::<_, Infallible>(redirect(location, signal)) }
    });
    call(service, get(&format!("/oauth2/authorize?{query}"))).await
}

#[tokio::test]
async fn ext_vert_authint_202_a_code_answering_its_own_request_is_judged_in_its_flow() {
    // The state sealed on this very request comes back: the flow in hand is its flow
    // (nothing is opened again), and every rule of the return applies to it.
    let response = answered_at_once(SELF, str::to_owned, &[("x-vert-representation", "none")]);
    let response = response.await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        "https://pgo.example.nl/cb?code=C0DE&state=s%2B1"
    );
    let response = answered_at_once(
        ONBEHALFOF,
        str::to_owned,
        &[("x-vert-representation", "none")],
    );
    let page = assert_withheld(response.await, StatusCode::FORBIDDEN).await;
    assert!(!page.contains("s+1"));
}

#[tokio::test]
async fn fail_closed_a_state_altered_on_the_answer_to_its_own_request_is_opened_and_withheld() {
    // Any other state than the one sealed on the request is opened, as every state is: one
    // character changed no longer authenticates.
    let altered = |sent: &str| {
        let mut bytes = sent.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let response = answered_at_once(SELF, altered, &[("x-vert-representation", "none")]);
    assert_withheld(response.await, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn the_state_sealed_on_a_request_is_known_on_its_answer_without_opening_it() {
    // The key that sealed the state is gone from the ring before the AS answers: opening
    // would fail, so a release shows that the flow in hand was taken, not the state opened.
    // (A key is removed only after flow_ttl in a rotation; this is the one answer that it
    // cannot strand.)
    let (points, keys) = make_layer_with_keys();
    let sent = Arc::new(Mutex::new(String::new()));
    let (rotate, keep) = (keys.clone(), sent.clone());
    let service = tower::service_fn(move |req: Request<()>| {
        let state = query_param(req.uri(), "state").expect("a sealed state");
        rotate.store(Arc::new(crate::state::seal::KeyRing::random()));
        *keep.lock().unwrap() = state.clone();
        let location = format!("https://{PGO}/cb?code=C0DE&state={state}");
        let signal = &[("x-vert-representation", "none")];
        async move { Ok::<_, Infallible>(redirect(location, signal)) }
    });
    let req = get(&format!("/oauth2/authorize?{SELF}"));
    let response = points.clone().layer(service).oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        "https://pgo.example.nl/cb?code=C0DE&state=s%2B1"
    );
    // The same state on the answer to another request is opened, as any state is, and no
    // longer authenticates.
    let state = sent.lock().unwrap().clone();
    let location = format!("https://{PGO}/cb?code=C0DE&state={state}");
    let seen = Seen::default();
    let later = inner(&seen, move || {
        redirect(location.clone(), &[("x-vert-representation", "none")])
    });
    let response = points.layer(later).oneshot(get("/oauth2/consent")).await;
    assert_withheld(response.unwrap(), StatusCode::BAD_GATEWAY).await;
}
