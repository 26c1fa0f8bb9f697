//! `vert::syntax`: percent-decoding, dot segments and authorities never panic, and agree with
//! each other on what reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmij_vert_proxy::vert::syntax::{self, Authority};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let decoded = syntax::percent_decode(text);
    assert_eq!(decoded.is_some(), syntax::escapes_are_valid(text));
    if let Some(decoded) = &decoded {
        assert!(decoded.len() <= text.len());
    }
    let (segments, _) = syntax::resolve_dots(text.split('/'));
    assert!(segments.iter().all(|s| *s != "." && *s != ".."));
    let authority = Authority::split(text);
    assert!(!authority.host.contains('@'));
});
