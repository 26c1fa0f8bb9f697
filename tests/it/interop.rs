//! Real legacy ASs, as a DVA meets them: a redirect_uri the AS respells, error redirects
//! without `state`, and ids the AS can log next to the proxy's (tests/it/support `Upstream`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;

const VALID: &str = "response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=s%2B1&scope=48";

fn start() -> (Upstream, Harness) {
    let upstream = Upstream::recorder();
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

use crate::support::raw_location as location;

/// The value of a request header the AS received, in its last request.
fn received_header(upstream: &Upstream, name: &str) -> Vec<String> {
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

/// A legacy AS that runs the multi-step browser flow of a stock Django OAuth Toolkit, over raw
/// HTTP/1.1: `APPEND_SLASH` (a 301 to `/o/authorize/`), a login page that sends the browser
/// back with `?next=<the authorize URL as received>`, a consent form that POSTs back to the
/// authorize URL with the parameters as hidden fields, and a code redirect whose body says
/// "Redirecting to …". The signal is the `X-Vert-Requested` of the request that issues the
/// code (the consent POST), which only a resumed flow carries. Every request is kept.
struct DjangoLike(Upstream);

fn pct(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unpct(text: &str) -> String {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

impl DjangoLike {
    fn start() -> DjangoLike {
        DjangoLike(Upstream::start(Bodies::Read, None, |req| {
            let lower = req.head.to_ascii_lowercase();
            Answer::Bytes(DjangoLike::answer(&req.head, &lower, &req.body).into_bytes())
        }))
    }

    fn answer(head: &str, lower: &str, body: &str) -> String {
        let mut words = head.split_whitespace();
        let (method, target) = (words.next().unwrap(), words.next().unwrap());
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let logged_in = lower.contains("\r\ncookie: session=1");
        let redirect = |status: &str, location: &str, extra: &str| {
            let body = format!("Redirecting to {location}");
            format!(
                "HTTP/1.1 {status}\r\nlocation: {location}\r\n{extra}content-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        match (method, path) {
            ("GET", "/o/authorize") => redirect(
                "301 Moved Permanently",
                &format!("/o/authorize/?{query}"),
                "",
            ),
            ("GET", "/o/authorize/") if !logged_in => redirect(
                "302 Found",
                &format!("/accounts/login/?next={}", pct(target)),
                "",
            ),
            ("POST", "/accounts/login/") => redirect(
                "302 Found",
                &unpct(param(body, "next").unwrap()),
                "set-cookie: session=1; Path=/\r\n",
            ),
            ("GET", "/o/authorize/") => {
                let page = format!(
                    "<form method=post><input type=hidden name=state value=\"{}\"></form>",
                    unpct(param(query, "state").unwrap())
                );
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{page}",
                    page.len()
                )
            }
            ("POST", "/o/authorize/") => {
                let redirect_uri = unpct(param(body, "redirect_uri").unwrap());
                let state = param(body, "state").unwrap();
                let requested = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("x-vert-requested: "))
                    .map(str::trim);
                let signal = match requested {
                    Some(kind) => {
                        format!("x-vert-representation: {kind}\r\nx-vert-birthdate: 19700901\r\n")
                    }
                    None => "x-vert-representation: none\r\n".to_string(),
                };
                redirect(
                    "302 Found",
                    &format!("{redirect_uri}?code=C0DE-DJANGO&state={state}"),
                    &signal,
                )
            }
            _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_string(),
        }
    }

    fn url(&self) -> String {
        self.0.url()
    }

    /// The `state` of every authorization request it received (GET and POST, query and body).
    fn states(&self) -> Vec<String> {
        let mut states = Vec::new();
        for req in self.0.seen() {
            if !req.target.starts_with("/o/authorize") {
                continue;
            }
            let query = req.target.split_once('?').map_or("", |(_, q)| q);
            states.extend(param(query, "state").map(str::to_owned));
            states.extend(param(&req.body, "state").map(str::to_owned));
        }
        states
    }

    fn heads(&self) -> Vec<String> {
        self.0.seen().into_iter().map(|r| r.head).collect()
    }
}

/// One raw request through the proxy: method, target, extra header lines, form body.
fn send(addr: SocketAddr, method: &str, target: &str, headers: &str, body: &str) -> String {
    let form = if body.is_empty() {
        String::new()
    } else {
        format!(
            "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}",
            body.len()
        )
    };
    raw(
        addr,
        format!("{method} {target} HTTP/1.1\r\nHost: as.example.nl{headers}{form}\r\nConnection: close\r\n\r\n{body}")
            .as_bytes(),
        Duration::from_secs(30),
    )
}

/// Issue 18, findings 1–3 and 6: the stock browser flow of a Django OAuth Toolkit behind the
/// proxy, as a browser walks it: `/o/authorize` → APPEND_SLASH 301 → login `?next=` round trip
/// → consent form POSTed back → code. The state is sealed once and stays the same through
/// every round trip, the consent POST carries the flow's `X-Vert-Requested` although the
/// forwarded scope lost the token (`strip_scope_token`), and the client gets its own state and
/// no byte of the sealed one.
#[test]
fn django_flow_append_slash_login_next_and_consent_post_back_release_one_code() {
    let upstream = DjangoLike::start();
    let h = Harness::start_with_upstream(
        &upstream.url(),
        "[oauth]\nauthorize_path = \"/o/authorize/\"\n[representation]\nstrip_scope_token = true\n",
    );
    let addr = h.proxy_addr();
    let query = format!("{VALID}%20onbehalfof&MedMij_geboortedatum=19700901");
    // The client's request, without the slash: checked, and sent to the AS with it.
    let r = send(addr, "GET", &format!("/o/authorize?{query}"), "", "");
    let login = location(&r).unwrap_or_else(|| panic!("{r}")).to_owned();
    assert!(login.starts_with("/accounts/login/?next="), "{r}");
    assert!(
        upstream.heads()[0].starts_with("GET /o/authorize/?"),
        "{:?}",
        upstream.heads()
    );
    let next = unpct(login.split_once("next=").unwrap().1);
    // The login POST sends the browser back to the authorize URL, sealed state and all.
    let r = send(
        addr,
        "POST",
        "/accounts/login/",
        "",
        &format!("next={}", pct(&next)),
    );
    let back = location(&r).unwrap().to_owned();
    assert_eq!(back, next);
    // The round trip, with the session cookie: the consent page.
    let r = send(addr, "GET", &back, "\r\nCookie: session=1", "");
    assert_eq!(raw_status(&r), 200, "{r}");
    // The consent form posts back to the authorize URL, query and all.
    let sealed = param(back.split_once('?').unwrap().1, "state")
        .unwrap()
        .to_owned();
    let form = format!(
        "csrfmiddlewaretoken=t&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state={sealed}&allow=Authorize"
    );
    let r = send(addr, "POST", &back, "\r\nCookie: session=1", &form);
    assert_eq!(raw_status(&r), 302, "{r}");
    assert_eq!(
        location(&r),
        Some("https://pgo.example.nl/callback?code=C0DE-DJANGO&state=s%2B1")
    );
    // No byte of the sealed state reaches the client: the AS's body is gone.
    assert!(!r.contains(&sealed), "{r}");
    assert!(r.contains("\r\ncontent-length: 0\r\n"), "{r}");
    assert!(!r.contains("Redirecting"), "{r}");
    // Sealed once: every request the AS saw in this flow carries the same state.
    let states = upstream.states();
    assert!(states.len() >= 4, "{states:?}");
    assert!(states.iter().all(|s| *s == sealed), "{states:?}");
    // The consent POST carried the flow's representation, though its scope lost the token.
    let heads = upstream.heads();
    let consent = heads
        .iter()
        .rev()
        .find(|h| h.starts_with("POST /o/authorize/"))
        .unwrap();
    assert!(
        consent
            .to_ascii_lowercase()
            .contains("\r\nx-vert-requested: onbehalfof\r\n"),
        "{consent}"
    );
    assert!(
        !consent.contains("onbehalfof&") && !consent.contains("%20onbehalfof"),
        "{consent}"
    );
}

/// Issue 18, finding 1: a round trip that names another `redirect_uri` or client than its flow
/// is refused with a page, never a redirect, and reaches no AS.
#[test]
fn a_return_into_a_flow_for_another_redirect_uri_is_refused_with_a_page() {
    let upstream = DjangoLike::start();
    let h = Harness::start_with_upstream(
        &upstream.url(),
        "[oauth]\nauthorize_path = \"/o/authorize/\"\n",
    );
    let addr = h.proxy_addr();
    let r = send(addr, "GET", &format!("/o/authorize/?{VALID}"), "", "");
    let next = unpct(location(&r).unwrap().split_once("next=").unwrap().1);
    let seen = upstream.heads().len();
    for forged in [
        next.replace("pgo.example.nl%2Fcallback", "evil.example%2Fcb"),
        next.replace("client_id=pgo.example.nl", "client_id=other.example.nl")
            .replace("pgo.example.nl%2Fcallback", "other.example.nl%2Fcallback"),
        format!("{next}&REDIRECT_URI=https%3A%2F%2Fevil.example%2Fcb"),
    ] {
        let r = send(addr, "GET", &forged, "\r\nCookie: session=1", "");
        assert_eq!(raw_status(&r), 502, "{forged}: {r}");
        assert!(location(&r).is_none(), "{r}");
    }
    // A POST on the authorize path without a sealed state is no authorization request.
    let r = send(
        addr,
        "POST",
        "/o/authorize/",
        "",
        "client_id=pgo.example.nl&state=mine",
    );
    assert_eq!(raw_status(&r), 405, "{r}");
    assert_eq!(upstream.heads().len(), seen, "{:?}", upstream.heads());
}

/// Issue 18, finding 1: a flow that comes back after `state.flow_ttl` gets the expired page.
#[test]
fn an_expired_flow_coming_back_to_the_authorize_path_gets_the_expired_page() {
    let upstream = DjangoLike::start();
    let h = Harness::start_with_upstream(
        &upstream.url(),
        "[oauth]\nauthorize_path = \"/o/authorize/\"\n",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sealed = h.keys.seal(&medmij_vert_proxy::vert::Flow {
        state: "s%2B1".into(),
        redirect_uri: REDIRECT.into(),
        requested: None,
        issued_at: now - 7200,
        correlation_id: uuid::Uuid::nil(),
        fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
    });
    let target = format!(
        "/o/authorize/?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state={sealed}"
    );
    let r = send(h.proxy_addr(), "GET", &target, "", "");
    assert_eq!(raw_status(&r), 403, "{r}");
    assert!(upstream.heads().is_empty());
}

/// Issue 18, finding 5 (RFC 9207): with `oauth.issuer`, every redirect the proxy writes itself
/// carries `iss`; the AS's own `iss` passes through untouched.
#[test]
fn rfc9207_iss_on_the_proxys_own_redirects_and_the_ass_own_untouched() {
    let upstream = Upstream::recorder();
    let h = Harness::start_with_upstream(
        &upstream.url(),
        "[oauth]\nissuer = \"https://as.example.nl/o\"\n",
    );
    let addr = h.proxy_addr();
    // Vert 3 and a 1b: the proxy's own redirects.
    for query in [
        format!("{VALID}%20onbehalfof"),
        format!("{VALID}&response_type=code"),
    ] {
        let r = get_raw(addr, &format!("/oauth2/authorize?{query}"), "");
        let location = location(&r).unwrap();
        assert!(
            location.ends_with("&state=s%2B1&iss=https%3A%2F%2Fas.example.nl%2Fo"),
            "{location}"
        );
    }
    // The AS's own code redirect keeps its own iss, once.
    upstream.answer_authorize(
        "https://pgo.example.nl/callback?code=C&state={state}&iss=https%3A%2F%2Fas.example.nl%2Fo",
        &[("x-vert-representation", "none")],
    );
    let r = get_raw(addr, &format!("/oauth2/authorize?{VALID}"), "");
    assert_eq!(
        location(&r),
        Some(
            "https://pgo.example.nl/callback?code=C&state=s%2B1&iss=https%3A%2F%2Fas.example.nl%2Fo"
        )
    );
    // And the Vert 4 page's link back.
    upstream.answer_authorize(
        "https://pgo.example.nl/callback?code=C&state={state}",
        &[
            ("x-vert-representation", "onbehalfof"),
            ("x-vert-birthdate", "19800101"),
        ],
    );
    let r = get_raw(
        addr,
        &format!("/oauth2/authorize?{VALID}%20onbehalfof&MedMij_geboortedatum=19700901"),
        "",
    );
    assert_eq!(raw_status(&r), 403, "{r}");
    assert!(r.contains("error=access_denied"), "{r}");
    assert!(r.contains("iss=https%3A%2F%2Fas.example.nl%2Fo"), "{r}");
}

/// Issue 18, finding 6: a released redirect reaches the client without the AS's body (which
/// names the sealed state), and that body is still read, so the AS's connection is reused.
#[test]
fn released_redirects_carry_no_as_body_and_keep_the_as_connection() {
    let (upstream, h) = start();
    upstream.answer_authorize(
        "https://pgo.example.nl/callback?code=C0DE&state={state}",
        &[("x-vert-representation", "none")],
    );
    for _ in 0..5 {
        let r = get_raw(h.proxy_addr(), &format!("/oauth2/authorize?{VALID}"), "");
        assert_eq!(raw_status(&r), 302, "{r}");
        assert!(r.ends_with("\r\n\r\n"), "a body reached the client: {r}");
        assert!(!r.contains("Redirecting"), "{r}");
        assert!(r.contains("\r\ncontent-length: 0\r\n"), "{r}");
    }
    assert_eq!(
        upstream.connections(),
        1,
        "the AS's connection was not reused"
    );
}
