//! The inspection of an upstream Location: never a panic; a code is released only for the
//! sealed flow, to its redirect_uri, with the client's state and a matching signal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmij_vert_proxy::vert::flow_return::{self, Location, Opened, Signal, Verdict};
use medmij_vert_proxy::vert::{Birthdate, Client, ClientList, Flow, Kind, Requested};

fuzz_target!(|data: &[u8]| {
    // Fields separated by NUL: Location, signal used, signal birth date; the first byte picks
    // what the flow asked for.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut fields = text.split('\0');
    let location = fields.next().unwrap_or("");
    let used = fields.next();
    let birthdate = fields.next();
    let clients = ClientList::new([Client {
        hostname: "pgo.example.nl".into(),
        name: "PGO".into(),
    }]);
    let requested = (mode & 1 != 0).then(|| Requested {
        kind: if mode & 2 != 0 {
            Kind::OnBehalfOfChild
        } else {
            Kind::OnBehalfOf
        },
        birthdate: Birthdate::parse_format("19700901").unwrap(),
    });
    let flow = Flow {
        state: "orig%2Bstate".into(),
        redirect_uri: "https://pgo.example.nl/cb".into(),
        requested,
        issued_at: 1_000,
        correlation_id: uuid::Uuid::nil(),
        fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
    };
    let settings = flow_return::Settings {
        clients: &clients,
        clock: medmij_vert_proxy::vert::flow::Clock {
            now: 1_000 + u64::from(mode >> 2) * 100,
            ttl: 1_800,
            skew: 60,
        },
        age_today: None,
    };
    let opened = flow.clone();
    let verdict = flow_return::inspect(
        Location::Text(location),
        &settings,
        |state| match state {
            "SEALED" => Opened::Flow(opened, [7; 32]),
            "BAD" => Opened::Invalid("tampered"),
            _ => Opened::Foreign,
        },
        Signal {
            used,
            birthdate,
            repeated: false,
        },
        None,
    );
    match verdict {
        Verdict::Release {
            location: released,
            flow: f,
            id,
            code,
        } => {
            assert_eq!(id, [7; 32]);
            assert_eq!(f, flow);
            // The code it carries is the one code of the released Location.
            let query = released.split_once('?').map_or("", |(_, q)| q);
            let codes: Vec<String> = medmij_vert_proxy::vert::query::pairs(query)
                // Named as the proxy reads names: decoded (`co%64e` is `code`).
                .filter(|pair| {
                    medmij_vert_proxy::vert::query::decode(pair.name).is_ok_and(|n| n == "code")
                })
                .map(|pair| {
                    let value = medmij_vert_proxy::vert::query::decode(pair.value);
                    value.unwrap().into_owned()
                })
                .collect();
            assert_eq!(codes, [code]);
            assert!(
                released.starts_with("https://pgo.example.nl/cb?"),
                "{released}"
            );
            assert!(!released.contains('#'));
            assert!(released.contains("state=orig%2Bstate"));
            assert_eq!(
                used,
                Some(flow.requested.map_or("none", |r| r.kind.token()))
            );
            if let Some(r) = flow.requested {
                assert_eq!(birthdate, Some(r.birthdate.to_string().as_str()));
            }
        }
        Verdict::Restore {
            location: restored, ..
        } => {
            assert!(
                restored.starts_with("https://pgo.example.nl/cb"),
                "{restored}"
            );
        }
        // `inspect` answers no authorization request: nothing to add a state from.
        Verdict::AddState { .. } => panic!("AddState without an authorization request"),
        Verdict::PassThrough | Verdict::StatelessError | Verdict::Withhold { .. } => {}
    }
});
