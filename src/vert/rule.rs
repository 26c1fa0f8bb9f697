//! Every rule a decision names: the MedMij afsprakenstelsel's rule ids the proxy enforces, and
//! the proxy's own (the token guard's). One enum, so that a decision line and the `rule` label
//! of `medmij_vert_decisions_total` can only name a rule that exists, spelled one way.

use super::flow::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// core.authint.200: the authorization request (a `GET`, a listed client, a valid
    /// `redirect_uri`, a `state`); a request without representation is decided under it.
    CoreAuthint200,
    /// core.authint.207: 1a and 1b.
    CoreAuthint207,
    /// ext.vert.authint.200: `onbehalfof` needs `MedMij_geboortedatum` (Vert 3).
    ExtVertAuthint200,
    /// ext.vert.authint.201: the AS is asked for representation (`onbehalfof`).
    ExtVertAuthint201,
    /// ext.vert.authint.202: a code is released only on the AS's signal.
    ExtVertAuthint202,
    /// ext.vert.authint.204 (2.x): `onbehalfofchild`, as .201 for parental authority.
    ExtVertAuthint204,
    /// MedMij 2.x's age limits, which belong to .201 and .204 both (`representation.age_rules`).
    AgeLimits,
    /// RFC 6749 §4.1.2.1: an error redirect to a client, passed without a state to restore.
    Rfc6749ErrorRedirect,
    /// The token guard's: only a code the proxy released reaches the AS's token endpoint.
    TokenReleasedOnly,
    /// The token guard's: a code becomes a token once, one presentation at a time.
    TokenOnce,
    /// The token guard's: a code released to a client taken off the client list is not
    /// redeemed.
    TokenListedClient,
    /// The token guard's: a token request is read one way, as the frameworks behind it read
    /// it (RFC 6749 §3.2: a `POST` of a form), or it does not reach the AS.
    TokenOneReading,
}

impl Rule {
    pub const ALL: [Rule; 12] = [
        Rule::CoreAuthint200,
        Rule::CoreAuthint207,
        Rule::ExtVertAuthint200,
        Rule::ExtVertAuthint201,
        Rule::ExtVertAuthint202,
        Rule::ExtVertAuthint204,
        Rule::AgeLimits,
        Rule::Rfc6749ErrorRedirect,
        Rule::TokenReleasedOnly,
        Rule::TokenOnce,
        Rule::TokenListedClient,
        Rule::TokenOneReading,
    ];

    /// The id as the afsprakenstelsel (or, for the proxy's own, `docs/rules.md`) writes it:
    /// the decision line's `rule` and the metric's label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::CoreAuthint200 => "core.authint.200",
            Rule::CoreAuthint207 => "core.authint.207",
            Rule::ExtVertAuthint200 => "ext.vert.authint.200",
            Rule::ExtVertAuthint201 => "ext.vert.authint.201",
            Rule::ExtVertAuthint202 => "ext.vert.authint.202",
            Rule::ExtVertAuthint204 => "ext.vert.authint.204",
            Rule::AgeLimits => "ext.vert.authint.201/204",
            Rule::Rfc6749ErrorRedirect => "rfc6749.4.1.2.1",
            Rule::TokenReleasedOnly => "proxy.token.released_only",
            Rule::TokenOnce => "proxy.token.once",
            Rule::TokenListedClient => "proxy.token.listed_client",
            Rule::TokenOneReading => "proxy.token.one_reading",
        }
    }

    /// The rule an authorization request (or a flow) is decided under: the representation it
    /// asks for names it (.201 / .204), none is core.authint.200.
    pub const fn for_kind(kind: Option<Kind>) -> Rule {
        match kind {
            None => Rule::CoreAuthint200,
            Some(Kind::OnBehalfOf) => Rule::ExtVertAuthint201,
            Some(Kind::OnBehalfOfChild) => Rule::ExtVertAuthint204,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_has_its_own_id() {
        let ids: std::collections::BTreeSet<_> = Rule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(ids.len(), Rule::ALL.len());
    }

    #[test]
    fn a_request_is_decided_under_the_rule_of_the_representation_it_asks_for() {
        assert_eq!(Rule::for_kind(None).as_str(), "core.authint.200");
        assert_eq!(
            Rule::for_kind(Some(Kind::OnBehalfOf)).as_str(),
            "ext.vert.authint.201"
        );
        assert_eq!(
            Rule::for_kind(Some(Kind::OnBehalfOfChild)).as_str(),
            "ext.vert.authint.204"
        );
    }
}
