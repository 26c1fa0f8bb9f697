//! The exception table as HTTP, and the one log line of every decision.

use http::{Response, StatusCode};
use uuid::Uuid;

use super::Guard;
use crate::ops::metrics::DecisionLabels;
use crate::pages::{self, Details, Lang, Topic};
use crate::vert::events::RequestAnswer;
use crate::vert::exceptions::{Answer, error_redirect};
use crate::vert::{Exception, Flow};
use crate::vocab::{PageBody, random_uuid};

/// Log lines of decisions go to this target (`RUST_LOG=medmij_vert_proxy::decision=info`).
const DECISION: &str = "medmij_vert_proxy::decision";

/// What became of a request or a response: the decision line's `outcome`, and the label of
/// `medmij_vert_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// An authorization request, sealed and sent upstream.
    Forwarded,
    /// A return into its flow (login, consent), sent upstream without sealing again.
    Resumed,
    /// An authorization request answered with a page (1a, method).
    Refused,
    /// An authorization request answered with an error redirect to its client (1b, Vert 3).
    ErrorRedirect,
    /// A code released to its client.
    Released,
    /// An error redirect with the client's state restored (or added).
    Restored,
    /// A code withheld: the exception's page instead.
    Withheld,
    /// An error redirect without state, passed as it is.
    Passed,
}

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Resumed => "resumed",
            Outcome::Refused => "refused",
            Outcome::ErrorRedirect => "error_redirect",
            Outcome::Released => "released",
            Outcome::Restored => "restored",
            Outcome::Withheld => "withheld",
            Outcome::Passed => "passed",
        }
    }
}

/// What follows an exception besides the page: the error redirect of 1b / Vert 3, or the flow
/// whose `redirect_uri` a page may link back to.
pub(super) enum Then<'a> {
    Redirect(&'a str),
    Flow(&'a Flow),
}

impl Guard {
    /// The exception table's answer, as HTTP. The only place that turns an [`Exception`] into
    /// a response.
    pub(super) fn answer(
        &self,
        exception: Exception,
        lang: Lang,
        client_name: Option<&str>,
        trace_id: Uuid,
        then: Option<Then<'_>>,
    ) -> Response<PageBody> {
        match (exception.row().answer, then) {
            (Answer::ErrorRedirect, Some(Then::Redirect(location))) => pages::redirect(location),
            (Answer::Page { status, link_back }, then) => {
                let link = match (link_back, then) {
                    (Some(link), Some(Then::Flow(flow))) => Some(error_redirect(
                        &flow.redirect_uri,
                        link.error,
                        link.description,
                        Some(&flow.state),
                        self.issuer.as_deref(),
                    )),
                    _ => None,
                };
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                pages::render(
                    Topic::Exception(exception),
                    status,
                    &Details {
                        lang,
                        client_name,
                        link_back: link.as_deref(),
                        trace_id,
                        ttl_minutes: self.flow_ttl.as_secs() / 60,
                    },
                )
            }
            // An error redirect without its location cannot happen; answer with a page rather
            // than redirect anywhere unvalidated.
            (Answer::ErrorRedirect, _) => pages::render(
                Topic::Exception(Exception::FailClosed),
                StatusCode::BAD_REQUEST,
                &Details {
                    lang,
                    client_name,
                    link_back: None,
                    trace_id,
                    ttl_minutes: 0,
                },
            ),
        }
    }

    /// A withheld code: the log line, then the exception's answer.
    pub(super) fn withhold(
        &self,
        exception: Exception,
        detail: &str,
        flow: Option<&Flow>,
        lang: Lang,
    ) -> Response<PageBody> {
        let rule = exception.row().rule;
        let (trace_id, name) = match flow {
            Some(flow) => {
                self.decision(
                    Outcome::Withheld,
                    rule,
                    Some(exception),
                    detail,
                    &Subject::flow(flow),
                );
                let name = self
                    .clients
                    .load()
                    .get(flow.client_id())
                    .map(|c| c.name.clone());
                (flow.correlation_id, name)
            }
            None => {
                // No flow to name: the page's trace id finds this line.
                let subject = Subject {
                    correlation_id: random_uuid(),
                    ..Subject::default()
                };
                self.decision(Outcome::Withheld, rule, Some(exception), detail, &subject);
                (subject.correlation_id, None)
            }
        };
        self.answer(
            exception,
            lang,
            name.as_deref(),
            trace_id,
            flow.map(Then::Flow),
        )
    }
}

/// Who a decision is about, as its log line names it. Never a code, a state, a birth date.
#[derive(Default, Clone, Copy)]
pub(super) struct Subject<'a> {
    /// The logging interface's events, on the decisions about authorization requests.
    pub medmij_event: Option<&'static str>,
    /// `MedMij-Request-ID` of the authorization request (flow returns have none).
    pub request_id: Option<Uuid>,
    /// The flow's `X-Correlation-ID`, or the trace id of a page about no flow.
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
}

impl Guard {
    /// The one log line of a decision (target `medmij_vert_proxy::decision`), and its count in
    /// `medmij_vert_decisions_total` with the same labels.
    pub(super) fn decision(
        &self,
        outcome: Outcome,
        rule: &'static str,
        exception: Option<Exception>,
        detail: &str,
        subject: &Subject<'_>,
    ) {
        self.metrics.decision(DecisionLabels {
            outcome: outcome.as_str(),
            rule,
            exception: exception.map_or("", |e| e.row().id),
        });
        log_decision(outcome, rule, exception, detail, subject);
    }

    /// The decision on an authorization request: its line carries the MedMij logging
    /// interface's events for the answer (`medmij_event`).
    pub(super) fn request_decision(
        &self,
        outcome: Outcome,
        rule: &'static str,
        answer: RequestAnswer,
        exception: Option<Exception>,
        detail: &str,
        subject: &Subject<'_>,
    ) {
        let subject = Subject {
            medmij_event: Some(answer.events()),
            ..*subject
        };
        self.decision(outcome, rule, exception, detail, &subject);
    }
}

fn log_decision(
    outcome: Outcome,
    rule: &str,
    exception: Option<Exception>,
    detail: &str,
    subject: &Subject<'_>,
) {
    tracing::info!(
        target: DECISION,
        outcome = outcome.as_str(),
        rule,
        exception = exception.map(|e| e.row().id),
        detail,
        medmij_event = subject.medmij_event,
        client_id = subject.client_id,
        representation = subject.representation,
        request_id = subject.request_id.map(tracing::field::display),
        correlation_id = %subject.correlation_id,
    );
}
