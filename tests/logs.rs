//! Log lines: one per decision with outcome, rule id and request ids; never a code, a state, a
//! birth date or a query string, not even in the access log.

// Its own binary: it installs the process-wide trace subscriber (at `trace`), which would
// capture, and slow, every other test in a shared one.
#[path = "it/support/mod.rs"]
#[allow(dead_code, unused_imports)] // it uses a part of the harness
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use support::*;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn captured() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_span_list(true)
            .with_env_filter("trace")
            .with_writer(logs.clone())
            .init();
        logs
    })
}

const REQUEST_ID: &str = "11111111-2222-4333-8444-555555555555";
const CORRELATION_ID: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

#[tokio::test]
async fn decisions_are_logged_without_secrets() {
    let logs = captured();
    let h = Harness::start("[log]\naccess = true\n");
    let state = "st-secret-4711";
    let ids = format!("&MedMij-Request-ID={REQUEST_ID}&X-Correlation-ID={CORRELATION_ID}");
    let authorize = |extra: &str| {
        format!(
            "{}/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state={state}{ids}{extra}",
            h.base
        )
    };
    let mut codes = Vec::new();
    // Released, Vert 4, Vert 1, Vert 3, fail closed.
    for (extra, who) in [
        ("&scope=onbehalfof&MedMij_geboortedatum=19700901", "piet"),
        ("&scope=onbehalfof&MedMij_geboortedatum=19700902", "piet"),
        ("&scope=onbehalfof&MedMij_geboortedatum=19700901", "self"),
        ("&scope=48", "piet"),
    ] {
        let page = get(&authorize(extra)).await;
        let r = h.login(&page, &[("as", who)]).await;
        codes.push(h.demo().last_code().unwrap());
        assert!(r.status == 302 || r.status == 403, "{r:?}");
    }
    let r = get(&authorize(
        "&scope=onbehalfof&MedMij_geboortedatum=20991231",
    ))
    .await;
    assert_eq!(r.status, 302);
    let page = get(&authorize("&scope=48")).await;
    let r = h.login(&page, &[("as", "self"), ("signal", "omit")]).await;
    assert_eq!(r.status, 502);
    codes.push(h.demo().last_code().unwrap());
    drop(h);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for secret in [
        state,
        "19700901",
        "19700902",
        "20991231",
        "redirect_uri",
        "scope=",
        "MedMij_geboortedatum=",
    ] {
        assert!(!text.contains(secret), "{secret:?} in the logs:\n{text}");
    }
    for code in &codes {
        assert!(!text.contains(code.as_str()), "a code in the logs:\n{text}");
    }
    let decisions: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"target\":\"medmij_vert_proxy::decision\""))
        .collect();
    let has = |outcome: &str, rule: &str| {
        decisions.iter().any(|l| {
            l.contains(&format!("\"outcome\":\"{outcome}\""))
                && l.contains(&format!("\"rule\":\"{rule}\""))
        })
    };
    assert!(has("forwarded", "ext.vert.authint.201"), "{text}");
    assert!(has("released", "ext.vert.authint.202"));
    assert!(has("withheld", "ext.vert.authint.202"));
    assert!(has("error_redirect", "ext.vert.authint.200"));
    assert!(
        decisions
            .iter()
            .any(|l| l.contains("Authorization interface Vertegenwoordiging 4"))
    );
    assert!(
        decisions
            .iter()
            .any(|l| l.contains("Authorization interface Vertegenwoordiging 1"))
    );
    // Authorization requests carry both ids; flow returns the flow's correlation id.
    assert!(
        decisions
            .iter()
            .any(|l| l.contains(REQUEST_ID) && l.contains(CORRELATION_ID))
    );
    assert!(
        decisions
            .iter()
            .filter(|l| l.contains("\"outcome\":\"released\"")
                || l.contains("\"outcome\":\"withheld\""))
            .all(|l| l.contains(CORRELATION_ID)),
        "{text}"
    );
    // The access log names the path, never the query.
    assert!(text.contains("\"path\":\"/oauth2/authorize\""), "{text}");
}

#[test]
fn a_later_error_redirect_without_state_passes_with_a_decision_line() {
    let logs = captured();
    let upstream = Upstream::recorder();
    let h = Harness::start_with_upstream(&upstream.url(), "");
    upstream.answer_path(
        "/oauth2/consent",
        "https://pgo.example.nl/callback?error=access_denied",
        &[],
    );
    let r = raw(
        h.proxy_addr(),
        b"GET /oauth2/consent HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(30),
    );
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(r.contains("location: https://pgo.example.nl/callback?error=access_denied\r\n"));
    drop(h);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("\"target\":\"medmij_vert_proxy::decision\"")
                && l.contains("\"outcome\":\"passed\"")
                && l.contains("error redirect to a client without state")),
        "{text}"
    );
}

/// MedMij 2.x logging interface (core.logging.100/.203): each decision on an authorization
/// request names its events, with the request's ids; the age limit's 1b is one of them.
#[tokio::test]
async fn core_logging_every_authorization_decision_names_its_medmij_events() {
    let logs = captured();
    let upstream = Upstream::recorder();
    let h = Harness::start_with_upstream(&upstream.url(), "[representation]\nage_rules = true\n");
    let base = format!(
        "{}/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state=s&MedMij-Request-ID={REQUEST_ID}",
        h.base
    );
    let cases = [
        // (correlation id, extra, status, events)
        (
            "00000000-0000-4000-8000-000000000001",
            "&scope=48".to_string(),
            200,
            "receive_authorization_request",
        ),
        (
            "00000000-0000-4000-8000-000000000002",
            "&scope=onbehalfof".to_string(),
            302,
            "receive_authorization_request send_authorization_request_error",
        ),
        (
            "00000000-0000-4000-8000-000000000003",
            "&scope=onbehalfofchild&MedMij_geboortedatum=19700901".to_string(),
            302,
            "receive_authorization_request send_authorization_request_error",
        ),
        (
            "00000000-0000-4000-8000-000000000004",
            "&scope=48&response_type=code".to_string(),
            302,
            "receive_authorization_request send_authorization_request_error",
        ),
    ];
    for (correlation, extra, status, _) in &cases {
        let r = get(&format!("{base}&X-Correlation-ID={correlation}{extra}")).await;
        assert_eq!(r.status, *status, "{extra}: {r:?}");
    }
    let page = get(&format!(
        "{}/oauth2/authorize?response_type=code&client_id=evil.test&redirect_uri=https%3A%2F%2Fevil.test%2Fcb&state=s&X-Correlation-ID=00000000-0000-4000-8000-000000000005",
        h.base
    ))
    .await;
    assert_eq!(page.status, 400);
    drop(h);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = |correlation: &str| {
        text.lines()
            .find(|l| {
                l.contains("\"target\":\"medmij_vert_proxy::decision\"") && l.contains(correlation)
            })
            .unwrap_or_else(|| panic!("no decision line for {correlation}:\n{text}"))
            .to_owned()
    };
    for (correlation, extra, _, events) in &cases {
        let line = line(correlation);
        assert!(
            line.contains(&format!("\"medmij_event\":\"{events}\"")),
            "{extra}: {line}"
        );
        assert!(line.contains(REQUEST_ID), "{line}");
    }
    let age = line("00000000-0000-4000-8000-000000000003");
    assert!(age.contains("younger than 12"), "{age}");
    assert!(
        age.contains("\"exception\":\"Vertegenwoordiging age (request)\""),
        "{age}"
    );
    let refused = line("00000000-0000-4000-8000-000000000005");
    assert!(
        refused.contains("\"medmij_event\":\"receive_authorization_request authorization_request_error show_authorization_request_error_page\""),
        "{refused}"
    );
    // Flow returns are the AS's events, not these.
    assert!(
        text.lines()
            .filter(|l| l.contains("\"outcome\":\"released\""))
            .all(|l| !l.contains("medmij_event")),
        "{text}"
    );
    // The age rule's 1b forwarded nothing; only the first request reached the AS.
    assert_eq!(upstream.requests(), 1, "{}", upstream.received());
}

/// `store.min_replicas` against a Redis without replicas: `WAIT` counts none, so the release
/// does not count; the code is withheld with the fail-closed page and the decision line says
/// why (and the `WAIT` shortfall is counted as a store error).
#[test]
fn a_release_that_reaches_too_few_replicas_is_withheld_and_its_decision_line_says_so() {
    let logs = captured();
    let redis = Redis::start();
    let upstream = Upstream::recorder();
    let h = Harness::start_with_upstream(
        &upstream.url(),
        &format!(
            "[store]\nurl = \"{}\"\ntimeout = \"200ms\"\nmin_replicas = 1\n[admin]\naddr = \"127.0.0.1:0\"\n",
            redis.url()
        ),
    );
    let get = |target: &str| {
        raw(
            h.proxy_addr(),
            format!("GET {target} HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n").as_bytes(),
            std::time::Duration::from_secs(30),
        )
    };
    let r = get(&format!(
        "/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state=st-durable&scope=48"
    ));
    assert_eq!(raw_status(&r), 200, "{r}");
    let sealed = upstream
        .state_in_request_with("GET /oauth2/authorize?")
        .unwrap();
    upstream.answer_path(
        "/oauth2/consent",
        &format!("{REDIRECT}?code=NOT-DURABLE&state={{state}}"),
        &[("x-vert-representation", "none")],
    );
    let r = get(&format!("/oauth2/consent?state={sealed}"));
    assert_eq!(raw_status(&r), 502, "{r}");
    assert!(!r.contains("NOT-DURABLE"), "{r}");
    assert!(h.metric("medmij_vert_store_errors_total") >= 1);
    drop(h);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("\"target\":\"medmij_vert_proxy::decision\"")
                && l.contains("\"outcome\":\"withheld\"")
                && l.contains(
                    "store not durable: the release reached fewer replicas than store.min_replicas"
                )),
        "{text}"
    );
    assert!(!text.contains("NOT-DURABLE"));
}

/// Issue 28: the token path is logged as the authorize path is: one decision line per answer,
/// carrying the token request's `X-Correlation-ID`, which comes back on the answer; a withheld
/// code presented says `withheld`; no line and no label names a code or a birth date.
#[tokio::test]
async fn token_decisions_carry_the_correlation_id_they_answer_with_and_no_secret() {
    let logs = captured();
    let h = Harness::start(
        "[admin]\naddr = \"127.0.0.1:0\"\n[token_guard]\npath = \"/oauth2/token\"\n",
    );
    let on_behalf = "&scope=48%20onbehalfof&MedMij_geboortedatum=19700901";
    let released = h.flow(on_behalf, &[("as", "piet")]).await;
    assert_eq!(released.status, 302, "{released:?}");
    let code = h.demo().last_code().unwrap();
    // Vert 1: representation asked, the Persoon logged in as themself; the code is withheld.
    assert_eq!(h.flow(on_behalf, &[("as", "self")]).await.status, 403);
    let withheld = h.demo().last_code().unwrap();
    let present = |code: String, id: &'static str| {
        let body = format!("grant_type=authorization_code&code={code}");
        let req = http::Request::post(format!("{}/oauth2/token", h.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-correlation-id", id)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        send(req)
    };
    const REDEEMED: &str = "10000000-0000-4000-8000-000000000001";
    const AGAIN: &str = "10000000-0000-4000-8000-000000000002";
    const WITHHELD: &str = "10000000-0000-4000-8000-000000000003";
    const OTHER_GRANT: &str = "10000000-0000-4000-8000-000000000004";
    const NOT_A_POST: &str = "10000000-0000-4000-8000-000000000005";
    for (code, id, status) in [
        (code.clone(), REDEEMED, 200),
        (code.clone(), AGAIN, 400),
        (withheld.clone(), WITHHELD, 400),
    ] {
        let answer = present(code, id).await;
        assert_eq!(answer.status.as_u16(), status, "{answer:?}");
        assert_eq!(answer.header("x-correlation-id"), Some(id), "{answer:?}");
    }
    let other = |req: http::request::Builder, body: &'static str| {
        req.header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap()
    };
    let token = format!("{}/oauth2/token", h.base);
    let refresh = other(
        http::Request::post(&token).header("x-correlation-id", OTHER_GRANT),
        "grant_type=refresh_token&refresh_token=r",
    );
    let get = other(
        http::Request::get(&token).header("x-correlation-id", NOT_A_POST),
        "",
    );
    for (req, id) in [(refresh, OTHER_GRANT), (get, NOT_A_POST)] {
        let answer = send(req).await;
        assert_eq!(answer.header("x-correlation-id"), Some(id), "{answer:?}");
    }
    let (_, metrics) = h.admin_get("/metrics");
    drop(h);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for secret in [code.as_str(), withheld.as_str(), "19700901"] {
        assert!(!text.contains(secret), "{secret:?} in the logs:\n{text}");
        assert!(!metrics.contains(secret), "{secret:?} in the metrics");
    }
    let line = |id: &str| {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("\"point\":\"token\"") && l.contains(id))
            .collect();
        assert_eq!(lines.len(), 1, "one decision line for {id}:\n{text}");
        lines[0].to_owned()
    };
    let says = |id: &str, outcome: &str, rule: &str| {
        let line = line(id);
        assert!(
            line.contains(&format!("\"outcome\":\"{outcome}\""))
                && line.contains(&format!("\"rule\":\"{rule}\""))
                && line.contains("\"target\":\"medmij_vert_proxy::decision\""),
            "{line}"
        );
    };
    says(REDEEMED, "redeemed", "proxy.token.released_only");
    says(AGAIN, "refused", "proxy.token.once");
    says(WITHHELD, "withheld", "proxy.token.released_only");
    says(OTHER_GRANT, "passed", "proxy.token.released_only");
    says(NOT_A_POST, "refused", "proxy.token.one_reading");
    assert!(
        metrics.contains(
            "medmij_vert_decisions_total{outcome=\"withheld\",rule=\"proxy.token.released_only\",exception=\"\"} 1"
        ),
        "{metrics}"
    );
}
