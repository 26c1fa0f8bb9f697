//! The authorization request (core.authint.200/202 and ext.vert.authint.200/201/204) → a
//! [`Decision`]: forward it (with what the flow expects), refuse it with a page (1a), or answer
//! the client with an error redirect (1b, Vert 3).

use std::borrow::Cow;

use chrono::NaiveDate;
use uuid::Uuid;

use super::age;
use super::clients::RedirectUriError;
use super::exceptions::{Exception, error_redirect};
use super::fold;
use super::fresh_login::{self, Asked, FreshLogin};
use super::query::{self, DecodeError, RawPair};
use super::{Birthdate, Client, ClientList, Flow, Kind, Requested};

/// What the proxy knows beyond the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub clients: &'a ClientList,
    /// The representation kinds `representation.scopes` enables.
    pub enabled: &'a [Kind],
    /// The date birth dates may not lie after: read only when a representation asks for a
    /// birth date (the clock and the date's arithmetic cost about 300 instructions, issue 31).
    pub today: fn() -> NaiveDate,
    /// With `representation.age_rules`: the calendar date in the Netherlands, on which the
    /// MedMij 2.x age limits are applied ([`super::age`]).
    pub age_today: Option<NaiveDate>,
    /// `oauth.issuer`: sent as `iss` on the proxy's own error redirects (RFC 9207).
    pub issuer: Option<&'a str>,
    /// `representation.fresh_login`: what a request for a representation gets added to ask
    /// the AS for a fresh login ([`fresh_login`]); [`FreshLogin::OFF`] without the key.
    pub fresh_login: FreshLogin,
}

/// The parameters whose meaning the proxy depends on. Each may appear at most once
/// (RFC 6749 §3.1); every other parameter passes through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    ResponseType,
    ClientId,
    RedirectUri,
    Scope,
    State,
    Birthdate,
    /// `form_post` and friends would deliver the code in a page body the proxy never inspects.
    ResponseMode,
    /// Request objects (RFC 9101) could carry a second `redirect_uri` or `scope` the proxy cannot see.
    Request,
    RequestUri,
    /// The ids the flow is logged under (MedMij core).
    RequestId,
    CorrelationId,
}

impl Param {
    const ALL: [Param; 11] = [
        Param::ResponseType,
        Param::ClientId,
        Param::RedirectUri,
        Param::Scope,
        Param::State,
        Param::Birthdate,
        Param::ResponseMode,
        Param::Request,
        Param::RequestUri,
        Param::RequestId,
        Param::CorrelationId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Param::ResponseType => "response_type",
            Param::ClientId => "client_id",
            Param::RedirectUri => "redirect_uri",
            Param::Scope => "scope",
            Param::State => "state",
            Param::Birthdate => "MedMij_geboortedatum",
            Param::ResponseMode => "response_mode",
            Param::Request => "request",
            Param::RequestUri => "request_uri",
            Param::RequestId => "MedMij-Request-ID",
            Param::CorrelationId => "X-Correlation-ID",
        }
    }

    /// The parameter a (decoded) name is, read as the most lenient framework reads names
    /// ([`fold::read_as`]): `REDIRECT_URI`, `redirect.uri` and `redirect_uri[]` are all
    /// `redirect_uri` to some AS, so they are to the proxy.
    fn from_name(name: &str) -> Option<Param> {
        Param::read(name).map(|(param, _)| param)
    }

    /// The usual spellings, without folding (a length switch and one comparison). Each is
    /// its own encoding (no `%`, no `+`), so a raw name that is one needs no decoding.
    fn exact(name: &str) -> Option<Param> {
        match name {
            "response_type" => Some(Param::ResponseType),
            "client_id" => Some(Param::ClientId),
            "redirect_uri" => Some(Param::RedirectUri),
            "scope" => Some(Param::Scope),
            "state" => Some(Param::State),
            "MedMij_geboortedatum" => Some(Param::Birthdate),
            _ => None,
        }
    }

    /// [`Param::from_name`], and whether `name` is the parameter's own.
    fn read(name: &str) -> Option<(Param, bool)> {
        if let Some(param) = Param::exact(name) {
            return Some((param, true));
        }
        const JUDGED: [&str; 11] = [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "medmij_geboortedatum",
            "response_mode",
            "request",
            "request_uri",
            "medmij-request-id",
            "x-correlation-id",
        ];
        let param = match fold::read_as(name, &JUDGED)? {
            "response_type" => Param::ResponseType,
            "client_id" => Param::ClientId,
            "redirect_uri" => Param::RedirectUri,
            "scope" => Param::Scope,
            "state" => Param::State,
            "medmij_geboortedatum" => Param::Birthdate,
            "response_mode" => Param::ResponseMode,
            "request" => Param::Request,
            "request_uri" => Param::RequestUri,
            "medmij-request-id" => Param::RequestId,
            "x-correlation-id" => Param::CorrelationId,
            _ => return None,
        };
        Some((param, name == param.name()))
    }
}

/// One specified parameter as seen in the query.
#[derive(Debug, Clone, Default)]
struct Slot<'q> {
    count: u32,
    /// The first occurrence, still encoded.
    raw: &'q str,
    decoded: Option<Result<Cow<'q, str>, DecodeError>>,
    /// Named behind a `;` ([`semicolon_names`]): present to some readers only.
    hidden: bool,
}

impl<'q> Slot<'q> {
    /// The value when it appears exactly once, to every reader, and decodes.
    fn single(&self) -> Option<&str> {
        match (&self.decoded, self.count, self.hidden) {
            (Some(Ok(v)), 1, false) => Some(v),
            _ => None,
        }
    }

    /// More than once, or once to some readers and not to others: either way two readings.
    fn repeated(&self) -> bool {
        self.count > 1 || self.hidden
    }

    fn is_present(&self) -> bool {
        self.count > 0
    }
}

/// A query split once into its pairs, with the specified parameters picked out.
#[derive(Debug, Clone)]
pub struct Parsed<'q> {
    query: &'q str,
    /// Each pair, the parameter it is, and whether under the parameter's own name.
    pairs: Vec<(Option<Param>, RawPair<'q>, bool)>,
    slots: [Slot<'q>; Param::ALL.len()],
    /// The first pair that does not decode (its name if that decoded).
    malformed: Option<(Option<Param>, DecodeError)>,
    /// A judged parameter under a name other than its own (`redirect_uri[]`, `STATE`): read
    /// as it by the proxy, and as an array, a nested value or nothing by some framework.
    respelled: bool,
}

impl<'q> Parsed<'q> {
    /// Splits and decodes the query once, for [`Parsed::request_ids`] and [`decide`].
    pub fn new(query: &'q str) -> Self {
        let mut parsed = Parsed {
            query,
            // An authorization request's usual pairs in one allocation.
            pairs: Vec::with_capacity(8),
            slots: Default::default(),
            malformed: None,
            respelled: false,
        };
        // Most queries have no `;` at all: one search, and none of its readings is needed.
        let semicolons = memchr::memchr(b';', query.as_bytes()).is_some();
        for pair in query::pairs(query) {
            let (param, own) = match Param::exact(pair.name) {
                Some(param) => (Some(param), true),
                None => match query::decode(pair.name) {
                    Ok(name) => match Param::read(&name) {
                        Some((param, own)) => (Some(param), own),
                        None => (None, true),
                    },
                    Err(e) => {
                        parsed.malformed.get_or_insert((None, e));
                        (None, true)
                    }
                },
            };
            // The ids name no security decision; a PGO's own spelling of them stays its own.
            parsed.respelled |=
                !own && !matches!(param, Some(Param::RequestId | Param::CorrelationId));
            let decoded = match param {
                // Cut there by `;`-splitting readers: a judged value read two ways.
                Some(_) if semicolons && pair.value.contains(';') => Err(DecodeError::Semicolon),
                _ => query::decode(pair.value),
            };
            if let Err(e) = &decoded {
                parsed.malformed.get_or_insert((param, *e));
            }
            if let Some(p) = param {
                let slot = &mut parsed.slots[p as usize];
                slot.count += 1;
                if slot.count == 1 {
                    slot.raw = pair.value;
                    slot.decoded = Some(decoded);
                }
            }
            if semicolons {
                for hidden in semicolon_names(pair, query) {
                    let slot = &mut parsed.slots[hidden as usize];
                    slot.count += 1;
                    slot.hidden = true;
                }
            }
            parsed.pairs.push((param, pair, own));
        }
        parsed
    }

    /// The client's `MedMij-Request-ID` and `X-Correlation-ID` from the query (core.authint.200),
    /// each when it appears exactly once and decodes: a repeated id is no id.
    pub fn request_ids(&self) -> (Option<Cow<'q, str>>, Option<Cow<'q, str>>) {
        let id = |param: Param| {
            let slot = &self.slots[param as usize];
            match (&slot.decoded, slot.count) {
                (Some(Ok(v)), 1) => Some(v.clone()),
                _ => None,
            }
        };
        (id(Param::RequestId), id(Param::CorrelationId))
    }

    fn slot(&self, p: Param) -> &Slot<'q> {
        &self.slots[p as usize]
    }

    /// The decoded value of `p` when it appears exactly once and decodes.
    pub fn single(&self, p: Param) -> Option<&str> {
        self.slot(p).single()
    }

    /// The value of `p` as sent (still encoded) when it appears exactly once and decodes.
    pub fn single_raw(&self, p: Param) -> Option<&'q str> {
        let slot = self.slot(p);
        slot.single().map(|_| slot.raw)
    }

    /// The pairs of the query as they go upstream (`state` the sealed one, with `strip_token`
    /// the scope without the representation token), but for those `dropped`.
    pub(super) fn push_forwarded(
        &self,
        out: &mut String,
        sealed_state: &str,
        strip_token: bool,
        dropped: impl Fn(usize) -> bool,
    ) {
        let query = self.query;
        let mut first = true;
        let mut push = |part: &str, out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push('&');
            }
            out.push_str(part);
        };
        for (i, &(param, pair, own)) in self.pairs.iter().enumerate() {
            if dropped(i) {
                continue;
            }
            match param {
                Some(Param::State) => {
                    push("state=", out);
                    out.push_str(sealed_state);
                }
                Some(Param::Scope) if strip_token => {
                    let scope = self.slot(Param::Scope).single().unwrap_or("");
                    let rest: Vec<&str> = scope
                        .split(' ')
                        .filter(|t| !t.is_empty() && Kind::from_token(t).is_none())
                        .collect();
                    if !rest.is_empty() {
                        push("scope=", out);
                        query::encode(&rest.join(" "), out);
                    }
                }
                // Under its own name already: as sent, in one copy.
                Some(_) if own => push(pair.as_sent(query), out),
                Some(param) => {
                    push(param.name(), out);
                    out.push('=');
                    out.push_str(pair.value);
                }
                None => push(pair.as_sent(query), out),
            }
        }
    }

    /// Whether `p` appears at all, under any spelling.
    pub fn has(&self, p: Param) -> bool {
        self.slot(p).is_present()
    }

    /// Whether every pair decodes and no judged parameter is repeated: a reading every
    /// framework agrees on.
    pub fn is_unambiguous(&self) -> bool {
        self.malformed.is_none() && Param::ALL.into_iter().all(|p| !self.slot(p).repeated())
    }

    /// Whether a judged parameter came under a name other than its own.
    pub fn is_respelled(&self) -> bool {
        self.respelled
    }

    /// Whether any parameter the proxy judges appears, under any spelling or behind a `;`.
    pub fn names_a_judged_parameter(&self) -> bool {
        self.slots.iter().any(|slot| slot.count > 0)
    }

    /// The query as it was sent.
    pub fn as_sent(&self) -> &'q str {
        self.query
    }
}

/// The judged parameters a `;`-splitting reader finds inside one `&`-separated pair that the
/// proxy reads otherwise: Rack 2 (Rails), Python before CVE-2021-23336, Go before 1.17 and
/// Perl's CGI.pm split on `;` as on `&`, so `x=1;redirect_uri=…` and `a=1&amp;state=…` carry a
/// `redirect_uri` and a `state` to them. Each such name counts as a second reading of it
/// ([`Slot::repeated`]): 1a for `client_id` and `redirect_uri`, 1b for the others.
fn semicolon_names<'q>(pair: RawPair<'q>, query: &'q str) -> impl Iterator<Item = Param> + 'q {
    query::names_behind_semicolons(pair, query).filter_map(|name| Param::from_name(&name))
}

/// Why a request is refused without a redirect (Authorization interface 1a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Unproven,
    /// The client, when `client_id` is listed (its name goes on the page).
    pub client: Option<Client>,
}

/// What of `client_id` and `redirect_uri` is not proven (1a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unproven {
    ClientIdRepeated,
    ClientIdMissing,
    ClientNotListed,
    RedirectUriRepeated,
    RedirectUriMissing,
    RedirectUri(RedirectUriError),
}

impl Unproven {
    /// ASCII, for the log line; never with request data in it.
    pub fn describe(self) -> &'static str {
        match self {
            Unproven::ClientIdRepeated => "client_id repeated",
            Unproven::ClientIdMissing => "client_id missing or malformed",
            Unproven::ClientNotListed => "client_id not on the client list",
            Unproven::RedirectUriRepeated => "redirect_uri repeated",
            Unproven::RedirectUriMissing => "redirect_uri missing or malformed",
            Unproven::RedirectUri(e) => e.describe(),
        }
    }
}

/// An OAuth error redirect to the validated `redirect_uri` (1b, Vert 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRedirect {
    pub exception: Exception,
    pub error: &'static str,
    pub description: &'static str,
    pub location: String,
}

/// An accepted request: what to forward, and what the flow expects. It borrows the parsed
/// query and the client list's entry: nothing is copied to decide (issue 31).
#[derive(Debug, Clone)]
pub struct Accepted<'a> {
    parsed: &'a Parsed<'a>,
    pub client: &'a Client,
    pub redirect_uri: &'a str,
    /// The client's `state` exactly as sent.
    pub state: &'a str,
    pub requested: Option<Requested>,
    /// With `representation.fresh_login` and a representation: the client's `prompt` (and
    /// `max_age`) out, the proxy's in.
    fresh: Option<fresh_login::Forwarded>,
    /// What the flow records of it.
    fresh_login: FreshLogin,
}

#[derive(Debug, Clone)]
pub enum Decision<'a> {
    Forward(Accepted<'a>),
    Refuse(Refusal),
    Redirect(ErrorRedirect),
}

/// Decides on an authorization request, its query parsed once ([`Parsed::new`]).
///
/// Order follows RFC 6749 §4.1.2.1: until `client_id` and `redirect_uri` are proven, nothing is
/// redirected anywhere (1a); after that, errors go back to the client (1b).
pub fn decide<'a>(parsed: &'a Parsed<'a>, settings: &Settings<'a>) -> Decision<'a> {
    let refuse = |reason, client: Option<&Client>| {
        Decision::Refuse(Refusal {
            reason,
            client: client.cloned(),
        })
    };

    // core.authint.207 1a: the client and its redirect_uri, each exactly once and well-formed.
    let client_slot = parsed.slot(Param::ClientId);
    if client_slot.repeated() {
        return refuse(Unproven::ClientIdRepeated, None);
    }
    let Some(client_id) = client_slot.single() else {
        return refuse(Unproven::ClientIdMissing, None);
    };
    let Some(client) = settings.clients.get(client_id) else {
        return refuse(Unproven::ClientNotListed, None);
    };
    let redirect_slot = parsed.slot(Param::RedirectUri);
    if redirect_slot.repeated() {
        return refuse(Unproven::RedirectUriRepeated, Some(client));
    }
    let Some(redirect_uri) = redirect_slot.single() else {
        return refuse(Unproven::RedirectUriMissing, Some(client));
    };
    if let Err(e) = ClientList::check_redirect_uri(client_id, redirect_uri) {
        return refuse(Unproven::RedirectUri(e), Some(client));
    }

    // From here on the redirect_uri is trusted: errors go back to the client (1b). The state is
    // echoed only when it is unambiguous.
    if super::clients::carries_response_params(redirect_uri) {
        // No `state` or `iss` beside ones the URI may name: the client would read either.
        return Decision::Redirect(ErrorRedirect {
            exception: Exception::Auth1b,
            error: "invalid_request",
            description: RESPONSE_PARAMS_IN_REDIRECT_URI,
            location: error_redirect(
                redirect_uri,
                "invalid_request",
                RESPONSE_PARAMS_IN_REDIRECT_URI,
                None,
                None,
            ),
        });
    }
    let state = parsed.slot(Param::State);
    let echo_state = state.single().filter(|s| !s.is_empty()).map(|_| state.raw);
    let redirect = |exception, error, description| {
        Decision::Redirect(ErrorRedirect {
            exception,
            error,
            description,
            location: error_redirect(
                redirect_uri,
                error,
                description,
                echo_state,
                settings.issuer,
            ),
        })
    };
    let invalid = |description| redirect(Exception::Auth1b, "invalid_request", description);

    if let Some((param, error)) = parsed.malformed {
        // Vert 3 covers a malformed birth date; any other undecodable parameter is 1b.
        if param == Some(Param::Birthdate) && has_representation_token(parsed) {
            return redirect(
                Exception::Vert3,
                "invalid_request",
                "MedMij_geboortedatum is not a valid date",
            );
        }
        return invalid(error.describe_query());
    }
    // RFC 6749 §3.1: a parameter must not appear more than once.
    if let Some(p) = Param::ALL.into_iter().find(|p| parsed.slot(*p).repeated()) {
        return invalid(repeated(p));
    }
    match parsed.slot(Param::ResponseType).single() {
        None => return invalid("response_type missing"),
        Some("code") => {}
        Some(_) => {
            return redirect(
                Exception::Auth1b,
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
    }
    if parsed.slot(Param::Request).is_present() || parsed.slot(Param::RequestUri).is_present() {
        return invalid("request objects are not supported");
    }
    if parsed
        .slot(Param::ResponseMode)
        .single()
        .is_some_and(|m| m != "query")
    {
        return invalid("only response_mode=query is supported");
    }
    let Some(state) = echo_state else {
        // core.authint.200: state is mandatory.
        return invalid("state missing");
    };

    // ext.vert.authint.200: the scope may hold one representation token.
    let kinds = scope_kinds(parsed.slot(Param::Scope).single().unwrap_or(""));
    let kind = match kinds {
        [] => None,
        [kind] if settings.enabled.contains(kind) => Some(*kind),
        [_] => {
            return redirect(
                Exception::Auth1b,
                "invalid_scope",
                "this representation scope is not supported",
            );
        }
        _ => return invalid("onbehalfof and onbehalfofchild cannot be combined"),
    };
    let requested = match kind {
        None => None, // Without a token, MedMij_geboortedatum is ignored (passed through).
        Some(kind) => {
            let birthdate = match parsed.slot(Param::Birthdate).single() {
                None => {
                    return redirect(
                        Exception::Vert3,
                        "invalid_request",
                        "MedMij_geboortedatum missing",
                    );
                }
                Some(text) => match Birthdate::parse(text, (settings.today)()) {
                    Ok(date) => date,
                    Err(e) => return redirect(Exception::Vert3, "invalid_request", e.describe()),
                },
            };
            // MedMij 2.x: onbehalfofchild under 12, onbehalfof 16 or older (.204, .201).
            if let Some(today) = settings.age_today
                && let Err(e) = age::check(kind, birthdate, today)
            {
                return redirect(Exception::AgeAsked, "invalid_request", e.describe());
            }
            Some(Requested { kind, birthdate })
        }
    };
    // A representation asks for a fresh login, so that a login session the Persoon made for
    // themselves is not reused for it (Vert 1 with no chance to log in for the other person).
    let fresh = match requested {
        Some(_) if settings.fresh_login.prompt_login => {
            match fresh_login::ask(parsed.query, settings.fresh_login) {
                Asked::Forward(forwarded) => Some(forwarded),
                // What the AS itself would answer: the login it must ask for is not allowed.
                Asked::LoginRequired => {
                    return redirect(Exception::Auth1b, "login_required", PROMPT_NONE);
                }
                Asked::Invalid(description) => return invalid(description),
            }
        }
        _ => None,
    };
    let fresh_login = match fresh {
        Some(_) => settings.fresh_login,
        None => FreshLogin::OFF,
    };

    Decision::Forward(Accepted {
        parsed,
        client,
        redirect_uri,
        state,
        requested,
        fresh,
        fresh_login,
    })
}

const PROMPT_NONE: &str =
    "prompt=none: a representation needs a fresh login (representation.fresh_login)";

const RESPONSE_PARAMS_IN_REDIRECT_URI: &str =
    "redirect_uri carries a response parameter (code, state, error or iss) in its query";

/// The representation kinds named in a scope (space-separated tokens, case-sensitive), each once.
pub(super) fn scope_kinds(scope: &str) -> &'static [Kind] {
    let mut has = [false; 2];
    for token in scope.split(' ') {
        if let Some(kind) = Kind::from_token(token) {
            has[kind as usize] = true;
        }
    }
    match has {
        [false, false] => &[],
        [true, false] => &[Kind::OnBehalfOf],
        [false, true] => &[Kind::OnBehalfOfChild],
        [true, true] => &Kind::ALL,
    }
}

fn has_representation_token(parsed: &Parsed<'_>) -> bool {
    let scope = parsed.slot(Param::Scope);
    !scope.repeated()
        && scope
            .decoded
            .as_ref()
            .and_then(|d| d.as_ref().ok())
            .is_some_and(|s| !scope_kinds(s).is_empty())
}

fn repeated(p: Param) -> &'static str {
    match p {
        Param::ResponseType => "response_type repeated",
        Param::ClientId => "client_id repeated",
        Param::RedirectUri => "redirect_uri repeated",
        Param::Scope => "scope repeated",
        Param::State => "state repeated",
        Param::Birthdate => "MedMij_geboortedatum repeated",
        Param::ResponseMode => "response_mode repeated",
        Param::Request => "request repeated",
        Param::RequestUri => "request_uri repeated",
        Param::RequestId => "MedMij-Request-ID repeated",
        Param::CorrelationId => "X-Correlation-ID repeated",
    }
}

impl Accepted<'_> {
    /// The flow to seal into the forwarded `state`.
    pub fn flow(&self, issued_at: u64, correlation_id: Uuid) -> Flow {
        Flow {
            state: self.state.to_owned(),
            redirect_uri: self.redirect_uri.to_owned(),
            requested: self.requested,
            issued_at,
            correlation_id,
            fresh_login: self.fresh_login,
        }
    }

    /// The request target to forward upstream, `path?query`. The query has the same pairs in
    /// the same order and encoding, except that every judged parameter goes under its own name
    /// (`REDIRECT_URI`, `redirect.uri`, `redirect_uri[]` as `redirect_uri`: what the proxy
    /// judged is what every framework reads, not an array or a nested value), `state` becomes
    /// the sealed state and, with `strip_token`, the scope loses the representation token (for
    /// an AS that rejects unknown tokens). A scope left empty is dropped.
    ///
    /// With fresh login ([`fresh_login`]), the client's `prompt` (and `max_age`, when the
    /// proxy owns it) is left out and the proxy's own goes at the end.
    pub fn forward_target(&self, path: &str, sealed_state: &str, strip_token: bool) -> String {
        let query = self.parsed.query;
        // One buffer for the whole target: the path, then the query, then nothing copied again.
        let mut out = String::with_capacity(path.len() + 1 + query.len() + sealed_state.len());
        out.push_str(path);
        out.push('?');
        let strip = strip_token && self.requested.is_some();
        match &self.fresh {
            // Two loops, so that the one without fresh login asks nothing more per pair.
            None => self
                .parsed
                .push_forwarded(&mut out, sealed_state, strip, |_| false),
            Some(fresh) => {
                self.parsed
                    .push_forwarded(&mut out, sealed_state, strip, |i| fresh.drops(i));
                fresh.append_to(&mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGO: &str = "pgo.example.nl";
    const REDIRECT: &str = "https%3A%2F%2Fpgo.example.nl%2Fcb";

    fn clients() -> ClientList {
        ClientList::new([Client {
            hostname: PGO.into(),
            name: "Voorbeeld PGO".into(),
        }])
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    fn decide_with(query: &str, enabled: &[Kind]) -> Decision<'static> {
        let clients = Box::leak(Box::new(clients()));
        let enabled = Box::leak(enabled.to_vec().into_boxed_slice());
        let query = Box::leak(query.to_owned().into_boxed_str());
        decide(
            Box::leak(Box::new(Parsed::new(query))),
            &Settings {
                clients,
                enabled,
                today,
                age_today: None,
                issuer: None,
                fresh_login: FreshLogin::OFF,
            },
        )
    }

    fn run(query: &str) -> Decision<'static> {
        decide_with(query, &[Kind::OnBehalfOf])
    }

    fn base(extra: &str) -> String {
        format!("response_type=code&client_id={PGO}&redirect_uri={REDIRECT}&state=xyz{extra}")
    }

    fn accepted(d: Decision<'static>) -> Accepted<'static> {
        match d {
            Decision::Forward(a) => a,
            other => panic!("expected Forward, got {other:?}"),
        }
    }

    fn refused(d: Decision<'static>) -> Refusal {
        match d {
            Decision::Refuse(r) => r,
            other => panic!("expected Refuse (1a), got {other:?}"),
        }
    }

    fn redirected(d: Decision<'static>) -> ErrorRedirect {
        match d {
            Decision::Redirect(r) => r,
            other => panic!("expected an error redirect, got {other:?}"),
        }
    }

    #[test]
    fn core_authint_200_plain_request_is_forwarded_without_representation() {
        let a = accepted(run(&base("&scope=48")));
        assert_eq!(a.requested, None);
        assert_eq!(a.state, "xyz");
        assert_eq!(a.redirect_uri, "https://pgo.example.nl/cb");
        assert_eq!(a.client.name, "Voorbeeld PGO");
    }

    #[test]
    fn ext_vert_authint_200_onbehalfof_with_birthdate_is_forwarded() {
        let a = accepted(run(&base(
            "&scope=48%20onbehalfof&MedMij_geboortedatum=19700901",
        )));
        let r = a.requested.unwrap();
        assert_eq!(r.kind, Kind::OnBehalfOf);
        assert_eq!(r.birthdate.to_string(), "19700901");
    }

    #[test]
    fn ext_vert_authint_200_scope_with_plus_separator() {
        let a = accepted(run(&base(
            "&scope=onbehalfof+48&MedMij_geboortedatum=19700901",
        )));
        assert!(a.requested.is_some());
    }

    #[test]
    fn ext_vert_authint_200_token_is_case_sensitive() {
        // `OnBehalfOf` is not the token: an ordinary scope part, no representation asked.
        let a = accepted(run(&base("&scope=OnBehalfOf")));
        assert_eq!(a.requested, None);
    }

    #[test]
    fn ext_vert_authint_200_token_must_stand_alone() {
        for scope in [
            "onbehalfof48",
            "xonbehalfof",
            "onbehalfof%0948",
            "onbehalfof,48",
        ] {
            let a = accepted(run(&base(&format!("&scope={scope}"))));
            assert_eq!(a.requested, None, "{scope}");
        }
    }

    #[test]
    fn ext_vert_authint_200_birthdate_ignored_without_token() {
        let a = accepted(run(&base("&scope=48&MedMij_geboortedatum=garbage")));
        assert_eq!(a.requested, None);
        assert!(
            a.forward_target("/a", "S", false)
                .contains("MedMij_geboortedatum=garbage")
        );
    }

    #[test]
    fn ext_vert_authint_204_onbehalfofchild_when_enabled() {
        let q = base("&scope=onbehalfofchild&MedMij_geboortedatum=20200315");
        let a = accepted(decide_with(&q, &[Kind::OnBehalfOf, Kind::OnBehalfOfChild]));
        assert_eq!(a.requested.unwrap().kind, Kind::OnBehalfOfChild);
    }

    #[test]
    fn ext_vert_authint_204_onbehalfofchild_refused_when_not_enabled() {
        // Passing it on as an ordinary token would hand the PGO the Persoon's own data while it
        // believes it holds the child's.
        let r = redirected(run(&base(
            "&scope=onbehalfofchild&MedMij_geboortedatum=20200315",
        )));
        assert_eq!(r.exception, Exception::Auth1b);
        assert_eq!(r.error, "invalid_scope");
    }

    #[test]
    fn ext_vert_authint_200_both_tokens_at_once_is_invalid_request() {
        let q = base("&scope=onbehalfof%20onbehalfofchild&MedMij_geboortedatum=19700901");
        let r = redirected(decide_with(&q, &[Kind::OnBehalfOf, Kind::OnBehalfOfChild]));
        assert_eq!(
            (r.exception, r.error),
            (Exception::Auth1b, "invalid_request")
        );
        assert!(r.location.contains("&state=xyz"));
    }

    #[test]
    fn vert3_birthdate_missing_is_error_redirect() {
        let r = redirected(run(&base("&scope=onbehalfof")));
        assert_eq!(r.exception, Exception::Vert3);
        assert_eq!(
            r.location,
            "https://pgo.example.nl/cb?error=invalid_request\
             &error_description=MedMij_geboortedatum%20missing&state=xyz"
        );
    }

    #[test]
    fn vert3_birthdate_malformed_is_error_redirect() {
        for bad in [
            "19700231",
            "19000229",
            "20261129",
            "1970091",
            "197009011",
            "%D9%A1%D9%A9%D9%A7%D9%A0%D9%A0%D9%A9%D9%A0%D9%A1",
            "1970+901",
            "",
            "%ZZ",
        ] {
            let r = redirected(run(&base(&format!(
                "&scope=onbehalfof&MedMij_geboortedatum={bad}"
            ))));
            assert_eq!(r.exception, Exception::Vert3, "{bad}");
            assert_eq!(r.error, "invalid_request");
            assert!(r.location.ends_with("&state=xyz"), "{}", r.location);
        }
    }

    fn decide_on(query: &str, age_today: Option<NaiveDate>) -> Decision<'static> {
        let clients = Box::leak(Box::new(clients()));
        let query = Box::leak(query.to_owned().into_boxed_str());
        decide(
            Box::leak(Box::new(Parsed::new(query))),
            &Settings {
                clients,
                enabled: &Kind::ALL,
                today,
                age_today,
                issuer: None,
                fresh_login: FreshLogin::OFF,
            },
        )
    }

    #[test]
    fn age_rules_at_the_request_are_1b_at_every_boundary() {
        let on = Some(today()); // 28 November 2026
        let child = |date: &str| {
            base(&format!(
                "&scope=onbehalfofchild&MedMij_geboortedatum={date}"
            ))
        };
        let adult = |date: &str| base(&format!("&scope=onbehalfof&MedMij_geboortedatum={date}"));
        // ext.vert.authint.204: onbehalfofchild under 12.
        assert!(
            matches!(decide_on(&child("20141129"), on), Decision::Forward(_)),
            "12 tomorrow"
        );
        for date in ["20141128", "20141127", "19700901"] {
            let r = redirected(decide_on(&child(date), on));
            assert_eq!(
                (r.exception, r.error),
                (Exception::AgeAsked, "invalid_request"),
                "{date}"
            );
            assert_eq!(
                r.description,
                "onbehalfofchild is for a represented child younger than 12 (MedMij 2.x)"
            );
            assert!(r.location.ends_with("&state=xyz"), "{}", r.location);
        }
        // ext.vert.authint.201: onbehalfof 16 or older.
        for date in ["20101128", "20101127", "19700901"] {
            assert!(
                matches!(decide_on(&adult(date), on), Decision::Forward(_)),
                "{date}"
            );
        }
        for date in ["20101129", "20141128", "20261128"] {
            let r = redirected(decide_on(&adult(date), on));
            assert_eq!(r.exception, Exception::AgeAsked, "{date}");
            assert_eq!(
                r.description,
                "onbehalfof is for a represented person of 16 or older (MedMij 2.x)"
            );
        }
        // Off (the default): nothing changes.
        assert!(matches!(
            decide_on(&child("19700901"), None),
            Decision::Forward(_)
        ));
        assert!(matches!(
            decide_on(&adult("20261128"), None),
            Decision::Forward(_)
        ));
    }

    #[test]
    fn ext_vert_authint_200_valid_leap_day() {
        assert!(matches!(
            run(&base("&scope=onbehalfof&MedMij_geboortedatum=20000229")),
            Decision::Forward(_)
        ));
    }

    #[test]
    fn auth_1a_unknown_or_missing_client() {
        for q in [
            format!("response_type=code&client_id=evil.test&redirect_uri={REDIRECT}&state=x"),
            format!("response_type=code&redirect_uri={REDIRECT}&state=x"),
            format!("response_type=code&client_id=%ZZ&redirect_uri={REDIRECT}&state=x"),
            format!("response_type=code&client_id=PGO.example.nl&redirect_uri={REDIRECT}&state=x"),
        ] {
            let r = refused(run(&q));
            assert_eq!(r.client, None, "{q}");
        }
    }

    #[test]
    fn auth_1a_redirect_uri_tricks() {
        for uri in [
            "http%3A%2F%2Fpgo.example.nl%2Fcb",
            "https%3A%2F%2Fpgo.example.nl%3A8443%2Fcb",
            "https%3A%2F%2Fevil.test%2Fcb",
            "https%3A%2F%2Fpgo.example.nl.evil.test%2Fcb",
            "https%3A%2F%2Fuser%40pgo.example.nl%2Fcb",
            "https%3A%2F%2Fpgo.example.nl%2Fcb%23frag",
            "https%3A%2F%2Fpgo.example.nl%5C%40evil.test%2Fcb",
            "",
        ] {
            let q = format!("response_type=code&client_id={PGO}&redirect_uri={uri}&state=x");
            let r = refused(run(&q));
            assert_eq!(r.client.unwrap().hostname, PGO, "{uri}");
        }
        // Missing altogether.
        refused(run(&format!("response_type=code&client_id={PGO}&state=x")));
    }

    #[test]
    fn rfc6749_3_1_repeated_client_or_redirect_is_1a() {
        refused(run(&base("&client_id=other.nl")));
        refused(run(&base(&format!("&redirect_uri={REDIRECT}"))));
        // A name that decodes to client_id counts as client_id.
        refused(run(&base("&client%5Fid=pgo.example.nl")));
    }

    #[test]
    fn rfc6749_3_1_each_repeated_parameter_is_1b() {
        let cases = [
            ("&response_type=code", "response_type repeated"),
            ("&scope=a&scope=b", "scope repeated"),
            ("&state=abc", "state repeated"),
            (
                "&scope=onbehalfof&MedMij_geboortedatum=19700901&MedMij_geboortedatum=19700901",
                "MedMij_geboortedatum repeated",
            ),
            (
                "&response_mode=query&response_mode=query",
                "response_mode repeated",
            ),
            (
                "&X-Correlation-ID=a&X-Correlation-ID=b",
                "X-Correlation-ID repeated",
            ),
        ];
        for (extra, want) in cases {
            let r = redirected(run(&base(extra)));
            assert_eq!(
                (r.exception, r.error),
                (Exception::Auth1b, "invalid_request")
            );
            assert_eq!(r.description, want);
            if want == "state repeated" {
                assert!(
                    !r.location.contains("state=xyz"),
                    "ambiguous state is not echoed"
                );
            }
        }
    }

    /// Spellings of a judged name that some framework binds to it (issue 17, finding 2).
    /// Issue 26: a NUL or line break inside (PHP cuts a name at NUL), zero-width characters
    /// and the BOM (dropped by binders that normalise).
    const SPELLINGS: [&str; 13] = [
        "{UP}",
        "{Title}",
        "{lower}%20",
        "%20{lower}",
        "{dotted}",
        "{spaced}",
        "{lower}%5B%5D",
        "{lower}%00",
        "{lower}%00x",
        "{lower}%0Ax",
        "{lower}%00%00",
        "{lower}%E2%80%8B",
        "%EF%BB%BF{lower}",
    ];

    fn spellings(name: &str) -> Vec<String> {
        let title: String = name
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("_");
        SPELLINGS
            .iter()
            .map(|s| {
                s.replace("{UP}", &name.to_ascii_uppercase())
                    .replace("{Title}", &title)
                    .replace("{lower}", name)
                    .replace("{dotted}", &name.replacen('_', ".", 1))
                    .replace("{spaced}", &name.replacen('_', "+", 1))
            })
            .collect()
    }

    #[test]
    fn lenient_names_a_second_client_id_or_redirect_uri_before_or_after_is_1a() {
        for name in ["client_id", "redirect_uri"] {
            for spelling in spellings(name) {
                let value = if name == "client_id" {
                    "evil.example".to_string()
                } else {
                    "https%3A%2F%2Fevil.example%2Fcb".to_string()
                };
                let before = format!("{spelling}={value}&{}", base(""));
                let after = base(&format!("&{spelling}={value}"));
                for q in [before, after] {
                    match run(&q) {
                        Decision::Refuse(r) => assert!(
                            matches!(
                                r.reason,
                                Unproven::ClientIdRepeated | Unproven::RedirectUriRepeated
                            ),
                            "{q}: {r:?}"
                        ),
                        other => panic!("{q}: expected 1a, got {other:?}"),
                    }
                }
            }
        }
    }

    /// Issue 26, finding 1: `;` separates pairs for Rack 2, old Python, Go before 1.17.
    #[test]
    fn semicolon_a_client_id_or_redirect_uri_behind_a_semicolon_is_1a() {
        for hidden in [
            "x=1;redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
            "x=1;client_id=evil.example",
            "a=1&amp;redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
            "x;REDIRECT_URI=https%3A%2F%2Fevil.example%2Fcb",
            "redirect_uri;x=1",
        ] {
            for q in [
                base(&format!("&{hidden}")),
                format!("{hidden}&{}", base("")),
            ] {
                match run(&q) {
                    Decision::Refuse(r) => assert!(
                        matches!(
                            r.reason,
                            Unproven::ClientIdRepeated | Unproven::RedirectUriRepeated
                        ),
                        "{q}: {r:?}"
                    ),
                    other => panic!("{q}: expected 1a, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn semicolon_another_judged_name_behind_a_semicolon_is_1b_and_its_state_is_not_echoed() {
        for hidden in [
            "x=1;state=attacker",
            "x=1;response_mode=form_post",
            "x=1;scope=onbehalfof",
            "a=1&amp;state=attacker",
            "x=1;MedMij_geboortedatum=20000101",
            "x=1;request_uri=urn:x",
        ] {
            let r = redirected(run(&base(&format!("&{hidden}"))));
            assert_eq!(
                (r.exception, r.error),
                (Exception::Auth1b, "invalid_request")
            );
            assert!(
                r.description.contains("repeated"),
                "{hidden}: {}",
                r.description
            );
            if hidden.contains("state") {
                assert!(!r.location.contains("state="), "{}", r.location);
            }
        }
    }

    #[test]
    fn semicolon_a_judged_value_with_a_raw_semicolon_is_malformed() {
        // `;` read as a separator would cut the value: read two ways, so refused.
        let r = refused(run(&format!(
            "response_type=code&client_id={PGO}&redirect_uri={REDIRECT};x&state=s"
        )));
        assert_eq!(r.reason, Unproven::RedirectUriMissing);
        let r = redirected(run(&base("&scope=openid;onbehalfof")));
        assert_eq!(r.exception, Exception::Auth1b);
        assert!(r.description.contains("%3B"), "{}", r.description);
        // Unjudged values keep theirs, and an encoded one is no separator.
        let a = accepted(run(&base("&x=1;y=2&scope=a%3Bb")));
        assert!(
            a.forward_target("/a", "S", false)
                .contains("&x=1;y=2&scope=a%3Bb")
        );
    }

    /// Issue 26, noted: a registered URI's own `iss`, `state`, `code` or `error` would arrive
    /// beside the response's.
    #[test]
    fn response_parameters_inside_the_redirect_uri_are_1b_without_a_second_state() {
        for query in [
            "iss%3Dx",
            "state%3Dx",
            "code%3Dx",
            "error%3Dx",
            "a%3D1%3BSTATE%3Dx",
            "Code",
        ] {
            let q = format!(
                "response_type=code&client_id={PGO}&redirect_uri={REDIRECT}%3F{query}&state=s"
            );
            let r = redirected(run(&q));
            assert_eq!(
                (r.exception, r.error),
                (Exception::Auth1b, "invalid_request"),
                "{q}"
            );
            assert!(!r.location.contains("state=s"), "{}", r.location);
        }
        accepted(run(&format!(
            "response_type=code&client_id={PGO}&redirect_uri={REDIRECT}%3Fcodes%3D1%26x%3Dstate&state=s"
        )));
    }

    #[test]
    fn lenient_names_a_second_spelling_of_another_judged_name_is_1b() {
        for (name, value) in [
            ("state", "evil"),
            ("scope", "onbehalfof"),
            ("response_type", "token"),
            ("response_mode", "form_post"),
            ("medmij_geboortedatum", "20000101"),
        ] {
            for spelling in spellings(name) {
                let extra = "&scope=onbehalfof&MedMij_geboortedatum=19700901&response_mode=query";
                let before = format!("{spelling}={value}&{}", base(extra));
                let after = base(&format!("{extra}&{spelling}={value}"));
                for q in [before, after] {
                    let r = redirected(run(&q));
                    assert_eq!(
                        (r.exception, r.error),
                        (Exception::Auth1b, "invalid_request"),
                        "{q}"
                    );
                    assert!(r.description.contains("repeated"), "{q}: {}", r.description);
                }
            }
        }
        for spelling in spellings("request_uri")
            .into_iter()
            .chain(spellings("request"))
        {
            let r = redirected(run(&base(&format!("&{spelling}=urn:x"))));
            assert_eq!(
                r.description, "request objects are not supported",
                "{spelling}"
            );
        }
    }

    #[test]
    fn lenient_names_a_lone_spelling_is_judged_as_that_parameter() {
        // Only `REDIRECT_URI`: an AS that binds without case sees it, so the proxy checks it.
        let q = format!(
            "response_type=code&client_id={PGO}&REDIRECT_URI=https%3A%2F%2Fevil.example%2Fcb&state=x"
        );
        assert!(matches!(run(&q), Decision::Refuse(_)));
        let q = format!("response_type=code&Client.Id={PGO}&redirect_uri={REDIRECT}&state=x");
        assert!(matches!(run(&q), Decision::Forward(_)));
        // And the proxy's own state replaces the client's under whatever name it came.
        let q = format!("response_type=code&client_id={PGO}&redirect_uri={REDIRECT}&STATE=x");
        let a = accepted(run(&q));
        assert_eq!(a.state, "x");
        let target = a.forward_target("/a", "SEALED", false);
        assert!(
            target.contains("&state=SEALED") && !target.contains("STATE"),
            "{target}"
        );
        // Names that merely resemble one stay other parameters, untouched.
        let a = accepted(run(&base("&redirect-uri=x&client_idx=y")));
        assert!(
            a.forward_target("/a", "S", false)
                .ends_with("&redirect-uri=x&client_idx=y")
        );
    }

    /// Issue 27, found by the differential harness: PHP's `$_GET` reads `redirect_uri[]=…` as
    /// an array, `qs` reads `redirect_uri[a]` as an object; every reader reads a canonical name.
    #[test]
    fn differential_judged_parameters_go_to_the_as_under_their_own_names() {
        for (query, own, spelled) in [
            (
                format!("response_type=code&client_id={PGO}&redirect_uri%5B%5D={REDIRECT}&state=s"),
                "redirect_uri=",
                "redirect_uri%5B%5D",
            ),
            (
                format!("response_type=code&client_id={PGO}&REDIRECT_URI={REDIRECT}&state=s"),
                "redirect_uri=",
                "REDIRECT_URI",
            ),
            (
                format!("response_type=code&client.id={PGO}&redirect_uri={REDIRECT}&state=s"),
                "client_id=",
                "client.id",
            ),
            (
                base("&Response_Type=code").replacen("response_type=code&", "", 1),
                "response_type=",
                "Response_Type",
            ),
            (base("&scope%5Ba%5D=48"), "scope=48", "scope%5B"),
        ] {
            let target = accepted(run(&query)).forward_target("/a", "S", false);
            assert!(target.contains(own), "{query} -> {target}");
            assert!(!target.contains(spelled), "{query} -> {target}");
        }
    }

    #[test]
    fn core_authint_207_1b_malformed_query() {
        for extra in ["&foo=%ZZ", "&foo=%FF", "&%ZZ=1", "&scope=a%2"] {
            let r = redirected(run(&base(extra)));
            assert_eq!(
                (r.exception, r.error),
                (Exception::Auth1b, "invalid_request"),
                "{extra}"
            );
        }
    }

    #[test]
    fn core_authint_200_state_is_mandatory() {
        for q in [
            format!("response_type=code&client_id={PGO}&redirect_uri={REDIRECT}"),
            format!("response_type=code&client_id={PGO}&redirect_uri={REDIRECT}&state="),
        ] {
            let r = redirected(run(&q));
            assert_eq!(r.description, "state missing");
            assert!(!r.location.contains("state="));
        }
    }

    #[test]
    fn core_authint_200_response_type_must_be_code() {
        let q = format!("client_id={PGO}&redirect_uri={REDIRECT}&state=x");
        assert_eq!(redirected(run(&q)).description, "response_type missing");
        let q = format!("response_type=token&client_id={PGO}&redirect_uri={REDIRECT}&state=x");
        assert_eq!(redirected(run(&q)).error, "unsupported_response_type");
    }

    #[test]
    fn delivery_outside_the_query_is_refused() {
        for extra in [
            "&response_mode=form_post",
            "&response_mode=fragment",
            "&request=eyJ",
            "&request_uri=urn:x",
        ] {
            let r = redirected(run(&base(extra)));
            assert_eq!(r.error, "invalid_request", "{extra}");
        }
        accepted(run(&base("&response_mode=query")));
    }

    #[test]
    fn unknown_parameters_pass_through_in_place() {
        let q = base("&nonce=a%2Bb&scope=onbehalfof+48&MedMij_geboortedatum=19700901&x");
        let a = accepted(run(&q));
        assert_eq!(
            a.forward_target("/oauth2/authorize", "SEALED", false),
            format!(
                "/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT}&state=SEALED\
                 &nonce=a%2Bb&scope=onbehalfof+48&MedMij_geboortedatum=19700901&x"
            )
        );
    }

    #[test]
    fn strip_scope_token_removes_only_the_token() {
        let a = accepted(run(&base(
            "&scope=48+onbehalfof+x&MedMij_geboortedatum=19700901",
        )));
        assert!(a.forward_target("/a", "S", true).contains("&scope=48%20x&"));
        let a = accepted(run(&base(
            "&scope=onbehalfof&MedMij_geboortedatum=19700901",
        )));
        assert!(!a.forward_target("/a", "S", true).contains("scope"));
        // Nothing to strip without representation: the scope goes as sent.
        let a = accepted(run(&base("&scope=48+x")));
        assert!(a.forward_target("/a", "S", true).contains("&scope=48+x"));
    }

    #[test]
    fn state_is_kept_exactly_as_sent() {
        let q =
            format!("response_type=code&client_id={PGO}&redirect_uri={REDIRECT}&state=a+b%2Fc%7e");
        let a = accepted(run(&q));
        assert_eq!(a.state, "a+b%2Fc%7e");
        let flow = a.flow(7, Uuid::nil());
        assert_eq!(flow.state, "a+b%2Fc%7e");
        assert_eq!(flow.client_id(), PGO);
    }

    #[test]
    fn core_authint_207_1b_raw_utf8_in_state_says_what_is_wrong() {
        let q =
            format!("response_type=code&client_id={PGO}&redirect_uri={REDIRECT}&state=caf\u{e9}");
        match run(&q) {
            Decision::Redirect(r) => {
                assert_eq!(r.exception, Exception::Auth1b);
                assert_eq!(
                    r.description,
                    "malformed query: characters that must be percent-encoded (space, #, controls, non-ASCII)"
                );
                assert!(r.location.contains("error_description=malformed"));
            }
            other => panic!("{other:?}"),
        }
        let q = format!("response_type=code&client_id={PGO}&redirect_uri={REDIRECT}&state=%E9");
        match run(&q) {
            Decision::Redirect(r) => assert_eq!(
                r.description,
                "malformed query: percent-encoded bytes that are not UTF-8"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_ids_are_read_once() {
        let (r, c) = Parsed::new("MedMij-Request-ID=r1&X-Correlation-ID=c%2D1&x=1").request_ids();
        assert_eq!((r.as_deref(), c.as_deref()), (Some("r1"), Some("c-1")));
        let (r, c) = Parsed::new("MedMij-Request-ID=r1&MedMij-Request-ID=r2").request_ids();
        assert_eq!((r, c), (None, None));
        // Names spelled with escapes are read too.
        let (r, c) = Parsed::new("MedMij%2DRequest-ID=r1&X%2DCorrelation%2DID=c1").request_ids();
        assert_eq!((r.as_deref(), c.as_deref()), (Some("r1"), Some("c1")));
    }

    fn decide_fresh(query: &str, fresh_login: FreshLogin) -> Decision<'static> {
        let clients = Box::leak(Box::new(clients()));
        let query = Box::leak(query.to_owned().into_boxed_str());
        decide(
            Box::leak(Box::new(Parsed::new(query))),
            &Settings {
                clients,
                enabled: &Kind::ALL,
                today,
                age_today: None,
                issuer: Some("https://as.example.nl"),
                fresh_login,
            },
        )
    }

    const FRESH: FreshLogin = FreshLogin {
        prompt_login: true,
        max_age_zero: false,
    };

    #[test]
    fn fresh_login_a_representation_is_forwarded_with_prompt_login_and_the_flow_records_it() {
        let q = base("&scope=48%20onbehalfof&MedMij_geboortedatum=19700901&prompt=consent&x=1");
        let a = accepted(decide_fresh(&q, FRESH));
        assert_eq!(a.flow(1, Uuid::nil()).fresh_login, FRESH);
        assert_eq!(
            a.forward_target("/a", "S", false),
            "/a?response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcb&state=S&scope=48%20onbehalfof&MedMij_geboortedatum=19700901&x=1&prompt=login%20consent"
        );
        // max_age=0 too, the client's own out.
        let both = FreshLogin {
            prompt_login: true,
            max_age_zero: true,
        };
        let q = base("&scope=onbehalfofchild&MedMij_geboortedatum=20200315&Max_Age=3600");
        let a = accepted(decide_fresh(&q, both));
        assert_eq!(a.flow(1, Uuid::nil()).fresh_login, both);
        let target = a.forward_target("/a", "S", true);
        assert!(
            target.ends_with("&MedMij_geboortedatum=20200315&prompt=login&max_age=0"),
            "{target}"
        );
        assert!(!target.contains("3600"), "{target}");
        // For themselves: nothing added, nothing judged, nothing recorded.
        let q = base("&scope=48&prompt=none&prompt=none");
        let a = accepted(decide_fresh(&q, both));
        assert_eq!(a.flow(1, Uuid::nil()).fresh_login, FreshLogin::OFF);
        assert!(
            a.forward_target("/a", "S", false)
                .ends_with("&prompt=none&prompt=none")
        );
    }

    #[test]
    fn fresh_login_prompt_none_is_answered_login_required_by_error_redirect() {
        let q = base("&scope=48%20onbehalfof&MedMij_geboortedatum=19700901&prompt=none");
        let r = redirected(decide_fresh(&q, FRESH));
        assert_eq!(
            (r.exception, r.error),
            (Exception::Auth1b, "login_required")
        );
        assert!(
            r.location
                .starts_with("https://pgo.example.nl/cb?error=login_required&"),
            "{}",
            r.location
        );
        assert!(r.location.contains("&state=xyz"), "{}", r.location);
        assert!(
            r.location.ends_with("&iss=https%3A%2F%2Fas.example.nl"),
            "{}",
            r.location
        );
        // Without the key, prompt=none goes to the AS as it came (as today).
        let a = accepted(decide_with(&q, &[Kind::OnBehalfOf]));
        assert!(a.forward_target("/a", "S", false).ends_with("&prompt=none"));
    }

    #[test]
    fn fresh_login_a_repeated_prompt_or_max_age_is_1b() {
        for (extra, why) in [
            ("&prompt=consent&PROMPT=none", "prompt repeated"),
            ("&prompt%5B%5D=login&prompt=consent", "prompt repeated"),
            ("&x=1;prompt=none", "prompt repeated"),
            ("&max_age=1&max.age=2", "max_age repeated"),
            (
                "&prompt=none%20login",
                "prompt none cannot be combined with other values",
            ),
        ] {
            let q = base(&format!(
                "&scope=onbehalfof&MedMij_geboortedatum=19700901{extra}"
            ));
            let r = redirected(decide_fresh(&q, FRESH));
            assert_eq!(
                (r.exception, r.error, r.description),
                (Exception::Auth1b, "invalid_request", why),
                "{extra}"
            );
            // Without the key: not judged, forwarded as today.
            assert!(matches!(run(&q), Decision::Forward(_)), "{extra}");
        }
    }
}
