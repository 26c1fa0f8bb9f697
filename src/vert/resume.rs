//! A request on the authorize endpoint that carries a state the proxy sealed is the AS sending
//! the browser back into that flow (SPEC §3.6): a login page's `?next=` round trip, Django's
//! APPEND_SLASH redirect, a consent form that POSTs back (Django OAuth Toolkit, Spring
//! Authorization Server). It is not sealed again (a second seal would grow the state on every
//! round trip and release the code with the first sealed state, which the client never sent);
//! it carries the flow's representation kind and correlation id; and it must name the flow's
//! client and `redirect_uri`, or nothing goes on: never a redirect to what the query names.

use super::authorize::{Param, Parsed};
use super::exceptions::Exception;
use super::flow::Clock;
use super::flow_return::Opened;
use super::{ClientList, Flow};

/// What a request that returns into a flow gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// Goes on to the AS as it came, in the flow.
    Flow(Box<Flow>),
    /// Not in a way the flow allows: a page, nothing forwarded.
    Refused {
        exception: Exception,
        /// ASCII, for the log line.
        detail: &'static str,
        flow: Option<Box<Flow>>,
    },
}

/// Whether the client and `redirect_uri` a reading names must be there (a `GET` round trip
/// carries the whole authorization request) or only agree when they are (a consent form posts
/// what it needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    Required,
    IfPresent,
}

/// The flow a reading's `state` opens to, when it is one the proxy sealed.
fn sealed_flow(parsed: &Parsed<'_>, open: &mut impl FnMut(&str) -> Opened) -> Option<Flow> {
    open(parsed.single(Param::State)?).into_flow()
}

/// Whether `parsed` names `flow`'s client and `redirect_uri`, unambiguously.
fn agrees(parsed: &Parsed<'_>, flow: &Flow, ids: Ids) -> Result<(), &'static str> {
    if !parsed.is_unambiguous() {
        return Err("a return into a flow with a repeated or malformed parameter");
    }
    // The AS's own round trips spell its parameters as OAuth does; under another name (PHP
    // reads `redirect_uri[]` as an array) it is no round trip of the AS's.
    if parsed.is_respelled() {
        return Err("a return into a flow with a parameter under another name");
    }
    // The code goes back only where the proxy looks: as for a new request, no other response
    // type or mode, no request object (a round trip must not smuggle `form_post` in).
    let delivered_elsewhere = parsed
        .single(Param::ResponseType)
        .is_some_and(|t| t != "code")
        || parsed
            .single(Param::ResponseMode)
            .is_some_and(|m| m != "query")
        || parsed.has(Param::Request)
        || parsed.has(Param::RequestUri);
    if delivered_elsewhere {
        return Err("a return into a flow that asks for the code elsewhere than the query");
    }
    // The AS reads the representation from the scope and the birth date too: a round trip
    // that names another kind, or another Vertegenwoordigde, than the flow asked for would get
    // a code for what the proxy never judged. A scope without the token is the flow's own
    // with `representation.strip_scope_token`.
    let asked = flow.requested.map(|r| r.kind);
    if let Some(scope) = parsed.single(Param::Scope)
        && !super::authorize::scope_kinds(scope)
            .iter()
            .all(|kind| Some(*kind) == asked)
    {
        return Err("a return into a flow with a scope that asks another representation");
    }
    if let (Some(requested), Some(date)) = (flow.requested, parsed.single(Param::Birthdate))
        && date != requested.birthdate.to_string()
    {
        return Err("a return into a flow with another MedMij_geboortedatum");
    }
    for (param, expected) in [
        (Param::ClientId, flow.client_id()),
        (Param::RedirectUri, flow.redirect_uri.as_str()),
    ] {
        match parsed.single(param) {
            Some(value) if value == expected => {}
            None if ids == Ids::IfPresent && !parsed.has(param) => {}
            _ => return Err("a return into a flow for another client or redirect_uri"),
        }
    }
    Ok(())
}

fn refused(exception: Exception, detail: &'static str, flow: Flow) -> Resumed {
    Resumed::Refused {
        exception,
        detail,
        flow: Some(Box::new(flow)),
    }
}

/// The checks every return shares, once its flow is known.
fn judge(
    flow: Flow,
    readings: &[(&Parsed<'_>, Ids)],
    clients: &ClientList,
    clock: Clock,
) -> Resumed {
    for (parsed, ids) in readings {
        if let Err(detail) = agrees(parsed, &flow, *ids) {
            return refused(Exception::FailClosed, detail, flow);
        }
    }
    if clients.get(flow.client_id()).is_none() {
        // Removed from the client list since the flow began.
        return refused(
            Exception::FailClosed,
            "a return into a flow of a client no longer listed",
            flow,
        );
    }
    if flow.is_expired(clock) {
        return refused(Exception::Expired, "flow older than state.flow_ttl", flow);
    }
    Resumed::Flow(Box::new(flow))
}

/// A `GET` on the authorize endpoint: `None` when its state is not one the proxy sealed (a new
/// authorization request, for [`super::authorize::decide`]).
pub fn get(
    query: &Parsed<'_>,
    clients: &ClientList,
    clock: Clock,
    mut open: impl FnMut(&str) -> Opened,
) -> Option<Resumed> {
    let flow = sealed_flow(query, &mut open)?;
    Some(judge(flow, &[(query, Ids::Required)], clients, clock))
}

/// A `POST` on the authorize endpoint (a consent form posting back): `None` when neither its
/// query nor its form body carries a state the proxy sealed (then it is no authorization
/// request: `GET` only, core.authint.200). Query and body are read apart, as frameworks do
/// (Django reads the form from the body, others merge both): each must agree with the flow on
/// its own, and a state in both must open to the same flow.
pub fn post(
    query: &Parsed<'_>,
    body: &Parsed<'_>,
    clients: &ClientList,
    clock: Clock,
    mut open: impl FnMut(&str) -> Opened,
) -> Option<Resumed> {
    let from_body = sealed_flow(body, &mut open);
    let from_query = sealed_flow(query, &mut open);
    let flow = match (from_body, from_query) {
        (None, None) => return None,
        (Some(a), Some(b)) if a != b => {
            return Some(refused(
                Exception::FailClosed,
                "a consent form for two flows",
                a,
            ));
        }
        (Some(flow), _) | (None, Some(flow)) => flow,
    };
    // A second state that does not open (or a first one, beside the other's) is another reading,
    // but for one: a consent page the AS served in answer to the authorization request itself
    // (a login session was there already) posts back to the URL the browser shows, the
    // client's own request with the client's own state, which this flow sealed exactly.
    let clients_own = body.single_raw(Param::State).is_some()
        && query.single_raw(Param::State) == Some(flow.state.as_str());
    for parsed in [query, body] {
        if std::ptr::eq(parsed, query) && clients_own {
            continue;
        }
        if parsed.has(Param::State) && sealed_flow(parsed, &mut open).is_none() {
            return Some(refused(
                Exception::FailClosed,
                "a consent form with a state that does not open",
                flow,
            ));
        }
    }
    Some(judge(
        flow,
        &[(query, Ids::IfPresent), (body, Ids::IfPresent)],
        clients,
        clock,
    ))
}

/// The query of a consent form posted back to the client's own request ([`post`]): the client's
/// state there replaced by the sealed one the form carries, so that the AS sees one flow in
/// both. `None` when the query is no such thing (it goes on as it came).
/// The scope goes as it went the first time: without the representation token when
/// `strip_token` (`representation.strip_scope_token`).
pub fn restated(
    query: &Parsed<'_>,
    body: &Parsed<'_>,
    flow: &Flow,
    strip_token: bool,
) -> Option<String> {
    let sealed = body.single_raw(Param::State)?;
    if query.single_raw(Param::State) != Some(flow.state.as_str()) || sealed == flow.state {
        return None;
    }
    let mut out = String::with_capacity(query.as_sent().len() + sealed.len());
    let strip = strip_token && flow.requested.is_some();
    query.push_forwarded(&mut out, sealed, strip, |_| false);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vert::{Birthdate, Client, Kind, Requested};

    const NOW: u64 = 1_800_000_000;
    const CLOCK: Clock = Clock {
        now: NOW,
        ttl: 1800,
        skew: 60,
    };

    fn clients() -> ClientList {
        ClientList::new([Client {
            hostname: "pgo.example.nl".into(),
            name: "PGO".into(),
        }])
    }

    fn flow() -> Flow {
        Flow {
            state: "orig".into(),
            redirect_uri: "https://pgo.example.nl/cb".into(),
            requested: Some(Requested {
                kind: Kind::OnBehalfOf,
                birthdate: Birthdate::from_number(19700901).unwrap(),
            }),
            issued_at: NOW - 60,
            correlation_id: uuid::Uuid::nil(),
            fresh_login: crate::vert::FreshLogin::OFF,
        }
    }

    /// `SEALED` opens to [`flow`], `OTHER` to another flow, `BAD` is in the format but does
    /// not open; anything else is the client's own state.
    fn open(state: &str) -> Opened {
        match state {
            "SEALED" => Opened::Flow(flow(), [7; 32]),
            "OTHER" => Opened::Flow(
                Flow {
                    state: "x".into(),
                    ..flow()
                },
                [7; 32],
            ),
            "BAD" => Opened::Invalid("tampered"),
            _ => Opened::Foreign,
        }
    }

    const IDS: &str = "client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcb";

    fn on_get(query: &str) -> Option<Resumed> {
        get(&Parsed::new(query), &clients(), CLOCK, open)
    }

    fn on_post(query: &str, body: &str) -> Option<Resumed> {
        post(
            &Parsed::new(query),
            &Parsed::new(body),
            &clients(),
            CLOCK,
            open,
        )
    }

    fn detail(r: Option<Resumed>) -> (Exception, &'static str) {
        match r {
            Some(Resumed::Refused {
                exception, detail, ..
            }) => (exception, detail),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_sealed_state_on_the_authorize_path_resumes_its_flow() {
        let r = on_get(&format!("response_type=code&{IDS}&state=SEALED&scope=48"));
        assert_eq!(r, Some(Resumed::Flow(Box::new(flow()))));
        // The scope token lost on the round trip (strip_scope_token) changes nothing: the
        // flow's own expectation holds.
        let r = on_get(&format!("response_type=code&{IDS}&state=SEALED"));
        assert!(matches!(r, Some(Resumed::Flow(_))));
    }

    /// Issue 27, found by the differential harness: a consent form posting back
    /// `scope=onbehalfofchild` into a flow that asked `onbehalfof` reached the AS, which read
    /// the other kind (PHP's `$_POST`, and every other reader).
    #[test]
    fn differential_a_return_naming_another_representation_or_birth_date_is_refused() {
        let flow = flow();
        let asked = flow
            .requested
            .expect("the test flow asks for representation");
        let theirs = asked.birthdate.to_string();
        let wrong_kind = match asked.kind {
            Kind::OnBehalfOf => "onbehalfofchild",
            Kind::OnBehalfOfChild => "onbehalfof",
        };
        for extra in [
            format!("&scope=48%20{wrong_kind}"),
            format!("&scope=onbehalfof%20onbehalfofchild&MedMij_geboortedatum={theirs}"),
            "&MedMij_geboortedatum=20000101".to_owned(),
        ] {
            let query = format!("response_type=code&{IDS}&state=SEALED{extra}");
            assert_eq!(detail(on_get(&query)).0, Exception::FailClosed, "{query}");
            let body = format!("state=SEALED{extra}");
            assert_eq!(
                detail(on_post("", &body)).0,
                Exception::FailClosed,
                "{body}"
            );
        }
        let own = format!(
            "response_type=code&{IDS}&state=SEALED&scope=48%20{}&MedMij_geboortedatum={theirs}",
            asked.kind.token()
        );
        assert!(matches!(on_get(&own), Some(Resumed::Flow(_))), "{own}");
    }

    /// Issue 27, found by the differential harness: a consent form posting `redirect_uri[]`
    /// back, which PHP reads as an array.
    #[test]
    fn differential_a_return_with_a_parameter_under_another_name_is_refused() {
        for query in [
            format!("response_type=code&{IDS}&state=SEALED")
                .replace("redirect_uri", "redirect_uri%5B%5D"),
            format!("response_type=code&{IDS}&STATE=SEALED"),
            format!("Response_Type=code&{IDS}&state=SEALED"),
        ] {
            assert_eq!(
                detail(on_get(&query)),
                (
                    Exception::FailClosed,
                    "a return into a flow with a parameter under another name"
                ),
                "{query}"
            );
        }
        let body =
            "redirect_uri%5B%5D=https%3A%2F%2Fpgo.example.nl%2Fcb&response_type=code&state=SEALED";
        assert_eq!(detail(on_post("", body)).0, Exception::FailClosed);
        // The log ids in a PGO's own spelling decide nothing: the flow goes on.
        let query = format!("response_type=code&{IDS}&state=SEALED&x-correlation-id=abc");
        assert!(matches!(on_get(&query), Some(Resumed::Flow(_))), "{query}");
    }

    #[test]
    fn a_state_that_is_not_sealed_is_a_new_request() {
        assert_eq!(on_get(&format!("{IDS}&state=mine")), None);
        assert_eq!(on_get(&format!("{IDS}&state=BAD")), None);
        assert_eq!(on_get(IDS), None);
    }

    #[test]
    fn a_resumed_flow_must_name_its_own_client_and_redirect_uri() {
        for query in [
            "client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=SEALED",
            "client_id=other.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcb&state=SEALED",
            "redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcb&state=SEALED",
            "client_id=pgo.example.nl&state=SEALED",
        ] {
            assert_eq!(detail(on_get(query)).0, Exception::FailClosed, "{query}");
        }
        // A round trip that asks for the code elsewhere than the query.
        for extra in [
            "&response_mode=form_post",
            "&response_type=token",
            "&request=eyJ",
        ] {
            let query = format!("{IDS}&state=SEALED{extra}");
            assert_eq!(detail(on_get(&query)).0, Exception::FailClosed, "{query}");
        }
        // Repeated under a lenient spelling: ambiguous, refused.
        let query = format!("{IDS}&state=SEALED&REDIRECT_URI=https%3A%2F%2Fevil.example%2Fcb");
        assert_eq!(
            detail(on_get(&query)),
            (
                Exception::FailClosed,
                "a return into a flow with a repeated or malformed parameter"
            )
        );
    }

    #[test]
    fn an_expired_flow_coming_back_gets_the_expired_page() {
        let expired = |state: &str| match state {
            "SEALED" => Opened::Flow(
                Flow {
                    issued_at: NOW - 7200,
                    ..flow()
                },
                [7; 32],
            ),
            _ => Opened::Foreign,
        };
        let r = get(
            &Parsed::new(&format!("{IDS}&state=SEALED")),
            &clients(),
            CLOCK,
            expired,
        );
        assert_eq!(detail(r).0, Exception::Expired);
    }

    #[test]
    fn a_flow_of_a_client_no_longer_listed_does_not_resume() {
        let r = get(
            &Parsed::new(&format!("{IDS}&state=SEALED")),
            &ClientList::new([]),
            CLOCK,
            open,
        );
        assert_eq!(detail(r).0, Exception::FailClosed);
    }

    #[test]
    fn consent_post_backs_resume_their_flow() {
        // Django OAuth Toolkit: the form posts to the authorize URL, query and all.
        let query = format!("response_type=code&{IDS}&state=SEALED");
        let body = format!("csrfmiddlewaretoken=t&{IDS}&state=SEALED&allow=Authorize");
        assert!(matches!(on_post(&query, &body), Some(Resumed::Flow(_))));
        // Spring Authorization Server: no query, and no redirect_uri in the form.
        let body = "client_id=pgo.example.nl&state=SEALED&scope=48";
        assert!(matches!(on_post("", body), Some(Resumed::Flow(_))));
        // No sealed state anywhere: not a flow (405 at the HTTP side).
        assert_eq!(on_post("", "client_id=pgo.example.nl&state=mine"), None);
        assert_eq!(on_post("", "a=1"), None);
        // A state repeated is no state to open: no flow, nothing forwarded either.
        assert_eq!(on_post("", "state=SEALED&state=SEALED"), None);
    }

    #[test]
    fn a_consent_page_served_at_the_clients_own_request_posts_back_into_its_flow() {
        // Django OAuth Toolkit with a login session: the consent page answers the authorization
        // request itself, and its form (action="") posts to the client's URL: the client's state
        // in the query, the sealed one in the body.
        let query = format!("response_type=code&{IDS}&state=orig&scope=48");
        let body = format!("csrfmiddlewaretoken=t&{IDS}&state=SEALED&allow=Authorize");
        assert_eq!(
            on_post(&query, &body),
            Some(Resumed::Flow(Box::new(flow())))
        );
        assert_eq!(
            restated(&Parsed::new(&query), &Parsed::new(&body), &flow(), false).as_deref(),
            Some(format!("response_type=code&{IDS}&state=SEALED&scope=48").as_str())
        );
        // As the first request went: without the token, with strip_scope_token.
        let query = format!("response_type=code&{IDS}&state=orig&scope=48%20onbehalfof");
        assert_eq!(
            restated(&Parsed::new(&query), &Parsed::new(&body), &flow(), true).as_deref(),
            Some(format!("response_type=code&{IDS}&state=SEALED&scope=48").as_str())
        );
        // Any other state in the query is still another reading.
        let query = format!("response_type=code&{IDS}&state=other&scope=48");
        assert_eq!(detail(on_post(&query, &body)).0, Exception::FailClosed);
        // A round trip with the sealed state in both: nothing to restate.
        let query = format!("response_type=code&{IDS}&state=SEALED");
        assert_eq!(
            restated(&Parsed::new(&query), &Parsed::new(&body), &flow(), false),
            None
        );
    }

    #[test]
    fn consent_post_backs_that_disagree_are_refused() {
        for (query, body) in [
            (
                "",
                "state=SEALED&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
            ),
            ("state=SEALED", "state=OTHER"),
            ("state=SEALED", "state=mine"),
            ("state=mine", "state=SEALED"),
            (
                "redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
                "state=SEALED",
            ),
            (
                "",
                "state=SEALED&Client_Id=other.example.nl&client_id=pgo.example.nl",
            ),
        ] {
            assert_eq!(
                detail(on_post(query, body)).0,
                Exception::FailClosed,
                "{query} | {body}"
            );
        }
    }
}
