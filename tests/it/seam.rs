//! The HTTP seam, tried as an attacker would, against a recording legacy AS that ignores
//! bodies (tests/it/support `Upstream`): what the client sends is cleaned before the proxy adds
//! anything, nothing is smuggled past the checks, and the proxy keeps serving.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;

const VALID: &str = "response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=s1&scope=48";
const UNKNOWN_CLIENT: &str =
    "response_type=code&client_id=evil.test&redirect_uri=https%3A%2F%2Fevil.test%2Fcb&state=s1";

fn onbehalfof() -> String {
    format!("{VALID}%20onbehalfof&MedMij_geboortedatum=19700901")
}

fn start(extra: &str) -> (Upstream, Harness) {
    let upstream = Upstream::recorder();
    let harness = Harness::start_with_upstream(&upstream.url(), extra);
    (upstream, harness)
}

/// Sends `head` (request line and headers, without the blank line) and `body`; the answer.
fn send_raw(addr: SocketAddr, head: &str, body: &str) -> String {
    raw(
        addr,
        format!("{head}\r\nConnection: close\r\n\r\n{body}").as_bytes(),
        Duration::from_secs(10),
    )
}

fn get_raw(addr: SocketAddr, target: &str, headers: &str) -> String {
    send_raw(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: as.example.nl{headers}"),
        "",
    )
}

/// The proxy still serves, and that request reached the AS.
fn still_serving(addr: SocketAddr, upstream: &Upstream) {
    let before = upstream.requests();
    let r = get_raw(addr, "/echo", "");
    assert_eq!(raw_status(&r), 200, "the proxy stopped serving: {r}");
    assert_eq!(upstream.requests(), before + 1);
}

#[test]
fn cl0_desync_a_body_on_get_head_options_trace_never_reaches_the_as() {
    let (upstream, h) = start("");
    let addr = h.proxy_addr();
    let smuggled = format!("GET /oauth2/authorize?{UNKNOWN_CLIENT} HTTP/1.1\r\nHost: as\r\n\r\n");
    let valid_authorize = format!("/oauth2/authorize?{VALID}");
    for (method, target) in [
        ("GET", valid_authorize.as_str()),
        ("HEAD", valid_authorize.as_str()),
        ("GET", "/other"),
        ("OPTIONS", "/other"),
        ("TRACE", "/other"),
    ] {
        let r = send_raw(
            addr,
            &format!(
                "{method} {target} HTTP/1.1\r\nHost: as.example.nl\r\nContent-Length: {}",
                smuggled.len()
            ),
            &smuggled,
        );
        assert_eq!(raw_status(&r), 400, "{method} {target}: {r}");
        let r = send_raw(
            addr,
            &format!(
                "{method} {target} HTTP/1.1\r\nHost: as.example.nl\r\nTransfer-Encoding: chunked"
            ),
            &format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len()),
        );
        assert_eq!(raw_status(&r), 400, "{method} {target} chunked: {r}");
    }
    assert_eq!(upstream.connections(), 0, "{}", upstream.received());
    still_serving(addr, &upstream);
}

#[test]
fn slow_post_clients_hold_no_as_connection() {
    let (upstream, h) = start("[listen]\nbody_read_timeout = \"1s\"\n");
    let addr = h.proxy_addr();
    const CLIENTS: usize = 300;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses: Vec<u16> = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            tasks.spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                // A body announced at a megabyte, of which one byte ever comes.
                stream
                    .write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: as.example.nl\r\nContent-Length: 1000000\r\n\r\nx")
                    .await
                    .unwrap();
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer).await;
                raw_status(&String::from_utf8_lossy(&answer))
            });
        }
        tasks.join_all().await
    });
    // Each was answered 408 by the proxy after waiting for its body: none reached the AS.
    assert_eq!(statuses.len(), CLIENTS);
    assert!(statuses.iter().all(|&s| s == 408), "{statuses:?}");
    assert_eq!(upstream.connections(), 0);
    // A body that arrives goes through whole.
    let r = send_raw(
        addr,
        "POST /oauth2/token HTTP/1.1\r\nHost: as.example.nl\r\nContent-Length: 12",
        "grant_type=x",
    );
    assert_eq!(raw_status(&r), 200, "{r}");
    assert!(upstream.received().ends_with("\r\n\r\ngrant_type=x"));
}

#[test]
fn a_body_over_max_body_bytes_is_413_and_never_reaches_the_as() {
    let (upstream, h) = start("[listen]\nmax_body_bytes = 16\n");
    let addr = h.proxy_addr();
    let body = "grant_type=authorization_code";
    let r = send_raw(
        addr,
        &format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: as.example.nl\r\nContent-Length: {}",
            body.len()
        ),
        body,
    );
    assert_eq!(raw_status(&r), 413, "{r}");
    let r = send_raw(
        addr,
        "POST /oauth2/token HTTP/1.1\r\nHost: as.example.nl\r\nTransfer-Encoding: chunked",
        &format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()),
    );
    assert_eq!(raw_status(&r), 413, "{r}");
    assert_eq!(upstream.connections(), 0);
    still_serving(addr, &upstream);
}

#[test]
fn connection_header_cannot_remove_what_the_proxy_sets_nor_host() {
    let (upstream, h) = start("");
    let addr = h.proxy_addr();
    let r = get_raw(
        addr,
        &format!("/oauth2/authorize?{}", onbehalfof()),
        "\r\nConnection: X-Vert-Requested, Host, X-Forwarded-For",
    );
    assert_eq!(raw_status(&r), 200, "{r}");
    let received = upstream.received().to_ascii_lowercase();
    assert_eq!(
        received
            .matches("\r\nx-vert-requested: onbehalfof\r\n")
            .count(),
        1,
        "{received}"
    );
    assert_eq!(received.matches("\r\nhost: ").count(), 1, "{received}");
    assert!(
        received.contains("\r\nhost: as.example.nl\r\n"),
        "{received}"
    );
    assert!(
        received.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"),
        "{received}"
    );
}

#[test]
fn two_host_headers_are_400() {
    let (upstream, h) = start("");
    let r = get_raw(h.proxy_addr(), "/echo", "\r\nHost: evil.example");
    assert_eq!(raw_status(&r), 400, "{r}");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn host_disagreeing_with_an_absolute_target_is_400() {
    let (upstream, h) = start("");
    let r = get_raw(h.proxy_addr(), "http://evil.example/echo", "");
    assert_eq!(raw_status(&r), 400, "{r}");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn userinfo_in_the_target_is_400() {
    let (upstream, h) = start("");
    let addr = h.proxy_addr();
    let r = send_raw(
        addr,
        &format!("GET http://u:p@evil.example/oauth2/authorize?{VALID} HTTP/1.1"),
        "",
    );
    assert_eq!(raw_status(&r), 400, "{r}");
    let r = send_raw(addr, "GET /echo HTTP/1.1\r\nHost: u:p@evil.example", "");
    assert_eq!(raw_status(&r), 400, "{r}");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn http11_without_host_is_400() {
    let (upstream, h) = start("");
    let r = send_raw(h.proxy_addr(), "GET /echo HTTP/1.1", "");
    assert_eq!(raw_status(&r), 400, "{r}");
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn underscore_headers_never_reach_the_as() {
    let (upstream, h) = start("");
    let r = get_raw(
        h.proxy_addr(),
        &format!("/oauth2/authorize?{VALID}"),
        "\r\nX_Vert_Requested: onbehalfof\r\nX_Forwarded_For: 1.2.3.4\r\nX_Real_IP: 1.2.3.4",
    );
    assert_eq!(raw_status(&r), 200, "{r}");
    let received = upstream.received().to_ascii_lowercase();
    // Header names only: the sealed state in the request line may hold `x_` by chance.
    let names: Vec<&str> = received
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name))
        .collect();
    assert!(names.iter().all(|n| !n.contains('_')), "{received}");
    assert!(!names.contains(&"x-vert-requested"), "{received}");
    assert!(!received.contains("1.2.3.4"), "{received}");
}

#[test]
fn path_and_method_override_headers_never_reach_the_as() {
    let (upstream, h) = start("");
    let r = get_raw(
        h.proxy_addr(),
        "/static/app.css",
        "\r\nX-Original-URL: /oauth2/authorize\r\nX-Rewrite-URL: /oauth2/authorize\r\nX-Override-URL: /oauth2/authorize\r\nX-HTTP-Method-Override: PUT\r\nX-Method-Override: PUT",
    );
    assert_eq!(raw_status(&r), 200, "{r}");
    let received = upstream.received().to_ascii_lowercase();
    assert!(!received.contains("override"), "{received}");
    assert!(!received.contains("x-original-url"), "{received}");
    assert!(!received.contains("x-rewrite-url"), "{received}");
}

#[test]
fn authorize_path_beyond_ascii_gets_the_checks() {
    let (upstream, h) = start("");
    let addr = h.proxy_addr();
    for path in [
        "/oauth2/author%C4%B1ze",
        "/OAUTH2/AUTHOR%C4%B0ZE",
        "/oauth2/authorize.json",
        "/oauth2/%EF%BD%81uthorize",
        "/oauth2%EF%BC%8Fauthorize",
        "//x/oauth2/authorize",
    ] {
        let r = get_raw(addr, &format!("{path}?{UNKNOWN_CLIENT}"), "");
        assert_eq!(raw_status(&r), 400, "{path}: {r}");
    }
    assert_eq!(upstream.connections(), 0);
    // Accepted under such a spelling, the request reaches the AS at the canonical path.
    let r = get_raw(addr, &format!("/oauth2/author%C4%B1ze?{VALID}"), "");
    assert_eq!(raw_status(&r), 200, "{r}");
    assert!(upstream.received().starts_with("GET /oauth2/authorize?"));
}

#[test]
fn a_code_under_another_name_is_withheld() {
    let (upstream, h) = start("");
    let addr = h.proxy_addr();
    for params in ["CODE=C0DE", "x=1;code=C0DE", "Code=C0DE&code=C0DE"] {
        upstream.answer_authorize(
            &format!("https://pgo.example.nl/callback?{params}&state={{state}}"),
            &[("x-vert-representation", "none")],
        );
        let r = get_raw(addr, &format!("/oauth2/authorize?{VALID}"), "");
        assert_eq!(raw_status(&r), 502, "{params}: {r}");
        assert!(!r.contains("C0DE"), "{r}");
        assert!(!r.to_ascii_lowercase().contains("\r\nlocation:"), "{r}");
    }
    // The clean form is released, with the client's state.
    upstream.answer_authorize(
        "https://pgo.example.nl/callback?code=C0DE&state={state}",
        &[("x-vert-representation", "none")],
    );
    let r = get_raw(addr, &format!("/oauth2/authorize?{VALID}"), "");
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(
        r.contains("location: https://pgo.example.nl/callback?code=C0DE&state=s1\r\n"),
        "{r}"
    );
}

/// Issue 17, finding 1: raw UTF-8 in the target is refused with 400 for every path, before
/// either guard could miss it; the AS never hears of it.
#[test]
fn raw_utf8_spellings_of_the_guarded_paths_are_refused_by_both_guards() {
    let (upstream, h) = start("[token_guard]\npath = \"/oauth2/token\"\n");
    let addr = h.proxy_addr();
    for path in [
        "/oauth2/author\u{131}ze",  // dotless ı (Java equalsIgnoreCase)
        "/OAUTH2/AUTHOR\u{130}ZE",  // İ (.NET OrdinalIgnoreCase)
        "/oauth2/\u{ff41}uthorize", // fullwidth a
        "/oauth2\u{ff0f}authorize", // fullwidth solidus
        "/static/caf\u{e9}",        // any path
    ] {
        let request = format!(
            "GET {path}?{UNKNOWN_CLIENT} HTTP/1.1\r\nHost: as.example.nl\r\nConnection: close\r\n\r\n"
        );
        let r = raw(addr, request.as_bytes(), Duration::from_secs(10));
        assert_eq!(raw_status(&r), 400, "{path}: {r}");
        assert!(!r.contains("evil.test"), "{r}");
    }
    let body = "grant_type=authorization_code&code=NEVER";
    for path in ["/oauth2/to\u{212a}en", "/oauth2/TO\u{212a}EN"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: as.example.nl\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = raw(addr, request.as_bytes(), Duration::from_secs(10));
        assert_eq!(raw_status(&r), 400, "{path}: {r}");
    }
    assert_eq!(upstream.connections(), 0, "{}", upstream.received());
    still_serving(addr, &upstream);
}

/// Issue 17, finding 2: a second spelling of `redirect_uri` or `client_id` before or after
/// the real one is a repeated parameter: the 1a page, never a redirect, nothing forwarded.
#[test]
fn lenient_names_a_second_redirect_uri_or_client_id_is_1a_before_and_after() {
    let (upstream, h) = start("");
    let addr = h.proxy_addr();
    for extra in [
        "REDIRECT_URI=https%3A%2F%2Fevil.example%2Fcb",
        "Redirect_Uri=https%3A%2F%2Fevil.example%2Fcb",
        "redirect_uri%20=https%3A%2F%2Fevil.example%2Fcb",
        "redirect.uri=https%3A%2F%2Fevil.example%2Fcb",
        "redirect+uri=https%3A%2F%2Fevil.example%2Fcb",
        "redirect_uri%5B%5D=https%3A%2F%2Fevil.example%2Fcb",
        "CLIENT_ID=other.example.nl",
    ] {
        for query in [format!("{extra}&{VALID}"), format!("{VALID}&{extra}")] {
            let r = get_raw(addr, &format!("/oauth2/authorize?{query}"), "");
            assert_eq!(raw_status(&r), 400, "{query}: {r}");
            assert!(!r.to_ascii_lowercase().contains("\r\nlocation:"), "{r}");
        }
    }
    assert_eq!(upstream.connections(), 0, "{}", upstream.received());
    // A second spelling of another judged name is 1b: an error redirect to the client.
    let r = get_raw(
        addr,
        &format!("/oauth2/authorize?{VALID}&SCOPE=onbehalfof"),
        "",
    );
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(r.contains("error=invalid_request"), "{r}");
    assert_eq!(upstream.connections(), 0);
}

/// Issue 17, finding 3: token bodies a framework reads differently (multipart, lenient grant
/// types) never reach the AS.
#[test]
fn token_bodies_read_differently_by_frameworks_never_reach_the_as() {
    let (upstream, h) = start("[token_guard]\npath = \"/oauth2/token\"\n");
    let addr = h.proxy_addr();
    let multipart = "grant_type=refresh_token&x=\r\n--b\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nauthorization_code\r\n--b\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\nNEVER\r\n--b--\r\n";
    let form = "application/x-www-form-urlencoded";
    for (content_type, body) in [
        ("multipart/form-data; boundary=b", multipart),
        (form, "grant_type=Authorization_Code&code=NEVER"),
        (form, "grant_type=authorization_code%20&code=NEVER"),
        (form, "grant_type=&code=NEVER"),
        (form, "grant_type=authorization_code;x=1&code=NEVER"),
    ] {
        let r = send_raw(
            addr,
            &format!(
                "POST /oauth2/token HTTP/1.1\r\nHost: as.example.nl\r\nContent-Type: {content_type}\r\nContent-Length: {}",
                body.len()
            ),
            body,
        );
        assert_eq!(raw_status(&r), 400, "{body}: {r}");
        assert!(r.ends_with("{\"error\":\"invalid_request\"}"), "{r}");
    }
    assert_eq!(upstream.connections(), 0, "{}", upstream.received());
    still_serving(addr, &upstream);
}

/// An AS that answers `Expect: 100-continue` at once, without reading the body, then reads on
/// from where it stopped (the bug finding 4 names): a body forwarded with `Expect` would be
/// its next request.
fn early_answering() -> Upstream {
    Upstream::start(Bodies::IgnoredAfterExpect, None, |_| Answer::ok("ok"))
}

/// The request heads it parsed, lower case.
fn heads(upstream: &Upstream) -> Vec<String> {
    upstream
        .seen()
        .into_iter()
        .map(|r| r.head.to_ascii_lowercase())
        .collect()
}

/// Issue 17, finding 4: the proxy answers `Expect: 100-continue` itself and never forwards
/// it, so an AS that answers expectations early never reads a body as a request; any other
/// expectation is 417.
#[test]
fn expect_100_continue_is_answered_by_the_proxy_and_never_reaches_the_as() {
    let upstream = early_answering();
    let h = Harness::start_with_upstream(&upstream.url(), "");
    let addr = h.proxy_addr();
    let smuggled = "POST /oauth2/token HTTP/1.1\r\nHost: as\r\nContent-Length: 38\r\n\r\ngrant_type=authorization_code&code=NO";
    let r = send_raw(
        addr,
        &format!(
            "POST /form HTTP/1.1\r\nHost: as.example.nl\r\nExpect: 100-continue\r\nContent-Length: {}",
            smuggled.len()
        ),
        smuggled,
    );
    assert!(r.ends_with("ok"), "{r}");
    wait_until("the AS read the request", || !heads(&upstream).is_empty());
    let heads_seen = heads(&upstream);
    assert_eq!(heads_seen.len(), 1, "{heads_seen:?}");
    assert!(heads_seen[0].starts_with("post /form "), "{heads_seen:?}");
    assert!(!heads_seen[0].contains("expect"), "{heads_seen:?}");
    let r = send_raw(
        addr,
        "POST /form HTTP/1.1\r\nHost: as.example.nl\r\nExpect: x-custom\r\nContent-Length: 1",
        "x",
    );
    assert_eq!(raw_status(&r), 417, "{r}");
    assert_eq!(heads(&upstream).len(), 1);
}

/// Issue 17, finding 5: one source (here named by a trusted proxy's `X-Forwarded-For`) can
/// fill only its share of the records; it gets the fail-closed page, another source's flow is
/// released.
#[test]
fn store_share_one_source_fills_its_share_and_another_is_still_released() {
    let (upstream, h) = start(
        "[listen]\ntrusted_proxies = [\"127.0.0.1\"]\n[store]\nmax_entries = 8\nsource_share_percent = 50\n[admin]\naddr = \"127.0.0.1:0\"\n",
    );
    let addr = h.proxy_addr();
    upstream.answer_authorize(
        "https://pgo.example.nl/callback?code=C0DE&state={state}",
        &[("x-vert-representation", "none")],
    );
    let from = |ip: &str| {
        let r = get_raw(
            addr,
            &format!("/oauth2/authorize?{VALID}"),
            &format!("\r\nX-Forwarded-For: {ip}"),
        );
        raw_status(&r)
    };
    // Four records each (no token guard: one a release).
    for _ in 0..4 {
        assert_eq!(from("192.0.2.1"), 302);
    }
    assert_eq!(from("192.0.2.1"), 502, "over its share: fail closed");
    assert_eq!(from("198.51.100.2"), 302, "another source is served");
    assert_eq!(h.metric("medmij_vert_store_share_refusals_total"), 1);
    assert_eq!(h.metric("medmij_vert_store_records"), 5);
}

/// Issue 26, findings 3 and 4: behind a balancer that writes `IP:port` (Azure's Application
/// Gateway) or `[v6]:port`, each client is its own source, never the balancer; the /64s of one
/// /56 together hold the /56's share (two), and an unreadable entry names no one.
#[test]
fn store_share_forwarded_for_with_ports_and_the_slash_64s_of_one_slash_56() {
    let (upstream, h) = start(
        "[listen]\ntrusted_proxies = [\"127.0.0.1\"]\n[store]\nmax_entries = 40\nsource_share_percent = 5\n[admin]\naddr = \"127.0.0.1:0\"\n",
    );
    let addr = h.proxy_addr();
    upstream.answer_authorize(
        "https://pgo.example.nl/callback?code=C0DE&state={state}",
        &[("x-vert-representation", "none")],
    );
    let from = |entry: &str| {
        let r = get_raw(
            addr,
            &format!("/oauth2/authorize?{VALID}"),
            &format!("\r\nX-Forwarded-For: 198.51.100.9, {entry}"),
        );
        raw_status(&r)
    };
    // Two records a source (no token guard: one a release).
    assert_eq!(from("203.0.113.5:5555"), 302);
    assert_eq!(from("203.0.113.5:5556"), 302);
    assert_eq!(
        from("203.0.113.5:5557"),
        502,
        "the same client, over its share"
    );
    assert_eq!(
        from("203.0.113.6:5555"),
        302,
        "another client: not the balancer"
    );
    let released = (0..20)
        .filter(|i| from(&format!("[2001:db8:0:{i:x}::1]:443")) == 302)
        .count();
    assert_eq!(released, 4, "twenty /64s of one /56 hold two shares");
    assert_eq!(from("[2001:db8:1::1]"), 302, "the next household");
    assert_eq!(
        from("junk"),
        302,
        "an unreadable entry: the unknown source's own share"
    );
    assert_eq!(from("203.0.113.7"), 302);
}

/// Issue 29: a PGO redeeming its code from a browser-side component first sends a CORS
/// preflight. Without a body it carries no code: it reaches the AS (on the configured token
/// path) and the AS's CORS answer comes back; with a body it is refused at the seam, as every
/// `OPTIONS` with a body is, and the AS never sees it.
#[test]
fn token_path_cors_preflight_passes_to_the_as_without_a_body_and_is_refused_with_one() {
    let upstream = Upstream::start(Bodies::Read, None, |req| {
        if req.head.starts_with("OPTIONS ") {
            Answer::Bytes(
                b"HTTP/1.1 204 No Content\r\naccess-control-allow-origin: https://pgo.example.nl\r\naccess-control-allow-methods: POST\r\naccess-control-allow-headers: content-type\r\n\r\n"
                    .to_vec(),
            )
        } else {
            Answer::ok("ok")
        }
    });
    let h =
        Harness::start_with_upstream(&upstream.url(), "[token_guard]\npath = \"/oauth2/token\"\n");
    let addr = h.proxy_addr();
    let preflight = "OPTIONS /oauth2/Token HTTP/1.1\r\nHost: as.example.nl\r\nOrigin: https://pgo.example.nl\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type";
    let r = send_raw(addr, preflight, "");
    assert_eq!(raw_status(&r), 204, "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://pgo.example.nl"),
        "{r}"
    );
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].head.lines().next(),
        Some("OPTIONS /oauth2/token HTTP/1.1")
    );
    // With a body (a code could hide in it), announced or chunked: refused, the AS never asked.
    let body = "grant_type=authorization_code&code=C0DE";
    let r = send_raw(
        addr,
        &format!(
            "{preflight}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}",
            body.len()
        ),
        body,
    );
    assert_eq!(raw_status(&r), 400, "{r}");
    let r = send_raw(
        addr,
        &format!("{preflight}\r\nTransfer-Encoding: chunked"),
        &format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()),
    );
    assert_eq!(raw_status(&r), 400, "{r}");
    // A code in the query of a preflight: a lenient framework would read it as a token request.
    let r = send_raw(
        addr,
        "OPTIONS /oauth2/token?grant_type=authorization_code&code=C0DE HTTP/1.1\r\nHost: as.example.nl",
        "",
    );
    assert_eq!(raw_status(&r), 400, "{r}");
    assert_eq!(upstream.seen().len(), 1, "{}", upstream.received());
}
