//! The proxy as a transparent reverse proxy, end to end on 127.0.0.1: pass-through, header
//! hygiene, upstream faults.

use std::net::TcpListener;
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

fn echo_header<'a>(echo: &'a str, name: &str) -> Vec<&'a str> {
    // The demo AS's /echo lists headers as ["name","value"] pairs.
    let needle = format!("[\"{name}\",\"");
    echo.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &echo[i + needle.len()..];
            &rest[..rest.find("\"]").unwrap()]
        })
        .collect()
}

#[tokio::test]
async fn get_passes_through_with_status_and_body() {
    let h = Harness::start("");
    for status in [200u16, 201, 404, 418, 500] {
        let r = get(&format!("{}/echo?status={status}&x=%2F", h.base)).await;
        assert_eq!(r.status, status);
        assert!(r.body.contains("\"method\":\"GET\""), "{}", r.body);
        assert!(r.body.contains("\"path\":\"/echo\""));
        assert!(
            r.body
                .contains(&format!("\"query\":\"status={status}&x=%2F\""))
        );
    }
}

#[tokio::test]
async fn post_passes_through_with_its_body() {
    let h = Harness::start("");
    let r = post_form(
        &format!("{}/echo?status=202", h.base),
        &[("hello", "wereld"), ("x", "1")],
    )
    .await;
    assert_eq!(r.status, 202);
    assert!(r.body.contains("\"method\":\"POST\""));
    assert!(
        r.body.contains("\"body\":\"hello=wereld&x=1\""),
        "{}",
        r.body
    );

    // A large body streams through whole.
    let big = "a".repeat(600 * 1024);
    let r = send(
        Request::builder()
            .method(Method::PUT)
            .uri(format!("{}/echo", h.base))
            .body(Full::new(Bytes::from(big.clone())))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&big));
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_removed() {
    let h = Harness::start("");
    let r = get_with(
        &format!("{}/echo", h.base),
        &[
            ("connection", "x-secret"),
            ("x-secret", "hush"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("upgrade", "websocket"),
            ("x-normal", "kept"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    for gone in [
        "x-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "upgrade",
    ] {
        assert!(
            echo_header(&r.body, gone).is_empty(),
            "{gone} reached the upstream: {}",
            r.body
        );
    }
    assert!(!r.body.contains("hush"));
    assert_eq!(echo_header(&r.body, "x-normal"), ["kept"]);
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    let h = Harness::start("");
    let r = get(&format!("{}/demo/hop-by-hop", h.base)).await;
    assert_eq!(r.status, 200);
    for gone in ["x-private", "keep-alive", "proxy-authenticate"] {
        assert!(r.header(gone).is_none(), "{gone} reached the client");
    }
    assert_eq!(r.header("x-kept"), Some("yes"));
}

#[tokio::test]
async fn spoofed_forwarded_headers_are_dropped() {
    let h = Harness::start("");
    let r = get_with(
        &format!("{}/echo", h.base),
        &[
            ("host", "as.example.nl"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil.test"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-prefix", "/evil"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ],
    )
    .await;
    assert_eq!(echo_header(&r.body, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echo_header(&r.body, "x-forwarded-host"), ["as.example.nl"]);
    assert_eq!(echo_header(&r.body, "x-forwarded-proto"), ["http"]);
    assert!(!r.body.contains("6.6.6.6"), "{}", r.body);
    assert!(!r.body.contains("evil"), "{}", r.body);
    // The Host header reaches the AS as the client sent it.
    assert_eq!(echo_header(&r.body, "host"), ["as.example.nl"]);
}

/// Issue 26, finding 7: the other names CDNs, balancers and frameworks read for the client's
/// address or the host it asked for.
#[tokio::test]
async fn client_address_and_original_host_claims_under_any_name_are_dropped() {
    let h = Harness::start("");
    let claims = [
        ("true-client-ip", "6.6.6.6"),
        ("x-client-ip", "6.6.6.6"),
        ("cf-connecting-ip", "6.6.6.6"),
        ("fastly-client-ip", "6.6.6.6"),
        ("x-cluster-client-ip", "6.6.6.6"),
        ("client-ip", "6.6.6.6"),
        ("x-original-forwarded-for", "6.6.6.6"),
        ("x-host", "evil.test"),
        ("x-original-host", "evil.test"),
    ];
    let mut headers = vec![("host", "as.example.nl")];
    headers.extend(claims);
    let r = get_with(&format!("{}/echo", h.base), &headers).await;
    assert_eq!(r.status, 200);
    for (name, _) in claims {
        assert!(echo_header(&r.body, name).is_empty(), "{name}: {}", r.body);
    }
    assert!(!r.body.contains("6.6.6.6"), "{}", r.body);
    assert!(!r.body.contains("evil"), "{}", r.body);
}

#[tokio::test]
async fn trusted_proxy_forwarded_headers_are_extended() {
    let h = Harness::start("[listen]\ntrusted_proxies = [\"127.0.0.0/8\"]\n");
    let r = get_with(
        &format!("{}/echo", h.base),
        &[
            ("host", "as.example.nl"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(
        echo_header(&r.body, "x-forwarded-for"),
        ["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(echo_header(&r.body, "x-forwarded-proto"), ["https"]);
    assert_eq!(echo_header(&r.body, "x-forwarded-host"), ["as.example.nl"]);
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_the_proxy_keeps_serving() {
    let h = Harness::start_with_upstream(&format!("http://127.0.0.1:{}", closed_port()), "");
    for _ in 0..3 {
        let r = get(&format!("{}/anything", h.base)).await;
        assert_eq!(r.status, 502);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(
            r.body.contains("Deze dienst is nu niet bereikbaar"),
            "{}",
            r.body
        );
    }
    let r = get_with(&format!("{}/x", h.base), &[("accept-language", "en")]).await;
    assert!(r.body.contains("This service cannot be reached right now"));
}

#[tokio::test]
async fn slow_upstream_is_504_and_the_proxy_keeps_serving() {
    // An upstream that never answers: only upstream.response_timeout ends the wait (when it
    // starts counting is tested on tokio's paused clock in `timed_io::tests`).
    let upstream = Upstream::faults();
    let h = Harness::start_with_upstream(
        &upstream.url(),
        "[upstream]\nresponse_timeout = \"300ms\"\n",
    );
    for _ in 0..2 {
        let r = get(&format!("{}/never", h.base)).await;
        assert_eq!(r.status, 504);
        assert!(r.body.contains("Deze dienst reageert niet op tijd"));
    }
    let r = get(&format!("{}/ok", h.base)).await;
    assert_eq!(r.status, 200);
    // Counted for the alert on upstream timeouts (`deploy/monitoring/alerts.yml`).
    let timeouts = "medmij_vert_upstream_errors_total{kind=\"timeout\"}";
    assert_eq!(metric_value(&h.running().metrics().encode(), timeouts), 2);
}

#[tokio::test]
async fn keep_alive_and_http10_clients() {
    let h = Harness::start("");
    let addr = h.proxy_addr();
    let two = raw(
        addr,
        b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?status=201 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(two.matches("HTTP/1.1 200 OK").count(), 1, "{two}");
    assert_eq!(two.matches("HTTP/1.1 201 Created").count(), 1, "{two}");
    let old = raw(addr, b"GET /echo HTTP/1.0\r\n\r\n", Duration::from_secs(5));
    assert_eq!(raw_status(&old), 200, "{old}");
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let upstream = Upstream::scripted();
    upstream.set("/next", None, None);
    let h = Harness::start_with_upstream(&upstream.url(), "");
    for _ in 0..20 {
        let r = get(&format!("{}/x", h.base)).await;
        assert_eq!(r.status, 302);
    }
    assert_eq!(
        upstream.connections(),
        1,
        "one keep-alive connection for 20 requests"
    );
}

#[tokio::test]
async fn idle_upstream_connections_close_at_pool_idle_timeout() {
    let upstream = Upstream::scripted();
    upstream.set("/next", None, None);
    let h =
        Harness::start_with_upstream(&upstream.url(), "[upstream]\npool_idle_timeout = \"1s\"\n");
    // Back to back: one connection, reused.
    for _ in 0..2 {
        let r = get(&format!("{}/x", h.base)).await;
        assert_eq!(r.status, 302, "{r:?}");
    }
    assert_eq!(upstream.connections(), 1);
    // The upstream never closes an idle connection: the close it sees is the proxy's.
    upstream.wait_closed(1).await;
    let r = get(&format!("{}/x", h.base)).await;
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_used_again() {
    // The upstream drops keep-alive connections idle for 200 ms.
    let upstream = Upstream::scripted_with_idle_close(Some(Duration::from_millis(200)));
    upstream.set("/next", None, None);
    let h = Harness::start_with_upstream(&upstream.url(), "");
    for closed in 1..=3 {
        let r = get(&format!("{}/x", h.base)).await;
        assert_eq!(r.status, 302, "{r:?}");
        upstream.wait_closed(closed).await;
    }
    assert_eq!(
        upstream.connections(),
        3,
        "a fresh connection after each close"
    );
}
