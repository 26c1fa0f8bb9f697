//! A token request (RFC 6749 §4.1.3), read strictly enough to guard it: which grant, and the
//! one `code`. The body is `application/x-www-form-urlencoded`.

use std::borrow::Cow;

use super::query;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest<'a> {
    /// `grant_type=authorization_code` with exactly one `code`, decoded.
    Code(Cow<'a, str>),
    /// Another grant (refresh token, client credentials): not the token guard's business.
    OtherGrant,
    /// Not readable one way: `invalid_request` (RFC 6749 §5.2). ASCII, for the log.
    Invalid(&'static str),
}

/// Reads a token request body.
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
            "grant_type" => &mut grant_type,
            "code" => &mut code,
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
        ] {
            assert!(
                matches!(parse(body), TokenRequest::Invalid(_)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
