//! ext.vert.authint.200–204 and the exception table, end to end: a client that never follows
//! redirects, the proxy and the demo AS on 127.0.0.1. Every withheld case checks that the code
//! the AS issued appears nowhere in what the browser gets.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::*;
use medmij_vert_proxy::state::seal::KeyRing;
use medmij_vert_proxy::vert::{Birthdate, Flow, Kind, Requested};
use uuid::Uuid;

const ON_BEHALF: &str = "&scope=48%20onbehalfof&MedMij_geboortedatum=19700901";
const CHILD: &str = "&scope=48%20onbehalfofchild&MedMij_geboortedatum=20200315";

/// A released redirect: to the client, with a code and the client's own state.
fn assert_released(r: &Reply) -> String {
    assert_eq!(r.status, 302, "expected a released redirect: {r:?}");
    let location = r.location();
    let rest = location
        .strip_prefix(&format!("{REDIRECT}?code="))
        .unwrap_or_else(|| panic!("not a code redirect to the client: {location}"));
    let (code, state) = rest.split_once("&state=").expect("code then state");
    assert_eq!(state, "st-1");
    for signal in ["x-vert-representation", "x-vert-birthdate"] {
        assert!(r.header(signal).is_none(), "{signal} reached the browser");
    }
    code.to_string()
}

/// A withheld code: a page for the Persoon, no redirect, and the code nowhere.
fn assert_withheld(h: &Harness, codes_before: usize, r: &Reply, status: u16, title: &str) {
    assert_eq!(
        h.demo().codes_issued(),
        codes_before + 1,
        "the AS issued a code"
    );
    let code = h.demo().last_code().unwrap();
    assert_eq!(r.status, status, "{r:?}");
    assert!(
        r.header("location").is_none(),
        "a withheld code never redirects"
    );
    r.assert_absent(&code);
    assert!(
        r.body.contains(title),
        "expected page {title:?}:\n{}",
        r.body
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    for signal in ["x-vert-representation", "x-vert-birthdate"] {
        assert!(r.header(signal).is_none());
    }
}

#[tokio::test]
async fn ext_vert_authint_202_self_released_and_code_usable() {
    let h = Harness::start("");
    let r = h.flow("&scope=48", &[("as", "self")]).await;
    let code = assert_released(&r);
    // The released code is the AS's own, and it works once at the token endpoint.
    assert_eq!(Some(code.clone()), h.demo().last_code());
    let token = post_form(
        &format!("{}/oauth2/token", h.base),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_eq!(token.status, 200, "{token:?}");
    assert!(token.body.contains("\"subject\":\"Jan Jansen\""));
    let again = post_form(
        &format!("{}/oauth2/token", h.base),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_eq!(again.status, 400);
}

#[tokio::test]
async fn ext_vert_authint_202_onbehalfof_released_with_matching_birthdate() {
    let h = Harness::start("");
    let r = h.flow(ON_BEHALF, &[("as", "piet")]).await;
    let code = assert_released(&r);
    let token = post_form(
        &format!("{}/oauth2/token", h.base),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert!(
        token.body.contains("Piet Jansen"),
        "the code is for the Vertegenwoordigde"
    );
}

#[tokio::test]
async fn ext_vert_authint_204_onbehalfofchild_released_when_configured() {
    let h = Harness::start("");
    let r = h.flow(CHILD, &[("as", "sanne")]).await;
    assert_released(&r);
}

#[tokio::test]
async fn ext_vert_authint_204_onbehalfofchild_refused_when_not_configured() {
    let h = Harness::start("[representation]\nscopes = [\"onbehalfof\"]\n");
    let r = get(&h.authorize_url(CHILD)).await;
    assert_eq!(r.status, 302);
    assert!(r.location().starts_with(&format!(
        "{REDIRECT}?error=invalid_scope&error_description="
    )));
    assert!(r.location().ends_with("&state=st-1"));
    assert_eq!(h.demo().authorize_requests(), 0);
}

#[tokio::test]
async fn ext_vert_authint_201_request_header_only_when_asked() {
    let h = Harness::start("");
    let page = get(&h.authorize_url(ON_BEHALF)).await;
    assert!(
        page.body
            .contains("(request header): <code>onbehalfof</code>"),
        "{}",
        page.body
    );
    let page = get(&h.authorize_url(CHILD)).await;
    assert!(
        page.body
            .contains("(request header): <code>onbehalfofchild</code>")
    );
    let page = get(&h.authorize_url("&scope=48")).await;
    assert!(page.body.contains("(request header): <code>nee</code>"));
}

#[tokio::test]
async fn ext_vert_authint_201_client_sent_request_header_is_stripped() {
    let h = Harness::start("");
    // On the authorize path, without a representation token...
    let page = get_with(
        &h.authorize_url("&scope=48"),
        &[("x-vert-requested", "onbehalfof")],
    )
    .await;
    assert!(
        page.body.contains("(request header): <code>nee</code>"),
        "{}",
        page.body
    );
    // ...and on every other path.
    let echo = get_with(
        &format!("{}/echo", h.base),
        &[("X-Vert-Requested", "onbehalfof")],
    )
    .await;
    assert!(!echo.body.contains("x-vert-requested"), "{}", echo.body);
}

#[tokio::test]
async fn sealed_state_and_request_header_reach_the_upstream() {
    // The proxy guards /echo as its authorize path: the echo shows what the AS receives.
    let h = Harness::start("[oauth]\nauthorize_path = \"/echo\"\n");
    let url = format!(
        "{}/echo?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state=st-1{ON_BEHALF}&nonce=n%2B1",
        h.base
    );
    let r = get(&url).await;
    assert_eq!(r.status, 200);
    let query = r
        .body
        .split("\"query\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let state = query
        .split('&')
        .find_map(|p| p.strip_prefix("state="))
        .unwrap();
    assert_ne!(state, "st-1", "the AS never sees the client's state");
    assert!(
        state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let opened = h.keys.open(state);
    let medmij_vert_proxy::vert::flow_return::Opened::Flow(flow, _) = opened else {
        panic!("the forwarded state opens with the proxy's key: {opened:?}")
    };
    assert_eq!(flow.state, "st-1");
    assert_eq!(flow.redirect_uri, REDIRECT);
    assert_eq!(flow.requested.unwrap().kind, Kind::OnBehalfOf);
    // Everything else goes as sent.
    assert!(query.contains("&nonce=n%2B1"));
    assert!(query.contains("scope=48%20onbehalfof&MedMij_geboortedatum=19700901"));
    assert!(
        r.body.contains("[\"x-vert-requested\",\"onbehalfof\"]"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn strip_scope_token_removes_it_from_the_forwarded_scope() {
    let h = Harness::start("[representation]\nstrip_scope_token = true\n");
    let page = get(&h.authorize_url(ON_BEHALF)).await;
    assert!(
        page.body.contains("Scope: <code>48</code>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("(request header): <code>onbehalfof</code>")
    );
    // And the flow still completes with representation checked.
    let r = h.login(&page, &[("as", "piet")]).await;
    assert_released(&r);
}

#[tokio::test]
async fn vert1_representation_expected_not_used() {
    let h = Harness::start("");
    let before = h.demo().codes_issued();
    let r = h.flow(ON_BEHALF, &[("as", "self")]).await;
    assert_withheld(
        &h,
        before,
        &r,
        403,
        "Inloggen namens een ander is niet gelukt",
    );
    assert!(
        !r.body.contains("href="),
        "Vert 1 stops the flow: no link back"
    );
    assert!(
        r.body.contains("Voorbeeld PGO"),
        "the PGO's name from the client list"
    );
}

#[tokio::test]
async fn vert1_other_kind_used_than_asked() {
    let h = Harness::start("");
    let before = h.demo().codes_issued();
    let r = h.flow(ON_BEHALF, &[("as", "sanne")]).await;
    assert_withheld(
        &h,
        before,
        &r,
        403,
        "Inloggen namens een ander is niet gelukt",
    );
}

#[tokio::test]
async fn vert1_page_in_english_when_preferred() {
    let h = Harness::start("");
    let page = get(&h.authorize_url(ON_BEHALF)).await;
    let path = login_path(&page.body);
    let body = serde_urlencoded::to_string([("as", "self")]).unwrap();
    let r = send(
        http::Request::post(format!("{}{path}", h.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept-language", "en-GB,en;q=0.9,nl;q=0.5")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body
            .contains("Signing in on behalf of someone else did not work")
    );
    assert_eq!(r.header("content-language"), Some("en"));
}

#[tokio::test]
async fn vert2_representation_used_not_expected() {
    let h = Harness::start("");
    let before = h.demo().codes_issued();
    let r = h.flow("&scope=48", &[("as", "piet")]).await;
    assert_withheld(&h, before, &r, 403, "U logde in namens een ander");
    assert!(!r.body.contains("href="));
}

#[tokio::test]
async fn vert3_birthdate_missing_is_error_redirect_and_nothing_forwarded() {
    let h = Harness::start("");
    let r = get(&h.authorize_url("&scope=48%20onbehalfof")).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location(),
        format!(
            "{REDIRECT}?error=invalid_request&error_description=MedMij_geboortedatum%20missing&state=st-1"
        )
    );
    assert_eq!(
        h.demo().authorize_requests(),
        0,
        "nothing is forwarded upstream"
    );
}

#[tokio::test]
async fn vert3_birthdate_malformed_is_error_redirect() {
    let h = Harness::start("");
    for bad in [
        "19700231",
        "19000229",
        "20991231",
        "1970091",
        "197009011",
        "1970O901",
        "%D9%A1",
    ] {
        let r =
            get(&h.authorize_url(&format!("&scope=onbehalfof&MedMij_geboortedatum={bad}"))).await;
        assert_eq!(r.status, 302, "{bad}");
        let location = r.location();
        assert!(
            location.starts_with(&format!(
                "{REDIRECT}?error=invalid_request&error_description=MedMij_geboortedatum"
            )),
            "{bad}: {location}"
        );
        assert!(location.is_ascii());
        assert!(location.ends_with("&state=st-1"));
        assert!(!location.contains(bad), "the birth date is not echoed");
    }
    assert_eq!(h.demo().authorize_requests(), 0);
}

#[tokio::test]
async fn vert4_birthdate_differs_page_links_back_with_access_denied() {
    let h = Harness::start("");
    let before = h.demo().codes_issued();
    let r = h
        .flow(
            "&scope=onbehalfof&MedMij_geboortedatum=19700902",
            &[("as", "piet")],
        )
        .await;
    assert_withheld(&h, before, &r, 403, "De geboortedatum klopt niet");
    let link = format!(
        "href=\"{REDIRECT}?error=access_denied&#38;error_description=MedMij_geboortedatum%20does%20not%20match%20the%20represented%20person&#38;state=st-1\""
    );
    assert!(r.body.contains(&link), "{}", r.body);
    for date in ["19700902", "19700901"] {
        r.assert_absent(date);
    }
}

/// Logs in as oneself and on behalf of someone, with the demo AS's `signal` fault.
async fn assert_signal_fault_withholds(signal: &str) {
    let h = Harness::start("");
    for (extra, who) in [("&scope=48", "self"), (ON_BEHALF, "piet")] {
        let before = h.demo().codes_issued();
        let r = h.flow(extra, &[("as", who), ("signal", signal)]).await;
        assert_withheld(&h, before, &r, 502, "Er ging iets mis");
    }
}

#[tokio::test]
async fn fail_closed_when_the_as_sends_no_signal() {
    assert_signal_fault_withholds("omit").await;
}

#[tokio::test]
async fn fail_closed_when_the_as_repeats_its_signal() {
    // Two `used` lines that contradict each other: whichever came first, nothing is released.
    assert_signal_fault_withholds("twice").await;
}

#[tokio::test]
async fn as_error_redirect_passes_with_the_original_state() {
    let h = Harness::start("");
    let r = h.flow(ON_BEHALF, &[("as", "deny")]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location(),
        format!("{REDIRECT}?error=access_denied&state=st-1")
    );
}

#[tokio::test]
async fn original_state_is_restored_exactly_as_sent() {
    let h = Harness::start("");
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state=a%2Bb+c~%7E.x&scope=48",
        h.base
    );
    let page = get(&url).await;
    let r = h.login(&page, &[("as", "self")]).await;
    assert_eq!(r.status, 302);
    assert!(
        r.location().ends_with("&state=a%2Bb+c~%7E.x"),
        "{}",
        r.location()
    );
}

/// Logs in through the proxy after an authorization request that went to the AS directly,
/// carrying `state`: how a forged, tampered or stale state reaches the flow return.
async fn return_with_state(h: &Harness, state: &str, who: &str) -> Reply {
    let mut encoded = String::new();
    medmij_vert_proxy::vert::query::encode(state, &mut encoded);
    let page = get(&format!(
        "{}/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state={encoded}",
        h.demo_base()
    ))
    .await;
    h.login(&page, &[("as", who)]).await
}

fn flow(issued_at: u64, requested: Option<Requested>) -> Flow {
    Flow {
        state: "st-1".into(),
        redirect_uri: REDIRECT.into(),
        requested,
        issued_at,
        correlation_id: Uuid::from_u128(42),
        fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn fail_closed_on_forged_tampered_foreign_or_plain_state() {
    let h = Harness::start("");
    let genuine = h.keys.seal(&flow(now(), None));
    let mut tampered = genuine.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let foreign = KeyRing::random().seal(&flow(now(), None));
    let forged = format!("AQ{}", "x".repeat(80));
    for state in [
        tampered.as_str(),
        foreign.as_str(),
        forged.as_str(),
        "st-1",
        "",
    ] {
        let before = h.demo().codes_issued();
        let r = return_with_state(&h, state, "self").await;
        assert_withheld(&h, before, &r, 502, "Er ging iets mis");
        if !state.is_empty() {
            r.assert_absent(state);
        }
    }
    // The genuine state goes through the same path and is released.
    let r = return_with_state(&h, &genuine, "self").await;
    assert_released(&r);
}

#[tokio::test]
async fn expired_state_withholds_the_code() {
    let h = Harness::start("[state]\nflow_ttl = \"5m\"\n");
    let stale = h.keys.seal(&flow(now() - 301, None));
    let before = h.demo().codes_issued();
    let r = return_with_state(&h, &stale, "self").await;
    assert_withheld(&h, before, &r, 403, "Dit duurde te lang");
    assert!(r.body.contains("langer dan 5 minuten"));
    assert!(
        !r.body.contains("href="),
        "no link: the state stays off the page"
    );
    r.assert_absent("st-1");
    // Just within the time to live: released.
    let fresh = h.keys.seal(&flow(now() - 290, None));
    assert_released(&return_with_state(&h, &fresh, "self").await);
}

#[tokio::test]
async fn sealed_flow_with_representation_checked_at_return() {
    // A flow sealed by the proxy's key ring decides the outcome, not what the AS was asked.
    let h = Harness::start("");
    let requested = Some(Requested {
        kind: Kind::OnBehalfOf,
        birthdate: Birthdate::parse_format("19700901").unwrap(),
    });
    let sealed = h.keys.seal(&flow(now(), requested));
    assert_released(&return_with_state(&h, &sealed, "piet").await);
    let before = h.demo().codes_issued();
    let r = return_with_state(&h, &sealed, "self").await;
    assert_withheld(
        &h,
        before,
        &r,
        403,
        "Inloggen namens een ander is niet gelukt",
    );
}

#[tokio::test]
async fn auth_1a_unknown_client_gets_a_page_and_no_redirect() {
    let h = Harness::start("");
    let r = get(&format!(
        "{}/oauth2/authorize?response_type=code&client_id=evil.test&redirect_uri=https%3A%2F%2Fevil.test%2Fcb&state=x",
        h.base
    ))
    .await;
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
    assert!(!r.body.contains("href="));
    assert!(r.body.contains("Deze aanvraag kunnen we niet verwerken"));
    assert!(!r.body.contains("evil.test"));
    assert_eq!(h.demo().authorize_requests(), 0);
}

#[tokio::test]
async fn auth_1a_each_redirect_uri_trick() {
    let h = Harness::start("");
    for uri in [
        "http%3A%2F%2Fpgo.example.nl%2Fcallback",
        "https%3A%2F%2Fpgo.example.nl%3A8443%2Fcallback",
        "https%3A%2F%2Fother.example.nl%2Fcallback",
        "https%3A%2F%2Fpgo.example.nl.evil.test%2Fcallback",
        "https%3A%2F%2Fuser%40pgo.example.nl%2Fcallback",
        "https%3A%2F%2Fpgo.example.nl%2Fcallback%23frag",
        "https%3A%2F%2Fpgo.example.nl%5C%40evil.test%2Fcallback",
        "https%3A%2F%2Fpgo.example.nl%5Ccallback",
        "%2F%2Fpgo.example.nl%2Fcallback",
        "https%3A%2F%2Fpgo.example.nl%2F%0D%0ASet-Cookie%3Ax",
    ] {
        let r = get(&format!(
            "{}/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={uri}&state=x{ON_BEHALF}",
            h.base
        ))
        .await;
        assert_eq!(r.status, 400, "{uri}");
        assert!(r.header("location").is_none(), "{uri}");
        assert!(!r.body.contains("href="), "{uri}");
        assert!(r.body.contains("Voorbeeld PGO"), "names the listed client");
    }
    assert_eq!(h.demo().authorize_requests(), 0);
}

#[tokio::test]
async fn authorize_only_by_get() {
    let h = Harness::start("");
    let r = post_form(&h.authorize_url(ON_BEHALF), &[("a", "b")]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(h.demo().authorize_requests(), 0);
}

#[tokio::test]
async fn parallel_flows_never_collide() {
    // Two tabs: two flows in flight at once, finished in the other order.
    let h = Harness::start("");
    let first = get(&h.authorize_url(ON_BEHALF)).await;
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state=tab-2&scope=48",
        h.base
    );
    let second = get(&url).await;
    let r2 = h.login(&second, &[("as", "self")]).await;
    assert!(r2.location().ends_with("&state=tab-2"), "{}", r2.location());
    let r1 = h.login(&first, &[("as", "piet")]).await;
    assert_released(&r1);
}
