//! The exception table as HTTP: the one place that turns an [`Exception`] into a response.

use http::{Response, StatusCode};
use uuid::Uuid;

use super::Guard;
use super::decision::{Outcome, Point, Subject};
use crate::pages::{self, Details, Lang, Topic};
use crate::vert::exceptions::{Answer, error_redirect};
use crate::vert::{Exception, Flow};
use crate::vocab::PageBody;

/// What follows an exception besides the page: the error redirect of 1b / Vert 3, or the flow
/// whose `redirect_uri` a page may link back to.
pub(super) enum Then<'a> {
    Redirect(&'a str),
    Flow(&'a Flow),
}

impl Guard {
    /// The exception table's answer, as HTTP.
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
                        ttl_minutes: self.ttl_minutes(),
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

    /// A withheld code (or a return into a flow refused): the decision, then the exception's
    /// answer.
    pub(super) fn withhold(
        &self,
        point: Point,
        exception: Exception,
        detail: &str,
        flow: Option<&Flow>,
        lang: Lang,
    ) -> Response<PageBody> {
        // No flow to name: the page's trace id finds the line.
        let subject = flow.map_or_else(Subject::anonymous, Subject::flow);
        let rule = exception.row().rule;
        self.decision(
            point,
            Outcome::Withheld,
            rule,
            Some(exception),
            detail,
            subject,
        );
        let clients = self.clients.load();
        let name = flow
            .and_then(|flow| clients.get(flow.client_id()))
            .map(|c| c.name.as_str());
        self.answer(
            exception,
            lang,
            name,
            subject.correlation_id,
            flow.map(Then::Flow),
        )
    }
}
