//! The hop-by-hop header names: a leaf below the seam (which strips them from requests and
//! responses) and the config (no signal header may be one).

use http::HeaderName;

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1, plus the
/// non-standard ones proxies have always dropped).
#[inline]
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes();
    // Most names are ruled out by their length alone (`host`, `date`, `location`,
    // `content-type`...): a bit test, before any comparison.
    name.len() < 32 && HOP_BY_HOP_LENGTHS & (1 << name.len()) != 0 && is_hop_by_hop_lowercase(name)
}

/// The lengths of the names [`is_hop_by_hop_lowercase`] knows, one bit each.
const HOP_BY_HOP_LENGTHS: u32 = 1 << 2 | 1 << 7 | 1 << 10 | 1 << 16 | 1 << 17 | 1 << 18 | 1 << 19;

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
    fn the_length_bits_are_the_names_lengths() {
        let names = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ];
        let bits = names.iter().fold(0u32, |bits, name| bits | 1 << name.len());
        assert_eq!(bits, HOP_BY_HOP_LENGTHS);
        assert!(
            names
                .iter()
                .all(|name| is_hop_by_hop_lowercase(name.as_bytes()))
        );
    }

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
