//! The token body reading (`vert::token::parse`): never a panic, and a body it lets through
//! with a code holds exactly one `grant_type=authorization_code` and one `code`, each named
//! exactly so, and nothing else that any lenient reader (case, PHP mangling, a NUL, a `;`)
//! would take for either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmij_vert_proxy::vert::token::{self, TokenRequest};
use medmij_vert_proxy::vert::{fold, query};

fuzz_target!(|data: &[u8]| {
    let TokenRequest::Code(code) = token::parse(data) else {
        return;
    };
    let body = std::str::from_utf8(data).expect("a code is read only from UTF-8");
    let (mut grants, mut codes) = (0, 0);
    // Read as the most splitting reader does: `&` and `;` both separate pairs.
    for piece in body.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        // A piece behind a `;` whose name does not decode (raw control bytes) is read as
        // `code` by no framework; the proxy leaves it alone, as it must every other name.
        let Ok(name) = query::decode(name) else {
            continue;
        };
        match fold::read_as(&name, &["grant_type", "code"]) {
            Some("grant_type") => {
                grants += 1;
                assert_eq!(name, "grant_type");
                assert_eq!(query::decode(value).unwrap(), "authorization_code");
            }
            Some("code") => {
                codes += 1;
                assert_eq!(name, "code");
                assert_eq!(query::decode(value).unwrap(), code);
            }
            _ => {}
        }
    }
    assert_eq!((grants, codes), (1, 1), "{body:?}");
});
