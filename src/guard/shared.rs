//! [`Guard`]: what the authorize and release points share, built once from the config over
//! the live resources, and the few facts both ask of it (the clock, the decision record).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::header::HeaderName;

use super::decision::{self, DecisionLine, Outcome, Point, Subject};
use crate::config::Config;
use crate::ops::metrics::Metrics;
use crate::state::seal::KeyRing;
use crate::state::store::Records;
use crate::vert::flow::Clock;
use crate::vert::{ClientList, Exception, FreshLogin, Kind, Rule};

/// Everything the guard needs, shared by all connections.
pub struct Guard {
    pub(super) authorize_path: String,
    /// `oauth.issuer` (RFC 9207).
    pub(super) issuer: Option<String>,
    /// Swapped whole on reload (SIGHUP); a request works with the list it started with.
    pub(super) clients: Arc<ArcSwap<ClientList>>,
    pub(super) enabled: Vec<Kind>,
    pub(super) strip_scope_token: bool,
    /// `representation.age_rules`: the MedMij 2.x age limits.
    pub(super) age_rules: bool,
    /// `representation.fresh_login`: what a request for a representation gets added.
    pub(super) fresh_login: FreshLogin,
    pub(super) request_header: HeaderName,
    pub(super) used_header: HeaderName,
    pub(super) birthdate_header: HeaderName,
    /// Shared with [`Records`] (code digests are keyed from the state keys).
    pub(super) keys: Arc<ArcSwap<KeyRing>>,
    pub(super) records: Arc<Records>,
    flow_ttl: Duration,
    clock_skew: Duration,
    pub(super) metrics: Arc<Metrics>,
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
        // The two series the fail-closed alert divides.
        decision::declare(
            &metrics,
            &[
                (Outcome::Released, Rule::ExtVertAuthint202, None),
                (
                    Outcome::Withheld,
                    Exception::FailClosed.row().rule,
                    Some(Exception::FailClosed),
                ),
            ],
        );
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

    /// The flows' clock, now.
    pub(super) fn clock(&self) -> Clock {
        Clock {
            now: unix_now(),
            ttl: self.flow_ttl.as_secs(),
            skew: self.clock_skew.as_secs(),
        }
    }

    /// `state.flow_ttl` in whole minutes, as the expired page says it.
    pub(super) fn ttl_minutes(&self) -> u64 {
        self.flow_ttl.as_secs() / 60
    }

    /// The Dutch calendar date the age limits are applied on, when they are on.
    pub(super) fn age_today(&self) -> Option<chrono::NaiveDate> {
        // The clock only when the rules are on: this runs on every redirect.
        self.age_rules
            .then(|| crate::vert::age::dutch_date(chrono::Utc::now()))
    }

    /// A decision of the authorize or release point: its line and its count.
    pub(super) fn decision(
        &self,
        point: Point,
        outcome: Outcome,
        rule: Rule,
        exception: Option<Exception>,
        detail: &str,
        subject: Subject<'_>,
    ) {
        DecisionLine {
            point,
            outcome,
            rule,
            exception,
            detail,
            subject,
        }
        .record(&self.metrics);
    }
}

/// Seconds since the Unix epoch: the flows' clock.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
