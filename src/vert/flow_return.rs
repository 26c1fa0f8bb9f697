//! An upstream redirect (3xx `Location`) → [`Verdict`]: pass it through, restore the client's
//! state in it, release its code (ext.vert.authint.202), or withhold the code and follow the
//! exception table (Vert 1, Vert 2, Vert 4, expired, fail closed).

use std::borrow::Cow;

use super::age;
use super::exceptions::Exception;
use super::flow::{Clock, FlowId};
use super::fold;
use super::query::{self, RawPair};
use super::uri;
use super::{Birthdate, ClientList, Flow, Kind};

/// What opening a `state` as a sealed state gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Not in the sealed-state format at all: some other party's state.
    Foreign,
    /// In the sealed-state format but not openable: unknown key, tampered, or garbled.
    Invalid(&'static str),
    /// A flow, and its id.
    Flow(Flow, FlowId),
}

impl Opened {
    /// The flow, if it opened.
    pub fn into_flow(self) -> Option<Flow> {
        match self {
            Opened::Flow(flow, _) => Some(flow),
            _ => None,
        }
    }
}

/// The AS's representation signal on a code redirect (SPEC §3.3), as raw header values. A
/// header that is absent or not visible ASCII is `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signal<'a> {
    /// `none`, `onbehalfof` or `onbehalfofchild`.
    pub used: Option<&'a str>,
    /// `JJJJMMDD`: the birth date on record of the person the code was issued for.
    pub birthdate: Option<&'a str>,
    /// A signal header came more than once: ambiguous, so nothing is released.
    pub repeated: bool,
}

/// How the `Location` header of a 3xx response reads.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    /// Visible ASCII, present once.
    Text(&'a str),
    /// Repeated, or bytes that are not visible ASCII: it cannot be read one way only.
    Unreadable,
}

/// Time and limits for the flow-return checks.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub clients: &'a ClientList,
    /// The flow's age limits, and the time now.
    pub clock: Clock,
    /// With `representation.age_rules`: the calendar date in the Netherlands, on which the
    /// MedMij 2.x age limits are applied to the birth date on record ([`super::age`]).
    pub age_today: Option<chrono::NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a flow return, and no code for a client in it: the response goes out unchanged.
    PassThrough,
    /// A flow return without a code (an AS error redirect): the client's state restored.
    Restore { location: String, flow: Flow },
    /// The AS's error redirect on the authorization request itself, without `state`: the
    /// client's state added.
    AddState { location: String, flow: Flow },
    /// An error redirect to a client without `state`, and no flow known to add it from: it
    /// goes out unchanged (no code to protect), and is logged.
    StatelessError,
    /// ext.vert.authint.202 holds: the code goes to the client with its state restored.
    /// `code` is the one code in `location`, decoded, and `id` the flow's: what the records
    /// are kept for.
    Release {
        location: String,
        flow: Flow,
        id: FlowId,
        code: String,
    },
    /// The code is withheld; the exception says what the Persoon and the client get.
    Withhold {
        exception: Exception,
        /// ASCII, for the log line.
        detail: &'static str,
        flow: Option<Flow>,
    },
}

fn withhold(exception: Exception, detail: &'static str, flow: Option<Flow>) -> Verdict {
    Verdict::Withhold {
        exception,
        detail,
        flow,
    }
}

fn fail_closed(detail: &'static str) -> Verdict {
    withhold(Exception::FailClosed, detail, None)
}

/// A `Location` split at its first `?` and `#`.
struct Target<'a> {
    /// Scheme, authority and path.
    base: &'a str,
    query: &'a str,
    fragment: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn split(location: &'a str) -> Self {
        // The first `?` before the first `#` (memchr: a Location is scanned on every 3xx).
        let bytes = location.as_bytes();
        let (base, query, fragment) = match memchr::memchr2(b'?', b'#', bytes) {
            None => (location, "", None),
            Some(i) if bytes[i] == b'#' => (&location[..i], "", Some(&location[i + 1..])),
            Some(i) => {
                let rest = &location[i + 1..];
                match memchr::memchr(b'#', rest.as_bytes()) {
                    Some(j) => (&location[..i], &rest[..j], Some(&rest[j + 1..])),
                    None => (&location[..i], rest, None),
                }
            }
        };
        Target {
            base,
            query,
            fragment,
        }
    }

    /// Whether the target's host is on the client list.
    fn is_client(&self, clients: &ClientList) -> bool {
        self.host().is_some_and(|host| clients.get(&host).is_some())
    }

    /// The host of an absolute or scheme-relative URL, lower-cased, without userinfo or port:
    /// generous on purpose, so that every way of naming a client's host counts as that host.
    fn host(&self) -> Option<Cow<'a, str>> {
        // `scheme://` or `//`; anything else (a path) names no host.
        let scheme_len = self
            .base
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b"+-.".contains(&b)))
            .unwrap_or(self.base.len());
        let rest = &self.base[scheme_len..];
        let after_scheme = match rest.strip_prefix("://") {
            Some(after) if scheme_len > 0 => after,
            _ if scheme_len == 0 => rest.strip_prefix("//")?,
            _ => return None,
        };
        let end = after_scheme.bytes().position(|b| matches!(b, b'/' | b'\\'));
        let authority = &after_scheme[..end.unwrap_or(after_scheme.len())];
        let host = super::syntax::Authority::split(authority).host;
        let dots = host.bytes().rev().take_while(|&b| b == b'.').count();
        let host = &host[..host.len() - dots];
        Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        })
    }
}

/// The parameters of a `Location` query the proxy looks at.
#[derive(Default)]
struct Params<'a> {
    state: Option<(RawPair<'a>, Cow<'a, str>)>,
    /// One pair named exactly `code`, decoded: what a release hands to the client.
    code: Option<Cow<'a, str>>,
    /// Something else that a mainstream parser would read as a code: `CODE=` (ASP.NET reads
    /// query keys without case), `x=1;code=` (`;`-splitting parsers), a Unicode spelling.
    code_like: bool,
    /// A pair named `error`: an OAuth error redirect.
    error: bool,
}

impl<'a> Params<'a> {
    /// Strict: a name that does not decode, or a repeated or undecodable `state` or `code`,
    /// leaves the query unreadable.
    fn scan(query: &'a str) -> Option<Self> {
        let mut params = Params::default();
        // Most queries have no `;` at all: one search, not one a pair.
        let semicolons = memchr::memchr(b';', query.as_bytes()).is_some();
        for pair in query::pairs(query) {
            let as_sent = pair.as_sent(query);
            if semicolons && memchr::memchr(b';', as_sent.as_bytes()).is_some() {
                // Read as a `;`-splitting parser would: each piece is a pair of its own, and
                // a judged name among them counts as the client might read it.
                for (i, piece) in as_sent.split(';').enumerate() {
                    let raw = piece.split('=').next().unwrap_or(piece);
                    // The first piece's name is the pair's own unless the `;` comes first.
                    let own = i == 0 && raw.len() < piece.len();
                    let Ok(name) = query::decode(raw) else {
                        continue;
                    };
                    match fold::read_as(&name, &["code", "state", "error"]) {
                        Some("code") => params.code_like = true,
                        // The pair's own `state` is read below; one behind a `;` is a second.
                        Some("state") if own => {}
                        Some("state") => return None,
                        Some("error") => params.error = true,
                        _ => {}
                    }
                }
            }
            let name = match pair.name {
                "state" | "code" | "error" => Cow::Borrowed(pair.name),
                raw if raw.bytes().any(|b| matches!(b, b'%' | b'+')) => query::decode(raw).ok()?,
                raw => Cow::Borrowed(raw),
            };
            match name.as_ref() {
                "state" => {
                    if params.state.is_some() {
                        return None;
                    }
                    params.state = Some((pair, query::decode(pair.value).ok()?));
                }
                "code" => {
                    if params.code.is_some() {
                        return None;
                    }
                    params.code = Some(query::decode(pair.value).ok()?);
                }
                "error" => params.error = true,
                // Names a lenient parser of the client's binds to a judged one
                // (`fold::read_as`): a second `state` the client might read instead of the
                // restored one makes the query unreadable; an `ERROR` makes it an error
                // redirect, which carries no code.
                other => match fold::read_as(other, &["code", "state", "error"]) {
                    Some("code") => params.code_like = true,
                    Some("state") => return None,
                    Some("error") => params.error = true,
                    _ => {}
                },
            }
        }
        Some(params)
    }

    /// A code in any form a parser of the client's could find.
    fn any_code(&self) -> bool {
        self.code.is_some() || self.code_like
    }
}

/// Inspects the `Location` of an upstream 3xx response.
///
/// - A `state` that opens as a sealed state in a redirect with a code or to a client makes it a
///   flow return: it must go to the flow's `redirect_uri`, and be exactly one of two things: a
///   clean code redirect (one `code`, nothing else readable as a code, no `error`), which the
///   signal decides; or an error redirect (`error`, nothing readable as a code), whose state is
///   restored. Anything else is withheld.
/// - A code for a listed client without a sealed state is withheld (SPEC §3.5).
/// - Anything else (the AS's own pages, DigiD) passes through unchanged.
///
/// `answering`: the flow whose authorization request this response answers, if it answers
/// one. There, an error redirect to the flow's `redirect_uri` that lacks `state` (some AS drop
/// it from errors they raise themselves, e.g. `invalid_scope`) gets the client's state added.
pub fn inspect(
    location: Location<'_>,
    settings: &Settings<'_>,
    open: impl FnOnce(&str) -> Opened,
    signal: Signal<'_>,
    answering: Option<&Flow>,
) -> Verdict {
    match scan(location) {
        Scan::Done(verdict) => verdict,
        Scan::Judge(scanned) => scanned.judge(settings, open, signal, answering),
    }
}

/// A `Location` read ([`scan`]) before anything is loaded to judge it.
pub enum Scan<'a> {
    /// Decided by its text alone: the common redirect (the AS's own pages, DigiD), with
    /// nothing to protect or restore, passes; an unreadable `Location` fails closed.
    Done(Verdict),
    /// It names a state, a code, an error or a fragment, or its query is unreadable:
    /// [`Scanned::judge`] with the client list, the clock and the keys.
    Judge(Scanned<'a>),
}

/// A `Location` split and its query scanned, once.
pub struct Scanned<'a> {
    location: &'a str,
    target: Target<'a>,
    /// `None`: the query does not read one way.
    params: Option<Params<'a>>,
}

/// The first half of [`inspect`]: what a `Location`'s text alone decides. On every upstream
/// redirect, so the caller loads the client list, the clock and the keys only for
/// [`Scan::Judge`] (issue 31).
pub fn scan(location: Location<'_>) -> Scan<'_> {
    let Location::Text(location) = location else {
        return Scan::Done(fail_closed("unreadable Location"));
    };
    let target = Target::split(location);
    let params = Params::scan(target.query);
    if let Some(params) = &params
        && params.state.is_none()
        && !params.any_code()
        && target.fragment.is_none()
        && !params.error
    {
        return Scan::Done(Verdict::PassThrough);
    }
    Scan::Judge(Scanned {
        location,
        target,
        params,
    })
}

impl Scanned<'_> {
    /// The second half of [`inspect`].
    pub fn judge(
        self,
        settings: &Settings<'_>,
        open: impl FnOnce(&str) -> Opened,
        signal: Signal<'_>,
        answering: Option<&Flow>,
    ) -> Verdict {
        let Scanned {
            location,
            target,
            params,
        } = self;
        let Some(params) = params else {
            return if target.is_client(settings.clients) {
                fail_closed("unreadable query in a redirect to a client")
            } else {
                Verdict::PassThrough
            };
        };
        if params.state.is_none() && !params.any_code() && target.fragment.is_none() {
            // An error redirect ([`scan`] passed the rest).
            return stateless_error(location, &target, &params, settings, answering);
        }
        let to_client = target.is_client(settings.clients);
        let opened = match &params.state {
            Some((_, state)) => open(state),
            None => Opened::Foreign,
        };
        match opened {
            Opened::Flow(flow, id) if params.any_code() || to_client => {
                flow_return(location, &target, &params, (flow, id), settings, signal)
            }
            // The AS carrying the sealed state through its own pages: it stays sealed.
            Opened::Flow(..) => Verdict::PassThrough,
            Opened::Invalid(why) if params.any_code() => fail_closed(why),
            _ if to_client && target.fragment.is_some() => {
                fail_closed("fragment in a redirect to a client")
            }
            _ if to_client && params.any_code() => {
                fail_closed("code for a client without a sealed state")
            }
            _ => Verdict::PassThrough,
        }
    }
}

/// The one code named exactly `code` in a `Location` whose code is withheld, decoded: what the
/// token guard is told was withheld, so that its presentation is said to be. A code under
/// another name, or two, is not told (it is refused all the same, as never released).
pub fn withheld_code(location: &str) -> Option<String> {
    let params = Params::scan(Target::split(location).query)?;
    params.code.map(Cow::into_owned)
}

/// An error redirect without `state` (and without anything readable as a code).
fn stateless_error(
    location: &str,
    target: &Target<'_>,
    params: &Params<'_>,
    settings: &Settings<'_>,
    answering: Option<&Flow>,
) -> Verdict {
    match answering {
        Some(flow) if uri::equivalent(target.base, Target::split(&flow.redirect_uri).base) => {
            let mut location = restore_state(location, target, params, flow);
            location.push(if target.query.is_empty() { '?' } else { '&' });
            location.push_str("state=");
            location.push_str(&flow.state);
            Verdict::AddState {
                location,
                flow: flow.clone(),
            }
        }
        _ if target.is_client(settings.clients) => Verdict::StatelessError,
        _ => Verdict::PassThrough,
    }
}

fn flow_return(
    location: &str,
    target: &Target<'_>,
    params: &Params<'_>,
    (flow, id): (Flow, FlowId),
    settings: &Settings<'_>,
    signal: Signal<'_>,
) -> Verdict {
    // Only the validated redirect_uri may receive anything of this flow (no open redirect).
    // An AS may respell it equivalently (RFC 3986 §6.2.2); what goes out is the client's own
    // spelling, with the AS's parameters.
    let expected_base = Target::split(&flow.redirect_uri).base;
    if !uri::equivalent(target.base, expected_base) || target.fragment.is_some() {
        return fail_closed("flow returns elsewhere than its redirect_uri");
    }
    if params.code_like {
        return withhold(
            Exception::FailClosed,
            "code under another name in a flow return",
            Some(flow),
        );
    }
    let code = match (&params.code, params.error) {
        (None, true) => {
            let location = restore_state(location, target, params, &flow);
            return Verdict::Restore { location, flow };
        }
        (Some(code), false) => code.to_string(),
        (Some(_), true) => {
            return withhold(
                Exception::FailClosed,
                "flow return with both a code and an error",
                Some(flow),
            );
        }
        (None, false) => {
            return withhold(
                Exception::FailClosed,
                "flow return that is neither a code nor an error redirect",
                Some(flow),
            );
        }
    };
    if settings.clients.get(flow.client_id()).is_none() {
        // Taken off the client list since the flow began: as a return into its flow is.
        return withhold(
            Exception::FailClosed,
            "a code for a client no longer listed",
            Some(flow),
        );
    }
    if flow.is_expired(settings.clock) {
        return withhold(
            Exception::Expired,
            "flow older than state.flow_ttl",
            Some(flow),
        );
    }
    let location = restore_state(location, target, params, &flow);
    // ext.vert.authint.202: the AS states whether representation was used, and for whom.
    if signal.repeated {
        return withhold(
            Exception::FailClosed,
            "repeated representation signal",
            Some(flow),
        );
    }
    let used = match signal.used {
        None => {
            return withhold(
                Exception::FailClosed,
                "no representation signal",
                Some(flow),
            );
        }
        Some("none") => None,
        Some(token) => match Kind::from_token(token) {
            Some(kind) => Some(kind),
            None => {
                return withhold(
                    Exception::FailClosed,
                    "unknown representation signal",
                    Some(flow),
                );
            }
        },
    };
    let requested = flow.requested;
    match (requested, used) {
        (None, None) => Verdict::Release {
            location,
            flow,
            id,
            code,
        },
        (Some(_), None) => withhold(
            Exception::Vert1,
            "representation expected, not used",
            Some(flow),
        ),
        (None, Some(_)) => withhold(
            Exception::Vert2,
            "representation used, not expected",
            Some(flow),
        ),
        (Some(r), Some(kind)) if r.kind != kind => withhold(
            Exception::Vert1,
            "another kind of representation used than asked",
            Some(flow),
        ),
        (Some(r), Some(_)) => match signal.birthdate.map(Birthdate::parse_format) {
            None => withhold(Exception::FailClosed, "no birth date signal", Some(flow)),
            Some(Err(_)) => withhold(
                Exception::FailClosed,
                "malformed birth date signal",
                Some(flow),
            ),
            Some(Ok(on_record)) if on_record != r.birthdate => withhold(
                Exception::Vert4,
                "birth date differs from the record",
                Some(flow),
            ),
            // MedMij 2.x: the age limits again, on the record and today's Dutch date (a flow
            // may cross the 12th or 16th birthday at midnight).
            Some(Ok(on_record)) => match settings
                .age_today
                .map(|today| age::check(r.kind, on_record, today))
            {
                Some(Err(e)) => withhold(Exception::AgeOnRecord, e.describe(), Some(flow)),
                _ => Verdict::Release {
                    location,
                    flow,
                    id,
                    code,
                },
            },
        },
    }
}

/// The `Location` at the flow's `redirect_uri` as the client sent it, with the AS's parameters
/// and the sealed state replaced by the client's state as it sent it.
fn restore_state(location: &str, target: &Target<'_>, params: &Params<'_>, flow: &Flow) -> String {
    let expected_base = Target::split(&flow.redirect_uri).base;
    // `target.base` and the state's value are slices of `location`, in that order.
    let after_base = target.base.len();
    let mut out = String::with_capacity(location.len() + flow.state.len());
    out.push_str(expected_base);
    match &params.state {
        Some((pair, _)) => {
            let start = pair.value.as_ptr() as usize - location.as_ptr() as usize;
            let end = start + pair.value.len();
            out.push_str(&location[after_base..start]);
            out.push_str(&flow.state);
            out.push_str(&location[end..]);
        }
        None => out.push_str(&location[after_base..]),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vert::{Client, Requested};
    use uuid::Uuid;

    const NOW: u64 = 1_800_000_000;

    fn clients() -> ClientList {
        ClientList::new([Client {
            hostname: "pgo.example.nl".into(),
            name: "PGO".into(),
        }])
    }

    fn flow(requested: Option<(Kind, &str)>) -> Flow {
        Flow {
            state: "orig+state%2F".into(),
            redirect_uri: "https://pgo.example.nl/cb".into(),
            requested: requested.map(|(kind, date)| Requested {
                kind,
                birthdate: Birthdate::parse_format(date).unwrap(),
            }),
            issued_at: NOW - 60,
            correlation_id: Uuid::nil(),
            fresh_login: crate::vert::FreshLogin::OFF,
        }
    }

    fn check(
        location: &str,
        flow_: Option<Flow>,
        used: Option<&str>,
        date: Option<&str>,
    ) -> Verdict {
        check_signal(location, flow_, used, date, false)
    }

    fn check_signal(
        location: &str,
        flow_: Option<Flow>,
        used: Option<&str>,
        date: Option<&str>,
        repeated: bool,
    ) -> Verdict {
        check_at(location, flow_, used, date, repeated, None)
    }

    /// The flow-return check; `age_today`: the age rules on, on that Dutch date.
    fn check_at(
        location: &str,
        flow_: Option<Flow>,
        used: Option<&str>,
        date: Option<&str>,
        repeated: bool,
        age_today: Option<chrono::NaiveDate>,
    ) -> Verdict {
        let clients = clients();
        let settings = Settings {
            clients: &clients,
            clock: Clock {
                now: NOW,
                ttl: 1800,
                skew: 60,
            },
            age_today,
        };
        inspect(
            Location::Text(location),
            &settings,
            |state| match (&flow_, state) {
                (Some(f), "SEALED") => Opened::Flow(f.clone(), [7; 32]),
                (_, "TAMPERED") => Opened::Invalid("tampered"),
                _ => Opened::Foreign,
            },
            Signal {
                used,
                birthdate: date,
                repeated,
            },
            None,
        )
    }

    const CODE: &str = "https://pgo.example.nl/cb?code=C0DE&state=SEALED";

    fn exception(v: &Verdict) -> Option<Exception> {
        match v {
            Verdict::Withhold { exception, .. } => Some(*exception),
            _ => None,
        }
    }

    /// Issue 26, finding 6: the client was taken off the list after its flow began.
    #[test]
    fn delisted_a_code_for_a_client_no_longer_listed_is_withheld() {
        let mut gone = flow(None);
        gone.redirect_uri = "https://gone.example.nl/cb".into();
        let v = check(
            "https://gone.example.nl/cb?code=C&state=SEALED",
            Some(gone),
            Some("none"),
            None,
        );
        match &v {
            Verdict::Withhold {
                exception, detail, ..
            } => assert_eq!(
                (*exception, *detail),
                (
                    Exception::FailClosed,
                    "a code for a client no longer listed"
                )
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ext_vert_authint_202_self_released_with_state_restored() {
        let v = check(CODE, Some(flow(None)), Some("none"), None);
        assert_eq!(
            v,
            Verdict::Release {
                location: "https://pgo.example.nl/cb?code=C0DE&state=orig+state%2F".into(),
                flow: flow(None),
                id: [7; 32],
                code: "C0DE".into(),
            }
        );
    }

    #[test]
    fn ext_vert_authint_202_onbehalfof_released_when_birthdate_matches() {
        let f = flow(Some((Kind::OnBehalfOf, "19700901")));
        let v = check(CODE, Some(f), Some("onbehalfof"), Some("19700901"));
        assert!(matches!(v, Verdict::Release { .. }), "{v:?}");
    }

    #[test]
    fn ext_vert_authint_204_onbehalfofchild_released_when_birthdate_matches() {
        let f = flow(Some((Kind::OnBehalfOfChild, "20200315")));
        let v = check(CODE, Some(f), Some("onbehalfofchild"), Some("20200315"));
        assert!(matches!(v, Verdict::Release { .. }), "{v:?}");
    }

    #[test]
    fn vert1_expected_not_used() {
        let f = flow(Some((Kind::OnBehalfOf, "19700901")));
        let v = check(CODE, Some(f), Some("none"), None);
        assert_eq!(exception(&v), Some(Exception::Vert1));
    }

    #[test]
    fn vert1_other_kind_used() {
        let f = flow(Some((Kind::OnBehalfOf, "19700901")));
        let v = check(CODE, Some(f), Some("onbehalfofchild"), Some("19700901"));
        assert_eq!(exception(&v), Some(Exception::Vert1));
    }

    #[test]
    fn fail_closed_on_a_repeated_signal() {
        // The same values that release once (the tests above) withhold when repeated.
        let f = flow(Some((Kind::OnBehalfOf, "19700901")));
        for (flow_, used, date) in [
            (flow(None), "none", None),
            (f, "onbehalfof", Some("19700901")),
        ] {
            let v = check_signal(CODE, Some(flow_), Some(used), date, true);
            assert_eq!(exception(&v), Some(Exception::FailClosed), "{v:?}");
        }
    }

    #[test]
    fn vert2_used_not_expected() {
        let v = check(CODE, Some(flow(None)), Some("onbehalfof"), Some("19700901"));
        assert_eq!(exception(&v), Some(Exception::Vert2));
    }

    /// [`check`] with the age rules on, on the Dutch date `today`.
    fn check_on(flow_: Flow, used: &str, date: &str, today: chrono::NaiveDate) -> Verdict {
        check_at(
            CODE,
            Some(flow_),
            Some(used),
            Some(date),
            false,
            Some(today),
        )
    }

    #[test]
    fn age_rules_on_record_a_flow_that_crosses_the_12th_or_16th_birthday_is_withheld() {
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 6, d).unwrap();
        // ext.vert.authint.204: asked on the eve of the 12th birthday, back on the day.
        let child = flow(Some((Kind::OnBehalfOfChild, "20140615")));
        let v = check_on(child.clone(), "onbehalfofchild", "20140615", day(14));
        assert!(matches!(v, Verdict::Release { .. }), "{v:?}");
        let v = check_on(child.clone(), "onbehalfofchild", "20140615", day(15));
        assert_eq!(exception(&v), Some(Exception::AgeOnRecord), "{v:?}");
        let Verdict::Withhold {
            detail,
            flow: Some(_),
            ..
        } = v
        else {
            panic!("withheld with its flow, for the link back")
        };
        assert_eq!(
            detail,
            "onbehalfofchild is for a represented child younger than 12 (MedMij 2.x)"
        );
        // ext.vert.authint.201: the 16th birthday comes, and onbehalfof is allowed from then.
        let teen = flow(Some((Kind::OnBehalfOf, "20100615")));
        let v = check_on(teen.clone(), "onbehalfof", "20100615", day(14));
        assert_eq!(exception(&v), Some(Exception::AgeOnRecord), "{v:?}");
        let v = check_on(teen, "onbehalfof", "20100615", day(15));
        assert!(matches!(v, Verdict::Release { .. }), "{v:?}");
        // A birth date that differs is Vert 4 first, whatever the age.
        let v = check_on(child, "onbehalfofchild", "20000101", day(14));
        assert_eq!(exception(&v), Some(Exception::Vert4));
    }

    #[test]
    fn vert4_birthdate_differs() {
        let f = flow(Some((Kind::OnBehalfOf, "19700902")));
        let v = check(CODE, Some(f), Some("onbehalfof"), Some("19700901"));
        assert_eq!(exception(&v), Some(Exception::Vert4));
        let Verdict::Withhold { flow: Some(f), .. } = v else {
            panic!()
        };
        assert_eq!(
            f.state, "orig+state%2F",
            "the page links back with the original state"
        );
    }

    #[test]
    fn fail_closed_without_signal_or_with_bad_signal() {
        let f = flow(Some((Kind::OnBehalfOf, "19700901")));
        for (used, date) in [
            (None, Some("19700901")),
            (Some("yes"), Some("19700901")),
            (Some("OnBehalfOf"), Some("19700901")),
            (Some("onbehalfof"), None),
            (Some("onbehalfof"), Some("1970-09-01")),
            (Some("onbehalfof"), Some("19700231")),
        ] {
            let v = check(CODE, Some(f.clone()), used, date);
            assert_eq!(
                exception(&v),
                Some(Exception::FailClosed),
                "{used:?} {date:?}"
            );
        }
        let v = check(CODE, Some(flow(None)), None, None);
        assert_eq!(exception(&v), Some(Exception::FailClosed));
    }

    #[test]
    fn expired_flow_withholds_the_code() {
        let mut f = flow(None);
        f.issued_at = NOW - 1801;
        assert_eq!(
            exception(&check(CODE, Some(f.clone()), Some("none"), None)),
            Some(Exception::Expired)
        );
        f.issued_at = NOW + 61;
        assert_eq!(
            exception(&check(CODE, Some(f), Some("none"), None)),
            Some(Exception::Expired)
        );
    }

    #[test]
    fn fail_closed_code_to_client_without_sealed_state() {
        for loc in [
            "https://pgo.example.nl/cb?code=C0DE&state=theirs",
            "https://pgo.example.nl/cb?code=C0DE",
            "https://pgo.example.nl/cb?code=C0DE&state=None",
            "https://PGO.example.nl./other?code=C0DE",
            "https://pgo.example.nl:443/cb?code=C0DE",
            "//pgo.example.nl/cb?code=",
            "https://x@pgo.example.nl/cb?co%64e=C0DE",
            "http://pgo.example.nl/cb?code=C0DE",
        ] {
            assert_eq!(
                exception(&check(loc, Some(flow(None)), Some("none"), None)),
                Some(Exception::FailClosed),
                "{loc}"
            );
        }
    }

    #[test]
    fn fail_closed_tampered_state_with_code_anywhere() {
        for loc in [
            "https://pgo.example.nl/cb?code=C&state=TAMPERED",
            "https://elsewhere.test/cb?code=C&state=TAMPERED",
            "/local?code=C&state=TAMPERED",
        ] {
            assert_eq!(
                exception(&check(loc, None, Some("none"), None)),
                Some(Exception::FailClosed),
                "{loc}"
            );
        }
    }

    #[test]
    fn fail_closed_flow_returning_elsewhere() {
        for loc in [
            "https://evil.test/cb?code=C&state=SEALED",
            "https://pgo.example.nl/other?code=C&state=SEALED",
            "https://pgo.example.nl/cb?code=C&state=SEALED#x",
            "/cb?code=C&state=SEALED",
            "https://pgo.example.nl/cb?error=access_denied&state=SEALED#",
        ] {
            assert_eq!(
                exception(&check(loc, Some(flow(None)), Some("none"), None)),
                Some(Exception::FailClosed),
                "{loc}"
            );
        }
    }

    #[test]
    fn fail_closed_on_ambiguous_location() {
        for loc in [
            "https://pgo.example.nl/cb?code=a&code=b&state=SEALED",
            "https://pgo.example.nl/cb?code=C&state=SEALED&state=SEALED",
            "https://pgo.example.nl/cb?code=%ZZ&state=SEALED",
            "https://pgo.example.nl/cb?%ZZ=1",
        ] {
            assert_eq!(
                exception(&check(loc, Some(flow(None)), Some("none"), None)),
                Some(Exception::FailClosed),
                "{loc}"
            );
        }
        let clients = clients();
        let settings = Settings {
            clients: &clients,
            clock: Clock {
                now: NOW,
                ttl: 1,
                skew: 1,
            },
            age_today: None,
        };
        let v = inspect(
            Location::Unreadable,
            &settings,
            |_| Opened::Foreign,
            Signal::default(),
            None,
        );
        assert_eq!(exception(&v), Some(Exception::FailClosed));
    }

    #[test]
    fn as_error_redirect_passes_with_state_restored() {
        let loc = "https://pgo.example.nl/cb?error=access_denied&state=SEALED";
        // Even without a signal and after the ttl: there is no code to protect.
        let mut f = flow(None);
        f.issued_at = 0;
        assert_eq!(
            check(loc, Some(f.clone()), None, None),
            Verdict::Restore {
                location: "https://pgo.example.nl/cb?error=access_denied&state=orig+state%2F"
                    .into(),
                flow: f
            }
        );
    }

    #[test]
    fn a_code_under_another_name_is_withheld() {
        for loc in [
            "https://pgo.example.nl/cb?CODE=C&state=SEALED",
            "https://pgo.example.nl/cb?Code=C&state=SEALED",
            "https://pgo.example.nl/cb?%43ode=C&state=SEALED",
            "https://pgo.example.nl/cb?x=1;code=C&state=SEALED",
            "https://pgo.example.nl/cb?x=1;CODE=C&state=SEALED",
            "https://pgo.example.nl/cb?code=C;code=D&state=SEALED",
            "https://pgo.example.nl/cb?%EF%BD%83ode=C&state=SEALED",
            // Next to a clean code, the second one is still a code.
            "https://pgo.example.nl/cb?code=C&CODE=D&state=SEALED",
            // And in an error redirect.
            "https://pgo.example.nl/cb?error=access_denied&CODE=D&state=SEALED",
        ] {
            let v = check(loc, Some(flow(None)), Some("none"), None);
            assert_eq!(exception(&v), Some(Exception::FailClosed), "{loc}: {v:?}");
        }
    }

    #[test]
    fn lenient_names_in_a_location_a_second_state_or_error_or_code_is_withheld() {
        for loc in [
            // PHP's mangling, a `[]` suffix, white space: each is `code` to some client.
            "https://pgo.example.nl/cb?code=C&code%5B%5D=D&state=SEALED",
            "https://pgo.example.nl/cb?code=C&%20code=D&state=SEALED",
            "https://pgo.example.nl/cb?code=C&code%20=D&state=SEALED",
            // A second state the client could read instead of the restored one.
            "https://pgo.example.nl/cb?code=C&state=SEALED&STATE=evil",
            "https://pgo.example.nl/cb?STATE=evil&code=C&state=SEALED",
            "https://pgo.example.nl/cb?code=C&state=SEALED&State%5B%5D=evil",
            // An error under another name next to a code: neither clean code nor error.
            "https://pgo.example.nl/cb?code=C&ERROR=x&state=SEALED",
            "https://pgo.example.nl/cb?code=C&Error%20=x&state=SEALED",
            // Issue 26: behind a `;`, a NUL, a zero-width space.
            "https://pgo.example.nl/cb?code=C&state=SEALED&x=1;state=evil",
            "https://pgo.example.nl/cb?code=C&x=1;error=x&state=SEALED",
            "https://pgo.example.nl/cb?code=C&state%00x=evil&state=SEALED",
            "https://pgo.example.nl/cb?code=C&state=SEALED&code%E2%80%8B=D",
        ] {
            let v = check(loc, Some(flow(None)), Some("none"), None);
            assert_eq!(exception(&v), Some(Exception::FailClosed), "{loc}: {v:?}");
        }
    }

    #[test]
    fn a_code_under_another_name_without_a_sealed_state_is_withheld() {
        for loc in [
            "https://pgo.example.nl/cb?CODE=C&state=plain",
            "https://pgo.example.nl/cb?x=1;code=C",
        ] {
            let v = check(loc, None, Some("none"), None);
            assert_eq!(exception(&v), Some(Exception::FailClosed), "{loc}: {v:?}");
        }
    }

    #[test]
    fn a_flow_return_is_a_clean_code_or_an_error_redirect_or_withheld() {
        for loc in [
            // Neither a code nor an error.
            "https://pgo.example.nl/cb?state=SEALED",
            "https://pgo.example.nl/cb?foo=bar&state=SEALED",
            // Both.
            "https://pgo.example.nl/cb?code=C&error=x&state=SEALED",
        ] {
            let v = check(loc, Some(flow(None)), Some("none"), None);
            assert_eq!(exception(&v), Some(Exception::FailClosed), "{loc}: {v:?}");
        }
        // Names that merely contain `code` are nothing of the kind.
        let v = check(
            "https://pgo.example.nl/cb?code=C&codes=1&postcode=2&state=SEALED",
            Some(flow(None)),
            Some("none"),
            None,
        );
        assert!(matches!(v, Verdict::Release { .. }), "{v:?}");
    }

    #[test]
    fn a_respelled_redirect_uri_is_released_to_the_clients_spelling() {
        for loc in [
            "https://PGO.example.nl/cb?code=C&state=SEALED",
            "HTTPS://pgo.example.nl/cb?code=C&state=SEALED",
            "https://pgo.example.nl/%63b?code=C&state=SEALED",
            "https://pgo.example.nl/x/../cb?code=C&state=SEALED",
            "https://pgo.example.nl/./cb?code=C&state=SEALED",
        ] {
            let v = check(loc, Some(flow(None)), Some("none"), None);
            assert_eq!(
                v,
                Verdict::Release {
                    location: "https://pgo.example.nl/cb?code=C&state=orig+state%2F".into(),
                    flow: flow(None),
                    id: [7; 32],
                    code: "C".into(),
                },
                "{loc}"
            );
        }
        // And an error redirect is restored the same way.
        let v = check(
            "https://PGO.example.nl/cb?error=access_denied&state=SEALED",
            Some(flow(None)),
            None,
            None,
        );
        assert!(
            matches!(&v, Verdict::Restore { location, .. } if location.starts_with("https://pgo.example.nl/cb?")),
            "{v:?}"
        );
    }

    #[test]
    fn a_different_redirect_uri_is_withheld() {
        for loc in [
            "https://pgo.example.nl/cb/?code=C&state=SEALED",
            "https://pgo.example.nl/cb2?code=C&state=SEALED",
            "https://pgo.example.nl/cb%2F?code=C&state=SEALED",
            "https://pgo.example.nl:8443/cb?code=C&state=SEALED",
            "https://evil.example/cb?code=C&state=SEALED",
        ] {
            let v = check(loc, Some(flow(None)), Some("none"), None);
            assert_eq!(exception(&v), Some(Exception::FailClosed), "{loc}: {v:?}");
        }
    }

    fn answer(location: &str, answering: Option<&Flow>) -> Verdict {
        let clients = clients();
        let settings = Settings {
            clients: &clients,
            clock: Clock {
                now: NOW,
                ttl: 1800,
                skew: 60,
            },
            age_today: None,
        };
        inspect(
            Location::Text(location),
            &settings,
            |_| Opened::Foreign,
            Signal::default(),
            answering,
        )
    }

    #[test]
    fn a_stateless_error_answering_an_authorization_request_gets_the_clients_state() {
        let f = flow(None);
        assert_eq!(
            answer("https://PGO.example.nl/cb?error=invalid_scope", Some(&f)),
            Verdict::AddState {
                location: "https://pgo.example.nl/cb?error=invalid_scope&state=orig+state%2F"
                    .into(),
                flow: f.clone()
            }
        );
        // Elsewhere than the flow's redirect_uri: nothing is added.
        assert_eq!(
            answer("https://pgo.example.nl/other?error=x", Some(&f)),
            Verdict::StatelessError
        );
        // A code without a state stays withheld.
        let v = answer("https://pgo.example.nl/cb?code=C", Some(&f));
        assert_eq!(exception(&v), Some(Exception::FailClosed), "{v:?}");
    }

    #[test]
    fn a_later_stateless_error_passes_as_it_is() {
        assert_eq!(
            answer("https://pgo.example.nl/cb?error=access_denied", None),
            Verdict::StatelessError
        );
        // Not to a client: an ordinary redirect.
        assert_eq!(
            answer("https://as.example.nl/login?error=retry", None),
            Verdict::PassThrough
        );
    }

    #[test]
    fn percent_encoded_sealed_state_is_recognised() {
        // An AS that re-encodes unreserved characters still returns the same state.
        let loc = "https://pgo.example.nl/cb?code=C&state=%53EALED";
        let v = check(loc, Some(flow(None)), Some("none"), None);
        assert_eq!(
            v,
            Verdict::Release {
                location: "https://pgo.example.nl/cb?code=C&state=orig+state%2F".into(),
                flow: flow(None),
                id: [7; 32],
                code: "C".into(),
            }
        );
    }

    /// The verdict carries the code it released, decoded once: the records are kept for it,
    /// and the `Location` is not read again.
    #[test]
    fn a_release_carries_its_code_decoded() {
        let loc = "https://pgo.example.nl/cb?code=a%2Bb+c&state=SEALED";
        let Verdict::Release { location, code, .. } =
            check(loc, Some(flow(None)), Some("none"), None)
        else {
            panic!("released")
        };
        assert_eq!(code, "a+b c");
        assert!(location.contains("code=a%2Bb+c&"), "{location}");
    }

    #[test]
    fn withheld_the_one_code_of_a_withheld_redirect_is_told_decoded_and_no_other() {
        let told = |loc: &str| withheld_code(loc);
        assert_eq!(
            told("https://pgo.example.nl/cb?code=a%2Bb+c&state=S").as_deref(),
            Some("a+b c")
        );
        // Two codes, an undecodable one, or one under another name: nothing told.
        assert_eq!(told("https://pgo.example.nl/cb?code=a&code=b"), None);
        assert_eq!(told("https://pgo.example.nl/cb?code=%FF"), None);
        assert_eq!(told("https://pgo.example.nl/cb?CODE=a"), None);
        assert_eq!(told("https://pgo.example.nl/cb?error=x"), None);
    }

    #[test]
    fn other_redirects_pass_through() {
        for loc in [
            "/login?next=%2Fconsent",
            "https://digid.example/saml?SAMLRequest=abc%2B%3D",
            "https://pgo.example.nl/",
            "https://pgo.example.nl/cb?error=server_error&state=None",
            "https://as.example/consent?state=SEALED-elsewhere",
            "https://as.example/consent?state=SEALED",
            "/login?state=SEALED&next=x",
            "/weird?%ZZ",
            "https://elsewhere.test/cb?code=theirs",
        ] {
            assert_eq!(
                check(loc, Some(flow(None)), None, None),
                Verdict::PassThrough,
                "{loc}"
            );
        }
        // Passes too, but is said in the log: a client error redirect without state.
        assert_eq!(
            check(
                "https://pgo.example.nl/cb?error=access_denied",
                Some(flow(None)),
                None,
                None
            ),
            Verdict::StatelessError
        );
    }

    #[test]
    fn location_split() {
        let t = Target::split("https://h/p?a=1?b#f?g#h");
        assert_eq!(
            (t.base, t.query, t.fragment),
            ("https://h/p", "a=1?b", Some("f?g#h"))
        );
        let t = Target::split("/p#f?x");
        assert_eq!((t.base, t.query, t.fragment), ("/p", "", Some("f?x")));
        let t = Target::split("/p");
        assert_eq!((t.base, t.query, t.fragment), ("/p", "", None));
    }

    #[test]
    fn host_parsing_is_generous() {
        let host = |l: &str| Target::split(l).host().map(|h| h.into_owned());
        assert_eq!(host("https://A.b:8/x"), Some("a.b".into()));
        assert_eq!(host("//a.b/x"), Some("a.b".into()));
        assert_eq!(host("https://u:p@a.b/x"), Some("a.b".into()));
        assert_eq!(host("https://a.b\\@c.d/x"), Some("a.b".into()));
        assert_eq!(host("https://a.b?x"), Some("a.b".into()));
        assert_eq!(host("/x//y"), None);
        assert_eq!(host("x/y"), None);
    }
}
