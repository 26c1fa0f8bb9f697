//! Header hygiene between client and upstream (RFC 9110 §7.6.1): hop-by-hop headers go in both
//! directions, and the proxy, not the client, says who the client is (`X-Forwarded-*`, from the
//! connection's [`Peer`]).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::hop_by_hop::is_hop_by_hop;
use crate::hop_by_hop::is_hop_by_hop_lowercase;
use crate::vocab::Peer;

/// [`is_hop_by_hop`] for a name as written in a `Connection` token, in any case.
fn is_hop_by_hop_token(token: &[u8]) -> bool {
    let mut lower = [0u8; 19]; // the longest name
    let Some(lower) = lower.get_mut(..token.len()) else {
        return false;
    };
    lower.copy_from_slice(token);
    lower.make_ascii_lowercase();
    is_hop_by_hop_lowercase(lower)
}

/// What a look at a message's header lines found of the hop-by-hop ones, so that a caller that
/// reads every line anyway (the seam's one scan of a request) strips them without another.
#[derive(Debug, Default, Clone, Copy)]
pub struct HopByHop {
    /// Hop-by-hop lines seen.
    found: usize,
    connection: bool,
    /// A `Connection` line names a header that is not hop-by-hop itself (nor `Host`).
    names_others: bool,
}

impl HopByHop {
    /// Counts a line, if hop-by-hop; says whether it was.
    #[inline]
    pub fn see(&mut self, name: &HeaderName, value: &HeaderValue) -> bool {
        if !is_hop_by_hop(name) {
            return false;
        }
        self.found += 1;
        if name == header::CONNECTION {
            self.connection = true;
            self.names_others |= names_others(value);
        }
        true
    }
}

/// Whether a `Connection` value names a header that [`strip_seen`] must look for: one that is
/// not hop-by-hop (removed anyway) and not `Host` (never removed).
fn names_others(value: &HeaderValue) -> bool {
    let value = value.as_bytes();
    // What nearly every upstream sends, compared as sent first: a memcmp.
    if value == b"keep-alive" || value.eq_ignore_ascii_case(b"keep-alive") {
        return false;
    }
    value.split(|&b| b == b',').any(|token| {
        let token = token.trim_ascii();
        // `Connection: Host` would leave an HTTP/1.1 request without its target host.
        !(token.is_empty() || is_hop_by_hop_token(token) || token.eq_ignore_ascii_case(b"host"))
    })
}

/// Removes the hop-by-hop headers and every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the lines; most messages have none of these, or a `Connection` that names
    // no other header, and pay nothing more than a removal.
    let mut seen = HopByHop::default();
    for (name, value) in &*headers {
        seen.see(name, value);
    }
    strip_seen(headers, seen);
}

/// [`strip_hop_by_hop`] after the look at the lines: `seen` is what it found in `headers`.
pub fn strip_seen(headers: &mut HeaderMap, seen: HopByHop) {
    if seen.found == 0 {
        return;
    }
    if seen.names_others {
        // The headers the `Connection` lines name, found among the present names, so that no
        // name is built for a token that names nothing here.
        let mut named: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.is_empty()
                    || is_hop_by_hop_token(token)
                    || token.eq_ignore_ascii_case(b"host")
                {
                    continue;
                }
                if let Some(name) = headers
                    .keys()
                    .find(|k| k.as_str().as_bytes().eq_ignore_ascii_case(token))
                {
                    named.push(name.clone());
                }
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    if seen.found == 1 && seen.connection {
        // The usual upstream response: `Connection: keep-alive` and nothing else.
        headers.remove(header::CONNECTION);
        return;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Sets `X-Forwarded-For`, `-Proto` and `-Host` (`host`: the request's `Host`). From an
/// untrusted peer every `X-Forwarded-*`, `Forwarded` and `X-Real-IP` header is dropped
/// first: the AS must not log or trust what a client claims about itself.
pub fn set_forwarded(peer: &Peer, headers: &mut HeaderMap, host: HeaderValue) {
    // Room for the three, at most one growth of the map instead of one per insert.
    headers.reserve(3);
    if peer.trusted() {
        let forwarded_for = match headers.get(&X_FORWARDED_FOR) {
            None => peer.ip().clone(),
            Some(_) => {
                let mut chain = headers
                    .get_all(&X_FORWARDED_FOR)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                chain.push_str(", ");
                chain.push_str(peer.ip().to_str().unwrap_or_default());
                HeaderValue::from_str(&chain).unwrap_or_else(|_| peer.ip().clone())
            }
        };
        headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO.clone(), peer.proto().clone());
        }
        if !headers.contains_key(&X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        return;
    }
    let is_claim = |name: &HeaderName| is_claim(name.as_str());
    if headers.keys().any(is_claim) {
        let claims: Vec<HeaderName> = headers.keys().filter(|n| is_claim(n)).cloned().collect();
        for name in claims {
            headers.remove(name);
        }
    }
    headers.insert(X_FORWARDED_FOR.clone(), peer.ip().clone());
    headers.insert(X_FORWARDED_PROTO.clone(), peer.proto().clone());
    headers.insert(X_FORWARDED_HOST.clone(), host);
}

/// A peer in a private range (RFC 1918, shared address space, IPv6 unique local) with no
/// `listen.trusted_proxies` is most likely a balancer the config does not name: every client
/// behind it then counts as the balancer (one share of the records for all). Said once.
pub fn warn_if_an_unnamed_balancer(peer: IpAddr, trusted_proxies: usize) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if trusted_proxies > 0
        || !is_private(peer)
        || SAID.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    tracing::warn!(
        %peer,
        "a peer in a private range and listen.trusted_proxies is empty: behind a balancer, name it there, or every client counts as the balancer"
    );
}

fn is_private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// What an untrusted client may not say about its own address or the host it asked for: the
/// `X-Forwarded-*` family, `Forwarded`, and the names CDNs, balancers and frameworks read for
/// the same facts (Akamai's `True-Client-IP`, Cloudflare's `CF-Connecting-IP`, Fastly's,
/// Rackspace's `X-Cluster-Client-IP`, Rails' and Spring's `X-Client-IP` / `Client-IP`,
/// ingress-nginx's `X-Original-Forwarded-For`, `X-Host` and `X-Original-Host` for the host).
/// An AS that logs or trusts one of them would take the client's word for it.
fn is_claim(name: &str) -> bool {
    name.starts_with("x-forwarded-")
        || matches!(
            name,
            "forwarded"
                | "x-real-ip"
                | "true-client-ip"
                | "x-client-ip"
                | "client-ip"
                | "cf-connecting-ip"
                | "fastly-client-ip"
                | "x-cluster-client-ip"
                | "x-original-forwarded-for"
                | "x-originating-ip"
                | "x-remote-ip"
                | "x-remote-addr"
                | "x-envoy-external-address"
                | "x-host"
                | "x-original-host"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// The names left after stripping, in order.
    fn stripped(pairs: &[(&str, &str)]) -> Vec<String> {
        let mut h = map(pairs);
        strip_hop_by_hop(&mut h);
        h.keys().map(|k| k.as_str().to_owned()).collect()
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut left = stripped(&[
            ("connection", "keep-alive, X-Secret , x-other"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
            ("content-type", "text/plain"),
        ]);
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-kept"]);
    }

    #[test]
    fn every_connection_line_counts() {
        let left = stripped(&[
            ("connection", "x-a"),
            ("connection", "keep-alive, x-b"),
            ("x-a", "1"),
            ("x-b", "2"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "h2c"),
            ("x-c", "3"),
        ]);
        assert_eq!(left, ["x-c"]);
    }

    #[test]
    fn connection_tokens_in_any_case() {
        let left = stripped(&[
            ("connection", "Keep-Alive,  X-Secret,,Upgrade"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("x-kept", "3"),
        ]);
        assert_eq!(left, ["x-kept"]);
        assert!(is_hop_by_hop_token(b"TRANSFER-Encoding"));
        assert!(!is_hop_by_hop_token(b"proxy-authorization-and-more"));
    }

    #[test]
    fn a_keep_alive_connection_goes_alone_and_other_tokens_still_name_headers() {
        let left = stripped(&[
            ("location", "/login"),
            ("connection", "Keep-Alive"),
            ("content-length", "0"),
        ]);
        assert_eq!(left, ["location", "content-length"]);
        let left = stripped(&[("connection", "close"), ("close", "1"), ("x-kept", "3")]);
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn a_connection_token_never_removes_host() {
        let left = stripped(&[
            ("host", "as.example.nl"),
            ("connection", "Host, x-a"),
            ("x-a", "1"),
        ]);
        assert_eq!(left, ["host"]);
    }

    #[test]
    fn untrusted_peer_cannot_claim_an_address_or_host_under_any_name() {
        let mut h = map(&[
            ("host", "as.example.nl"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
            ("x-forwarded-port", "443"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            // Issue 26, finding 7: the rest of the family.
            ("true-client-ip", "1.2.3.4"),
            ("x-client-ip", "1.2.3.4"),
            ("cf-connecting-ip", "1.2.3.4"),
            ("fastly-client-ip", "1.2.3.4"),
            ("x-cluster-client-ip", "1.2.3.4"),
            ("client-ip", "1.2.3.4"),
            ("x-original-forwarded-for", "1.2.3.4"),
            ("x-host", "evil.test"),
            ("x-original-host", "evil.test"),
        ]);
        let host = h["host"].clone();
        set_forwarded(
            &Peer::new("10.1.2.3".parse().unwrap(), false, false),
            &mut h,
            host,
        );
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "as.example.nl");
        for gone in [
            "x-forwarded-port",
            "forwarded",
            "x-real-ip",
            "true-client-ip",
            "x-client-ip",
            "cf-connecting-ip",
            "fastly-client-ip",
            "x-cluster-client-ip",
            "client-ip",
            "x-original-forwarded-for",
            "x-host",
            "x-original-host",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn x_forwarded_proto_is_https_when_the_listener_speaks_tls() {
        let mut h = map(&[("host", "as.example.nl"), ("x-forwarded-proto", "http")]);
        let host = h["host"].clone();
        set_forwarded(
            &Peer::new("10.1.2.3".parse().unwrap(), false, true),
            &mut h,
            host,
        );
        assert_eq!(h["x-forwarded-proto"], "https");
        // A trusted proxy's own value is kept; without one, the listener's.
        let mut h = map(&[("host", "as.example.nl")]);
        let host = h["host"].clone();
        set_forwarded(
            &Peer::new("10.0.0.1".parse().unwrap(), true, true),
            &mut h,
            host,
        );
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn trusted_peer_is_extended() {
        let mut h = map(&[
            ("host", "as.example.nl"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("x-forwarded-proto", "https"),
        ]);
        let host = h["host"].clone();
        set_forwarded(
            &Peer::new("10.0.0.1".parse().unwrap(), true, false),
            &mut h,
            host,
        );
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "as.example.nl");
    }

    /// Issue 26, finding 4: a private peer with no `listen.trusted_proxies` is said once; a
    /// loopback or public peer, or a configured list, says nothing.
    #[test]
    fn a_private_peer_without_trusted_proxies_is_warned_about_once() {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            warn_if_an_unnamed_balancer("127.0.0.1".parse().unwrap(), 0);
            warn_if_an_unnamed_balancer("203.0.113.5".parse().unwrap(), 0);
            warn_if_an_unnamed_balancer("10.0.0.7".parse().unwrap(), 1);
            warn_if_an_unnamed_balancer("10.0.0.7".parse().unwrap(), 0);
            warn_if_an_unnamed_balancer("10.0.0.8".parse().unwrap(), 0);
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.matches("listen.trusted_proxies is empty").count(),
            1,
            "{text}"
        );
        assert!(text.contains("peer=10.0.0.7"), "{text}");
    }

    #[test]
    fn private_ranges_are_the_ones_a_balancer_sits_in() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "203.0.113.5",
            "2001:db8::1",
            "::1",
            "100.128.0.1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
