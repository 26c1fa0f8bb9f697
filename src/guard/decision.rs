//! The one decision record of the three policy points: every answer the proxy gives on a
//! guarded route is one log line of one shape (target `medmij_vert_proxy::decision`) and one
//! count in `medmij_vert_decisions_total` with the same outcome, rule and exception. Never a
//! code, a state or a birth date: a line names the flow by its ids and client only.

use uuid::Uuid;

use crate::ops::metrics::{DecisionLabels, Metrics};
use crate::vert::{Exception, Flow, Rule};

/// Log lines of decisions go to this target (`RUST_LOG=medmij_vert_proxy::decision=info`).
const DECISION: &str = "medmij_vert_proxy::decision";

/// Which policy point decided: the line's `point`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Point {
    /// An authorization request (or a return into its flow), before it goes upstream.
    Authorize,
    /// The AS's redirect on its way back: a code released or withheld, a state restored.
    Release,
    /// A request on the token path.
    Token,
}

impl Point {
    fn as_str(self) -> &'static str {
        match self {
            Point::Authorize => "authorize",
            Point::Release => "release",
            Point::Token => "token",
        }
    }
}

/// What became of a request or a response: the decision line's `outcome`, and the label of
/// `medmij_vert_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// An authorization request, sealed and sent upstream; on the token path, a released
    /// code's presentation the AS answered without a token (the code stays presentable).
    Forwarded,
    /// A return into its flow (login, consent), sent upstream without sealing again.
    Resumed,
    /// Answered with a page or an OAuth error (1a, a method; on the token path
    /// `invalid_grant` or `invalid_request`).
    Refused,
    /// An authorization request answered with an error redirect to its client (1b, Vert 3).
    ErrorRedirect,
    /// A code released to its client.
    Released,
    /// An error redirect with the client's state restored (or added).
    Restored,
    /// A code withheld: the exception's page instead; on the token path, a code the proxy
    /// withheld, presented (`invalid_grant`).
    Withheld,
    /// Passed as it is: an error redirect without state; on the token path, another grant or
    /// a preflight.
    Passed,
    /// A released code the AS made a token of: its record used up.
    Redeemed,
    /// The same code is at the AS now (503, retry).
    Busy,
    /// The store did not answer (503): nothing released, nothing redeemed.
    StoreUnavailable,
}

impl Outcome {
    pub(super) const fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Resumed => "resumed",
            Outcome::Refused => "refused",
            Outcome::ErrorRedirect => "error_redirect",
            Outcome::Released => "released",
            Outcome::Restored => "restored",
            Outcome::Withheld => "withheld",
            Outcome::Passed => "passed",
            Outcome::Redeemed => "redeemed",
            Outcome::Busy => "busy",
            Outcome::StoreUnavailable => "store_unavailable",
        }
    }
}

/// Who a decision is about, as its log line names it. Never a code, a state, a birth date.
#[derive(Default, Clone, Copy)]
pub(super) struct Subject<'a> {
    /// The logging interface's events, on the decisions about authorization requests.
    pub medmij_event: Option<&'static str>,
    /// `MedMij-Request-ID` of the request (flow returns have none).
    pub request_id: Option<Uuid>,
    /// The flow's or the request's `X-Correlation-ID`, or the trace id of a page about no
    /// flow.
    pub correlation_id: Uuid,
    pub client_id: Option<&'a str>,
    /// The representation kind asked for (`none` when none).
    pub representation: Option<&'a str>,
}

impl<'a> Subject<'a> {
    pub(super) fn flow(flow: &'a Flow) -> Self {
        Subject {
            medmij_event: None,
            request_id: None,
            correlation_id: flow.correlation_id,
            client_id: Some(flow.client_id()),
            representation: Some(flow.requested.map_or("none", |r| r.kind.token())),
        }
    }

    /// About no flow: a fresh id, which the page or the answer shows, finds the line.
    pub(super) fn anonymous() -> Self {
        Subject {
            correlation_id: crate::vocab::random_uuid(),
            ..Subject::default()
        }
    }
}

/// One decision: written once, by [`DecisionLine::record`].
pub(super) struct DecisionLine<'a> {
    pub point: Point,
    pub outcome: Outcome,
    pub rule: Rule,
    pub exception: Option<Exception>,
    /// Why, in ASCII: the line's `detail`.
    pub detail: &'a str,
    pub subject: Subject<'a>,
}

impl DecisionLine<'_> {
    /// The line, and its count with the same labels.
    pub(super) fn record(&self, metrics: &Metrics) {
        metrics.decision(self.labels());
        let subject = &self.subject;
        tracing::info!(
            target: DECISION,
            point = self.point.as_str(),
            outcome = self.outcome.as_str(),
            rule = self.rule.as_str(),
            exception = self.exception.map(|e| e.row().id),
            detail = self.detail,
            medmij_event = subject.medmij_event,
            client_id = subject.client_id,
            representation = subject.representation,
            request_id = subject.request_id.map(tracing::field::display),
            correlation_id = %subject.correlation_id,
        );
    }

    fn labels(&self) -> DecisionLabels {
        DecisionLabels {
            outcome: self.outcome.as_str(),
            rule: self.rule.as_str(),
            exception: self.exception.map_or("", |e| e.row().id),
        }
    }
}

/// The series an alert divides or watches, there (at 0) from the start: a counter that first
/// appears at 1 hides that first count from Prometheus' `increase()`.
pub(super) fn declare(metrics: &Metrics, series: &[(Outcome, Rule, Option<Exception>)]) {
    for &(outcome, rule, exception) in series {
        metrics.declare_decision(DecisionLabels {
            outcome: outcome.as_str(),
            rule: rule.as_str(),
            exception: exception.map_or("", |e| e.row().id),
        });
    }
}
