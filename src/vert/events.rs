//! The MedMij logging interface's events (*aanvullende ketenmonitoring*, core.logging.100 and
//! core.logging.203) for the authorization requests the proxy judges. The proxy answers 1a,
//! 1b and Vert 3 itself, so the AS never sees those requests: these events are the ones only
//! the proxy can log. Every other event (landing page, authentication, consent, token) stays
//! the AS's.

use super::exceptions::{Answer, Exception};

/// How the proxy answered an authorization request, as the logging interface counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestAnswer {
    /// Forwarded to the AS, which shows its landing page.
    Forwarded,
    /// An error page instead of the landing page (1a; a method other than `GET`).
    ErrorPage,
    /// An error redirect to the client (1b, Vert 3, the 2.x age limits).
    ErrorRedirect,
}

impl RequestAnswer {
    /// The answer the exception table gives.
    pub fn of(exception: Exception) -> Self {
        match exception.row().answer {
            Answer::Page { .. } => RequestAnswer::ErrorPage,
            Answer::ErrorRedirect => RequestAnswer::ErrorRedirect,
        }
    }

    /// The event names, space-separated, in the order they happen.
    pub fn events(self) -> &'static str {
        match self {
            RequestAnswer::Forwarded => "receive_authorization_request",
            RequestAnswer::ErrorPage => {
                "receive_authorization_request authorization_request_error show_authorization_request_error_page"
            }
            RequestAnswer::ErrorRedirect => {
                "receive_authorization_request send_authorization_request_error"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_logging_events_for_each_answer() {
        assert_eq!(
            RequestAnswer::of(Exception::Auth1a).events(),
            "receive_authorization_request authorization_request_error show_authorization_request_error_page"
        );
        for e in [Exception::Auth1b, Exception::Vert3, Exception::AgeAsked] {
            assert_eq!(
                RequestAnswer::of(e).events(),
                "receive_authorization_request send_authorization_request_error",
                "{e:?}"
            );
        }
        assert_eq!(
            RequestAnswer::Forwarded.events(),
            "receive_authorization_request"
        );
    }
}
