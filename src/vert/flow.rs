//! What one authorization flow expects, carried through the upstream AS inside the sealed state.

use uuid::Uuid;

use super::{Birthdate, FreshLogin};

/// The kind of representation a flow asks for (the scope token, ext.vert.authint.200/.204).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `onbehalfof`: a registered machtiging (DigiD Machtigen), ext.vert.authint.201.
    OnBehalfOf,
    /// `onbehalfofchild` (MedMij 2.x): parental authority over a child under 12,
    /// ext.vert.authint.204.
    OnBehalfOfChild,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::OnBehalfOf, Kind::OnBehalfOfChild];

    /// The scope token, and the value of the request and signal headers.
    pub fn token(self) -> &'static str {
        match self {
            Kind::OnBehalfOf => "onbehalfof",
            Kind::OnBehalfOfChild => "onbehalfofchild",
        }
    }

    /// Exact, case-sensitive: `OnBehalfOf` is an ordinary scope token, not this one.
    pub fn from_token(token: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.token() == token)
    }
}

/// Representation as the client asked for it: the kind and the Vertegenwoordigde's birth date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    pub kind: Kind,
    pub birthdate: Birthdate,
}

/// Time and limits for a flow's age: seconds since the Unix epoch, `state.flow_ttl` and
/// `state.clock_skew` in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now: u64,
    pub ttl: u64,
    pub skew: u64,
}

/// A flow's id: the same for every copy of one sealed state, different for every seal (the
/// seal's random nonce). One code per flow is kept under it.
pub type FlowId = [u8; 32];

/// One flow, as sealed into the `state` the AS sees. Everything here was validated when the
/// authorization request was accepted; opening the seal proves it has not changed since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// The client's `state`, exactly as it was sent (still percent-encoded).
    pub state: String,
    /// The validated `redirect_uri`. Its host is the `client_id` (core.authint.200/202), so the
    /// client needs no field of its own.
    pub redirect_uri: String,
    /// `None` when the Persoon logs in as themselves.
    pub requested: Option<Requested>,
    /// Seconds since the Unix epoch when the proxy accepted the request.
    pub issued_at: u64,
    /// The flow's `X-Correlation-ID` (the client's, or one the proxy made up): the trace id on
    /// pages and in log lines at the flow's return.
    pub correlation_id: Uuid,
    /// What the proxy added to the forwarded request to ask for a fresh login
    /// (`representation.fresh_login`): taken off again when the AS sends the browser back into
    /// the flow ([`super::fresh_login::on_return`]). Only with a representation.
    pub fresh_login: FreshLogin,
}

impl Flow {
    /// The `client_id`: the host of the validated `redirect_uri`.
    pub fn client_id(&self) -> &str {
        let rest = self
            .redirect_uri
            .strip_prefix("https://")
            .unwrap_or(&self.redirect_uri);
        // Bytes, not a pattern of chars: this runs on every flow return.
        let end = rest.bytes().position(|b| b == b'/' || b == b'?');
        &rest[..end.unwrap_or(rest.len())]
    }

    /// Whether the flow is older than `ttl` at `now`. A flow from the future (a clock that jumped,
    /// or another instance's clock) is accepted within `skew`, beyond that it counts as expired.
    pub fn is_expired(&self, clock: Clock) -> bool {
        let Clock { now, ttl, skew } = clock;
        now > self.issued_at.saturating_add(ttl) || self.issued_at > now.saturating_add(skew)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_vert_authint_200_tokens_are_exact() {
        assert_eq!(Kind::from_token("onbehalfof"), Some(Kind::OnBehalfOf));
        assert_eq!(
            Kind::from_token("onbehalfofchild"),
            Some(Kind::OnBehalfOfChild)
        );
        for not in [
            "OnBehalfOf",
            "ONBEHALFOF",
            "onbehalfof ",
            "on behalf of",
            "",
        ] {
            assert_eq!(Kind::from_token(not), None, "{not:?}");
        }
    }

    #[test]
    fn client_id_is_redirect_host() {
        let flow = Flow {
            state: "s".into(),
            redirect_uri: "https://pgo.example.nl/cb?x=1".into(),
            requested: None,
            issued_at: 0,
            correlation_id: Uuid::nil(),
            fresh_login: crate::vert::FreshLogin::OFF,
        };
        assert_eq!(flow.client_id(), "pgo.example.nl");
    }

    #[test]
    fn expiry() {
        let flow = Flow {
            state: String::new(),
            redirect_uri: String::new(),
            requested: None,
            issued_at: 1000,
            correlation_id: Uuid::nil(),
            fresh_login: crate::vert::FreshLogin::OFF,
        };
        // A flow issued at 1000, with a ttl of 60 and a skew of 5.
        let at = |now| Clock {
            now,
            ttl: 60,
            skew: 5,
        };
        assert!(!flow.is_expired(at(1000)));
        assert!(!flow.is_expired(at(1060)));
        assert!(flow.is_expired(at(1061)));
        assert!(!flow.is_expired(at(995)));
        assert!(flow.is_expired(at(994)));
    }
}
