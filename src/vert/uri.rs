//! RFC 3986 §6.2.2 syntax-based normalisation, for comparing a flow return's target with the
//! flow's `redirect_uri`. An AS builds its redirect with its own URL library, which may respell
//! the URI the client sent in equivalent ways (yarl, `java.net.URI`, Spring's
//! `UriComponentsBuilder`, .NET's `Uri` all do): `https://HOST` for `https://host`, `%7E` for
//! `~` or back, `%2f` for `%2F`, `/a/./b` for `/a/b`, `https://host` for `https://host/`.
//! Those are the same URI; anything else (`/cb` and `/cb/`, another path or host) is not.
//!
//! Not the `url` crate: WHATWG parsing leaves `%7E` and `%2f` as they are (it does not do
//! §6.2.2.2), and does more than §6.2.2 elsewhere (default ports, `\` as `/`), so it would
//! both miss respellings and admit other URIs.

/// The normal form of `scheme://authority/path` (no query, no fragment): scheme and host in
/// lower case, percent-encoded unreserved characters decoded, other escapes in upper-case hex,
/// dot segments removed, an empty path as `/`. `None` when it is not such a URI or holds a `%`
/// that is not an escape: nothing compares equal to it.
pub fn normalize(base: &str) -> Option<String> {
    let (scheme, rest) = base.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || base.contains(['?', '#']) {
        return None;
    }
    let authority = lower_outside_escapes(&percent_normalize(authority)?);
    let path = remove_dot_segments(&percent_normalize(path)?);
    let mut out = String::with_capacity(base.len() + 1);
    out.push_str(&scheme.to_ascii_lowercase());
    out.push_str("://");
    out.push_str(&authority);
    out.push_str(if path.is_empty() { "/" } else { &path });
    Some(out)
}

/// Whether two `scheme://authority/path` strings are the same URI by §6.2.2.
pub fn equivalent(a: &str, b: &str) -> bool {
    // The common case, with no allocation: the AS returned the URI as it got it.
    a == b || matches!((normalize(a), normalize(b)), (Some(a), Some(b)) if a == b)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// §6.2.2.1 and §6.2.2.2: escapes of unreserved characters decoded, the rest in upper case.
fn percent_normalize(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            // Not an escape: copied as it is, whole characters at a time.
            let next = bytes[i..]
                .iter()
                .position(|&b| b == b'%')
                .map_or(bytes.len(), |p| i + p);
            out.push_str(&s[i..next]);
            i = next;
            continue;
        }
        let value = super::syntax::escape(&bytes[i..])?;
        let hex = &bytes[i + 1..i + 3];
        if is_unreserved(value) {
            out.push(char::from(value));
        } else {
            out.push('%');
            out.extend(hex.iter().map(|&h| char::from(h.to_ascii_uppercase())));
        }
        i += 3;
    }
    Some(out)
}

/// Lower case, but not the hex digits of escapes (which §6.2.2.1 wants upper case).
fn lower_outside_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escape = 0;
    for c in s.chars() {
        if c == '%' {
            escape = 2;
            out.push(c);
        } else if escape > 0 {
            escape -= 1;
            out.push(c);
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let absolute = path.starts_with('/');
    let parts = path.split('/').skip(usize::from(absolute));
    let (segments, directory) = super::syntax::resolve_dots(parts.filter(|_| !path.is_empty()));
    let mut output = String::with_capacity(path.len());
    for (i, segment) in segments.iter().enumerate() {
        if absolute || i > 0 {
            output.push('/');
        }
        output.push_str(segment);
    }
    if directory || (absolute && output.is_empty()) {
        output.push('/');
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "https://pgo.example.nl/a/cb~1";

    #[test]
    fn respellings_of_the_same_uri_are_equivalent() {
        for respelled in [
            "HTTPS://PGO.example.NL/a/cb~1",
            "https://pgo.example.nl/a/cb%7E1",
            "https://pgo.example.nl/a/cb%7e1",
            "https://pgo.example.nl/%61/cb~1",
            "https://pgo.example.nl/a/./cb~1",
            "https://pgo.example.nl/a/x/../cb~1",
            "https://pgo.example.nl/./a/cb~1",
        ] {
            assert!(equivalent(CB, respelled), "{respelled}");
        }
        assert!(equivalent(
            "https://pgo.example.nl",
            "https://pgo.example.nl/"
        ));
        assert!(equivalent(
            "https://pgo.example.nl/a%2fb",
            "https://pgo.example.nl/a%2Fb"
        ));
    }

    #[test]
    fn other_uris_are_not() {
        for other in [
            "https://pgo.example.nl/a/cb~1/",
            "https://pgo.example.nl/a/cb~2",
            "https://pgo.example.nl/A/cb~1",
            "https://evil.example/a/cb~1",
            "https://pgo.example.nl.evil.example/a/cb~1",
            "http://pgo.example.nl/a/cb~1",
            "https://pgo.example.nl:443/a/cb~1",
            "https://pgo.example.nl/a/cb%2F1",
            "https://pgo.example.nl/a%2Fcb~1",
            "https://pgo.example.nl/a/cb~1%",
            "https://pgo.example.nl/a/cb~1%zz",
            "//pgo.example.nl/a/cb~1",
            "/a/cb~1",
        ] {
            assert!(!equivalent(CB, other), "{other}");
        }
        // An encoded slash is data, not a separator.
        assert!(!equivalent("https://h/a/b", "https://h/a%2Fb"));
    }

    #[test]
    fn normal_forms() {
        assert_eq!(
            normalize("HTTPS://H%41ST/%7e/%2f/./x/../y").as_deref(),
            Some("https://hast/~/%2F/y")
        );
        assert_eq!(
            normalize("https://h/%c3%a9").as_deref(),
            Some("https://h/%C3%A9")
        );
        assert_eq!(normalize("https://h/a?b"), None);
        assert_eq!(normalize("https:///a"), None);
    }

    #[test]
    fn dot_segments_per_rfc_3986_5_2_4() {
        // RFC 3986 §5.2.4's own examples.
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
        assert_eq!(remove_dot_segments("/.."), "/");
        assert_eq!(remove_dot_segments("/a/.."), "/");
        assert_eq!(remove_dot_segments("/a/b/."), "/a/b/");
    }

    #[test]
    fn normalizing_is_idempotent() {
        for uri in [
            "HTTPS://H/%7e/./a/../b%2f",
            "https://h",
            "https://h/%C3%A9/..%2F",
        ] {
            let once = normalize(uri).unwrap();
            assert_eq!(normalize(&once).as_deref(), Some(once.as_str()), "{uri}");
        }
    }
}
