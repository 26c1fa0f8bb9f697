//! Header hygiene between client and upstream (RFC 9110 §7.6.1): hop-by-hop headers go in both
//! directions, and the proxy, not the client, says who the client is (`X-Forwarded-*`).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1, plus the
/// non-standard ones proxies have always dropped).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Removes the hop-by-hop headers and every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The client end of one connection, prepared once per connection.
#[derive(Clone, Debug)]
pub struct Peer {
    ip: HeaderValue,
    /// Listed in `listen.trusted_proxies`: its `X-Forwarded-*` are extended, not replaced.
    trusted: bool,
}

impl Peer {
    pub fn new(ip: IpAddr, trusted: bool) -> Self {
        Peer {
            ip: HeaderValue::from_str(&ip.to_string()).expect("an IP address is a header value"),
            trusted,
        }
    }

    /// Sets `X-Forwarded-For`, `-Proto` and `-Host`. From an untrusted peer every
    /// `X-Forwarded-*`, `Forwarded` and `X-Real-IP` header is dropped first: the AS must not
    /// log or trust what a client claims about itself.
    pub fn set_forwarded(&self, headers: &mut HeaderMap) {
        if self.trusted {
            let forwarded_for = match headers.get(&X_FORWARDED_FOR) {
                None => self.ip.clone(),
                Some(_) => {
                    let mut chain = headers
                        .get_all(&X_FORWARDED_FOR)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ");
                    chain.push_str(", ");
                    chain.push_str(self.ip.to_str().unwrap_or_default());
                    HeaderValue::from_str(&chain).unwrap_or_else(|_| self.ip.clone())
                }
            };
            headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
            if !headers.contains_key(&X_FORWARDED_PROTO) {
                headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
            }
            if !headers.contains_key(&X_FORWARDED_HOST) {
                self.forward_host(headers);
            }
            return;
        }
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("x-forwarded-"))
            .cloned()
            .collect();
        for name in spoofed {
            headers.remove(name);
        }
        headers.remove(header::FORWARDED);
        headers.remove(&X_REAL_IP);
        headers.insert(X_FORWARDED_FOR.clone(), self.ip.clone());
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
        self.forward_host(headers);
    }

    fn forward_host(&self, headers: &mut HeaderMap) {
        if let Some(host) = headers.get(header::HOST).cloned() {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
    }
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

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = map(&[
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
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept", "content-type"]);
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let mut h = map(&[
            ("host", "as.example.nl"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
            ("x-forwarded-port", "443"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
        ]);
        Peer::new("10.1.2.3".parse().unwrap(), false).set_forwarded(&mut h);
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "as.example.nl");
        for gone in ["x-forwarded-port", "forwarded", "x-real-ip"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn trusted_peer_is_extended() {
        let mut h = map(&[
            ("host", "as.example.nl"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("x-forwarded-proto", "https"),
        ]);
        Peer::new("10.0.0.1".parse().unwrap(), true).set_forwarded(&mut h);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "as.example.nl");
    }
}
