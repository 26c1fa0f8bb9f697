//! Real legacy ASs, as a DVA meets them: a redirect_uri the AS respells, error redirects
//! without `state`, and ids the AS can log next to the proxy's (tests/support `Recorder`).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;

const VALID: &str = "response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=s%2B1&scope=48";

fn start() -> (Recorder, Harness) {
    let upstream = Recorder::start();
    let harness = Harness::start_with_upstream(&upstream.url(), "");
    (upstream, harness)
}

fn get_raw(addr: SocketAddr, target: &str, headers: &str) -> String {
    raw(
        addr,
        format!(
            "GET {target} HTTP/1.1\r\nHost: as.example.nl{headers}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
        Duration::from_secs(30),
    )
}

fn location(response: &str) -> Option<&str> {
    response
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .map(str::trim_end)
}

/// The value of a request header the AS received, in its last request.
fn received_header(upstream: &Recorder, name: &str) -> Vec<String> {
    let received = upstream.received();
    let last = received.rsplit("GET ").next().unwrap_or("").to_owned();
    last.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then(|| v.to_owned())
        })
        .collect()
}

#[test]
fn redirect_uri_respelled_by_the_as_is_released_to_the_clients_spelling() {
    let (upstream, h) = start();
    for respelled in [
        "https://PGO.example.NL/callback",
        "HTTPS://pgo.example.nl/callback",
        "https://pgo.example.nl/%63allback",
        "https://pgo.example.nl/%63%61llback",
        "https://pgo.example.nl/./callback",
        "https://pgo.example.nl/x/../callback",
    ] {
        upstream.answer_authorize(
            &format!("{respelled}?code=C0DE&state={{state}}"),
            &[("x-vert-representation", "none")],
        );
        let r = get_raw(h.proxy_addr(), &format!("/oauth2/authorize?{VALID}"), "");
        assert_eq!(raw_status(&r), 302, "{respelled}: {r}");
        assert_eq!(
            location(&r),
            Some("https://pgo.example.nl/callback?code=C0DE&state=s%2B1"),
            "{respelled}"
        );
    }
}

#[test]
fn redirect_uri_without_a_path_is_released_when_the_as_adds_the_slash() {
    let (upstream, h) = start();
    upstream.answer_authorize(
        "https://pgo.example.nl/?code=C0DE&state={state}",
        &[("x-vert-representation", "none")],
    );
    let query = VALID.replace("%2Fcallback", "");
    let r = get_raw(h.proxy_addr(), &format!("/oauth2/authorize?{query}"), "");
    assert_eq!(raw_status(&r), 302, "{r}");
    assert_eq!(
        location(&r),
        Some("https://pgo.example.nl?code=C0DE&state=s%2B1")
    );
}

#[test]
fn redirect_uri_changed_otherwise_is_withheld() {
    let (upstream, h) = start();
    for other in [
        "https://pgo.example.nl/callback/",
        "https://pgo.example.nl/Callback",
        "https://pgo.example.nl/callback%2F",
        "https://pgo.example.nl:8443/callback",
    ] {
        upstream.answer_authorize(
            &format!("{other}?code=C0DE&state={{state}}"),
            &[("x-vert-representation", "none")],
        );
        let r = get_raw(h.proxy_addr(), &format!("/oauth2/authorize?{VALID}"), "");
        assert_eq!(raw_status(&r), 502, "{other}: {r}");
        assert!(!r.contains("C0DE"), "{r}");
    }
}

#[test]
fn stateless_error_redirect_on_the_authorization_request_gets_the_clients_state() {
    let (upstream, h) = start();
    upstream.answer_authorize(
        "https://pgo.example.nl/callback?error=invalid_scope&error_description=unknown+scope",
        &[],
    );
    let r = get_raw(h.proxy_addr(), &format!("/oauth2/authorize?{VALID}"), "");
    assert_eq!(raw_status(&r), 302, "{r}");
    assert_eq!(
        location(&r),
        Some(
            "https://pgo.example.nl/callback?error=invalid_scope&error_description=unknown+scope&state=s%2B1"
        )
    );
}

/// The correlation id on the Persoon's page (the helpdesk code).
fn page_trace_id(page: &str) -> String {
    let uuid = |s: &str| {
        s.len() >= 36
            && uuid::Uuid::try_parse(&s[..36]).is_ok()
            && s.as_bytes().get(36).is_none_or(|b| !b.is_ascii_hexdigit())
    };
    (0..page.len())
        .filter(|&i| page.is_char_boundary(i) && uuid(&page[i..]))
        .map(|i| page[i..i + 36].to_owned())
        .next()
        .expect("a trace id on the page")
}

#[test]
fn the_as_receives_the_correlation_id_the_persons_page_shows() {
    let (upstream, h) = start();
    // Vert 2: representation used, not asked. The client sent no X-Correlation-ID.
    upstream.answer_authorize(
        "https://pgo.example.nl/callback?code=C0DE&state={state}",
        &[
            ("x-vert-representation", "onbehalfof"),
            ("x-vert-birthdate", "19700901"),
        ],
    );
    let r = get_raw(h.proxy_addr(), &format!("/oauth2/authorize?{VALID}"), "");
    assert_eq!(raw_status(&r), 403, "{r}");
    let received = received_header(&upstream, "x-correlation-id");
    assert_eq!(received.len(), 1, "{}", upstream.received());
    assert_eq!(page_trace_id(&r), received[0]);
    assert!(received_header(&upstream, "medmij-request-id").is_empty());
}

#[test]
fn ids_come_from_the_query_first_then_the_headers_and_replace_the_clients_headers() {
    let (upstream, h) = start();
    let addr = h.proxy_addr();
    let (a, b, c) = (
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
        "33333333-3333-4333-8333-333333333333",
    );
    // From the query; the client's headers replaced.
    let r = get_raw(
        addr,
        &format!("/oauth2/authorize?{VALID}&X-Correlation-ID={a}&MedMij-Request-ID={c}"),
        &format!("\r\nX-Correlation-ID: {b}\r\nMedMij-Request-ID: {b}"),
    );
    assert_eq!(raw_status(&r), 200, "{r}");
    assert_eq!(received_header(&upstream, "x-correlation-id"), [a]);
    assert_eq!(received_header(&upstream, "medmij-request-id"), [c]);
    // From the headers when the query has none.
    let r = get_raw(
        addr,
        &format!("/oauth2/authorize?{VALID}"),
        &format!("\r\nX-Correlation-ID: {b}\r\nMedMij-Request-ID: {c}"),
    );
    assert_eq!(raw_status(&r), 200, "{r}");
    assert_eq!(received_header(&upstream, "x-correlation-id"), [b]);
    assert_eq!(received_header(&upstream, "medmij-request-id"), [c]);
    // A header that is no UUID is no id: one is made up, and the client's copy is gone.
    let r = get_raw(
        addr,
        &format!("/oauth2/authorize?{VALID}"),
        "\r\nX-Correlation-ID: not-a-uuid\r\nMedMij-Request-ID: nope",
    );
    assert_eq!(raw_status(&r), 200, "{r}");
    let made_up = received_header(&upstream, "x-correlation-id");
    assert_eq!(made_up.len(), 1);
    assert!(uuid::Uuid::try_parse(&made_up[0]).is_ok(), "{made_up:?}");
    assert!(received_header(&upstream, "medmij-request-id").is_empty());
}
