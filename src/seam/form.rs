//! Request bodies the guards read: forms. [`crate::seam::limits`] reads every body whole before the
//! guards see the request and leaves a cheap copy of its bytes ([`BufferedBody`], a reference
//! count) in the request's extensions, so that a guard can read the form without consuming the
//! body the AS is to get.

use bytes::Bytes;
use http::header;

/// The bytes of a request body that was read whole.
#[derive(Debug, Clone)]
pub struct BufferedBody(pub Bytes);

/// Why a body is not the form the guards read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAForm {
    #[error("no Content-Type, or more than one")]
    ContentTypeCount,
    #[error("unreadable Content-Type")]
    UnreadableContentType,
    #[error("body is not application/x-www-form-urlencoded")]
    OtherType,
    #[error("Content-Type parameter other than charset=utf-8")]
    OtherParameter,
    #[error("a content coding on the body")]
    ContentCoding,
}

/// The body is `application/x-www-form-urlencoded` (RFC 6749 §4.1.3 for token requests; an
/// HTML form's default), read as UTF-8. Only that, once, without parameters other than
/// `charset=utf-8`, and without a content coding, is read; anything else is for another reader
/// than the proxy's (a multipart, JSON or gzip body holds parameters a form reading would not
/// see), and the guards refuse it.
pub fn check_content_type(headers: &http::HeaderMap) -> Result<(), NotAForm> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(content_type), None) = (types.next(), types.next()) else {
        return Err(NotAForm::ContentTypeCount);
    };
    let content_type = content_type
        .to_str()
        .map_err(|_| NotAForm::UnreadableContentType)?;
    let mut parts = content_type.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|t| t.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    {
        return Err(NotAForm::OtherType);
    }
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let value = value.trim().trim_matches('"');
        if !(name.trim().eq_ignore_ascii_case("charset") && value.eq_ignore_ascii_case("utf-8")) {
            return Err(NotAForm::OtherParameter);
        }
    }
    let identity = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .all(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if !identity {
        return Err(NotAForm::ContentCoding);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_a_plain_utf8_form_is_read() {
        for ok in [
            &[("content-type", "application/x-www-form-urlencoded")][..],
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )],
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-encoding", "identity"),
            ],
        ] {
            assert_eq!(check_content_type(&headers(ok)), Ok(()), "{ok:?}");
        }
        for bad in [
            &[][..],
            &[("content-type", "multipart/form-data; boundary=b")],
            &[("content-type", "application/json")],
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=latin1",
            )],
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-encoding", "gzip"),
            ],
        ] {
            assert!(check_content_type(&headers(bad)).is_err(), "{bad:?}");
        }
    }
}
