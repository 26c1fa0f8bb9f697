//! Hostile input and upstream faults: every edge gets a deliberate answer, and the proxy keeps
//! serving afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::*;

const VALID: &str = "response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=s1&scope=48";
const UNKNOWN_CLIENT: &str =
    "response_type=code&client_id=evil.test&redirect_uri=https%3A%2F%2Fevil.test%2Fcb&state=s1";

fn get_raw(addr: SocketAddr, target: &str) -> String {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: as.example.nl\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(30),
    )
}

/// The proxy still answers a plain request: a fault did not take it down.
fn still_serving(addr: SocketAddr) {
    let r = get_raw(addr, "/echo");
    assert_eq!(raw_status(&r), 200, "the proxy stopped serving: {r}");
}

const TRICKS: [&str; 16] = [
    "/oauth2/%61uthorize",
    "/oauth2%2Fauthorize",
    "/oauth2%2fauthorize",
    "/oauth2/%2561uthorize",
    "/oauth2/./authorize",
    "/x/../oauth2/authorize",
    "/oauth2/x/%2E%2E/authorize",
    "//oauth2/authorize",
    "/oauth2//authorize",
    "/oauth2/authorize/",
    "/oauth2/authorize;jsessionid=1",
    "/oauth2;v=1/authorize",
    "/OAuth2/AUTHORIZE",
    "/oauth2%5Cauthorize",
    "/oauth2/authorize.",
    "/oauth2/authorize%20",
];

/// Issue 26, findings 1 and 2: a `redirect_uri` or `client_id` behind a `;` (Rack 2, old
/// Python, Go before 1.17), after `&amp;`, or after a NUL inside a name (PHP's `$_GET`) is a
/// second one: 1a, and nothing reaches the AS.
#[test]
fn semicolon_and_nul_a_hidden_redirect_uri_or_client_id_is_1a_and_never_reaches_the_as() {
    let h = Harness::start("");
    let addr = h.proxy_addr();
    for hidden in [
        "&x=1;redirect_uri=https%3A%2F%2Fevil.example%2Fcb;state=attacker",
        "&a=1&amp;redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
        "&x=1;client_id=evil.example",
        "&redirect_uri%00x=https%3A%2F%2Fevil.example%2Fcb&state%00x=attacker",
        "&client_id%00x=evil.example",
        "&redirect_uri%0Ax=https%3A%2F%2Fevil.example%2Fcb",
        "&redirect%E2%80%8B_uri=https%3A%2F%2Fevil.example%2Fcb",
    ] {
        let r = get_raw(addr, &format!("/oauth2/authorize?{VALID}{hidden}"));
        assert_eq!(raw_status(&r), 400, "{hidden}: {r}");
        assert!(
            r.contains("Deze aanvraag kunnen we niet verwerken"),
            "{hidden}"
        );
        assert!(!r.contains("evil.example"), "{hidden}");
    }
    assert_eq!(h.demo().authorize_requests(), 0);
    still_serving(addr);
}

/// Issue 26, finding 1: a second `state`, `response_mode` or `scope` behind a `;` is 1b: an
/// error redirect to the validated client, without the ambiguous state.
#[test]
fn semicolon_a_hidden_state_or_response_mode_is_1b_and_never_reaches_the_as() {
    let h = Harness::start("");
    let addr = h.proxy_addr();
    for hidden in [
        "&x=1;state=attacker",
        "&x=1;response_mode=form_post",
        "&x=1;state%00x=attacker",
        "&state%00x=attacker",
    ] {
        let r = get_raw(addr, &format!("/oauth2/authorize?{VALID}{hidden}"));
        assert_eq!(raw_status(&r), 302, "{hidden}: {r}");
        let location = raw_location(&r).unwrap_or_default();
        assert!(
            location.starts_with("https://pgo.example.nl/callback?error=invalid_request"),
            "{hidden}: {location}"
        );
        assert!(!location.contains("attacker"), "{location}");
    }
    assert_eq!(h.demo().authorize_requests(), 0);
}

/// Issue 27, found by the differential harness: Rack's `URLMap` hands `/oauth2/authorize/x` to
/// the authorize handler. Below the authorize or token path, OAuth parameters are refused;
/// anything else passes (oidc-provider resumes its flows at `/auth/<uid>`).
#[test]
fn differential_below_the_authorize_path_oauth_parameters_are_refused_and_the_rest_passes() {
    let h = Harness::start("[token_guard]\npath = \"/oauth2/token\"\n");
    let addr = h.proxy_addr();
    for target in [
        format!("/oauth2/authorize/x?{VALID}"),
        "/oauth2/authorize/x?STATE=s".to_owned(),
        "/oauth2/authorize/x?a=1;redirect_uri=x".to_owned(),
        "/oauth2/token/x?code=C".to_owned(),
    ] {
        let r = get_raw(addr, &target);
        assert_eq!(raw_status(&r), 400, "{target}: {r}");
    }
    let body = "grant_type=authorization_code&code=C";
    let r = raw(
        addr,
        format!("POST /oauth2/token/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
        Duration::from_secs(30),
    );
    assert_eq!(raw_status(&r), 400, "{r}");
    assert_eq!(h.demo().authorize_requests(), 0);
    // What names nothing of OAuth goes on, as any other path does.
    let r = get_raw(addr, "/oauth2/authorize/x?lang=nl");
    assert_ne!(raw_status(&r), 400, "{r}");
    still_serving(addr);
}

#[test]
fn bypass_spellings_get_the_authorize_checks() {
    let h = Harness::start("");
    let addr = h.proxy_addr();
    for trick in TRICKS {
        // An unknown client under any spelling: the 1a page, nothing upstream.
        let r = get_raw(addr, &format!("{trick}?{UNKNOWN_CLIENT}"));
        assert_eq!(raw_status(&r), 400, "{trick}: {r}");
        assert!(
            r.contains("Deze aanvraag kunnen we niet verwerken"),
            "{trick}"
        );
        // A valid request under any spelling reaches the AS at its one authorize path.
        let r = get_raw(addr, &format!("{trick}?{VALID}"));
        assert_eq!(raw_status(&r), 200, "{trick}: {r}");
        assert!(
            r.contains("/oauth2/login/"),
            "{trick}: the demo AS's login page"
        );
        // And only by GET.
        let r = raw(
            addr,
            format!("POST {trick}?{VALID} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        );
        assert_eq!(raw_status(&r), 405, "{trick}");
    }
    let refused_at_1a = TRICKS.len();
    assert_eq!(
        h.demo().authorize_requests(),
        refused_at_1a,
        "only the valid ones arrived"
    );
}

#[test]
fn absolute_form_target_gets_the_authorize_checks() {
    let h = Harness::start("");
    let addr = h.proxy_addr();
    let r = get_raw(
        addr,
        &format!("http://as.example.nl/oauth2/authorize?{UNKNOWN_CLIENT}"),
    );
    assert_eq!(raw_status(&r), 400, "{r}");
    let r = get_raw(
        addr,
        &format!("http://as.example.nl/OAUTH2//authorize/?{UNKNOWN_CLIENT}"),
    );
    assert_eq!(raw_status(&r), 400, "{r}");
    let r = get_raw(
        addr,
        &format!("http://as.example.nl/oauth2/authorize?{VALID}"),
    );
    assert_eq!(raw_status(&r), 200, "accepted, and forwarded: {r}");
    assert!(r.contains("/oauth2/login/"));
    // The AS sees origin-form and the target's host (RFC 9112 §3.2.2); a Host that disagrees
    // with the target is refused (tests/it/seam.rs).
    let r = get_raw(addr, "http://AS.example.nl/echo");
    assert_eq!(raw_status(&r), 200);
    assert!(r.contains("[\"host\",\"as.example.nl\"]"), "{r}");
    assert!(r.contains("\"path\":\"/echo\""));
    assert_eq!(h.demo().authorize_requests(), 1);
}

#[test]
fn case_sensitive_paths_when_configured() {
    let h = Harness::start("[oauth]\ncase_insensitive_paths = false\n");
    let addr = h.proxy_addr();
    // Not the authorize path for the proxy, nor for the (case-sensitive) demo AS.
    let r = get_raw(addr, &format!("/OAUTH2/authorize?{UNKNOWN_CLIENT}"));
    assert_eq!(raw_status(&r), 404, "{r}");
    let r = get_raw(addr, &format!("/oauth2/authorize/?{UNKNOWN_CLIENT}"));
    assert_eq!(raw_status(&r), 400, "other tricks are still caught");
}

#[test]
fn unreadable_paths_are_refused() {
    let h = Harness::start("");
    let addr = h.proxy_addr();
    for path in [
        "/oauth2/%zz",
        "/a%00b",
        "/%FF%FE",
        "/x%0d%0aSet-Cookie:%20a",
    ] {
        let r = get_raw(addr, path);
        assert_eq!(raw_status(&r), 400, "{path}: {r}");
    }
    still_serving(addr);
}

#[test]
fn long_request_targets_get_414_then_431() {
    let h = Harness::start("[listen]\nmax_uri_length = 2048\nmax_header_bytes = 8192\n");
    let addr = h.proxy_addr();
    let long = format!("/oauth2/authorize?{VALID}&pad={}", "a".repeat(3000));
    let r = get_raw(addr, &long);
    assert_eq!(raw_status(&r), 414, "{r}");
    assert!(r.contains("Deze aanvraag is te lang"));
    let longer = format!("/echo?pad={}", "a".repeat(10_000));
    let r = get_raw(addr, &longer);
    assert_eq!(raw_status(&r), 431, "{r}");
    assert_eq!(h.demo().authorize_requests(), 0);
    still_serving(addr);
}

#[test]
fn too_many_or_too_large_headers_get_431() {
    let h = Harness::start(
        "[listen]\nmax_headers = 20\nmax_header_bytes = 4096\nmax_uri_length = 2048\n",
    );
    let addr = h.proxy_addr();
    let mut many = String::from("GET /echo HTTP/1.1\r\nHost: a\r\n");
    for i in 0..25 {
        many.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let r = raw(addr, many.as_bytes(), Duration::from_secs(5));
    assert_eq!(raw_status(&r), 431, "{r}");
    let big = format!(
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(5000)
    );
    let r = raw(addr, big.as_bytes(), Duration::from_secs(5));
    assert_eq!(raw_status(&r), 431, "{r}");
    // Within the limits: fine.
    let r = raw(
        addr,
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Ok: 1\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(raw_status(&r), 200);
}

#[test]
fn duplicated_and_garbled_parameters_get_deliberate_answers() {
    let h = Harness::start("");
    let addr = h.proxy_addr();
    for (query, status) in [
        (format!("{VALID}&client_id=pgo.example.nl"), 400),
        (
            format!("{VALID}&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback"),
            400,
        ),
        (format!("{VALID}&state=s2"), 302),
        (format!("{VALID}&scope=48"), 302),
        (format!("{VALID}&x=%E0%A4"), 302),
        (format!("{VALID}&x=%"), 302),
        (format!("{VALID}&st%61te=s2"), 302),
    ] {
        let r = get_raw(addr, &format!("/oauth2/authorize?{query}"));
        assert_eq!(raw_status(&r), status, "{query}: {r}");
        if status == 302 {
            assert!(
                r.contains("location: https://pgo.example.nl/callback?error=invalid_request"),
                "{query}: {r}"
            );
        }
    }
    assert_eq!(h.demo().authorize_requests(), 0);
}

/// Reads until the peer closes the connection, within a limit far beyond any timeout under
/// test: these tests check what closes a connection, by which timeouts are in play, not how
/// fast (the timers themselves are tested on tokio's paused clock in `timed_io::tests`).
fn wait_closed(mut stream: TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) => panic!("not closed: {e}"),
        }
    }
}

#[test]
fn slowloris_is_cut_off_at_the_header_read_timeout() {
    // The idle timeout is out of reach: only the header read timeout can close these.
    let h = Harness::start("[listen]\nheader_read_timeout = \"500ms\"\nidle_timeout = \"120s\"\n");
    let addr = h.proxy_addr();
    // Silent after connecting.
    wait_closed(TcpStream::connect(addr).unwrap());
    // Trickling a head, a byte every 100 ms for a minute: bytes move, but the head never
    // completes. The proxy must close the connection while the trickle is still going.
    let mut trickle = TcpStream::connect(addr).unwrap();
    let writer = trickle.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut writer = writer;
        let head = b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: ";
        let slow = std::iter::repeat_n(b'a', 600);
        for b in head.iter().copied().chain(slow) {
            if writer.write_all(&[b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    trickle.write_all(b"G").unwrap();
    wait_closed(trickle);
    assert!(feeder.join().unwrap(), "cut off before the trickle ended");
    still_serving(addr);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    // The header read timeout is out of reach: only the idle timeout can close this.
    let h = Harness::start("[listen]\nheader_read_timeout = \"120s\"\nidle_timeout = \"500ms\"\n");
    let addr = h.proxy_addr();
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    // The response arrives; then nothing happens, and the proxy closes the connection.
    wait_closed(conn);
    still_serving(addr);
}

#[test]
fn a_request_waiting_on_the_upstream_is_not_idle() {
    let upstream = Upstream::faults();
    let h = Harness::start_with_upstream(
        &upstream.url(),
        "[listen]\nheader_read_timeout = \"300ms\"\nidle_timeout = \"300ms\"\n",
    );
    // The upstream answers after a second: longer than both client timeouts.
    let r = get_raw(h.proxy_addr(), "/slow");
    assert_eq!(raw_status(&r), 200, "{r}");
    assert!(r.ends_with("slow"));
}

#[test]
fn connection_cap_answers_503_and_recovers() {
    let h = Harness::start("[listen]\nmax_connections = 3\n");
    let addr = h.proxy_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 16];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..12], b"HTTP/1.1 200");
        held.push(c);
    }
    let r = raw(
        addr,
        b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    drop(held.pop());
    // The freed slot is taken again once the proxy has seen the close.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = get_raw(addr, "/echo");
        if raw_status(&r) == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no slot freed: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn upstream_reset_mid_response_closes_that_client_connection_only() {
    let upstream = Upstream::faults();
    let h = Harness::start_with_upstream(&upstream.url(), "");
    let addr = h.proxy_addr();
    let r = get_raw(addr, "/reset-mid");
    // The head was already on its way: the client sees it, then a body cut short.
    assert_eq!(raw_status(&r), 200, "{r}");
    let body = r.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(body.len() < 1000, "the body cannot be complete");
    let r = get_raw(addr, "/ok");
    assert_eq!(raw_status(&r), 200);
}

#[test]
fn upstream_reset_before_responding_is_502() {
    let upstream = Upstream::faults();
    let h = Harness::start_with_upstream(&upstream.url(), "");
    let r = get_raw(h.proxy_addr(), "/reset-before");
    assert_eq!(raw_status(&r), 502, "{r}");
    assert!(r.contains("Deze dienst is nu niet bereikbaar"));
    assert_eq!(raw_status(&get_raw(h.proxy_addr(), "/ok")), 200);
}

#[test]
fn unreadable_or_repeated_location_fails_closed() {
    let upstream = Upstream::faults();
    let h = Harness::start_with_upstream(&upstream.url(), "");
    for path in ["/location-obs", "/location-twice"] {
        let r = get_raw(h.proxy_addr(), path);
        assert_eq!(raw_status(&r), 502, "{path}: {r}");
        assert!(!r.contains("C0DE"), "{path}: the code leaked");
        assert!(!r.to_ascii_lowercase().contains("location:"), "{path}");
    }
    assert_eq!(raw_status(&get_raw(h.proxy_addr(), "/ok")), 200);
}

#[test]
fn relative_location_of_the_as_passes_unchanged() {
    let upstream = Upstream::faults();
    let h = Harness::start_with_upstream(&upstream.url(), "");
    let r = get_raw(h.proxy_addr(), "/location-relative-code");
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(r.contains("location: /consent?code=internal&step=2"), "{r}");
}

#[test]
fn upstream_connect_timeout_is_502() {
    // A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    let h = Harness::start_with_upstream(
        &format!("http://{addr}"),
        "[upstream]\nconnect_timeout = \"300ms\"\nresponse_timeout = \"120s\"\n",
    );
    // Only upstream.connect_timeout can end this wait: the response timeout is far away, and
    // the kernel never completes the connect.
    let r = get_raw(h.proxy_addr(), "/anything");
    assert_eq!(raw_status(&r), 502, "{r}");
    drop(fillers);
}
