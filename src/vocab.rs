//! The HTTP vocabulary every room shares: the bodies ([`Buffered`], [`PageBody`]), where a
//! request goes ([`Route`]), who sent it ([`Peer`]), and ids ([`random_uuid`]). A leaf: it
//! names no other module of the crate (`tests/it/architecture.rs` checks), so that the server,
//! the seam, the guards, the upstream and the metrics can all speak of these without importing
//! each other for them.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;
use uuid::Uuid;

/// A request body, read whole by the seam ([`crate::seam::limits`]) before any guard sees the
/// request: what every layer after it, and the upstream, is handed.
pub type Buffered = Full<Bytes>;

/// The body of every answer the proxy writes itself.
pub type PageBody = Full<Bytes>;

/// Where a request goes: decided once, by [`crate::seam::router`], for every layer after it
/// (in the request's extensions); and, for the request counter ([`crate::ops::record`]), on
/// the responses of the two guarded endpoints (in the response's extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The authorize endpoint, under any spelling: the guard decides.
    Authorize,
    /// The token endpoint (`token_guard.path`, when set), under any spelling.
    Token,
    /// Below the authorize or token path (`/oauth2/authorize/x`): Rack's `URLMap` and other
    /// mounting routers hand it to that endpoint's handler, while oidc-provider resumes its
    /// flows at `/auth/<uid>`. Forwarded as is when it names no OAuth parameter, else refused.
    Below,
    /// Anything else: forwarded as is.
    Other,
    /// A path that does not read one way: refused with 400.
    Unreadable,
}

impl Route {
    /// The routes `medmij_vert_requests_total` tells apart, in the order of its series.
    pub const COUNTED: [Route; 3] = [Route::Authorize, Route::Token, Route::Other];

    /// The route as the request counter counts it: a path below a guarded one, or one that
    /// does not read one way, is `other`.
    pub fn counted(self) -> Route {
        match self {
            Route::Authorize | Route::Token => self,
            Route::Below | Route::Other | Route::Unreadable => Route::Other,
        }
    }

    /// The `route` label of `medmij_vert_requests_total`.
    pub fn label(self) -> &'static str {
        match self.counted() {
            Route::Authorize => "authorize",
            Route::Token => "token",
            _ => "other",
        }
    }
}

/// A random (version 4) UUID: the correlation id of a flow whose client sent none, or the trace
/// id of an error page.
pub fn random_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    // rand's thread generator (ChaCha12, seeded and reseeded from the OS every 64 KiB): no
    // system call per id, as the sealed state's nonces (`state::seal`).
    rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client end of one connection, prepared once per connection. What the proxy then tells
/// the AS about it (`X-Forwarded-*`) is the seam's ([`crate::seam::forwarded::set_forwarded`]).
#[derive(Clone, Debug)]
pub struct Peer {
    addr: IpAddr,
    ip: HeaderValue,
    /// `X-Forwarded-Proto`: `https` when the public listener speaks TLS. An AS behind the
    /// proxy builds its URLs and checks its CSRF origins from it (Django refuses a login POST
    /// from an `https` page that claims `http`).
    proto: HeaderValue,
    /// Listed in `listen.trusted_proxies`: its `X-Forwarded-*` are extended, not replaced.
    trusted: bool,
}

impl Peer {
    pub fn new(ip: IpAddr, trusted: bool, tls: bool) -> Self {
        Peer {
            addr: ip,
            proto: HeaderValue::from_static(if tls { "https" } else { "http" }),
            ip: HeaderValue::from_str(&ip.to_string()).expect("an IP address is a header value"),
            trusted,
        }
    }

    /// The peer's address as a header value (`X-Forwarded-For`).
    pub fn ip(&self) -> &HeaderValue {
        &self.ip
    }

    /// `http` or `https`: what the public listener speaks (`X-Forwarded-Proto`).
    pub fn proto(&self) -> &HeaderValue {
        &self.proto
    }

    /// Listed in `listen.trusted_proxies`.
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// The client's address as the proxy determines it: the peer's, or, from a trusted proxy,
    /// the last `X-Forwarded-For` entry (the one that proxy added; entries before it are the
    /// client's own claims), with or without a port (`IP:port`, `[v6]:port`, `[v6]`: Azure's
    /// Application Gateway and others add one). A trusted peer that sends no `X-Forwarded-For`
    /// is the client (its own health checks); one whose last entry cannot be read names no
    /// address (`None`), never its own: the balancer's address is every client's at once.
    pub fn client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        if !self.trusted {
            return Some(self.addr);
        }
        let Some(last) = headers.get_all(&X_FORWARDED_FOR).iter().next_back() else {
            return Some(self.addr);
        };
        let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
        forwarded_for_entry(entry)
    }
}

/// One `X-Forwarded-For` entry: an address, with a port or without, IPv6 in brackets or not.
fn forwarded_for_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    let v6 = entry.strip_prefix('[')?.strip_suffix(']')?;
    v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded_for(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn the_client_is_the_peer_or_the_last_entry_a_trusted_proxy_added() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let headers = forwarded_for("198.51.100.7, 192.0.2.9");
        assert_eq!(Peer::new(peer, false, false).client(&headers), Some(peer));
        assert_eq!(
            Peer::new(peer, true, false).client(&headers),
            Some("192.0.2.9".parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            Peer::new(peer, true, false).client(&HeaderMap::new()),
            Some(peer)
        );
    }

    /// Issue 26, finding 4: Azure's `IP:port`, and IPv6 with brackets and a port.
    #[test]
    fn forwarded_for_entries_with_a_port_or_brackets_are_read_and_junk_names_no_one() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = Peer::new(peer, true, false);
        for (entry, want) in [
            ("203.0.113.5:5555", "203.0.113.5"),
            ("203.0.113.5", "203.0.113.5"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
        ] {
            let headers = forwarded_for(&format!("198.51.100.7, {entry}"));
            assert_eq!(
                trusted.client(&headers),
                Some(want.parse().unwrap()),
                "{entry}"
            );
        }
        for junk in [
            "192.0.2.9, junk",
            "unknown",
            "[2001:db8::7",
            "1.2.3.4:x",
            "",
        ] {
            let headers = forwarded_for(junk);
            assert_eq!(trusted.client(&headers), None, "{junk}");
        }
    }

    #[test]
    fn below_unreadable_and_other_paths_count_as_other() {
        for (route, label) in [
            (Route::Authorize, "authorize"),
            (Route::Token, "token"),
            (Route::Below, "other"),
            (Route::Other, "other"),
            (Route::Unreadable, "other"),
        ] {
            assert_eq!(route.label(), label, "{route:?}");
            assert!(Route::COUNTED.contains(&route.counted()), "{route:?}");
        }
    }

    #[test]
    fn random_uuids_are_version_4_and_differ() {
        let (a, b) = (random_uuid(), random_uuid());
        assert_eq!(a.get_version_num(), 4);
        assert_ne!(a, b);
    }
}
