//! A token request (RFC 6749 §4.1.3), read strictly enough to guard it: which grant, and the
//! one `code`. The body is `application/x-www-form-urlencoded`.

use std::borrow::Cow;

use super::{fold, query};

/// Whether a token request's query string is free of the parameters the body carries: some
/// frameworks merge query and body parameters, and the AS would then see a code the proxy did
/// not check.
pub fn query_is_clean(query: &str) -> bool {
    query::pairs(query).all(|pair| {
        query::decode(pair.name).is_ok_and(|name| {
            !fold::reads_as(&name, "code") && !fold::reads_as(&name, "grant_type")
        })
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest<'a> {
    /// `grant_type=authorization_code` with exactly one `code`, decoded.
    Code(Cow<'a, str>),
    /// Another grant (refresh token, client credentials): not the token guard's business.
    OtherGrant,
    /// Not readable one way: `invalid_request` (RFC 6749 §5.2). ASCII, for the log.
    Invalid(&'static str),
}

/// Reads a token request body. A name that another stack's parser could read as `code` or
/// `grant_type` (`CODE`, a Unicode spelling) counts as that name, so that no second code can
/// ride along to an AS that reads names without case.
pub fn parse(body: &[u8]) -> TokenRequest<'_> {
    let Ok(body) = std::str::from_utf8(body) else {
        return TokenRequest::Invalid("body is not UTF-8");
    };
    let (mut grant_type, mut code) = (None, None);
    for pair in query::pairs(body) {
        let Ok(name) = query::decode(pair.name) else {
            return TokenRequest::Invalid("malformed body");
        };
        let slot = match name.as_ref() {
            name if fold::reads_as(name, "grant_type") => &mut grant_type,
            name if fold::reads_as(name, "code") => &mut code,
            _ => continue,
        };
        if slot.is_some() {
            // RFC 6749 §3.2: parameters must not be included more than once.
            return TokenRequest::Invalid("a parameter repeated");
        }
        match query::decode(pair.value) {
            Ok(value) => *slot = Some(value),
            Err(_) => return TokenRequest::Invalid("malformed body"),
        }
    }
    match (grant_type.as_deref(), code) {
        (Some("authorization_code"), Some(code)) if !code.is_empty() => TokenRequest::Code(code),
        (Some("authorization_code"), _) => TokenRequest::Invalid("code missing"),
        (Some(_), _) => TokenRequest::OtherGrant,
        (None, _) => TokenRequest::Invalid("grant_type missing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authorization_code_grant_and_its_code() {
        assert_eq!(
            parse(b"grant_type=authorization_code&code=C0%2BDE&redirect_uri=x"),
            TokenRequest::Code("C0+DE".into())
        );
    }

    #[test]
    fn a_query_may_not_carry_a_second_code() {
        assert!(query_is_clean(""));
        assert!(query_is_clean("client_id=pgo.example.nl"));
        for query in [
            "code=x",
            "CODE=x",
            "grant_type=authorization_code",
            "%63ode=x",
            "%zz=x",
        ] {
            assert!(!query_is_clean(query), "{query}");
        }
    }

    #[test]
    fn other_grants_pass() {
        assert_eq!(
            parse(b"grant_type=refresh_token&refresh_token=r"),
            TokenRequest::OtherGrant
        );
        // A code beside another grant is not this guard's to judge.
        assert_eq!(
            parse(b"grant_type=client_credentials&code=x"),
            TokenRequest::OtherGrant
        );
    }

    #[test]
    fn repeated_missing_or_malformed_is_invalid() {
        for body in [
            &b"grant_type=authorization_code&code=a&code=b"[..],
            b"grant_type=authorization_code&grant_type=authorization_code&code=a",
            b"grant_type=authorization_code",
            b"grant_type=authorization_code&code=",
            b"code=a",
            b"grant_type=authorization_code&code=%zz",
            b"grant_type=authorization_code&code=\xff",
            b"grant_type=authorization_code&code=a&CODE=b",
            b"grant_type=authorization_code&Grant_Type=client_credentials&code=a",
        ] {
            assert!(
                matches!(parse(body), TokenRequest::Invalid(_)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
