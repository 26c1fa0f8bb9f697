//! The authorization request parser and decision: never a panic; a redirect only to a listed
//! client's validated redirect_uri; a forwarded request always carries the sealed state.
#![no_main]

use std::sync::LazyLock;

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use medmij_vert_proxy::vert::authorize::{self, Decision};
use medmij_vert_proxy::vert::{Client, ClientList, Kind, query};

static CLIENTS: LazyLock<ClientList> = LazyLock::new(|| {
    ClientList::new(["pgo.example.nl", "app.pgo.nl"].map(|h| Client {
        hostname: h.into(),
        name: h.into(),
    }))
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for pair in query::pairs(text) {
        let _ = query::decode(pair.name);
        let _ = query::decode(pair.value);
    }
    let settings = authorize::Settings {
        clients: &CLIENTS,
        enabled: &Kind::ALL,
        today: || NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
        age_today: Some(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()),
        issuer: None,
        fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
    };
    match authorize::decide(&authorize::Parsed::new(text), &settings) {
        Decision::Redirect(r) => {
            let host = r.location["https://".len()..]
                .split(['/', '?'])
                .next()
                .unwrap_or("");
            assert!(r.location.starts_with("https://"), "{}", r.location);
            assert!(CLIENTS.get(host).is_some(), "redirect to {}", r.location);
            assert!(!r.location.contains('#'));
            assert!(r.location.bytes().all(|b| b.is_ascii_graphic()));
        }
        Decision::Forward(a) => {
            assert!(ClientList::check_redirect_uri(&a.client.hostname, &a.redirect_uri).is_ok());
            let forwarded = a.forward_target("/oauth2/authorize", "SEALED", true);
            assert!(forwarded.contains("state=SEALED"));
        }
        Decision::Refuse(_) => {}
    }
});
