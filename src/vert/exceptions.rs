//! The exception table (SPEC §4, the seed's "uitzonderingssituaties") as data: one row per
//! exception with its MedMij action and the answer the proxy gives. The HTTP side maps an
//! [`Answer`] to a response in exactly one place (`guard::answer`).

use super::query::UriBuilder;
use super::rule::Rule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exception {
    /// Authorization interface 1a (core.authint.207): unknown `client_id` or a `redirect_uri`
    /// that is not valid for it. Never redirect (RFC 6749 §4.1.2.1).
    Auth1a,
    /// Authorization interface 1b (core.authint.207): any other invalid request, answered by an
    /// error redirect to the validated `redirect_uri`.
    Auth1b,
    /// Representation expected but not used (or another kind used than asked).
    Vert1,
    /// Representation used but not expected.
    Vert2,
    /// `MedMij_geboortedatum` missing (or malformed) while the scope asks for representation.
    Vert3,
    /// `MedMij_geboortedatum` differs from the Vertegenwoordigde's birth date on record.
    Vert4,
    /// The flow came back after `state.flow_ttl`.
    Expired,
    /// A code-bearing redirect the proxy cannot verify (no or invalid sealed state, no signal, a
    /// redirect elsewhere than the flow's `redirect_uri`): the code is withheld (SPEC §3.5).
    FailClosed,
    /// A second code for a flow that already released one (the AS's consent posted twice, a
    /// replayed return): a flow releases at most one code.
    AlreadyUsed,
    /// MedMij 2.x, `representation.age_rules` ([`super::age`]): `MedMij_geboortedatum` outside
    /// the ages the asked kind allows (`onbehalfofchild`: under 12; `onbehalfof`: 16 or older).
    /// Answered as 1b.
    AgeAsked,
    /// The same rule on the AS's birth date when the flow returns (a flow that crossed the
    /// 12th or 16th birthday, at Dutch midnight): the code is withheld.
    AgeOnRecord,
}

/// What the proxy answers for an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An HTML page for the Persoon; no redirect. With `link_back`, the page links back to the
    /// client's validated `redirect_uri` carrying that OAuth `error` and the original `state`.
    Page {
        status: u16,
        link_back: Option<LinkBack>,
    },
    /// A redirect to the validated `redirect_uri` with an OAuth `error`, an ASCII
    /// `error_description` and the original `state`.
    ErrorRedirect,
}

/// The OAuth error a page's link back to the client carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkBack {
    pub error: &'static str,
    /// ASCII.
    pub description: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub exception: Exception,
    /// The MedMij name of the exception.
    pub id: &'static str,
    /// The rule it implements.
    pub rule: Rule,
    pub situation: &'static str,
    pub medmij_action: &'static str,
    pub answer: Answer,
}

/// Indexed by `Exception as usize` (checked by a test).
pub const TABLE: [Row; 11] = [
    Row {
        exception: Exception::Auth1a,
        id: "Authorization interface 1a",
        rule: Rule::CoreAuthint207,
        situation: "unknown client_id, or redirect_uri not valid for it",
        medmij_action: "inform the Persoon; never redirect",
        answer: Answer::Page {
            status: 400,
            link_back: None,
        },
    },
    Row {
        exception: Exception::Auth1b,
        id: "Authorization interface 1b",
        rule: Rule::CoreAuthint207,
        situation: "invalid authorization request from a valid client",
        medmij_action: "error redirect to the client",
        answer: Answer::ErrorRedirect,
    },
    Row {
        exception: Exception::Vert1,
        id: "Authorization interface Vertegenwoordiging 1",
        rule: Rule::ExtVertAuthint202,
        situation: "representation expected but not used during authentication",
        medmij_action: "inform the Persoon; stop the flow at once",
        answer: Answer::Page {
            status: 403,
            link_back: None,
        },
    },
    Row {
        exception: Exception::Vert2,
        id: "Authorization interface Vertegenwoordiging 2",
        rule: Rule::ExtVertAuthint202,
        situation: "representation used but not expected",
        medmij_action: "inform the Persoon; stop the flow at once",
        answer: Answer::Page {
            status: 403,
            link_back: None,
        },
    },
    Row {
        exception: Exception::Vert3,
        id: "Authorization interface Vertegenwoordiging 3",
        rule: Rule::ExtVertAuthint200,
        situation: "MedMij_geboortedatum missing while the scope holds onbehalfof",
        medmij_action: "as Authorization interface 1b (core.authint.207)",
        answer: Answer::ErrorRedirect,
    },
    Row {
        exception: Exception::Vert4,
        id: "Authorization interface Vertegenwoordiging 4",
        rule: Rule::ExtVertAuthint202,
        situation: "MedMij_geboortedatum differs from the Vertegenwoordigde's birth date on record",
        medmij_action: "as Authorization interface 3 (core.authint.207): inform the Persoon, back to the PGO with access_denied",
        answer: Answer::Page {
            status: 403,
            link_back: Some(LinkBack {
                error: "access_denied",
                description: "MedMij_geboortedatum does not match the represented person",
            }),
        },
    },
    Row {
        exception: Exception::Expired,
        id: "flow expired",
        rule: Rule::ExtVertAuthint202,
        situation: "the flow returned after state.flow_ttl",
        medmij_action: "withhold the code; inform the Persoon",
        // No link back: it would put the client's state on a page, which only Vert 4 needs.
        answer: Answer::Page {
            status: 403,
            link_back: None,
        },
    },
    Row {
        exception: Exception::FailClosed,
        id: "fail closed",
        rule: Rule::ExtVertAuthint202,
        situation: "a code-bearing redirect the proxy cannot verify",
        medmij_action: "withhold the code",
        answer: Answer::Page {
            status: 502,
            link_back: None,
        },
    },
    Row {
        exception: Exception::AlreadyUsed,
        id: "login already used",
        rule: Rule::ExtVertAuthint202,
        situation: "a second code for a flow that already released one",
        medmij_action: "withhold the code; inform the Persoon",
        // No link back: the client got its answer with the first code.
        answer: Answer::Page {
            status: 403,
            link_back: None,
        },
    },
    Row {
        exception: Exception::AgeAsked,
        id: "Vertegenwoordiging age (request)",
        // Each limit belongs to its kind's rule; the decision line names the one that applied.
        rule: Rule::AgeLimits,
        situation: "MedMij_geboortedatum outside the ages of the kind asked: onbehalfofchild under 12, onbehalfof 16 or older (MedMij 2.x)",
        medmij_action: "as Authorization interface 1b (core.authint.207)",
        answer: Answer::ErrorRedirect,
    },
    Row {
        exception: Exception::AgeOnRecord,
        id: "Vertegenwoordiging age (on record)",
        rule: Rule::AgeLimits,
        situation: "the Vertegenwoordigde's birth date on record is outside the ages of the kind used, on the Dutch calendar day of the return",
        medmij_action: "withhold the code; inform the Persoon; back to the PGO with access_denied",
        answer: Answer::Page {
            status: 403,
            link_back: Some(LinkBack {
                error: "access_denied",
                description: "the represented person's age is outside what this kind of representation allows",
            }),
        },
    },
];

impl Exception {
    pub const ALL: [Exception; 11] = [
        Exception::Auth1a,
        Exception::Auth1b,
        Exception::Vert1,
        Exception::Vert2,
        Exception::Vert3,
        Exception::Vert4,
        Exception::Expired,
        Exception::FailClosed,
        Exception::AlreadyUsed,
        Exception::AgeAsked,
        Exception::AgeOnRecord,
    ];

    pub fn row(self) -> &'static Row {
        &TABLE[self as usize]
    }
}

/// The OAuth error redirect (RFC 6749 §4.1.2.1) to a `redirect_uri` that has been validated:
/// `error`, an ASCII `error_description`, the client's `state` exactly as it sent it, and the
/// AS's issuer as `iss` when it has one (RFC 9207: a client that checks `iss` refuses an
/// authorization response without it, and would never learn of the error).
pub fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: Option<&str>,
) -> String {
    debug_assert!(description.is_ascii());
    let uri = UriBuilder::new(redirect_uri)
        .text("error", error)
        .text("error_description", description);
    let uri = match state {
        Some(state) => uri.encoded("state", state),
        None => uri,
    };
    match issuer {
        Some(issuer) => uri.text("iss", issuer),
        None => uri,
    }
    .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_exception() {
        for e in Exception::ALL {
            assert_eq!(e.row().exception, e);
        }
    }

    #[test]
    fn vert3_answers_as_1b_and_1a_never_redirects() {
        assert_eq!(
            Exception::Vert3.row().answer,
            Exception::Auth1b.row().answer
        );
        assert!(matches!(
            Exception::Auth1a.row().answer,
            Answer::Page {
                link_back: None,
                ..
            }
        ));
    }

    #[test]
    fn age_rules_answer_as_1b_at_the_request_and_with_a_page_on_return() {
        assert_eq!(
            Exception::AgeAsked.row().answer,
            Exception::Auth1b.row().answer
        );
        let Answer::Page {
            status: 403,
            link_back: Some(link),
        } = Exception::AgeOnRecord.row().answer
        else {
            panic!("on record: a 403 page with a link back")
        };
        assert_eq!(link.error, "access_denied");
        assert!(link.description.is_ascii());
    }

    #[test]
    fn vert4_links_back_with_access_denied() {
        let Answer::Page {
            status: 403,
            link_back: Some(link),
        } = Exception::Vert4.row().answer
        else {
            panic!("Vert 4 is a 403 page with a link back")
        };
        assert_eq!(link.error, "access_denied");
        assert!(link.description.is_ascii());
    }

    #[test]
    fn vert1_and_vert2_stop_the_flow() {
        for e in [Exception::Vert1, Exception::Vert2] {
            assert_eq!(
                e.row().answer,
                Answer::Page {
                    status: 403,
                    link_back: None
                }
            );
        }
    }

    #[test]
    fn error_redirect_keeps_state_as_sent() {
        assert_eq!(
            error_redirect(
                "https://pgo.example.nl/cb",
                "invalid_request",
                "state missing",
                None,
                None
            ),
            "https://pgo.example.nl/cb?error=invalid_request&error_description=state%20missing"
        );
        assert_eq!(
            error_redirect(
                "https://p/cb?a=1",
                "access_denied",
                "x",
                Some("a+b%2F"),
                None
            ),
            "https://p/cb?a=1&error=access_denied&error_description=x&state=a+b%2F"
        );
    }

    #[test]
    fn rfc9207_the_proxys_own_redirects_carry_iss() {
        assert_eq!(
            error_redirect(
                "https://p/cb",
                "access_denied",
                "x",
                Some("s"),
                Some("https://as.nl/o")
            ),
            "https://p/cb?error=access_denied&error_description=x&state=s&iss=https%3A%2F%2Fas.nl%2Fo"
        );
    }
}
