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
        let text = UriText::scan(redirect_uri);
        if text.backslash {
            // Browsers read `\` as `/` in https URLs: `https://pgo.nl\@evil.test` goes to evil.test.
            return Err(RedirectUriError::Backslash);
        }
        if text.bad {
            return Err(RedirectUriError::BadCharacter);
        }
        if text.fragment {
            return Err(RedirectUriError::Fragment);
        }
        let rest = redirect_uri
            .strip_prefix("https://")
            .ok_or(RedirectUriError::NotHttps)?;
        let end = rest.bytes().position(|b| matches!(b, b'/' | b'?'));
        let authority = &rest[..end.unwrap_or(rest.len())];
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
    !UriText::scan(s).bad
}

/// RFC 3986's unreserved and reserved characters (`%` apart: only as an escape), one load a
/// byte.
const URI_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        table[i] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'/'
                    | b'?'
                    | b'#'
                    | b'['
                    | b']'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        i += 1;
    }
    table
};

/// What one pass over a URI's bytes found (issue 31: one pass, not four searches, on every
/// authorization request).
struct UriText {
    /// A byte that is not URI text (a backslash is one), or a `%` that is no escape.
    bad: bool,
    backslash: bool,
    /// A `#`: URI text, but the start of a fragment.
    fragment: bool,
}

impl UriText {
    fn scan(s: &str) -> Self {
        let mut text = UriText {
            bad: false,
            backslash: false,
            fragment: false,
        };
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if super::syntax::escape(&b[i..]).is_some() => {
                    i += 3;
                    continue;
                }
                b'#' => text.fragment = true,
                b'\\' => {
                    text.backslash = true;
                    text.bad = true;
                }
                c => text.bad |= !URI_CHARS[usize::from(c)],
            }
            i += 1;
        }
        text
    }
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

/// An OCL as the stelselnode publishes it, checked strictly ([`parse_ocl_strict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ocl {
    /// `Volgnummer`: the list's sequence number; a later list has a higher one.
    pub sequence: u64,
    pub clients: Vec<Client>,
}

/// Reads an OCL fetched from the stelselnode with the structure the afsprakenstelsel's schema
/// prescribes (release 2): `OAuthclientlist` › `Tijdstempel`, `Volgnummer`, `OAuthclients` ›
/// one or more `OAuthclient` › `Hostname`, `OAuthclientOrganisatienaam`, each once, in that
/// order, nothing else in the namespace; hostnames lower-case DNS names, none twice. Stricter
/// than [`parse_ocl`] (a file the DVA put there itself): a list that decides which PGOs get
/// codes is not guessed at when it comes over the network.
pub fn parse_ocl_strict(xml: &str) -> Result<Ocl, OclError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| OclError::Xml(e.to_string()))?;
    let not_ocl = |why: &str| OclError::NotAnOcl(why.to_owned());
    let root = doc.root_element();
    if root.tag_name().name() != "OAuthclientlist"
        || root.tag_name().namespace() != Some(OCL_NAMESPACE)
    {
        return Err(not_ocl(
            "the root is not OAuthclientlist in the release 2 namespace",
        ));
    }
    let top = elements(root)?;
    if names(&top) != ["Tijdstempel", "Volgnummer", "OAuthclients"] {
        return Err(not_ocl(
            "expected Tijdstempel, Volgnummer and OAuthclients, once each, in that order",
        ));
    }
    let stamp = text(top[0]).unwrap_or_default();
    if !is_date_time(&stamp) {
        return Err(not_ocl("Tijdstempel is not a date and time"));
    }
    let sequence = text(top[1])
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| not_ocl("Volgnummer is not a number"))?;
    let entries = elements(top[2])?;
    if entries.is_empty() {
        return Err(not_ocl("no OAuthclient: an empty list is never taken"));
    }
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    let clients = entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| strict_client(i + 1, entry, &mut seen))
        .collect::<Result<Vec<Client>, OclError>>()?;
    Ok(Ocl { sequence, clients })
}

type Node<'a, 'i> = roxmltree::Node<'a, 'i>;

/// An OCL node's children: elements only (comments and white space aside), each in the OCL's
/// namespace.
fn elements<'a, 'i>(node: Node<'a, 'i>) -> Result<Vec<Node<'a, 'i>>, OclError> {
    let not_ocl = |why: &str| OclError::NotAnOcl(why.to_owned());
    let mut out = Vec::new();
    for child in node.children() {
        if child.is_element() {
            if child.tag_name().namespace() != Some(OCL_NAMESPACE) {
                return Err(not_ocl("an element outside the OCL namespace"));
            }
            out.push(child);
        } else if child.is_text() && !child.text().unwrap_or("").trim().is_empty() {
            return Err(not_ocl("text where elements belong"));
        }
    }
    Ok(out)
}

/// A leaf: text only.
fn text(node: Node<'_, '_>) -> Option<String> {
    node.children()
        .all(|c| c.is_text())
        .then(|| node.text().unwrap_or("").trim().to_owned())
}

fn names(nodes: &[Node<'_, '_>]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n.tag_name().name().to_owned())
        .collect()
}

/// The `n`th `OAuthclient` of a strict OCL: a lower-case hostname not `seen` before, and a
/// name.
fn strict_client(
    n: usize,
    entry: Node<'_, '_>,
    seen: &mut std::collections::HashSet<String>,
) -> Result<Client, OclError> {
    let bad = |why: String| OclError::BadEntry(n, why);
    let fields = elements(entry)?;
    if entry.tag_name().name() != "OAuthclient"
        || names(&fields) != ["Hostname", "OAuthclientOrganisatienaam"]
    {
        return Err(bad(
            "expected an OAuthclient of Hostname and OAuthclientOrganisatienaam".into(),
        ));
    }
    let hostname = text(fields[0]).unwrap_or_default();
    if !is_hostname(&hostname) {
        return Err(bad(format!(
            "Hostname {hostname:?} is not a lower-case hostname"
        )));
    }
    let name = text(fields[1]).unwrap_or_default();
    if name.is_empty() {
        return Err(bad("OAuthclientOrganisatienaam is empty".into()));
    }
    if !seen.insert(hostname.clone()) {
        return Err(bad(format!("Hostname {hostname} is listed twice")));
    }
    Ok(Client { hostname, name })
}

/// `xs:dateTime`: `YYYY-MM-DDThh:mm:ss`, fractions and a zone optional.
fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    b.len() >= 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19..]
            .iter()
            .all(|c| c.is_ascii_digit() || b".:+-Z".contains(c))
}

/// A new OCL that would drop more than `max_shrink` percent of the entries in use at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("it would drop {dropped} of the {in_use} entries in use (more than {max_shrink} %)")]
pub struct Shrunk {
    pub dropped: usize,
    pub in_use: usize,
    pub max_shrink: usize,
}

/// Whether `new` may replace `in_use`: it drops at most `max_shrink` percent of its hostnames.
/// A PGO leaving is ordinary; half the list leaving at once is a broken export or an attack.
pub fn check_shrink(in_use: &[Client], new: &[Client], max_shrink: usize) -> Result<(), Shrunk> {
    let kept: std::collections::HashSet<&str> = new.iter().map(|c| c.hostname.as_str()).collect();
    let dropped = in_use
        .iter()
        .filter(|c| !kept.contains(c.hostname.as_str()))
        .count();
    if dropped * 100 > max_shrink * in_use.len() {
        return Err(Shrunk {
            dropped,
            in_use: in_use.len(),
            max_shrink,
        });
    }
    Ok(())
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
    fn uri_text_is_rfc3986_unreserved_reserved_and_escapes() {
        const ALLOWED: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=";
        for b in 0..=255u8 {
            assert_eq!(
                URI_CHARS[usize::from(b)],
                ALLOWED.contains(&b),
                "byte {b:#04x}"
            );
        }
        assert!(is_uri_text("https://a.nl/%41?b=%7e#c"));
        for bad in ["%", "%4", "%zz", "a b", "\\", "é"] {
            assert!(!is_uri_text(bad), "{bad}");
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

    fn client(hostname: &str) -> Client {
        Client {
            hostname: hostname.into(),
            name: format!("{hostname} BV"),
        }
    }

    fn entry(hostname: &str) -> String {
        format!(
            "<OAuthclient><Hostname>{hostname}</Hostname><OAuthclientOrganisatienaam>{hostname} BV</OAuthclientOrganisatienaam></OAuthclient>"
        )
    }

    #[test]
    fn ocl_from_the_stelselnode_is_read_strictly() {
        let good = ocl(&format!(
            "{}{}",
            entry("pgo.example.nl"),
            entry("app.pgo.nl")
        ));
        assert_eq!(
            parse_ocl_strict(&good),
            Ok(Ocl {
                sequence: 42,
                clients: vec![client("pgo.example.nl"), client("app.pgo.nl")],
            })
        );
        let wrong_ns = good.replace("release2", "release1");
        let cases = [
            (wrong_ns, "the root"),
            (ocl(""), "empty list"),
            (
                ocl(&format!("{}{}", entry("a.nl"), entry("a.nl"))),
                "listed twice",
            ),
            (ocl(&entry("A.nl")), "lower-case"),
            (
                ocl("<OAuthclient><Hostname>a.nl</Hostname></OAuthclient>"),
                "OAuthclient of",
            ),
            (
                ocl(
                    "<OAuthclient><Hostname>a.nl</Hostname><OAuthclientOrganisatienaam> </OAuthclientOrganisatienaam></OAuthclient>",
                ),
                "empty",
            ),
            (
                ocl(
                    "<OAuthclient><OAuthclientOrganisatienaam>A</OAuthclientOrganisatienaam><Hostname>a.nl</Hostname></OAuthclient>",
                ),
                "OAuthclient of",
            ),
            (
                good.replace("<Volgnummer>42", "<Volgnummer>x42"),
                "Volgnummer",
            ),
            (
                good.replace("2026-11-01T12:00:00Z", "gisteren"),
                "Tijdstempel",
            ),
            (
                good.replace("<Tijdstempel>2026-11-01T12:00:00Z</Tijdstempel>", ""),
                "expected Tijdstempel",
            ),
            (
                good.replace(
                    "<OAuthclients>",
                    "<OAuthclients><x:Extra xmlns:x=\"urn:x\"/>",
                ),
                "outside",
            ),
            (good.replace("</OAuthclientlist>", ""), "well-formed"),
        ];
        for (xml, why) in cases {
            let e = parse_ocl_strict(&xml).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn ocl_shrink_beyond_the_limit_is_refused() {
        let four: Vec<Client> = ["a.nl", "b.nl", "c.nl", "d.nl"].map(client).to_vec();
        assert_eq!(check_shrink(&four, &four[..2], 50), Ok(()));
        assert_eq!(
            check_shrink(&four, &four[..1], 50),
            Err(Shrunk {
                dropped: 3,
                in_use: 4,
                max_shrink: 50
            })
        );
        // New entries do not make up for dropped ones.
        let replaced: Vec<Client> = ["x.nl", "y.nl", "z.nl", "a.nl"].map(client).to_vec();
        assert!(check_shrink(&four, &replaced, 50).is_err());
        assert_eq!(
            check_shrink(&four, &four[..3], 0).map_err(|e| e.dropped),
            Err(1)
        );
        assert_eq!(check_shrink(&[], &four, 0), Ok(()));
    }
}
