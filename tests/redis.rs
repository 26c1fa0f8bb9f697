//! One code per flow and the token guard across two proxy instances sharing one real Redis
//! (`redis-server` on a free port), in front of one recording AS: what a load balancer in front
//! of a DVA's pool sees.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;

const SELF: &str = "response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=st-1&scope=48";

struct Pool {
    upstream: Recorder,
    redis: Redis,
    a: Harness,
    b: Harness,
}

fn pool() -> Pool {
    let upstream = Recorder::start();
    let redis = Redis::start();
    let extra = format!(
        "[store]\nurl = \"{}\"\ntimeout = \"500ms\"\n[token_guard]\npath = \"/oauth2/token\"\n[admin]\naddr = \"127.0.0.1:0\"\n",
        redis.url()
    );
    let a = Harness::start_with_upstream(&upstream.url(), &extra);
    let b = Harness::beside(&a, &upstream.url(), &extra);
    Pool {
        upstream,
        redis,
        a,
        b,
    }
}

fn get(addr: SocketAddr, target: &str) -> String {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(30),
    )
}

fn token(addr: SocketAddr, code: &str) -> String {
    let body = format!("grant_type=authorization_code&code={code}&redirect_uri=x");
    raw(
        addr,
        format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: as\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
        Duration::from_secs(30),
    )
}

/// Starts a flow on `addr`; the sealed state the AS got.
fn start_flow(p: &Pool, addr: SocketAddr) -> String {
    let r = get(addr, &format!("/oauth2/authorize?{SELF}"));
    assert_eq!(raw_status(&r), 200, "{r}");
    let received = p.upstream.received();
    let query = received.rsplit("GET /oauth2/authorize?").next().unwrap();
    let query = query.split_whitespace().next().unwrap();
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("state="))
        .unwrap()
        .to_owned()
}

/// The AS answers the consent on `addr` with `code` for the flow `sealed`, signalling `used`.
fn return_flow(p: &Pool, addr: SocketAddr, sealed: &str, code: &str, used: &str) -> String {
    p.upstream.answer_path(
        "/oauth2/consent",
        &format!("{REDIRECT}?code={code}&state={sealed}"),
        &[("x-vert-representation", used)],
    );
    get(addr, "/oauth2/consent")
}

fn token_requests_at_the_as(p: &Pool) -> usize {
    p.upstream.received().matches("POST /oauth2/token ").count()
}

#[test]
fn a_flow_started_on_one_instance_is_released_once_on_the_other() {
    let p = pool();
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    let sealed = start_flow(&p, a);
    let r = return_flow(&p, b, &sealed, "C0DE-1", "none");
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(r.contains("state=st-1\r\n"), "{r}");
    // The AS issues a second code for the same flow: withheld, on either instance.
    for addr in [a, b] {
        let r = return_flow(&p, addr, &sealed, "C0DE-2", "none");
        assert_eq!(raw_status(&r), 403, "{r}");
        assert!(r.contains("Deze inlog is al gebruikt"), "{r}");
        assert!(!r.contains("C0DE-2"), "{r}");
    }
}

#[test]
fn a_code_released_by_one_instance_is_redeemed_once_through_the_other() {
    let p = pool();
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    let sealed = start_flow(&p, a);
    let r = return_flow(&p, a, &sealed, "C0DE-3", "none");
    assert_eq!(raw_status(&r), 302, "{r}");
    let r = token(b, "C0DE-3");
    assert_eq!(raw_status(&r), 200, "reached the AS: {r}");
    for addr in [a, b] {
        let r = token(addr, "C0DE-3");
        assert_eq!(raw_status(&r), 400, "{r}");
        assert!(r.ends_with("{\"error\":\"invalid_grant\"}"), "{r}");
    }
    assert_eq!(token_requests_at_the_as(&p), 1);
}

#[test]
fn a_withheld_code_is_refused_at_the_token_endpoint_without_reaching_the_as() {
    let p = pool();
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    // Vert 2: representation used, not asked for.
    let sealed = start_flow(&p, a);
    p.upstream.answer_path(
        "/oauth2/consent",
        &format!("{REDIRECT}?code=C0DE-4&state={sealed}"),
        &[
            ("x-vert-representation", "onbehalfof"),
            ("x-vert-birthdate", "19700901"),
        ],
    );
    let r = get(b, "/oauth2/consent");
    assert_eq!(raw_status(&r), 403, "{r}");
    // Fail closed: no signal.
    let sealed = start_flow(&p, b);
    p.upstream.answer_path(
        "/oauth2/consent",
        &format!("{REDIRECT}?code=C0DE-5&state={sealed}"),
        &[],
    );
    let r = get(a, "/oauth2/consent");
    assert_eq!(raw_status(&r), 502, "{r}");
    // A code that left the AS without the proxy's release (a form post, a script).
    for (addr, code) in [(a, "C0DE-4"), (b, "C0DE-5"), (a, "NEVER-RELEASED")] {
        let r = token(addr, code);
        assert_eq!(raw_status(&r), 400, "{code}: {r}");
        assert!(r.ends_with("{\"error\":\"invalid_grant\"}"), "{r}");
    }
    assert_eq!(token_requests_at_the_as(&p), 0);
}

#[test]
fn redis_down_fails_closed_and_recovers_when_it_returns() {
    let mut p = pool();
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    // Released before the outage, redeemed after it.
    let sealed = start_flow(&p, a);
    let r = return_flow(&p, a, &sealed, "C0DE-6", "none");
    assert_eq!(raw_status(&r), 302, "{r}");

    p.redis.stop();
    let sealed = start_flow(&p, a);
    let r = return_flow(&p, b, &sealed, "C0DE-7", "none");
    assert_eq!(raw_status(&r), 502, "the release cannot be recorded: {r}");
    assert!(!r.contains("C0DE-7"), "{r}");
    let r = token(a, "C0DE-6");
    assert_eq!(raw_status(&r), 503, "{r}");
    assert!(
        r.ends_with("{\"error\":\"temporarily_unavailable\"}"),
        "{r}"
    );
    assert_eq!(token_requests_at_the_as(&p), 0);
    assert!(p.a.metric("medmij_vert_store_errors_total") >= 1);

    // Redis comes back (empty: no persistence). The connection manager reconnects.
    p.redis.start_again();
    // A fresh flow each try: a try that failed closed may have recorded its flow.
    wait_until("a release after Redis returned", || {
        let sealed = start_flow(&p, b);
        raw_status(&return_flow(&p, a, &sealed, "C0DE-8", "none")) == 302
    });
    let r = token(b, "C0DE-8");
    assert_eq!(raw_status(&r), 200, "{r}");
}
