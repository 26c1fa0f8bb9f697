//! Invariants, for arbitrary input:
//! - the proxy never redirects outside the client list;
//! - it never releases a code without a matching sealed flow and signal;
//! - a code for a listed client never passes unchecked.
//!
//! First on the pure rules with many cases, then through the real proxy with fewer.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::NaiveDate;
use medmij_vert_proxy::state::seal::KeyRing;
use medmij_vert_proxy::vert::authorize::{self, Decision};
use medmij_vert_proxy::vert::flow_return::{self, Location, Opened, Signal, Verdict};
use medmij_vert_proxy::vert::{Birthdate, Client, ClientList, Flow, Kind, Requested};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use uuid::Uuid;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Integration tests have no lib.rs beside them, so the file is named outright (cargo
        // runs tests from the package root): its seeds are replayed before new cases.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/it/properties.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

const LISTED: [&str; 2] = ["pgo.example.nl", "app.pgo.nl"];

fn clients() -> ClientList {
    ClientList::new(LISTED.iter().map(|h| Client {
        hostname: h.to_string(),
        name: h.to_string(),
    }))
}

/// The authority of an absolute URL as a browser would see it (scheme://host...).
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(&rest[..rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len())])
}

fn interesting_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("pgo.example.nl".to_string()),
        Just("app.pgo.nl".to_string()),
        Just("evil.test".to_string()),
        Just("https%3A%2F%2Fpgo.example.nl%2Fcb".to_string()),
        Just("https://pgo.example.nl/cb".to_string()),
        Just("https%3A%2F%2Fapp.pgo.nl".to_string()),
        Just("https%3A%2F%2Fpgo.example.nl%40evil.test%2F".to_string()),
        Just("https%3A%2F%2Fpgo.example.nl.evil.test%2F".to_string()),
        Just("https%3A%2F%2Fpgo.example.nl%5C%40evil.test".to_string()),
        Just("https%3A%2F%2Fevil.test%2F%3Fpgo.example.nl".to_string()),
        Just("http%3A%2F%2Fpgo.example.nl%2Fcb".to_string()),
        Just("code".to_string()),
        Just("onbehalfof".to_string()),
        Just("48+onbehalfof".to_string()),
        Just("onbehalfof%20onbehalfofchild".to_string()),
        Just("19700901".to_string()),
        Just("19700231".to_string()),
        "[ -~]{0,12}",
        "(%[0-9A-Fa-f]{2}|[a-z+%]){0,10}",
    ]
}

fn interesting_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("response_type".to_string()),
        Just("client_id".to_string()),
        Just("client%5Fid".to_string()),
        Just("redirect_uri".to_string()),
        Just("scope".to_string()),
        Just("state".to_string()),
        Just("MedMij_geboortedatum".to_string()),
        Just("response_mode".to_string()),
        "[a-z_%]{1,8}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec((interesting_name(), interesting_value()), 0..9).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// A query that is valid apart from a few changes, so that the accepting paths are reached.
fn mostly_valid_query() -> impl Strategy<Value = String> {
    (
        prop::sample::select(LISTED.to_vec()),
        prop::sample::select(vec!["", "&scope=48", "&scope=onbehalfof", "&scope=onbehalfofchild"]),
        prop::sample::select(vec!["", "&MedMij_geboortedatum=19700901", "&MedMij_geboortedatum=x"]),
        query(),
    )
        .prop_map(|(host, scope, date, noise)| {
            format!(
                "response_type=code&client_id={host}&redirect_uri=https%3A%2F%2F{host}%2Fcb&state=s{scope}{date}&{noise}"
            )
        })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn authorize_never_redirects_outside_the_client_list(q in prop_oneof![query(), mostly_valid_query()]) {
        let clients = clients();
        let settings = authorize::Settings {
            clients: &clients,
            enabled: &Kind::ALL,
            today: || NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
            age_today: None,
            issuer: None,
            fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
        };
        match authorize::decide(&authorize::Parsed::new(&q), &settings) {
            Decision::Redirect(r) => {
                let host = authority(&r.location).unwrap_or("");
                prop_assert!(LISTED.contains(&host), "redirect to {:?} from {q:?}", r.location);
                prop_assert!(r.location.starts_with("https://"));
                prop_assert!(!r.location.contains('#'));
                prop_assert!(r.location.bytes().all(|b| b.is_ascii_graphic()));
            }
            Decision::Forward(a) => {
                prop_assert!(LISTED.contains(&a.client.hostname.as_str()));
                prop_assert_eq!(authority(a.redirect_uri), Some(a.client.hostname.as_str()));
                prop_assert!(ClientList::check_redirect_uri(&a.client.hostname, a.redirect_uri).is_ok());
                prop_assert!(!a.state.is_empty());
            }
            Decision::Refuse(_) => {}
        }
    }
}

fn location() -> impl Strategy<Value = String> {
    let base = prop::sample::select(vec![
        "https://pgo.example.nl/cb",
        "https://pgo.example.nl/other",
        "https://app.pgo.nl/cb",
        "https://PGO.example.nl/cb",
        "https://pgo.example.nl:443/cb",
        "https://x@pgo.example.nl/cb",
        "//pgo.example.nl/cb",
        "http://pgo.example.nl/cb",
        "https://evil.test/cb",
        "https://pgo.example.nl.evil.test/cb",
        "/cb",
        "",
    ]);
    let param = prop_oneof![
        Just("code=C0DE".to_string()),
        Just("co%64e=C0DE".to_string()),
        Just("code=".to_string()),
        Just("state=SEALED".to_string()),
        Just("state=%53EALED".to_string()),
        Just("state=OTHER".to_string()),
        Just("state=TAMPERED".to_string()),
        Just("error=access_denied".to_string()),
        "[a-z%=]{0,6}",
    ];
    (
        base,
        prop::collection::vec(param, 0..5),
        prop::option::of("[a-z=&]{0,6}"),
    )
        .prop_map(|(base, params, fragment)| {
            let mut l = base.to_string();
            if !params.is_empty() {
                l.push('?');
                l.push_str(&params.join("&"));
            }
            if let Some(f) = fragment {
                l.push('#');
                l.push_str(&f);
            }
            l
        })
}

fn requested() -> impl Strategy<Value = Option<Requested>> {
    prop::option::of((
        any::<bool>(),
        prop::sample::select(vec!["19700901", "20200315"]),
    ))
    .prop_map(|r| {
        r.map(|(child, date)| Requested {
            kind: if child {
                Kind::OnBehalfOfChild
            } else {
                Kind::OnBehalfOf
            },
            birthdate: Birthdate::parse_format(date).unwrap(),
        })
    })
}

/// Whether a location carries a `code` for a listed client (an independent, simple oracle).
fn code_for_listed_client(location: &str) -> bool {
    let host = authority(location)
        .map(|a| {
            a.rsplit('@')
                .next()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_ascii_lowercase()
        })
        .or_else(|| {
            location
                .strip_prefix("//")
                .map(|r| r.split('/').next().unwrap().to_string())
        });
    let listed = host.is_some_and(|h| LISTED.contains(&h.as_str()));
    let query = location
        .split('#')
        .next()
        .unwrap()
        .split_once('?')
        .map_or("", |q| q.1);
    listed
        && query
            .split('&')
            .any(|p| p.starts_with("code=") || p.starts_with("co%64e="))
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn a_code_is_released_only_for_its_flow_and_signal(
        location in location(),
        requested in requested(),
        issued_ago in prop::sample::select(vec![0u64, 100, 1799, 1801, 100_000]),
        used in prop::option::of(prop::sample::select(vec!["none", "onbehalfof", "onbehalfofchild", "yes"])),
        birthdate in prop::option::of(prop::sample::select(vec!["19700901", "20200315", "19700231"])),
    ) {
        let now = 1_800_000_000u64;
        let flow = Flow {
            state: "orig".into(),
            redirect_uri: "https://pgo.example.nl/cb".into(),
            requested,
            issued_at: now - issued_ago,
            correlation_id: Uuid::nil(),
            fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
        };
        let clients = clients();
        let settings = flow_return::Settings { clients: &clients, clock: medmij_vert_proxy::vert::flow::Clock { now, ttl: 1800, skew: 60 }, age_today: None };
        let opened_flow = flow.clone();
        let verdict = flow_return::inspect(
            Location::Text(&location),
            &settings,
            |state| match state {
                "SEALED" => Opened::Flow(opened_flow, [7; 32]),
                "TAMPERED" => Opened::Invalid("tampered"),
                _ => Opened::Foreign,
            },
            Signal {
                used,
                birthdate,
                repeated: false,
            },
            None,
        );
        match &verdict {
            Verdict::Release { location: released, flow: f, code, .. } => {
                prop_assert_eq!(f, &flow);
                // The code the verdict carries is the one the client gets (an independent
                // reader: serde_urlencoded).
                let query = released.split_once('?').map_or("", |(_, q)| q);
                let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
                let codes: Vec<&String> = pairs.iter().filter(|(n, _)| n == "code").map(|(_, v)| v).collect();
                prop_assert_eq!(codes, vec![code]);
                prop_assert!(released.starts_with("https://pgo.example.nl/cb?"), "{}", released);
                prop_assert!(!released.contains('#'));
                prop_assert!(released.contains("state=orig"));
                prop_assert!(issued_ago <= 1800);
                let want_used = flow.requested.map_or("none", |r| r.kind.token());
                prop_assert_eq!(used, Some(want_used));
                if let Some(r) = flow.requested {
                    prop_assert_eq!(birthdate.map(|b| b.to_string()), Some(r.birthdate.to_string()));
                }
            }
            Verdict::Restore { location: restored, .. } => {
                prop_assert!(restored.starts_with("https://pgo.example.nl/cb"));
                prop_assert!(!code_for_listed_client(restored));
            }
            Verdict::PassThrough | Verdict::StatelessError => {
                prop_assert!(!code_for_listed_client(&location), "code passed unchecked: {}", location);
            }
            Verdict::AddState { .. } => prop_assert!(false, "no authorization request was answered"),
            Verdict::Withhold { .. } => {}
        }
    }
}

/// An equivalent spelling of `uri` (RFC 3986 §6.2.2): letter case of scheme and host changed,
/// unreserved characters percent-encoded (hex in either case), `./` and `x/../` segments added.
fn respelling(uri: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(0u8..6, uri.len()).prop_map(move |choices| {
        let path_start = uri.find("://").unwrap() + 3;
        let path_start = path_start
            + uri[path_start..]
                .find('/')
                .unwrap_or(uri.len() - path_start);
        let mut out = String::new();
        for (i, (c, choice)) in uri.chars().zip(choices).enumerate() {
            let unreserved = c.is_ascii_alphanumeric() || "-._~".contains(c);
            match choice {
                0 if i < path_start => out.push(c.to_ascii_uppercase()),
                1 if unreserved && i >= path_start => out.push_str(&format!("%{:02X}", c as u8)),
                2 if unreserved && i >= path_start => out.push_str(&format!("%{:02x}", c as u8)),
                3 if c == '/' && i >= path_start => out.push_str("/./"),
                4 if c == '/' && i >= path_start => out.push_str("/x/../"),
                _ => out.push(c),
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn a_respelled_redirect_uri_is_released_to_the_clients_spelling(
        respelled in respelling("https://pgo.example.nl/a-b/c.d~e_f/cb"),
        other_path in prop::sample::select(vec!["/a-b/c.d~e_f/cb/", "/a-b/c.d~e_f/cb2", "/a-b/c.d~e_f%2Fcb", "/A-b/c.d~e_f/cb"]),
    ) {
        let flow = Flow {
            state: "orig".into(),
            redirect_uri: "https://pgo.example.nl/a-b/c.d~e_f/cb".into(),
            requested: None,
            issued_at: 1_800_000_000,
            correlation_id: Uuid::nil(),
            fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
        };
        let clients = clients();
        let settings = flow_return::Settings { clients: &clients, clock: medmij_vert_proxy::vert::flow::Clock { now: 1_800_000_000, ttl: 1800, skew: 60 }, age_today: None };
        let signal = Signal { used: Some("none"), birthdate: None, repeated: false };
        let opened = |state: &str| match state {
            "SEALED" => Opened::Flow(flow.clone(), [7; 32]),
            _ => Opened::Foreign,
        };
        let location = format!("{respelled}?code=C&state=SEALED");
        let verdict = flow_return::inspect(Location::Text(&location), &settings, opened, signal, None);
        prop_assert_eq!(
            verdict,
            Verdict::Release {
                location: "https://pgo.example.nl/a-b/c.d~e_f/cb?code=C&state=orig".into(),
                flow: flow.clone(),
                id: [7; 32],
                code: "C".into(),
            }
        );
        // Not the same URI: withheld.
        let location = format!("https://pgo.example.nl{other_path}?code=C&state=SEALED");
        let verdict = flow_return::inspect(Location::Text(&location), &settings, opened, signal, None);
        prop_assert!(matches!(verdict, Verdict::Withhold { .. }), "{:?}", verdict);
    }
}

// Through the real proxy: a scripted upstream answers every request with the Location and
// signal the test chose.

fn sealed_or_not() -> impl Strategy<Value = u8> {
    0u8..4
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn through_the_proxy_no_code_escapes_unchecked(
        location in location(),
        which_state in sealed_or_not(),
        used in prop::option::of(prop::sample::select(vec!["none", "onbehalfof"])),
        requested in requested(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let upstream = crate::support::Upstream::scripted();
            let h = crate::support::Harness::start_with_upstream(
                &upstream.url(),
                "[clients]\nstatic = [{ hostname = \"pgo.example.nl\" }, { hostname = \"app.pgo.nl\" }]\n",
            );
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
            let flow = Flow {
                state: "orig".into(),
                redirect_uri: "https://pgo.example.nl/cb".into(),
                requested,
                issued_at: now,
                correlation_id: Uuid::nil(),
                fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
            };
            let state = match which_state {
                0 => h.keys.seal(&flow),
                1 => KeyRing::random().seal(&flow),
                2 => "plain-state".into(),
                _ => String::new(),
            };
            let location = location.replace("SEALED", &state);
            upstream.set(&location, used, flow.requested.map(|r| r.birthdate.to_string()).as_deref());
            let r = crate::support::get(&format!("{}/login", h.base)).await;
            let out = r.location().to_string();
            if r.status.is_redirection() && code_for_listed_client(&out) {
                // Released: only for a genuine flow, back at its redirect_uri, state restored.
                assert_eq!(which_state, 0, "released without the proxy's seal: {location} -> {out}");
                assert!(out.starts_with("https://pgo.example.nl/cb?"), "{out}");
                assert!(out.contains("state=orig"), "{out}");
                assert_eq!(used, Some(flow.requested.map_or("none", |r| r.kind.token())));
            }
            if !r.status.is_redirection() {
                r.assert_absent("C0DE");
            }
            assert!(r.header("x-vert-representation").is_none());
        });
    }
}
