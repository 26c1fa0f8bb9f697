//! [`SanitizeLayer`]: the front of the stack. Every request passes here before any layer adds
//! or decides anything, so that what the client sent is cleaned first and what the proxy adds
//! afterwards cannot be removed, doubled or shadowed by it:
//!
//! - a body on `GET`, `HEAD`, `OPTIONS` or `TRACE`: 400 (an AS that ignores such bodies would
//!   read one as its next request: CL.0 desync);
//! - `Host` repeated, not a host, with userinfo, disagreeing with an absolute-form target, or
//!   missing on HTTP/1.1: 400 (RFC 9112 §3.2); an absolute-form target becomes origin-form
//!   with its authority as the one `Host`;
//! - hop-by-hop headers and every header `Connection` names removed (never `Host`);
//! - header names with `_` dropped (nginx's default): CGI, WSGI and PHP stacks merge
//!   `X_Vert_Requested` with `X-Vert-Requested`;
//! - path- and method-override headers dropped: routers that obey them would send a request
//!   checked as one path to another;
//! - `Expect: 100-continue` answered by the proxy and taken off; any other expectation: 417.

use std::task::{Context, Poll};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri, Version};
use http_body::Body;

use crate::pages::WithPages;
use crate::seam::answer::{InnerOrOwn, SeamRefusal, refuse};
use crate::seam::forwarded::{HopByHop, strip_seen};

#[derive(Clone, Copy, Debug, Default)]
pub struct SanitizeLayer;

impl<S> tower::Layer<S> for SanitizeLayer {
    type Service = Sanitize<S>;

    fn layer(&self, inner: S) -> Sanitize<S> {
        Sanitize { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Sanitize<S> {
    inner: S,
}

impl<S, B, ResB> tower::Service<Request<B>> for Sanitize<S>
where
    S: tower::Service<Request<B>, Response = Response<ResB>>,
    B: Body,
    ResB: WithPages,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = InnerOrOwn<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let cleaned = clean_seen(&mut req).and_then(|expect| {
            if expect {
                take_expectation(req.headers_mut())
            } else {
                Ok(())
            }
        });
        match cleaned {
            Ok(()) => InnerOrOwn::Inner {
                future: self.inner.call(req),
            },
            Err(refusal) => InnerOrOwn::own(refuse(req.headers(), refusal)),
        }
    }
}

/// Cleans a request in place, or says why it is refused.
pub fn clean<B: Body>(req: &mut Request<B>) -> Result<(), SeamRefusal> {
    clean_seen(req).map(|_expect| ())
}

/// What one look at every header line of a request found: all that [`clean`] and
/// [`take_expectation`] need to know on the usual request, which has none of what they remove.
/// A scan of a few names costs less than the hashed lookups it replaces, one per name
/// (callgrind).
#[derive(Default)]
struct Seen<'a> {
    /// The first `Host`, and how many there are.
    host: Option<&'a HeaderValue>,
    hosts: usize,
    hop_by_hop: HopByHop,
    transfer_encoding: bool,
    /// A name [`is_dropped`] says goes.
    dropped: bool,
    expect: bool,
}

impl<'a> Seen<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        let mut seen = Seen::default();
        for (name, value) in headers {
            if name == header::HOST {
                seen.hosts += 1;
                seen.host.get_or_insert(value);
            } else if seen.hop_by_hop.see(name, value) {
                seen.transfer_encoding |= name == header::TRANSFER_ENCODING;
            } else if name == header::EXPECT {
                seen.expect = true;
            } else {
                seen.dropped |= is_dropped(name);
            }
        }
        seen
    }
}

/// [`clean`], saying whether the request had an `Expect` (for [`take_expectation`]).
fn clean_seen<B: Body>(req: &mut Request<B>) -> Result<bool, SeamRefusal> {
    let seen = Seen::of(req.headers());
    // Before hop-by-hop stripping: `Transfer-Encoding` is one of those headers.
    if !carries_body(req.method()) && (!req.body().is_end_stream() || seen.transfer_encoding) {
        return Err(SeamRefusal::BodyWithoutMethod);
    }
    let origin_form = one_host(seen.host, seen.hosts, req.uri(), req.version())?;
    let Seen {
        hop_by_hop,
        dropped,
        expect,
        ..
    } = seen;
    if let Some(OriginForm { host, target }) = origin_form {
        if let Some(host) = host {
            req.headers_mut().insert(header::HOST, host);
        }
        *req.uri_mut() = Uri::from(target);
    }
    let headers = req.headers_mut();
    strip_seen(headers, hop_by_hop);
    if dropped {
        let doomed: Vec<HeaderName> = headers.keys().filter(|n| is_dropped(n)).cloned().collect();
        for name in doomed {
            headers.remove(name);
        }
    }
    Ok(expect)
}

/// `Expect` is the proxy's to answer, never the AS's: hyper sends `100 Continue` when the body
/// is read (the proxy reads it whole before anything goes upstream), so an `Expect` forwarded
/// with the body would let an AS that answers expectations early, without draining, read the
/// body as a second request. `100-continue` is taken off; any other expectation is 417
/// (RFC 9110 §10.1.1).
fn take_expectation(headers: &mut http::HeaderMap) -> Result<(), SeamRefusal> {
    let mut values = headers.get_all(header::EXPECT).iter();
    match (values.next(), values.next()) {
        (None, _) => return Ok(()),
        (Some(value), None) if value.as_bytes().eq_ignore_ascii_case(b"100-continue") => {}
        _ => return Err(SeamRefusal::Expectation),
    }
    headers.remove(header::EXPECT);
    Ok(())
}

/// Methods whose requests may carry a body (RFC 9110 §9.3: for the others it has no meaning).
fn carries_body(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Headers a client never gets past the seam: names with `_`, and overrides of the path or
/// method that some routers obey.
fn is_dropped(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.contains('_')
        || matches!(
            name,
            "x-original-url"
                | "x-rewrite-url"
                | "x-override-url"
                | "x-http-method-override"
                | "x-http-method"
                | "x-method-override"
        )
}

/// An absolute-form target as origin-form, with its authority as the `Host` when the request
/// had none.
struct OriginForm {
    host: Option<HeaderValue>,
    target: PathAndQuery,
}

/// Exactly one `Host` (`host`, the first of `hosts`) that names a host, agreeing with an
/// absolute-form target, which becomes origin-form. HTTP/1.0 may come without one (the
/// upstream service supplies it).
fn one_host(
    host: Option<&HeaderValue>,
    hosts: usize,
    uri: &Uri,
    version: Version,
) -> Result<Option<OriginForm>, SeamRefusal> {
    if hosts > 1 {
        return Err(SeamRefusal::RepeatedHost);
    }
    if let Some(host) = host
        && !is_host(host.as_bytes())
    {
        return Err(SeamRefusal::HostNotAHost);
    }
    let Some(authority) = uri.authority() else {
        if host.is_none() && version == Version::HTTP_11 {
            return Err(SeamRefusal::NoHost);
        }
        return Ok(None);
    };
    if !is_host(authority.as_str().as_bytes()) {
        return Err(SeamRefusal::TargetAuthorityNotAHost);
    }
    let host = match host {
        Some(host)
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            return Err(SeamRefusal::HostDisagrees);
        }
        Some(_) => None,
        None => Some(
            HeaderValue::from_str(authority.as_str())
                .map_err(|_| SeamRefusal::TargetAuthorityNotAHost)?,
        ),
    };
    // RFC 9112 §3.2.2: the target names the host; the upstream gets origin-form.
    let target = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Ok(Some(OriginForm { host, target }))
}

/// `host[:port]` as a DVA's AS is named: a DNS name or an IP literal, an optional port. No
/// userinfo (`@`), nothing a URI parser could read as more than a host (RFC 3986's reg-name
/// would also allow `!$&'()*+,;=` and `%`). A byte scan: this runs on every request, and
/// `http::uri::Authority`'s parse cost about 800 instructions a request (callgrind).
fn is_host(value: &[u8]) -> bool {
    value.first().is_some_and(|&b| b != b':') && value.iter().all(|&b| HOST_BYTES[usize::from(b)])
}

/// The bytes of [`is_host`], as a table: one load a byte instead of a chain of range checks.
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b':' | b'[' | b']');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Empty, Full};

    fn request(
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &'static [u8],
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Full::new(Bytes::from_static(body))).unwrap()
    }

    fn names<B>(req: &Request<B>) -> Vec<&str> {
        let mut names: Vec<&str> = req.headers().keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn cl0_desync_a_body_on_get_head_options_trace_is_refused() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            let mut req = request(
                method,
                "/x",
                &[("host", "as")],
                b"GET /oauth2/authorize HTTP/1.1\r\n\r\n",
            );
            assert_eq!(
                clean(&mut req),
                Err(SeamRefusal::BodyWithoutMethod),
                "{method}"
            );
            let mut req = request(
                method,
                "/x",
                &[("host", "as"), ("transfer-encoding", "chunked")],
                b"",
            );
            assert!(clean(&mut req).is_err(), "{method} chunked");
            let mut req = request(method, "/x", &[("host", "as")], b"");
            assert_eq!(clean(&mut req), Ok(()), "{method} without a body");
        }
        let mut req = request("POST", "/x", &[("host", "as")], b"a=1");
        assert_eq!(clean(&mut req), Ok(()));
    }

    #[test]
    fn connection_named_headers_go_but_never_host() {
        let mut req = request(
            "GET",
            "/x",
            &[
                ("host", "as"),
                ("connection", "Host, X-Vert-Requested, keep-alive"),
                ("x-vert-requested", "onbehalfof"),
                ("keep-alive", "1"),
            ],
            b"",
        );
        clean(&mut req).unwrap();
        assert_eq!(names(&req), ["host"]);
    }

    #[test]
    fn hosts_are_dns_names_or_ip_literals_with_a_port() {
        for host in [
            "as.example.nl",
            "AS.example.nl:8443",
            "10.0.0.1:80",
            "[::1]:8080",
            "as_1",
        ] {
            assert!(is_host(host.as_bytes()), "{host}");
        }
        for host in [
            "", ":80", "u@as", "as/x", "as?x", "as#x", "as%41", "as,b", "as b",
        ] {
            assert!(!is_host(host.as_bytes()), "{host}");
        }
    }

    #[test]
    fn two_hosts_are_refused() {
        let mut req = request(
            "GET",
            "/x",
            &[("host", "as"), ("host", "evil.example")],
            b"",
        );
        assert_eq!(clean(&mut req), Err(SeamRefusal::RepeatedHost));
    }

    #[test]
    fn userinfo_in_the_target_or_host_is_refused() {
        let mut req = request("GET", "http://u:p@evil.example/oauth2/authorize", &[], b"");
        assert_eq!(clean(&mut req), Err(SeamRefusal::TargetAuthorityNotAHost));
        let mut req = request("GET", "/x", &[("host", "u:p@as")], b"");
        assert_eq!(clean(&mut req), Err(SeamRefusal::HostNotAHost));
    }

    #[test]
    fn host_disagreeing_with_an_absolute_target_is_refused() {
        let mut req = request(
            "GET",
            "http://as.example/x",
            &[("host", "evil.example")],
            b"",
        );
        assert_eq!(clean(&mut req), Err(SeamRefusal::HostDisagrees));
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_one_host() {
        let mut req = request(
            "GET",
            "http://AS.example:9000/a?b=c",
            &[("host", "as.example:9000")],
            b"",
        );
        clean(&mut req).unwrap();
        assert_eq!(req.uri(), "/a?b=c");
        assert_eq!(req.headers().get_all("host").iter().count(), 1);
        let mut req = request("GET", "http://as.example/a", &[], b"");
        clean(&mut req).unwrap();
        assert_eq!(req.headers()["host"], "as.example");
    }

    #[test]
    fn http11_without_host_is_refused_http10_is_not() {
        let mut req = Request::builder()
            .uri("/x")
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(clean(&mut req), Err(SeamRefusal::NoHost));
        let mut req = Request::builder()
            .uri("/x")
            .version(Version::HTTP_10)
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(clean(&mut req), Ok(()));
    }

    #[test]
    fn underscore_names_and_overrides_are_dropped() {
        let mut req = request(
            "GET",
            "/x",
            &[
                ("host", "as"),
                ("x_vert_requested", "onbehalfof"),
                ("x_forwarded_for", "1.2.3.4"),
                ("x_real_ip", "1.2.3.4"),
                ("x-original-url", "/oauth2/authorize"),
                ("x-rewrite-url", "/oauth2/authorize"),
                ("x-override-url", "/oauth2/authorize"),
                ("x-http-method-override", "GET"),
                ("x-method-override", "GET"),
                ("x-kept", "1"),
            ],
            b"",
        );
        clean(&mut req).unwrap();
        assert_eq!(names(&req), ["host", "x-kept"]);
    }

    #[test]
    fn expect_100_continue_is_taken_off_and_other_expectations_are_417() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::EXPECT, HeaderValue::from_static("100-Continue"));
        assert_eq!(take_expectation(&mut headers), Ok(()));
        assert!(headers.get(header::EXPECT).is_none());
        for values in [
            &["x-foo"][..],
            &["100-continue", "100-continue"],
            &["100-continue, x"],
        ] {
            let mut headers = http::HeaderMap::new();
            for v in values {
                headers.append(header::EXPECT, HeaderValue::from_static(v));
            }
            assert!(take_expectation(&mut headers).is_err(), "{values:?}");
        }
    }
}
