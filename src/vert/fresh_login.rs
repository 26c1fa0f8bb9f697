//! `representation.fresh_login`: an authorization request for a representation asks the AS for
//! a fresh login (OpenID Connect Core §3.1.2.1: `prompt=login`, and `max_age=0` with
//! `representation.fresh_login_max_age_zero`). Without it an AS reuses the login session the
//! Persoon made for themselves a minute ago, signals `none`, and the flow ends in Vert 1 with
//! no chance to log in on behalf of the other person.
//!
//! `prompt` and `max_age` are then judged parameters, read as the most lenient framework reads
//! names ([`fold::read_as`]): the client's spellings are taken out before the proxy's own go
//! in, and a repeated one (a second spelling, or one behind a `;`) is 1b. The flow's seal
//! records what the proxy added ([`FreshLogin`] in [`super::Flow`]), so that the AS's own round
//! trips into the flow ([`super::resume`]: a login's `?next=`, a consent post-back,
//! APPEND_SLASH) have it taken off again: the AS asks for the fresh login once, never in a loop.

use std::borrow::Cow;

use super::fold;
use super::query::{self, RawPair};

/// What the proxy adds to ask for a fresh login; in a flow, what it added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FreshLogin {
    /// `login` merged into the client's `prompt`.
    pub prompt_login: bool,
    /// `max_age=0` in place of the client's `max_age`.
    pub max_age_zero: bool,
}

impl FreshLogin {
    /// Nothing added: the key is off, or the flow asks for no representation.
    pub const OFF: FreshLogin = FreshLogin {
        prompt_login: false,
        max_age_zero: false,
    };
}

/// The two parameters fresh login judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Prompt,
    MaxAge,
}

impl Name {
    fn of(decoded: &str) -> Option<Name> {
        match decoded {
            "prompt" => return Some(Name::Prompt),
            "max_age" => return Some(Name::MaxAge),
            _ => {}
        }
        match fold::read_as(decoded, &["prompt", "max_age"])? {
            "prompt" => Some(Name::Prompt),
            _ => Some(Name::MaxAge),
        }
    }

    fn repeated(self) -> &'static str {
        match self {
            Name::Prompt => "prompt repeated",
            Name::MaxAge => "max_age repeated",
        }
    }

    fn malformed(self) -> &'static str {
        match self {
            Name::Prompt => "prompt is malformed",
            Name::MaxAge => "max_age is malformed",
        }
    }
}

/// `prompt` and `max_age` as a query holds them, each at most once to every reader.
struct Read<'q> {
    /// The client's `prompt`, decoded.
    prompt: Option<Cow<'q, str>>,
    /// Which pairs (by their place among [`query::pairs`]) name `prompt` or `max_age`.
    named: Vec<(usize, Name)>,
}

/// Reads `prompt` and `max_age` as judged parameters: `Err` names what is repeated (a second
/// spelling, or one a `;`-splitting reader finds inside another pair) or malformed.
fn read(query: &str) -> Result<Read<'_>, &'static str> {
    let mut found = Read {
        prompt: None,
        named: Vec::new(),
    };
    let mut counts = [0u32; 2];
    for (i, pair) in query::pairs(query).enumerate() {
        if let Some(hidden) = semicolon_names(pair, query).next() {
            return Err(hidden.repeated());
        }
        let Some(name) = query::decode(pair.name).ok().as_deref().and_then(Name::of) else {
            continue;
        };
        counts[name as usize] += 1;
        if counts[name as usize] > 1 {
            return Err(name.repeated());
        }
        // Cut there by `;`-splitting readers: a judged value read two ways.
        if pair.value.contains(';') {
            return Err(name.malformed());
        }
        let value = query::decode(pair.value).map_err(|_| name.malformed())?;
        if name == Name::Prompt {
            found.prompt = Some(value);
        }
        found.named.push((i, name));
    }
    Ok(found)
}

/// The judged names a `;`-splitting reader (Rack 2, Python before CVE-2021-23336, Go before
/// 1.17) finds inside one `&`-separated pair beyond the pair's own: for them a second reading.
fn semicolon_names<'q>(pair: RawPair<'q>, query: &'q str) -> impl Iterator<Item = Name> + 'q {
    query::names_behind_semicolons(pair, query).filter_map(|name| Name::of(&name))
}

/// What a new authorization request for a representation gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Forwarded with the client's `prompt` (and, with `max_age_zero`, `max_age`) taken out
    /// and the proxy's own added.
    Forward(Forwarded),
    /// `prompt=none`: the AS could only answer `login_required` (OpenID Connect Core
    /// §3.1.2.6), so the proxy answers so, by error redirect, and forwards nothing.
    LoginRequired,
    /// 1b: `prompt` or `max_age` repeated or malformed, or `none` with other values.
    Invalid(&'static str),
}

/// The parameters that go out in place of the client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The merged `prompt`, encoded: `login` first, then the client's other values.
    prompt: String,
    max_age_zero: bool,
    /// The client's pairs that go (by their place among [`query::pairs`]), in order.
    dropped: Vec<usize>,
}

impl Forwarded {
    /// Whether the client's pair at this place is left out.
    pub fn drops(&self, index: usize) -> bool {
        self.dropped.binary_search(&index).is_ok()
    }

    /// Appends the proxy's own parameters to a query being built.
    pub fn append_to(&self, out: &mut String) {
        out.push_str("&prompt=");
        out.push_str(&self.prompt);
        if self.max_age_zero {
            out.push_str("&max_age=0");
        }
    }
}

/// Judges `prompt` and `max_age` of an authorization request that asks for a representation,
/// with fresh login on.
pub fn ask(query: &str, fresh: FreshLogin) -> Asked {
    let found = match read(query) {
        Ok(found) => found,
        Err(description) => return Asked::Invalid(description),
    };
    let client: Vec<&str> = found
        .prompt
        .as_deref()
        .map(|p| p.split(' ').filter(|v| !v.is_empty()).collect())
        .unwrap_or_default();
    if client.contains(&"none") {
        // OpenID Connect Core §3.1.2.1: `none` with any other value is an error of its own.
        return if client.len() == 1 {
            Asked::LoginRequired
        } else {
            Asked::Invalid("prompt none cannot be combined with other values")
        };
    }
    let mut merged = String::from("login");
    for value in client.iter().filter(|v| **v != "login") {
        merged.push(' ');
        merged.push_str(value);
    }
    let mut prompt = String::with_capacity(merged.len() + 8);
    query::encode(&merged, &mut prompt);
    let dropped = found
        .named
        .iter()
        .filter(|(_, name)| *name == Name::Prompt || fresh.max_age_zero)
        .map(|(i, _)| *i)
        .collect();
    Asked::Forward(Forwarded {
        prompt,
        max_age_zero: fresh.max_age_zero,
        dropped,
    })
}

/// The query of a request that returns into a flow whose seal says the proxy asked for a
/// fresh login: that request is the AS's own round trip, so the proxy's `login` comes off the
/// `prompt` (the client's own values stay) and, when the proxy added it, `max_age` goes; the
/// AS asks for the login once, not on every return. `Ok(None)`: nothing to take off.
pub fn on_return(query: &str, added: FreshLogin) -> Result<Option<String>, &'static str> {
    if !added.prompt_login {
        return Ok(None);
    }
    let found = read(query)?;
    let changes = found
        .named
        .iter()
        .any(|(_, name)| *name == Name::Prompt || added.max_age_zero);
    if !changes {
        return Ok(None);
    }
    let mut out = String::with_capacity(query.len());
    let mut named = found.named.iter().peekable();
    for (i, pair) in query::pairs(query).enumerate() {
        let name = match named.peek() {
            Some((at, name)) if *at == i => {
                named.next();
                Some(*name)
            }
            _ => None,
        };
        let part: Cow<'_, str> = match name {
            None => Cow::Borrowed(pair.as_sent(query)),
            Some(Name::MaxAge) if added.max_age_zero => continue,
            Some(Name::MaxAge) => Cow::Borrowed(pair.as_sent(query)),
            Some(Name::Prompt) => {
                let rest: Vec<&str> = found
                    .prompt
                    .as_deref()
                    .unwrap_or("")
                    .split(' ')
                    .filter(|v| !v.is_empty() && *v != "login")
                    .collect();
                if rest.is_empty() {
                    continue;
                }
                let mut part = String::from("prompt=");
                query::encode(&rest.join(" "), &mut part);
                Cow::Owned(part)
            }
        };
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&part);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: FreshLogin = FreshLogin {
        prompt_login: true,
        max_age_zero: false,
    };
    const WITH_MAX_AGE: FreshLogin = FreshLogin {
        prompt_login: true,
        max_age_zero: true,
    };

    /// The query as it would go out: the kept pairs, then the proxy's own.
    fn forwarded(query: &str, fresh: FreshLogin) -> String {
        let Asked::Forward(f) = ask(query, fresh) else {
            panic!("{query}: {:?}", ask(query, fresh))
        };
        let mut out: Vec<&str> = query::pairs(query)
            .enumerate()
            .filter(|(i, _)| !f.drops(*i))
            .map(|(_, p)| p.as_sent(query))
            .collect();
        let mut own = String::new();
        f.append_to(&mut own);
        out.push(&own[1..]);
        out.join("&")
    }

    #[test]
    fn fresh_login_merges_login_into_the_clients_prompt() {
        assert_eq!(forwarded("a=1", ON), "a=1&prompt=login");
        assert_eq!(
            forwarded("prompt=consent&a=1", ON),
            "a=1&prompt=login%20consent"
        );
        assert_eq!(
            forwarded("PROMPT=login+consent&a=1", ON),
            "a=1&prompt=login%20consent"
        );
        assert_eq!(
            forwarded("prompt=select_account%20consent", ON),
            "prompt=login%20select_account%20consent"
        );
        assert_eq!(forwarded("prompt=", ON), "prompt=login");
        // max_age passes untouched unless the proxy owns it.
        assert_eq!(forwarded("max_age=60", ON), "max_age=60&prompt=login");
        assert_eq!(
            forwarded("max_age=60&prompt=consent", WITH_MAX_AGE),
            "prompt=login%20consent&max_age=0"
        );
        assert_eq!(forwarded("a=1", WITH_MAX_AGE), "a=1&prompt=login&max_age=0");
    }

    #[test]
    fn fresh_login_prompt_none_is_login_required_and_none_with_others_invalid() {
        assert_eq!(ask("prompt=none", ON), Asked::LoginRequired);
        assert_eq!(ask("Prompt[]=none", ON), Asked::LoginRequired);
        assert_eq!(
            ask("prompt=none%20consent", ON),
            Asked::Invalid("prompt none cannot be combined with other values")
        );
    }

    #[test]
    fn fresh_login_prompt_and_max_age_are_judged_parameters() {
        for (query, why) in [
            ("prompt=consent&prompt=login", "prompt repeated"),
            ("prompt=consent&PROMPT=none", "prompt repeated"),
            ("prompt=consent&prompt%00x=none", "prompt repeated"),
            ("prompt%20=x&prompt=y", "prompt repeated"),
            ("x=1;prompt=none", "prompt repeated"),
            ("x=1&amp;prompt=none", "prompt repeated"),
            ("max_age=1&MAX_AGE=2", "max_age repeated"),
            ("prompt=login;x", "prompt is malformed"),
            ("prompt=%zz", "prompt is malformed"),
        ] {
            assert_eq!(ask(query, ON), Asked::Invalid(why), "{query}");
        }
        // Names that no framework binds to them are other parameters, passed as they are.
        assert_eq!(
            forwarded("prompts=none&max-age=9", ON),
            "prompts=none&max-age=9&prompt=login"
        );
    }

    #[test]
    fn fresh_login_a_return_into_the_flow_takes_the_proxys_login_off_again() {
        // The AS's login page sends the browser back to the authorize URL it received.
        assert_eq!(
            on_return("a=1&prompt=login&state=S", ON)
                .unwrap()
                .as_deref(),
            Some("a=1&state=S")
        );
        assert_eq!(
            on_return("prompt=login%20consent&state=S", ON)
                .unwrap()
                .as_deref(),
            Some("prompt=consent&state=S")
        );
        assert_eq!(
            on_return("prompt=login+consent&max_age=0&state=S", WITH_MAX_AGE)
                .unwrap()
                .as_deref(),
            Some("prompt=consent&state=S")
        );
        // max_age the proxy did not add stays.
        assert_eq!(
            on_return("prompt=login&max_age=60", ON).unwrap().as_deref(),
            Some("max_age=60")
        );
        // Nothing of it left (DOT pops prompt itself), or no fresh login in the flow: as it came.
        assert_eq!(on_return("a=1&state=S", ON), Ok(None));
        assert_eq!(on_return("prompt=login&state=S", FreshLogin::OFF), Ok(None));
        // Ambiguous: refused.
        assert_eq!(
            on_return("prompt=login&Prompt=login", ON),
            Err("prompt repeated")
        );
    }
}
