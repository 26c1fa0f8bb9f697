//! The OAuth clients (PGOs) the proxy will redirect to, and the `redirect_uri` rules
//! (core.authint.200/202: `client_id` is a hostname on the MedMij OAuth Client List (OCL);
//! `redirect_uri` is `https`, its host equals `client_id`, no port).

use std::collections::HashMap;

/// One PGO: its hostname (the `client_id`) and the organisation name shown to the Persoon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub hostname: String,
    pub name: String,
}

#[derive(Debug, Clone, Default)]
pub struct ClientList {
    /// FxHash, not SipHash: the keys are the operator's (the client list), so no request can
    /// place entries to collide; a lookup by any string costs one probe sequence of the
    /// operator's table. It runs twice a flow (the request, the return): SipHash cost about
    /// 400 instructions a lookup (callgrind).
    by_hostname: HashMap<String, Client, rustc_hash::FxBuildHasher>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectUriError {
    NotHttps,
    HostDiffers,
    Port,
    Userinfo,
    Fragment,
    Backslash,
    /// A character no URI may hold raw (space, quote, `<`, control, non-ASCII, bad `%`).
    BadCharacter,
}

impl RedirectUriError {
    pub fn describe(self) -> &'static str {
        match self {
            RedirectUriError::NotHttps => "redirect_uri is not https",
            RedirectUriError::HostDiffers => "redirect_uri host differs from client_id",
            RedirectUriError::Port => "redirect_uri has a port",
            RedirectUriError::Userinfo => "redirect_uri has userinfo",
            RedirectUriError::Fragment => "redirect_uri has a fragment",
            RedirectUriError::Backslash => "redirect_uri has a backslash",
            RedirectUriError::BadCharacter => "redirect_uri has a character not allowed in a URI",
        }
    }
}

impl ClientList {
    /// Builds the list; a hostname listed twice keeps its first name.
    pub fn new(clients: impl IntoIterator<Item = Client>) -> Self {
        let mut by_hostname = HashMap::default();
        for client in clients {
            by_hostname.entry(client.hostname.clone()).or_insert(client);
        }
        ClientList { by_hostname }
    }

    pub fn get(&self, client_id: &str) -> Option<&Client> {
        self.by_hostname.get(client_id)
    }

    pub fn len(&self) -> usize {
        self.by_hostname.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hostname.is_empty()
    }

    /// Checks `redirect_uri` against `client_id` on the exact string, never after normalising:
    /// what the browser will be sent to is what was checked.
    pub fn check_redirect_uri(client_id: &str, redirect_uri: &str) -> Result<(), RedirectUriError> {
        if redirect_uri.contains('\\') {
            // Browsers read `\` as `/` in https URLs: `https://pgo.nl\@evil.test` goes to evil.test.
            return Err(RedirectUriError::Backslash);
        }
        if !is_uri_text(redirect_uri) {
            return Err(RedirectUriError::BadCharacter);
        }
        if redirect_uri.contains('#') {
            return Err(RedirectUriError::Fragment);
        }
        let rest = redirect_uri
            .strip_prefix("https://")
            .ok_or(RedirectUriError::NotHttps)?;
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        let authority = super::syntax::Authority::split(authority);
        if authority.userinfo.is_some() {
            return Err(RedirectUriError::Userinfo);
        }
        if authority.port.is_some() {
            return Err(RedirectUriError::Port);
        }
        if authority.host != client_id {
            return Err(RedirectUriError::HostDiffers);
        }
        Ok(())
    }
}

/// Whether a (validated) `redirect_uri`'s own query names a parameter of the authorization
/// response (`code`, `state`, `error`, `iss`, RFC 6749 §4.1.2 and RFC 9207), in any spelling a
/// reader of the client's could bind (`;` a separator too): the redirect the client gets would
/// then carry two of them, and which one it reads is its framework's choice.
pub fn carries_response_params(redirect_uri: &str) -> bool {
    // Bytes: this runs on every authorization request, and most URIs have no query.
    let Some(at) = memchr::memchr(b'?', redirect_uri.as_bytes()) else {
        return false;
    };
    let query = &redirect_uri[at + 1..];
    query.split(['&', ';']).any(|piece| {
        let name = piece.split('=').next().unwrap_or(piece);
        super::query::decode(name).is_ok_and(|name| {
            super::fold::read_as(&name, &["code", "state", "error", "iss"]).is_some()
        })
    })
}

/// RFC 3986 characters only (unreserved, reserved, and `%` followed by two hex digits).
pub fn is_uri_text(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if super::syntax::escape(&b[i..]).is_none() {
                    return false;
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() => {}
            b'-' | b'.' | b'_' | b'~' => {}
            b':' | b'/' | b'?' | b'#' | b'[' | b']' | b'@' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// A hostname as the OCL and the config may list it: lower-case DNS labels.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Why a client list was refused: the whole list, never part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OclError {
    #[error("not well-formed XML: {0}")]
    Xml(String),
    /// The document is not an `OAuthclientlist` of the release 2 namespace.
    #[error("not a MedMij OAuth Client List: {0}")]
    NotAnOcl(String),
    /// An `OAuthclient` without a usable `Hostname` (its position, 1-based, and why).
    #[error("OAuthclient #{0}: {1}")]
    BadEntry(usize, String),
}

pub const OCL_NAMESPACE: &str = "xmlns://afsprakenstelsel.medmij.nl/oauthclientlist/release2/";

/// Reads a MedMij OAuth Client List: `OAuthclientlist` › `OAuthclients` › `OAuthclient` ›
/// `Hostname`, `OAuthclientOrganisatienaam`. Every entry must be valid, or the whole list is
/// refused: a half-read list would silently turn PGOs away (or worse, keep a stale one).
pub fn parse_ocl(xml: &str) -> Result<Vec<Client>, OclError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| OclError::Xml(e.to_string()))?;
    let root = doc.root_element();
    let is = |node: &roxmltree::Node, name: &str| {
        node.is_element()
            && node.tag_name().name() == name
            && node.tag_name().namespace() == Some(OCL_NAMESPACE)
    };
    if !is(&root, "OAuthclientlist") {
        return Err(OclError::NotAnOcl(format!(
            "root element is {:?} in namespace {:?}",
            root.tag_name().name(),
            root.tag_name().namespace().unwrap_or("")
        )));
    }
    let lists: Vec<_> = root.children().filter(|n| is(n, "OAuthclients")).collect();
    let [list] = lists.as_slice() else {
        return Err(OclError::NotAnOcl(
            "expected exactly one OAuthclients element".into(),
        ));
    };
    let child_text = |node: &roxmltree::Node, name: &str| -> Option<String> {
        node.children()
            .find(|n| is(n, name))
            .map(|n| n.text().unwrap_or("").trim().to_owned())
    };
    let mut clients = Vec::new();
    for (i, entry) in list.children().filter(|n| is(n, "OAuthclient")).enumerate() {
        let position = i + 1;
        let hostname = child_text(&entry, "Hostname")
            .ok_or_else(|| OclError::BadEntry(position, "no Hostname".into()))?;
        if !is_hostname(&hostname) {
            return Err(OclError::BadEntry(
                position,
                format!("Hostname {hostname:?} is not a lower-case hostname"),
            ));
        }
        let name = child_text(&entry, "OAuthclientOrganisatienaam").unwrap_or_default();
        let name = if name.is_empty() {
            hostname.clone()
        } else {
            name
        };
        clients.push(Client { hostname, name });
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGO: &str = "pgo.example.nl";

    #[test]
    fn core_authint_202_redirect_uri_accepts_https_on_client_host() {
        for ok in [
            "https://pgo.example.nl/callback",
            "https://pgo.example.nl",
            "https://pgo.example.nl?x=1",
            "https://pgo.example.nl/cb?x=%20&y=a:b",
        ] {
            assert_eq!(ClientList::check_redirect_uri(PGO, ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn core_authint_202_redirect_uri_tricks_are_refused() {
        use RedirectUriError::*;
        let cases = [
            ("http://pgo.example.nl/cb", NotHttps),
            ("HTTPS://pgo.example.nl/cb", NotHttps),
            ("//pgo.example.nl/cb", NotHttps),
            ("https://pgo.example.nl:443/cb", Port),
            ("https://pgo.example.nl:/cb", Port),
            ("https://evil.test/cb", HostDiffers),
            ("https://pgo.example.nl.evil.test/cb", HostDiffers),
            ("https://PGO.example.nl/cb", HostDiffers),
            ("https://pgo.example.nl./cb", HostDiffers),
            ("https://user@pgo.example.nl/cb", Userinfo),
            ("https://pgo.example.nl@evil.test/cb", Userinfo),
            ("https://pgo.example.nl/cb#frag", Fragment),
            ("https://pgo.example.nl\\@evil.test/cb", Backslash),
            ("https://pgo.example.nl/cb\\x", Backslash),
            ("https://pgo.example.nl/c b", BadCharacter),
            ("https://pgo.example.nl/\"><script>", BadCharacter),
            ("https://pgo.example.nl/%zz", BadCharacter),
            ("https://pgo.example.nl/\r\nSet-Cookie:x", BadCharacter),
            ("https://pgo.example.nl/é", BadCharacter),
        ];
        for (uri, want) in cases {
            assert_eq!(ClientList::check_redirect_uri(PGO, uri), Err(want), "{uri}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(is_hostname("pgo.example.nl"));
        assert!(is_hostname("a-1.b"));
        for bad in ["", "PGO.nl", "a..b", "-a.b", "a.b.", "a_b.nl", "a:1", "a b"] {
            assert!(!is_hostname(bad), "{bad}");
        }
    }

    fn ocl(body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<OAuthclientlist xmlns="{OCL_NAMESPACE}">
  <Tijdstempel>2026-11-01T12:00:00Z</Tijdstempel>
  <Volgnummer>42</Volgnummer>
  <OAuthclients>{body}</OAuthclients>
</OAuthclientlist>"#
        )
    }

    #[test]
    fn reads_an_ocl() {
        let xml = ocl("<OAuthclient><Hostname>pgo.example.nl</Hostname>\
             <OAuthclientOrganisatienaam>Voorbeeld &amp; Zn</OAuthclientOrganisatienaam></OAuthclient>\
             <OAuthclient><Hostname> app.pgo.nl </Hostname></OAuthclient>");
        let clients = parse_ocl(&xml).unwrap();
        assert_eq!(
            clients,
            vec![
                Client {
                    hostname: "pgo.example.nl".into(),
                    name: "Voorbeeld & Zn".into()
                },
                Client {
                    hostname: "app.pgo.nl".into(),
                    name: "app.pgo.nl".into()
                },
            ]
        );
    }

    #[test]
    fn refuses_a_bad_ocl() {
        assert!(matches!(parse_ocl("<x"), Err(OclError::Xml(_))));
        assert!(matches!(
            parse_ocl("<OAuthclientlist><OAuthclients/></OAuthclientlist>"),
            Err(OclError::NotAnOcl(_))
        ));
        assert_eq!(
            parse_ocl(&ocl(
                "<OAuthclient><Hostname>Evil Host</Hostname></OAuthclient>"
            )),
            Err(OclError::BadEntry(
                1,
                "Hostname \"Evil Host\" is not a lower-case hostname".into()
            ))
        );
        assert!(matches!(
            parse_ocl(&ocl("<OAuthclient/>")),
            Err(OclError::BadEntry(1, _))
        ));
    }

    #[test]
    fn first_entry_wins() {
        let list = ClientList::new([
            Client {
                hostname: "a.nl".into(),
                name: "A".into(),
            },
            Client {
                hostname: "a.nl".into(),
                name: "B".into(),
            },
        ]);
        assert_eq!(list.get("a.nl").unwrap().name, "A");
        assert_eq!(list.len(), 1);
        assert!(list.get("b.nl").is_none());
    }
}
