//! The tower middleware that applies [`crate::vert`] to HTTP, along tower-http's lines:
//! [`VertGuardLayer`] ([`layer`]), [`VertGuard`] ([`service`]: authorization requests decided
//! before they go upstream), [`ResponseFuture`] ([`future`]: the one place that looks at
//! upstream responses, where flow returns are released or withheld) and [`answers`] (the one
//! place that maps the exception table to HTTP, and the decision log line).
//!
//! Generic over the inner service's body and error types: it sits between the sanitizing
//! front and the error-page layer (see [`crate::server`]), and its tests use
//! `tower::service_fn` inner services, no sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use http::Response;
use http::header::{self, HeaderName, HeaderValue};

use crate::config::Config;
use crate::ops::metrics::{DecisionLabels, Metrics};
use crate::pages::{Lang, WithPages};
use crate::state::seal::KeyRing;
use crate::state::store::{Records, Refused, Source, StoreError};
use crate::vert::flow_return::{self, Location, Signal, Verdict};
use crate::vert::{ClientList, Exception, Flow, Kind};
use crate::vocab::random_uuid;

mod answers;
mod future;
mod layer;
mod service;
#[cfg(test)]
mod tests;

pub use future::ResponseFuture;
pub use layer::VertGuardLayer;
pub use service::VertGuard;

use answers::{Outcome, Subject};

/// Everything the guard needs, shared by all connections.
pub struct Guard {
    authorize_path: String,
    /// `oauth.issuer` (RFC 9207).
    issuer: Option<String>,
    /// Swapped whole on reload (SIGHUP); a request works with the list it started with.
    clients: Arc<ArcSwap<ClientList>>,
    enabled: Vec<Kind>,
    strip_scope_token: bool,
    /// `representation.age_rules`: the MedMij 2.x age limits.
    age_rules: bool,
    /// `representation.fresh_login`: what a request for a representation gets added.
    fresh_login: crate::vert::FreshLogin,
    request_header: HeaderName,
    used_header: HeaderName,
    birthdate_header: HeaderName,
    /// Shared with [`Records`] (code digests are keyed from the state keys).
    keys: Arc<ArcSwap<KeyRing>>,
    records: Arc<Records>,
    flow_ttl: Duration,
    clock_skew: Duration,
    metrics: Arc<Metrics>,
}

impl Guard {
    /// Over the live resources the server owns ([`crate::server::live`]), which the guard only
    /// reads.
    pub fn new(
        config: &Config,
        clients: Arc<ArcSwap<ClientList>>,
        keys: Arc<ArcSwap<KeyRing>>,
        records: Arc<Records>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let r = &config.representation;
        // The two series the fail-closed alert divides, there (at 0) from the start: a counter
        // that first appears at 1 hides that first count from Prometheus' `increase()`.
        let fail_closed = Exception::FailClosed.row();
        for (outcome, rule, exception) in [
            (Outcome::Released, "ext.vert.authint.202", ""),
            (Outcome::Withheld, fail_closed.rule, fail_closed.id),
        ] {
            metrics.declare_decision(DecisionLabels {
                outcome: outcome.as_str(),
                rule,
                exception,
            });
        }
        Guard {
            authorize_path: config.oauth.authorize_path.clone(),
            issuer: config.oauth.issuer.clone(),
            clients,
            enabled: r.scopes.clone(),
            strip_scope_token: r.strip_scope_token,
            age_rules: r.age_rules,
            fresh_login: r.fresh_login,
            request_header: r.request_header.clone(),
            used_header: r.used_header.clone(),
            birthdate_header: r.birthdate_header.clone(),
            keys,
            records,
            flow_ttl: config.state.flow_ttl,
            clock_skew: config.state.clock_skew,
            metrics,
        }
    }
}

impl Guard {
    /// The flows' clock, now.
    fn clock(&self) -> crate::vert::flow::Clock {
        crate::vert::flow::Clock {
            now: unix_now(),
            ttl: self.flow_ttl.as_secs(),
            skew: self.clock_skew.as_secs(),
        }
    }

    /// The Dutch calendar date the age limits are applied on, when they are on.
    fn age_today(&self) -> Option<chrono::NaiveDate> {
        // The clock only when the rules are on: this runs on every redirect.
        self.age_rules
            .then(|| crate::vert::age::dutch_date(chrono::Utc::now()))
    }

    /// Every upstream response: signal headers removed; a 3xx inspected by
    /// [`flow_return::inspect`]. A release is [`Inspected::Release`]: it waits for the store.
    fn inspect<ResB: WithPages + Send + 'static>(
        self: &Arc<Self>,
        mut response: Response<ResB>,
        accept_language: Option<&HeaderValue>,
        answering: Option<&Flow>,
        source: Source,
    ) -> Inspected<ResB> {
        // The signal is for the proxy only: it never reaches the browser.
        let (used, birthdate, repeated) = self.take_signal(response.headers_mut());
        if !response.status().is_redirection() {
            return Inspected::Done(response);
        }
        let mut values = response.headers().get_all(header::LOCATION).iter();
        let location = match (values.next(), values.next()) {
            (None, _) => return Inspected::Done(response),
            (Some(value), None) => match value.to_str() {
                Ok(text) => Location::Text(text),
                Err(_) => Location::Unreadable,
            },
            (Some(_), Some(_)) => Location::Unreadable,
        };
        let clients = self.clients.load();
        let settings = flow_return::Settings {
            clients: &clients,
            now: unix_now(),
            ttl: self.flow_ttl.as_secs(),
            skew: self.clock_skew.as_secs(),
            age_today: self.age_today(),
        };
        let signal = Signal {
            used: used.as_ref().and_then(|v| v.to_str().ok()),
            birthdate: birthdate.as_ref().and_then(|v| v.to_str().ok()),
            repeated,
        };
        let keys = self.keys.load();
        let open = |s: &str| keys.open(s);
        let verdict = flow_return::inspect(location, &settings, open, signal, answering);
        let lang = || Lang::from_accept_language(accept_language);
        // `release`: the flow's id and the code, which goes out only once the store has
        // recorded it.
        let (location, flow, outcome, detail, release) = match verdict {
            Verdict::PassThrough => return Inspected::Done(response),
            Verdict::StatelessError => {
                // No code to protect and no state to restore; said, so that the AS's habit
                // shows in the logs (see docs/integrating.md).
                let subject = Subject {
                    correlation_id: random_uuid(),
                    ..Subject::default()
                };
                self.decision(
                    Outcome::Passed,
                    "rfc6749.4.1.2.1",
                    None,
                    "error redirect to a client without state, passed as it is",
                    &subject,
                );
                return Inspected::Done(response);
            }
            Verdict::Restore { location, flow } => {
                (location, flow, Outcome::Restored, "state restored", None)
            }
            Verdict::AddState { location, flow } => (
                location,
                flow,
                Outcome::Restored,
                "client state added to an error redirect without one",
                None,
            ),
            Verdict::Release {
                location,
                flow,
                id,
                code,
            } => (
                location,
                flow,
                Outcome::Released,
                "code released",
                Some((id, code)),
            ),
            Verdict::Withhold {
                exception,
                detail,
                flow,
            } => {
                // The upstream response, code and all, is dropped here.
                let page = self.withhold(exception, detail, flow.as_ref(), lang());
                return Inspected::Done(ResB::response(page));
            }
        };
        // Built from a readable Location and a state that passed strict decoding, so it is a
        // valid header value; were it not, nothing is released.
        let Ok(value) = HeaderValue::from_str(&location) else {
            let page = self.withhold(
                Exception::FailClosed,
                "unusable Location",
                Some(&flow),
                lang(),
            );
            return Inspected::Done(ResB::response(page));
        };
        let Some((flow_id, code)) = release else {
            return Inspected::Done(self.pass_on(response, value, outcome, detail, &flow));
        };
        let (guard, lang) = (self.clone(), lang());
        Inspected::Release(Box::pin(async move {
            // One code per flow; and, with the token guard, the code recorded for redemption.
            let recorded = guard
                .records
                .release(flow_id, &code, flow.client_id(), source)
                .await;
            let (exception, detail) = match recorded {
                Ok(()) => return guard.pass_on(response, value, outcome, detail, &flow),
                Err(Refused::AlreadyUsed) => (
                    Exception::AlreadyUsed,
                    "a second code for a flow that released one",
                ),
                Err(Refused::OverShare) => (
                    Exception::FailClosed,
                    "the source holds its share of the records (store.source_share_percent)",
                ),
                Err(Refused::Store(StoreError::NotDurable { .. })) => (
                    Exception::FailClosed,
                    "store not durable: the release reached fewer replicas than store.min_replicas",
                ),
                Err(Refused::Store(_)) => (
                    Exception::FailClosed,
                    "store unavailable: the release cannot be recorded",
                ),
            };
            ResB::response(guard.withhold(exception, detail, Some(&flow), lang))
        }))
    }

    /// A flow return on its way to the client with the `Location` the verdict wrote, and its
    /// decision line. The AS's body goes: it was written for the sealed `Location` ("Redirecting
    /// to …&state=<sealed>"), and nothing of the sealed state may reach the client.
    fn pass_on<ResB: WithPages>(
        &self,
        response: Response<ResB>,
        location: HeaderValue,
        outcome: Outcome,
        detail: &str,
        flow: &Flow,
    ) -> Response<ResB> {
        self.decision(
            outcome,
            "ext.vert.authint.202",
            None,
            detail,
            &Subject::flow(flow),
        );
        let (mut parts, sealed) = response.into_parts();
        let headers = &mut parts.headers;
        for name in [
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::TRANSFER_ENCODING,
        ] {
            remove_if_present(headers, &name);
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        headers.insert(header::LOCATION, location);
        Response::from_parts(parts, sealed.drained())
    }

    /// Removes the signal headers, and says whether one came more than once. One scan of the
    /// names first: on every response, and for the few headers a response has, comparing
    /// names is cheaper than hashing them.
    fn take_signal(
        &self,
        headers: &mut http::HeaderMap,
    ) -> (Option<HeaderValue>, Option<HeaderValue>, bool) {
        let (mut used, mut birthdate) = (0usize, 0usize);
        for (name, _) in headers.iter() {
            used += usize::from(name == self.used_header);
            birthdate += usize::from(name == self.birthdate_header);
        }
        let mut take = |name: &HeaderName, count: usize| match count {
            0 => None,
            _ => headers.remove(name),
        };
        (
            take(&self.used_header, used),
            take(&self.birthdate_header, birthdate),
            used > 1 || birthdate > 1,
        )
    }
}

/// What inspecting a response gave: the response to send, or a release that first waits for
/// the store.
pub(super) enum Inspected<ResB> {
    Done(Response<ResB>),
    Release(Pin<Box<dyn Future<Output = Response<ResB>> + Send>>),
}

/// `HeaderMap::remove`, after a scan of the names: on every request and response, and for
/// the few headers a message has, comparing names is cheaper than hashing one.
fn remove_if_present(headers: &mut http::HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    if headers.keys().any(|k| k == name) {
        headers.remove(name)
    } else {
        None
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
