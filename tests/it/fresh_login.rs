//! Issue 29, item 1: `representation.fresh_login`. A Persoon logged in for themselves asks,
//! through a PGO, to act for someone else: with the key the AS is asked for a fresh login
//! (`prompt=login`, `max_age=0`), the Persoon logs in on behalf of the other, and the code is
//! released; without it the AS reuses the login and the flow ends in Vert 1, as before. Against
//! an AS that honours `prompt=login` naively: it forces a login whenever the authorize URL says
//! so, and its login page sends the browser back to the URL it received, `prompt=login` and
//! all. Only the proxy taking its own `login` off that round trip keeps the flow from looping.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;

const CLIENT: &str = "response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=s%2B1";
const ON: &str =
    "[oauth]\nauthorize_path = \"/o/authorize/\"\n[representation]\nfresh_login = true\n";

fn onbehalfof(extra: &str) -> String {
    format!("/o/authorize/?{CLIENT}&scope=48%20onbehalfof&MedMij_geboortedatum=19700901{extra}")
}

/// A legacy AS with a login session (the cookie says who is logged in) that honours
/// `prompt=login` on every request that carries it.
fn naive_as() -> Upstream {
    Upstream::start(Bodies::Read, None, |req| {
        let lower = req.head.to_ascii_lowercase();
        let session = lower
            .lines()
            .find_map(|l| l.strip_prefix("cookie: session="))
            .map(str::trim);
        let redirect = |location: &str, extra: &str| {
            Answer::Bytes(
                format!(
                    "HTTP/1.1 302 Found\r\nlocation: {location}\r\n{extra}content-length: 0\r\n\r\n"
                )
                .into_bytes(),
            )
        };
        let query = req.target.split_once('?').map_or("", |(_, q)| q);
        let prompt = query
            .split('&')
            .find_map(|p| p.strip_prefix("prompt="))
            .unwrap_or("");
        match (req.head.split(' ').next(), req.path()) {
            (Some("GET"), "/o/authorize/") if session.is_none() || prompt.contains("login") => {
                redirect(&format!("/login/?next={}", pct(&req.target)), "")
            }
            (Some("POST"), "/login/") => {
                let who = req.body.strip_prefix("as=").unwrap_or("self");
                let next = unpct(req.target.split_once("next=").unwrap().1);
                redirect(&next, &format!("set-cookie: session={who}\r\n"))
            }
            (Some("GET"), "/o/authorize/") => {
                let redirect_uri = unpct(
                    query
                        .split('&')
                        .find_map(|p| p.strip_prefix("redirect_uri="))
                        .unwrap(),
                );
                let state = query
                    .split('&')
                    .find_map(|p| p.strip_prefix("state="))
                    .unwrap();
                let signal = match session {
                    Some("piet") => {
                        "x-vert-representation: onbehalfof\r\nx-vert-birthdate: 19700901\r\n"
                    }
                    _ => "x-vert-representation: none\r\n",
                };
                redirect(&format!("{redirect_uri}?code=C0DE&state={state}"), signal)
            }
            _ => Answer::Bytes(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec()),
        }
    })
}

fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unpct(text: &str) -> String {
    let b = text.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn send(addr: SocketAddr, method: &str, target: &str, cookie: &str, body: &str) -> String {
    let cookie = match cookie {
        "" => String::new(),
        who => format!("\r\nCookie: session={who}"),
    };
    raw(
        addr,
        format!(
            "{method} {target} HTTP/1.1\r\nHost: as.example.nl{cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
        Duration::from_secs(30),
    )
}

/// A browser with a cookie, following redirects until one leaves for the PGO or a page
/// comes; logs in as `login_as` whenever the AS asks. The last answer and the logins.
fn walk(addr: SocketAddr, start: &str, mut cookie: String, login_as: &str) -> (String, usize) {
    let (mut method, mut target, mut body) = ("GET", start.to_owned(), String::new());
    let mut logins = 0;
    for _ in 0..10 {
        let r = send(addr, method, &target, &cookie, &body);
        if let Some(who) = r
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: session="))
        {
            cookie = who.trim().to_owned();
        }
        let Some(location) = raw_location(&r) else {
            return (r, logins);
        };
        if location.starts_with("https://pgo.example.nl/") {
            return (r, logins);
        }
        if location.starts_with("/login/") {
            logins += 1;
            (method, target, body) = ("POST", location.to_owned(), format!("as={login_as}"));
        } else {
            (method, target, body) = ("GET", location.to_owned(), String::new());
        }
    }
    panic!("a loop: more than 10 steps");
}

fn authorize_targets(upstream: &Upstream) -> Vec<String> {
    upstream
        .seen()
        .into_iter()
        .filter(|r| r.path() == "/o/authorize/")
        .map(|r| r.target)
        .collect()
}

#[test]
fn fresh_login_a_self_session_then_onbehalfof_asks_a_fresh_login_and_releases_the_representatives_code()
 {
    let upstream = naive_as();
    let h = Harness::start_with_upstream(&upstream.url(), ON);
    let addr = h.proxy_addr();
    // The client's own prompt is merged, not doubled.
    let (r, logins) = walk(addr, &onbehalfof("&prompt=consent"), "self".into(), "piet");
    assert_eq!(logins, 1, "{r}");
    assert_eq!(raw_status(&r), 302, "{r}");
    assert_eq!(
        raw_location(&r),
        Some("https://pgo.example.nl/callback?code=C0DE&state=s%2B1")
    );
    let targets = authorize_targets(&upstream);
    assert_eq!(targets.len(), 2, "{targets:?}");
    // The request the proxy forwarded: the client's prompt out, the merged one in.
    assert_eq!(targets[0].matches("prompt=").count(), 1, "{}", targets[0]);
    assert!(
        targets[0].ends_with("&prompt=login%20consent"),
        "{}",
        targets[0]
    );
    // The login's round trip came back with it; the AS got it without the proxy's `login`.
    assert!(targets[1].contains("&prompt=consent"), "{}", targets[1]);
    assert!(!targets[1].contains("login"), "{}", targets[1]);
    // One seal for the whole flow.
    let state = |t: &str| {
        t.split("state=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(state(&targets[0]), state(&targets[1]));
    // The AS was told what was asked on both.
    for req in upstream
        .seen()
        .iter()
        .filter(|r| r.path() == "/o/authorize/")
    {
        assert_eq!(
            req.header("x-vert-requested"),
            Some("onbehalfof"),
            "{}",
            req.head
        );
    }
}

#[test]
fn fresh_login_off_a_self_session_is_reused_and_ends_in_vert1_as_before() {
    let upstream = naive_as();
    let h = Harness::start_with_upstream(
        &upstream.url(),
        "[oauth]\nauthorize_path = \"/o/authorize/\"\n",
    );
    let (r, logins) = walk(h.proxy_addr(), &onbehalfof(""), "self".into(), "piet");
    assert_eq!(logins, 0);
    assert_eq!(raw_status(&r), 403, "{r}");
    assert!(
        r.contains("Inloggen namens een ander is niet gelukt"),
        "{r}"
    );
    assert!(!r.contains("C0DE"), "{r}");
    let targets = authorize_targets(&upstream);
    assert_eq!(targets.len(), 1);
    assert!(!targets[0].contains("prompt"), "{}", targets[0]);
}

#[test]
fn fresh_login_max_age_zero_goes_out_in_place_of_the_clients_and_comes_off_the_round_trip() {
    let upstream = naive_as();
    let h = Harness::start_with_upstream(
        &upstream.url(),
        &format!("{ON}fresh_login_max_age_zero = true\n"),
    );
    let (r, logins) = walk(
        h.proxy_addr(),
        &onbehalfof("&max_age=3600"),
        "self".into(),
        "piet",
    );
    assert_eq!((raw_status(&r), logins), (302, 1), "{r}");
    let targets = authorize_targets(&upstream);
    assert!(
        targets[0].ends_with("&prompt=login&max_age=0"),
        "{}",
        targets[0]
    );
    assert!(!targets[0].contains("3600"), "{}", targets[0]);
    assert!(
        !targets[1].contains("prompt") && !targets[1].contains("max_age"),
        "{}",
        targets[1]
    );
}

#[test]
fn fresh_login_prompt_none_is_login_required_to_the_client_and_nothing_is_forwarded() {
    let upstream = naive_as();
    let h = Harness::start_with_upstream(&upstream.url(), ON);
    let r = send(
        h.proxy_addr(),
        "GET",
        &onbehalfof("&prompt=none"),
        "self",
        "",
    );
    assert_eq!(raw_status(&r), 302, "{r}");
    let location = raw_location(&r).unwrap();
    assert!(
        location.starts_with("https://pgo.example.nl/callback?error=login_required&"),
        "{location}"
    );
    assert!(location.ends_with("&state=s%2B1"), "{location}");
    // A prompt for a flow without representation is the AS's business, as before.
    let r = send(
        h.proxy_addr(),
        "GET",
        &format!("/o/authorize/?{CLIENT}&scope=48&prompt=none"),
        "self",
        "",
    );
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(raw_location(&r).unwrap().contains("code=C0DE"), "{r}");
    let targets = authorize_targets(&upstream);
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert!(targets[0].ends_with("&prompt=none"), "{}", targets[0]);
}

#[test]
fn fresh_login_a_repeated_prompt_is_1b_and_a_round_trip_with_one_is_refused() {
    let upstream = naive_as();
    let h = Harness::start_with_upstream(&upstream.url(), ON);
    let addr = h.proxy_addr();
    let r = send(
        addr,
        "GET",
        &onbehalfof("&prompt=consent&Prompt=none"),
        "self",
        "",
    );
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(
        raw_location(&r)
            .unwrap()
            .starts_with("https://pgo.example.nl/callback?error=invalid_request&error_description=prompt%20repeated&"),
        "{r}"
    );
    assert!(authorize_targets(&upstream).is_empty());
    // A flow's round trip that comes back with a second prompt: a page, nothing forwarded.
    let r = send(addr, "GET", &onbehalfof(""), "self", "");
    let login = raw_location(&r).unwrap();
    let next = unpct(login.split_once("next=").unwrap().1);
    let r = send(addr, "GET", &format!("{next}&PROMPT=none"), "piet", "");
    assert_eq!(raw_status(&r), 502, "{r}");
    assert_eq!(authorize_targets(&upstream).len(), 1);
}
