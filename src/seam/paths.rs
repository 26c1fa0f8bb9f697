//! Which requests get the authorize checks (and, the same way, the token guard's). An upstream
//! router may map many spellings of a path to the same handler (`/oauth2/%61uthorize`, `/oauth2//authorize/`, `/OAUTH2/authorize;x`,
//! `/a/../oauth2/authorize`, `\`); every spelling that could reach the authorize endpoint must be
//! checked, so paths are compared in one canonical form:
//!
//! 1. percent-decoded (repeatedly, up to three times, for routers that decode twice);
//! 2. `\` read as `/`;
//! 3. `;parameters` removed from each segment;
//! 4. empty and `.` segments removed, `..` resolved;
//! 5. trailing dots and spaces removed from each segment (Windows servers ignore them);
//! 6. beyond ASCII: NFKC, and each character that Unicode case mapping takes to ASCII read as
//!    that ([`crate::vert::fold::loose`]: `ı`, `İ`, `K`, `ſ`, fullwidth `／` and letters); such a
//!    path is compared ignoring letter case whatever the setting, since Java's
//!    `equalsIgnoreCase` and .NET's `OrdinalIgnoreCase` are what make these spellings work;
//! 7. lower-cased when `oauth.case_insensitive_paths` is true.
//!
//! The path counts as the authorize path when this form is it, or when it is it after
//! - a `.suffix` on the last segment is removed (`/oauth2/authorize.json`: Spring MVC's suffix
//!   pattern matching), or
//! - a leading `//host` is removed (`//x/oauth2/authorize`: stacks that read the target as a
//!   scheme-relative URL).
//!
//! A path that cannot be decoded, or decodes to control characters, is refused.

use crate::vocab::Route;

/// The guarded paths in canonical form.
#[derive(Debug, Clone)]
pub struct Routes {
    authorize: String,
    token: Option<String>,
    case_insensitive: bool,
}

impl Routes {
    /// The configured paths are plain (checked by the config: no dots, escapes or empty
    /// segments; a trailing `/` allowed), so their canonical form is themselves without the
    /// trailing `/`, lower-cased if needed.
    pub fn new(authorize_path: &str, token_path: Option<&str>, case_insensitive: bool) -> Self {
        let canonical = |path: &str| {
            let path = match path.trim_end_matches('/') {
                "" => "/",
                trimmed => trimmed,
            };
            if case_insensitive {
                path.to_ascii_lowercase()
            } else {
                path.to_owned()
            }
        };
        Routes {
            authorize: canonical(authorize_path),
            token: token_path.map(canonical),
            case_insensitive,
        }
    }

    pub fn route(&self, path: &str) -> Route {
        if is_plain(path) {
            // The common case: no spelling tricks possible, no allocation.
            return self.route_canonical(path, self.case_insensitive);
        }
        self.route_full(path)
    }

    /// [`Routes::route`] without the fast path: always the canonical reading.
    fn route_full(&self, path: &str) -> Route {
        let Some(canonical) = canonical(path) else {
            return Route::Unreadable;
        };
        let fold_case = self.case_insensitive || canonical.lookalike;
        match self.route_canonical(&canonical.path, fold_case) {
            Route::Other => match &canonical.without_host {
                Some(rest) => self.route_canonical(rest, fold_case),
                None => Route::Other,
            },
            route => route,
        }
    }

    fn route_canonical(&self, path: &str, fold_case: bool) -> Route {
        // Spring MVC's suffix pattern matching routes `/authorize.json` (and `.a.b`) to
        // `/authorize`.
        let last = path.bytes().rposition(|b| b == b'/').map_or(0, |i| i + 1);
        let without_suffix = match path[last..].bytes().position(|b| b == b'.') {
            Some(dot) if dot > 0 => Some(&path[..last + dot]),
            _ => None,
        };
        let same = |p: &str, wanted: &str| {
            if fold_case {
                p.eq_ignore_ascii_case(wanted)
            } else {
                p == wanted
            }
        };
        let is =
            |wanted: &str| same(path, wanted) || without_suffix.is_some_and(|p| same(p, wanted));
        let below = |wanted: &str| {
            path.get(..wanted.len() + 1)
                .and_then(|head| head.strip_suffix('/'))
                .is_some_and(|head| same(head, wanted))
        };
        let guarded = || std::iter::once(&self.authorize).chain(&self.token);
        if is(&self.authorize) {
            Route::Authorize
        } else if self.token.as_deref().is_some_and(is) {
            Route::Token
        } else if guarded().any(|wanted| wanted != "/" && below(wanted)) {
            Route::Below
        } else {
            Route::Other
        }
    }
}

/// A path in canonical form (see the module documentation).
#[derive(Debug, PartialEq, Eq)]
pub struct Canonical {
    pub path: String,
    /// The path began with `//host`: the canonical form of the rest.
    pub without_host: Option<String>,
    /// Characters beyond ASCII were read as ASCII.
    pub lookalike: bool,
}

/// A path that is already canonical (apart from letter case): visible ASCII only, so that no
/// character another stack folds onto ASCII can skip [`canonical`].
fn is_plain(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    // One pass over the bytes (every request; the split and searches it replaces cost
    // about four times as much, issue 31): visible ASCII without `%`, `;` or `\`, and every
    // segment non-empty and not ending in `.` (so neither `.` nor `..`; a space is not
    // visible ASCII). `prev` starts as the leading `/`.
    let mut prev = b'/';
    for &b in rest.as_bytes() {
        if !b.is_ascii_graphic() || matches!(b, b'%' | b';' | b'\\') {
            return false;
        }
        if b == b'/' && matches!(prev, b'/' | b'.') {
            return false;
        }
        prev = b;
    }
    rest.is_empty() || !matches!(prev, b'/' | b'.')
}

/// The canonical form of a path (see the module documentation), or `None` when it cannot be
/// read one way.
pub fn canonical(path: &str) -> Option<Canonical> {
    let mut decoded = percent_decode(path)?;
    for _ in 0..2 {
        match percent_decode(&decoded) {
            Some(again) if again != decoded => decoded = again,
            _ => break,
        }
    }
    // An escape left after the decodings (three layers, or one beside a stray `%` that stopped
    // them): a router that decodes once more, or escape by escape as WHATWG's does, reads
    // another path. A `%` that starts no escape is a literal to every decoder.
    if has_escape(&decoded) {
        return None;
    }
    if decoded.chars().any(char::is_control) {
        return None;
    }
    let lookalike = !decoded.is_ascii();
    let read = crate::vert::fold::loose(&decoded).replace('\\', "/");
    // A Unicode reading that makes a `%` (a fullwidth `％` is `%`): a router that folds, then
    // decodes, reads yet another path (found by the `path_route` fuzz target).
    let percents = |text: &str| text.bytes().filter(|b| *b == b'%').count();
    if lookalike && percents(&read) > percents(&decoded) {
        return None;
    }
    // A combining mark after a character folded to ASCII (`ı` + U+0330): NFC composes the two
    // into another letter, a stripping router reads the ASCII alone; no one reading (found by
    // the `path_route` fuzz target: the reading was not its own fixpoint).
    if lookalike
        && read
            .chars()
            .any(unicode_normalization::char::is_combining_mark)
    {
        return None;
    }
    let segments = segments(&read);
    let without_host = read
        .starts_with("//")
        .then(|| join(segments.get(1..).unwrap_or_default()));
    Some(Canonical {
        path: join(&segments),
        without_host,
        lookalike,
    })
}

/// The segments of a decoded path: `;parameters`, empty and `.` segments gone, `..` resolved,
/// trailing dots and spaces trimmed.
fn segments(decoded: &str) -> Vec<&str> {
    let named = decoded
        .split('/')
        .map(|segment| segment.split(';').next().unwrap_or(""))
        .filter(|segment| !segment.is_empty());
    let (resolved, _) = crate::vert::syntax::resolve_dots(named);
    resolved
        .into_iter()
        .map(|segment| segment.trim_end_matches(['.', ' ']))
        .filter(|segment| !segment.is_empty())
        .collect()
}

fn join(segments: &[&str]) -> String {
    if segments.is_empty() {
        return String::from("/");
    }
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        out.push_str(segment);
    }
    out
}

/// Whether `s` holds a `%` followed by two hex digits.
fn has_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    String::from_utf8(crate::vert::syntax::percent_decode(s)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(ci: bool) -> Routes {
        Routes::new("/oauth2/authorize", Some("/oauth2/token"), ci)
    }

    #[test]
    fn bypass_spellings_reach_the_authorize_checks() {
        let p = paths(true);
        for path in [
            "/oauth2/authorize",
            "/oauth2/authorize/",
            "/oauth2//authorize",
            "//oauth2/authorize",
            "/oauth2/%61uthorize",
            "/oauth2%2Fauthorize",
            "/oauth2%2fauthorize",
            "/oauth2/%2561uthorize",
            "/oauth2/authorize;jsessionid=1",
            "/oauth2;x=1/authorize",
            "/oauth2/./authorize",
            "/x/../oauth2/authorize",
            "/oauth2/x/%2E%2E/authorize",
            "/OAUTH2/Authorize",
            "/oauth2\\authorize",
            "/oauth2%5Cauthorize",
            "/oauth2/authorize.",
            "/oauth2/authorize%20",
            "/../oauth2/authorize",
        ] {
            assert_eq!(p.route(path), Route::Authorize, "{path}");
        }
    }

    #[test]
    fn case_sensitive_when_configured() {
        let p = paths(false);
        assert_eq!(p.route("/OAUTH2/authorize"), Route::Other);
        assert_eq!(p.route("/oauth2/%41uthorize"), Route::Other);
        assert_eq!(p.route("/oauth2/authorize/"), Route::Authorize);
    }

    #[test]
    fn other_paths_are_other() {
        let p = paths(true);
        for path in [
            "/",
            "/oauth2/authorized",
            // (`/oauth2/authorize/x` is below it: issue 27.)
            "/oauth2/authorizex",
            "/static/app.css",
            "/oauth2/auth%6Frize2",
            "/a/b/../c",
        ] {
            assert_eq!(p.route(path), Route::Other, "{path}");
        }
    }

    #[test]
    fn unreadable_paths_are_refused() {
        let p = paths(true);
        for path in ["/oauth2/%zz", "/oauth2/%", "/a%00b", "/a%0d%0ab", "/%FF"] {
            assert_eq!(p.route(path), Route::Unreadable, "{path}");
        }
    }

    /// Found by the `path_route` fuzz target's idempotence oracle: four layers of escapes.
    #[test]
    fn escapes_left_after_three_decodings_are_unreadable() {
        let p = paths(false);
        assert_eq!(p.route("/oauth2/%25252561uthorize"), Route::Unreadable);
        assert_eq!(p.route("/oauth2/%252561uthorize"), Route::Authorize);
        // A literal `%` left over is no escape: the path reads one way.
        assert_eq!(p.route("/static/100%25.png"), Route::Other);
        // Nor may folding make one: a fullwidth `％61` is `%61`, which a router decodes once
        // more (the `path_route` fuzz target's finding, `..％5Aota-////t/o`).
        assert_eq!(p.route("/oauth2/\u{ff05}61uthorize"), Route::Unreadable);
        assert_eq!(p.route("/..\u{ff05}5Aota-////t/o"), Route::Unreadable);
        assert_eq!(
            p.route("/h2/;zo\u{ff05}F\u{5f8f};xo-/''..\u{ff05}5A''o-/"),
            Route::Unreadable
        );
        assert_eq!(p.route("/oauth2/author%C4%B1%CC%B0ze"), Route::Unreadable);
        // An escape beside a stray `%` that stopped the decodings (the fuzz target's fourth).
        assert_eq!(p.route("/a/%2525/b%25"), Route::Unreadable);
        assert_eq!(p.route("/a/100%25/b"), Route::Other);
    }

    /// Issue 27, found by the differential harness: Rack's `URLMap` hands a path below a
    /// mounted one to its handler.
    #[test]
    fn differential_paths_below_the_authorize_or_token_path_are_below() {
        let p = paths(true);
        for path in [
            "/oauth2/authorize/x",
            "/OAuth2/Authorize/x/y",
            "/oauth2//authorize/x",
            "/oauth2/%61uthorize/x",
            "/oauth2/token/x",
        ] {
            assert_eq!(p.route(path), Route::Below, "{path}");
        }
        for path in [
            "/oauth2/authorizex",
            "/oauth2/authorize-x",
            "/oauth2/x/authorize",
        ] {
            assert_eq!(p.route(path), Route::Other, "{path}");
        }
        assert_eq!(p.route("/oauth2/authorize/x/.."), Route::Authorize);
    }

    #[test]
    fn canonical_forms() {
        let path = |p: &str| canonical(p).map(|c| c.path);
        assert_eq!(path("/a/./b/../c/").as_deref(), Some("/a/c"));
        assert_eq!(path("/..").as_deref(), Some("/"));
        assert_eq!(path("/a;b/c;d").as_deref(), Some("/a/c"));
        assert_eq!(
            canonical("//x/a").unwrap(),
            Canonical {
                path: "/x/a".into(),
                without_host: Some("/a".into()),
                lookalike: false
            }
        );
    }

    #[test]
    fn authorize_path_beyond_ascii_gets_the_checks() {
        // Case-sensitive on purpose: lookalikes fold case whatever the setting.
        for p in [paths(true), paths(false)] {
            for path in [
                "/oauth2/author%C4%B1ze",    // ı, dotless i (Java equalsIgnoreCase)
                "/OAUTH2/AUTHOR%C4%B0ZE",    // İ, dotted capital I (.NET)
                "/oauth2/%EF%BD%81uthorize", // fullwidth a (NFKC)
                "/oauth2%EF%BC%8Fauthorize", // fullwidth solidus (NFKC)
                "/%EF%BD%8F%EF%BD%81uth2/authorize.json", // fullwidth o, a, and a suffix
            ] {
                assert_eq!(p.route(path), Route::Authorize, "{path}");
            }
            // ẓ is not z: no router reads it so.
            assert_eq!(p.route("/oauth2/authori%E1%BA%93e"), Route::Other);
        }
    }

    #[test]
    fn authorize_path_with_a_suffix_gets_the_checks() {
        let p = paths(true);
        for path in [
            "/oauth2/authorize.json",
            "/oauth2/authorize.do",
            "/oauth2/authorize.a.b",
            "/oauth2/%61uthorize.json",
        ] {
            assert_eq!(p.route(path), Route::Authorize, "{path}");
        }
        for path in [
            "/oauth2/authorizes.json",
            "/oauth2.json/x",
            "/oauth2/.authorize",
        ] {
            assert_eq!(p.route(path), Route::Other, "{path}");
        }
    }

    #[test]
    fn authorize_path_behind_a_double_slash_host_gets_the_checks() {
        let p = paths(true);
        for path in [
            "//x/oauth2/authorize",
            "//evil.example:443/oauth2/authorize",
            "/%2Fx/oauth2/authorize",
        ] {
            assert_eq!(p.route(path), Route::Authorize, "{path}");
        }
        assert_eq!(p.route("/x/oauth2/authorize"), Route::Other);
    }

    #[test]
    fn plain_paths_skip_canonicalisation() {
        assert!(is_plain("/oauth2/authorize"));
        assert!(is_plain("/"));
        assert!(is_plain("/static/app.css"));
        for tricky in [
            "/a/", "/a//b", "/a/.", "/a/..", "/a.", "/a%41", "/a;b", "/a\\b", "", "a",
        ] {
            assert!(!is_plain(tricky), "{tricky}");
        }
    }

    #[test]
    fn the_token_path_gets_its_own_route_under_every_spelling() {
        let p = paths(true);
        for path in [
            "/oauth2/token",
            "/oauth2/token/",
            "/OAuth2/token.json",
            "/oauth2/to%6Ben",
            "/oauth2/to\u{212a}en",
            "/oauth2/to%E2%84%AAen",
            "//x/oauth2/token",
        ] {
            assert_eq!(p.route(path), Route::Token, "{path}");
        }
        let off = Routes::new("/oauth2/authorize", None, true);
        assert_eq!(off.route("/oauth2/token"), Route::Other);
    }

    #[test]
    fn raw_utf8_spellings_get_the_full_reading() {
        // The router refuses raw bytes beyond ASCII first; the fast path must not answer for
        // them either way.
        for p in [paths(true), paths(false)] {
            for path in [
                "/oauth2/author\u{131}ze",
                "/OAUTH2/AUTHOR\u{130}ZE",
                "/oauth2/\u{ff41}uthorize",
                "/oauth2\u{ff0f}authorize",
            ] {
                assert!(!is_plain(path), "{path}");
                assert_eq!(p.route(path), Route::Authorize, "{path}");
            }
        }
    }

    #[test]
    fn configured_paths_may_end_in_a_slash() {
        let p = Routes::new("/o/authorize/", Some("/o/token/"), false);
        for path in ["/o/authorize", "/o/authorize/", "/o//authorize/"] {
            assert_eq!(p.route(path), Route::Authorize, "{path}");
        }
        assert_eq!(p.route("/o/token/"), Route::Token);
    }

    proptest::proptest! {
        /// Wherever the fast path answers, the full canonical reading gives the same route.
        #[test]
        fn the_fast_path_agrees_with_the_canonical_reading(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "oauth2", "OAuth2", "authorize", "AUTHORIZE", "token", "authorize.json",
                    "x", ".", "..", "", ";a=1", "authorize;x", "%61uthorize", "a.", "a ", "~",
                    "\\", "\u{131}", "%2F", "t%6Fken", "-", "_",
                ]),
                0..6,
            ),
            ci in proptest::bool::ANY,
        ) {
            let path = format!("/{}", parts.join("/"));
            let p = Routes::new("/oauth2/authorize", Some("/oauth2/token"), ci);
            if is_plain(&path) {
                proptest::prop_assert_eq!(p.route(&path), p.route_full(&path), "{}", path);
            }
        }
    }
}
