//! `vert::uri`: RFC 3986 §6.2.2 normalisation never panics, is idempotent, keeps ASCII
//! ASCII, and never makes URIs with different hosts equivalent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmij_vert_proxy::vert::uri::{equivalent, normalize};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Two URIs from one input: split at the first newline.
    let (a, b) = text.split_once('\n').unwrap_or((text, text));
    for uri in [a, b] {
        if let Some(once) = normalize(uri) {
            assert_eq!(normalize(&once).as_deref(), Some(once.as_str()), "{uri:?}");
            assert!(!uri.is_ascii() || once.is_ascii(), "{uri:?}");
        }
    }
    if equivalent(a, b) && a != b {
        let host = |u: &str| {
            let n = normalize(u).expect("equivalent URIs normalise");
            let rest = &n[n.find("://").unwrap() + 3..];
            rest[..rest.find('/').unwrap_or(rest.len())].to_owned()
        };
        assert_eq!(host(a), host(b), "{a:?} ~ {b:?}");
    }
});
