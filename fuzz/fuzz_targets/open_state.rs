//! The sealed-state opener: arbitrary input never opens as a flow (it would be a forgery), never
//! panics; and any flow sealed opens to itself.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use medmij_vert_proxy::state::seal::KeyRing;
use medmij_vert_proxy::vert::flow_return::Opened;
use medmij_vert_proxy::vert::{Birthdate, Flow, Kind, Requested};

static KEYS: LazyLock<KeyRing> = LazyLock::new(|| {
    KeyRing::from_key_file("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap()
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if mode % 2 == 0 {
        // Anything from the outside: a flow out of it would mean a forged seal.
        assert!(!matches!(KEYS.open(&text), Opened::Flow(..)));
    } else {
        let mid = (0..=text.len() / 2)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        let (state, uri) = text.split_at(mid);
        let requested = (mode & 2 != 0).then(|| Requested {
            kind: if mode & 4 != 0 {
                Kind::OnBehalfOfChild
            } else {
                Kind::OnBehalfOf
            },
            birthdate: Birthdate::parse_format("19700901").unwrap(),
        });
        let flow = Flow {
            state: state.to_owned(),
            redirect_uri: uri.to_owned(),
            requested,
            issued_at: u64::from(mode) * 1_000_003,
            correlation_id: uuid::Uuid::from_u128(u128::from(mode)),
            fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
        };
        let sealed = KEYS.seal(&flow);
        assert!(
            sealed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(KEYS.open(&sealed).into_flow(), Some(flow));
    }
});
