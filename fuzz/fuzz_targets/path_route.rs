//! Path canonicalisation and routing (`seam::paths`): never a panic; the canonical form is
//! idempotent (a second reading changes nothing) and ASCII-only paths stay ASCII; a path whose
//! canonical form is the authorize path routes there, under any setting of case folding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmij_vert_proxy::seam::paths::{Routes, canonical};
use medmij_vert_proxy::vocab::Route;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let routes = Routes::new("/oauth2/authorize", Some("/oauth2/token"), false);
    let route = routes.route(path);
    if let Some(once) = canonical(path) {
        // A canonical path reads as itself (when it reads at all: `100%.png` is no escape).
        if let Some(again) = canonical(&once.path) {
            assert_eq!(again.path, once.path, "{path:?}");
        }
        if !once.lookalike {
            assert!(once.path.is_ascii(), "{path:?}");
        }
        if once.path == "/oauth2/authorize" {
            assert_eq!(route, Route::Authorize, "{path:?}");
        }
        if once.path == "/oauth2/token" {
            assert_eq!(route, Route::Token, "{path:?}");
        }
    } else {
        assert_eq!(route, Route::Unreadable, "{path:?}");
    }
});
