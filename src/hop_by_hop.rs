//! The hop-by-hop header names: a leaf below the seam (which strips them from requests and
//! responses) and the config (no signal header may be one).

use http::HeaderName;

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1, plus the
/// non-standard ones proxies have always dropped).
#[inline]
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop_lowercase(name.as_str().as_bytes())
}

#[inline]
pub(crate) fn is_hop_by_hop_lowercase(name: &[u8]) -> bool {
    // A match on the text compiles to a length switch and one comparison: cheaper than
    // hashing each of the nine names into the map, on every request and every response.
    matches!(
        name,
        b"connection"
            | b"keep-alive"
            | b"proxy-connection"
            | b"proxy-authenticate"
            | b"proxy-authorization"
            | b"te"
            | b"trailer"
            | b"transfer-encoding"
            | b"upgrade"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_names() {
        for (name, hop) in [
            ("connection", true),
            ("keep-alive", true),
            ("proxy-connection", true),
            ("te", true),
            ("trailer", true),
            ("transfer-encoding", true),
            ("upgrade", true),
            ("proxy-authorization", true),
            ("proxy-authenticate", true),
            ("content-length", false),
            ("trailers", false),
            ("x-vert-representation", false),
        ] {
            assert_eq!(is_hop_by_hop(&HeaderName::from_static(name)), hop, "{name}");
        }
    }
}
