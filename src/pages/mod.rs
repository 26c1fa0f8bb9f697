//! Pages for the Persoon: Dutch at B1 level, English when `Accept-Language` prefers it. Every
//! value is HTML-escaped by the template; no page ever holds a code, a state or a birth date.

mod words;

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;

use askama::Template;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::vert::Exception;
use crate::vocab::PageBody;
use words::words;

/// A response body type that can also carry the proxy's own answers: what every layer that
/// answers by itself asks of the body type of the service it wraps.
pub trait WithPages: Sized {
    fn page(body: PageBody) -> Self;

    fn response(response: Response<PageBody>) -> Response<Self> {
        response.map(Self::page)
    }

    /// The same body yielding nothing: a released redirect's AS body (written for the sealed
    /// `Location`) never reaches the client, yet is still read to its end, so that its
    /// upstream connection goes back to the pool.
    fn drained(self) -> Self;
}

/// A body that can be read on while it yields nothing ([`WithPages::drained`]).
pub trait Drainable {
    fn drained(self) -> Self;
}

/// Nothing behind it to keep reading.
impl Drainable for PageBody {
    fn drained(self) -> Self {
        PageBody::default()
    }
}

impl<B: Drainable> WithPages for Either<B, PageBody> {
    fn page(body: PageBody) -> Self {
        Either::Right(body)
    }

    fn drained(self) -> Self {
        match self {
            Either::Left(body) => Either::Left(body.drained()),
            Either::Right(_) => Either::Right(PageBody::default()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Nl,
    En,
}

impl Lang {
    /// Dutch unless the `Accept-Language` header ranks English above Dutch.
    pub fn from_accept_language(header: Option<&HeaderValue>) -> Lang {
        let Some(text) = header.and_then(|h| h.to_str().ok()) else {
            return Lang::Nl;
        };
        let (mut en, mut nl) = (0.0f32, 0.0f32);
        for item in text.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if primary.eq_ignore_ascii_case("en") {
                en = en.max(q);
            } else if primary.eq_ignore_ascii_case("nl") {
                nl = nl.max(q);
            }
        }
        if en > nl { Lang::En } else { Lang::Nl }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }
}

/// What a page is about: an exception of the table, or the proxy's own trouble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Exception(Exception),
    /// 502: the upstream could not be reached.
    Unreachable,
    /// 504: the upstream did not answer in time.
    TimedOut,
    /// 405 on the authorize path.
    MethodNotAllowed,
    /// 400: a request the proxy will not pass on (a path that cannot be read one way).
    BadRequest,
    /// 414: a request target longer than `listen.max_uri_length`.
    UriTooLong,
    /// 413: a body larger than `listen.max_body_bytes`.
    TooLarge,
    /// 408: a body not read within `listen.body_read_timeout`.
    BodyTimedOut,
}

struct Link {
    href: String,
    text: String,
}

#[derive(Template)]
#[template(path = "page.html")]
struct Page<'a> {
    lang: &'a str,
    /// The document's title: the page's, and the DVA's name after it.
    doc_title: &'a str,
    title: &'a str,
    paragraphs: Vec<String>,
    link: Option<Link>,
    trace_label: &'a str,
    trace_id: String,
    style: &'a str,
    organisation: Option<&'a str>,
    logo: Option<&'a str>,
    contact: Option<Contact<'a>>,
}

/// How to reach the DVA's helpdesk, under the helpdesk code.
struct Contact<'a> {
    phone: Option<&'a str>,
    /// `tel:` and the digits (and a leading `+`) of the phone number.
    phone_href: String,
    url: Option<&'a str>,
    url_text: &'a str,
}

/// `tel:` and the digits (and a leading `+`) of a phone number. In an international number a
/// trunk prefix in brackets is dialled only from inside the country: `+31 (0)20-1234567` is
/// `tel:+31201234567`, not `+310201234567` (a wrong number).
fn tel_href(phone: &str) -> String {
    let international = phone.trim_start().starts_with('+');
    let number = match international {
        true => Cow::Owned(phone.replace("(0)", "")),
        false => Cow::Borrowed(phone),
    };
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    format!("tel:{}{digits}", if international { "+" } else { "" })
}

/// The button colour without `[pages] accent_color` (6.1:1 on white).
const ACCENT: &str = "#01689b";

/// The page's one style sheet, with the accent colour in it.
fn style(accent: &str) -> String {
    format!(
        "body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}}h1{{font-size:1.6rem;line-height:1.25}}a.button{{display:inline-block;padding:.6rem 1rem;background:{accent};color:#fff;text-decoration:none;border-radius:4px}}.brand{{display:flex;align-items:center;gap:.75rem;margin-bottom:1.5rem;font-weight:600;overflow-wrap:anywhere}}.brand img{{max-height:3rem;max-width:12rem}}.trace,.contact{{color:#555;font-size:.9rem}}.contact a{{color:#1a1a1a}}code{{overflow-wrap:anywhere}}@media print{{body{{margin:0;max-width:none;color:#000}}a.button{{background:none;color:#000;padding:0;text-decoration:underline}}}}"
    )
}

/// The pages in the DVA's own name (`[pages]`): made once at start and on SIGHUP, with the
/// style sheet and the `Content-Security-Policy` that allows exactly it. A logo is embedded as
/// a `data:` URI: the page loads nothing from anywhere, the proxy takes no path of the AS's for
/// it, and the policy allows no source but the page's own style and its embedded image.
#[derive(Debug, Clone)]
pub struct Branding {
    organisation: Option<String>,
    contact_phone: Option<String>,
    contact_url: Option<String>,
    logo: Option<String>,
    style: String,
    csp: HeaderValue,
}

/// A logo larger than this is refused: it is embedded in every page.
pub const LOGO_MAX_BYTES: usize = 64 * 1024;

impl Default for Branding {
    fn default() -> Self {
        Branding::new(&crate::config::Pages::default(), None)
    }
}

impl Branding {
    /// From `[pages]` and the logo as [`logo_data_uri`] made it.
    pub fn new(pages: &crate::config::Pages, logo: Option<String>) -> Self {
        let style = style(pages.accent_color.as_deref().unwrap_or(ACCENT));
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&style));
        let images = if logo.is_some() {
            " img-src data:;"
        } else {
            ""
        };
        let csp = HeaderValue::from_str(&format!(
            "default-src 'none'; style-src 'sha256-{hash}';{images} frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ))
        .expect("ASCII");
        Branding {
            organisation: pages.organisation.clone(),
            contact_phone: pages.contact_phone.clone(),
            contact_url: pages.contact_url.clone(),
            logo,
            style,
            csp,
        }
    }
}

/// Why a logo file is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogoError {
    #[error("larger than 64 KiB")]
    TooLarge,
    #[error("neither PNG nor SVG")]
    NeitherPngNorSvg,
    #[error("neither PNG nor SVG (not XML)")]
    NotXml,
    #[error("neither PNG nor SVG (the XML is no <svg>)")]
    NotSvg,
}

/// A logo file's bytes as a `data:` URI: a PNG (by its signature) or an SVG (XML whose root is
/// `svg`), at most [`LOGO_MAX_BYTES`]. An SVG in an `<img>` runs no script.
pub fn logo_data_uri(bytes: &[u8]) -> Result<String, LogoError> {
    if bytes.len() > LOGO_MAX_BYTES {
        return Err(LogoError::TooLarge);
    }
    let mime = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else {
        let text = std::str::from_utf8(bytes).map_err(|_| LogoError::NeitherPngNorSvg)?;
        let doc = roxmltree::Document::parse(text).map_err(|_| LogoError::NotXml)?;
        if doc.root_element().tag_name().name() != "svg" {
            return Err(LogoError::NotSvg);
        }
        "image/svg+xml"
    };
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(format!("data:{mime};base64,{data}"))
}

tokio::task_local! {
    /// The branding of the listener a connection belongs to, set around each connection's task
    /// by the server (`server::Connection`): every layer that answers with a page renders it in
    /// the DVA's name without carrying the configuration, and a reload (SIGHUP) swaps it.
    pub static BRANDING: Arc<ArcSwap<Branding>>;
}

/// The branding in force for this task; the plain pages outside a connection (unit tests).
fn branding() -> Arc<Branding> {
    static PLAIN: LazyLock<Arc<Branding>> = LazyLock::new(|| Arc::new(Branding::default()));
    BRANDING
        .try_with(|b| b.load_full())
        .unwrap_or_else(|_| PLAIN.clone())
}

/// Everything a page shows beyond its words.
#[derive(Debug, Clone, Copy)]
pub struct Details<'a> {
    pub lang: Lang,
    /// The PGO's name (from the client list).
    pub client_name: Option<&'a str>,
    /// A validated URI back to the PGO (already carrying `error` and `state`).
    pub link_back: Option<&'a str>,
    /// The flow's `X-Correlation-ID`, shown so the helpdesk can find the log line.
    pub trace_id: Uuid,
    pub ttl_minutes: u64,
}

/// Renders a page with its security headers, in the branding in force ([`BRANDING`]).
pub fn render(topic: Topic, status: StatusCode, details: &Details<'_>) -> Response<PageBody> {
    let brand = branding();
    let words = words(topic, details.lang);
    let fallback = match details.lang {
        Lang::Nl => "uw app",
        Lang::En => "your app",
    };
    let organisation = brand.organisation.as_deref();
    let fill = |text: &str| {
        let text = text
            .replace("{pgo}", details.client_name.unwrap_or(fallback))
            .replace("{minutes}", &details.ttl_minutes.to_string());
        // "Contact your healthcare provider": the DVA's own name, where it has given one.
        match organisation {
            Some(name) => text
                .replace("uw zorgaanbieder", name)
                .replace("your healthcare provider", name),
            None => text,
        }
    };
    let doc_title = match organisation {
        Some(name) => format!("{} · {name}", words.title),
        None => words.title.to_owned(),
    };
    let contact = (brand.contact_phone.is_some() || brand.contact_url.is_some()).then(|| Contact {
        phone: brand.contact_phone.as_deref(),
        phone_href: brand
            .contact_phone
            .as_deref()
            .map_or_else(String::new, tel_href),
        url: brand.contact_url.as_deref(),
        url_text: match details.lang {
            Lang::Nl => "contact en hulp",
            Lang::En => "contact and help",
        },
    });
    let page = Page {
        lang: details.lang.code(),
        doc_title: &doc_title,
        title: words.title,
        paragraphs: words.paragraphs.iter().map(|p| fill(p)).collect(),
        link: details
            .link_back
            .filter(|_| !words.link.is_empty())
            .map(|href| Link {
                href: href.to_owned(),
                text: fill(words.link),
            }),
        trace_label: match details.lang {
            Lang::Nl => "Code voor de helpdesk",
            Lang::En => "Code for the helpdesk",
        },
        trace_id: details.trace_id.to_string(),
        style: &brand.style,
        organisation,
        logo: brand.logo.as_deref(),
        contact,
    };
    let html = page
        .render()
        .unwrap_or_else(|_| String::from("<!DOCTYPE html><title>Error</title>"));
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(details.lang.code()),
    );
    protect(h);
    h.insert(header::CONTENT_SECURITY_POLICY, brand.csp.clone());
    response
}

/// Headers for every answer the proxy makes itself: never cached, never framed, never
/// referred from (a Referer would carry the URL).
fn protect(h: &mut http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// A redirect the proxy makes itself (1b, Vert 3), to a `redirect_uri` it has validated.
pub fn redirect(location: &str) -> Response<PageBody> {
    let mut response = Response::new(Full::new(Bytes::new()));
    // The location is built from validated URI characters only.
    match HeaderValue::from_str(location) {
        Ok(v) => {
            *response.status_mut() = StatusCode::FOUND;
            response.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    protect(response.headers_mut());
    response
}

/// A page for the proxy's own trouble or a refused request (no flow, no client); `trace_id` is
/// in the log line.
pub fn error_page(
    topic: Topic,
    status: StatusCode,
    lang: Lang,
    trace_id: Uuid,
) -> Response<PageBody> {
    render(
        topic,
        status,
        &Details {
            lang,
            client_name: None,
            link_back: None,
            trace_id,
            ttl_minutes: 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Issue 26, noted: the trunk `(0)` of an international number is not dialled.
    #[test]
    fn tel_links_drop_the_trunk_zero_of_an_international_number() {
        assert_eq!(tel_href("+31 (0)20-1234567"), "tel:+31201234567");
        assert_eq!(tel_href("+31 20 123 4567"), "tel:+31201234567");
        assert_eq!(tel_href("020-1234567"), "tel:0201234567");
        assert_eq!(tel_href("(020) 123 4567"), "tel:0201234567");
    }

    fn body(r: Response<PageBody>) -> String {
        let bytes = block_on(r.into_body().collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn details(lang: Lang) -> Details<'static> {
        Details {
            lang,
            client_name: Some("Voorbeeld <PGO> & Co"),
            link_back: Some("https://pgo.example.nl/cb?error=access_denied&state=a\"b"),
            trace_id: Uuid::from_u128(0xabc),
            ttl_minutes: 30,
        }
    }

    #[test]
    fn language_from_accept_language() {
        let lang = |s: &str| Lang::from_accept_language(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(Lang::from_accept_language(None), Lang::Nl);
        assert_eq!(lang("en-GB,en;q=0.9"), Lang::En);
        assert_eq!(lang("nl-NL,nl;q=0.9,en;q=0.8"), Lang::Nl);
        assert_eq!(lang("en;q=0.5,nl;q=0.6"), Lang::Nl);
        assert_eq!(lang("de-DE,en;q=0.3"), Lang::En);
        assert_eq!(lang("fr"), Lang::Nl);
        assert_eq!(lang("EN"), Lang::En);
        assert_eq!(lang("en;q=abc"), Lang::En);
    }

    #[test]
    fn vert4_page_escapes_and_links_back() {
        let r = render(
            Topic::Exception(Exception::Vert4),
            StatusCode::FORBIDDEN,
            &details(Lang::Nl),
        );
        assert_eq!(r.status(), 403);
        let h = r.headers();
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let html = body(r);
        assert!(html.contains("De geboortedatum klopt niet"));
        assert!(
            html.contains("Voorbeeld &#60;PGO&#62; &#38; Co")
                || html.contains("Voorbeeld &lt;PGO&gt; &amp; Co"),
            "{html}"
        );
        assert!(!html.contains("<PGO>"));
        assert!(
            html.contains(
                "href=\"https://pgo.example.nl/cb?error=access_denied&#38;state=a&#34;b\""
            ) || html.contains(
                "href=\"https://pgo.example.nl/cb?error=access_denied&amp;state=a&quot;b\""
            ),
            "{html}"
        );
        assert!(html.contains("00000000-0000-0000-0000-000000000abc"));
    }

    #[test]
    fn vert1_page_has_no_link_even_if_offered() {
        let html = body(render(
            Topic::Exception(Exception::Vert1),
            StatusCode::FORBIDDEN,
            &details(Lang::En),
        ));
        assert!(html.contains("Signing in on behalf of someone else did not work"));
        assert!(!html.contains("href="));
        assert!(html.contains("<html lang=\"en\">"));
    }

    /// The style hash in the policy is the hash of the style in the page, branded or not.
    fn assert_style_matches_the_policy(response: Response<PageBody>) -> String {
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        let html = body(response);
        let style = html
            .split("<style>")
            .nth(1)
            .unwrap()
            .split("</style>")
            .next()
            .unwrap();
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
        assert!(csp.contains(&hash), "{csp}");
        html
    }

    #[test]
    fn style_hash_matches_the_policy() {
        let response = render(
            Topic::Unreachable,
            StatusCode::BAD_GATEWAY,
            &details(Lang::Nl),
        );
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].clone();
        assert!(!csp.to_str().unwrap().contains("img-src"));
        assert_style_matches_the_policy(response);
    }

    fn branded(logo: Option<String>) -> Arc<ArcSwap<Branding>> {
        let pages = crate::config::Pages {
            organisation: Some("Ziekenhuis <Oost>".into()),
            contact_phone: Some("+31 (0)20-123 45 67".into()),
            contact_url: Some("https://oost.example.nl/help".into()),
            logo_file: None,
            accent_color: Some("#7a1f5c".into()),
        };
        Arc::new(ArcSwap::from_pointee(Branding::new(&pages, logo)))
    }

    #[test]
    fn pages_in_the_dvas_name_show_it_in_title_text_and_contact() {
        let logo =
            logo_data_uri(b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>")
                .unwrap();
        let response = block_on(BRANDING.scope(branded(Some(logo.clone())), async {
            render(
                Topic::Exception(Exception::Vert1),
                StatusCode::FORBIDDEN,
                &details(Lang::Nl),
            )
        }));
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains(" img-src data:;"), "{csp}");
        let html = assert_style_matches_the_policy(response);
        // Escaped everywhere: the name is the operator's, but still text.
        assert!(html.contains("<title>Inloggen namens een ander is niet gelukt · Ziekenhuis &#60;Oost&#62;</title>"), "{html}");
        assert!(
            html.contains("Neem dan contact op met Ziekenhuis &#60;Oost&#62;"),
            "{html}"
        );
        assert!(!html.contains("uw zorgaanbieder"));
        assert!(html.contains(&format!("<img src=\"{logo}\"")));
        // The trunk `(0)` is not dialled from abroad (issue 26).
        assert!(html.contains("href=\"tel:+31201234567\""), "{html}");
        assert!(html.contains("href=\"https://oost.example.nl/help\""));
        assert!(html.contains("background:#7a1f5c"));
        // English too.
        let html = body(block_on(BRANDING.scope(branded(None), async {
            render(
                Topic::Exception(Exception::Vert4),
                StatusCode::FORBIDDEN,
                &details(Lang::En),
            )
        })));
        assert!(
            html.contains("Contact Ziekenhuis &#60;Oost&#62; and mention"),
            "{html}"
        );
        assert!(html.contains("contact and help"));
        assert!(!html.contains("<img"));
    }

    #[test]
    fn a_logo_is_a_png_or_an_svg_and_small() {
        let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[0; 16]].concat();
        assert!(
            logo_data_uri(&png)
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
        let svg = b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>";
        assert!(
            logo_data_uri(svg)
                .unwrap()
                .starts_with("data:image/svg+xml;base64,")
        );
        assert!(logo_data_uri(b"GIF89a").is_err());
        assert!(logo_data_uri(b"<html/>").is_err());
        assert!(logo_data_uri(&[b'a'; LOGO_MAX_BYTES + 1]).is_err());
    }

    #[test]
    fn every_topic_has_words_in_both_languages() {
        let mut topics: Vec<Topic> = Exception::ALL
            .iter()
            .map(|e| Topic::Exception(*e))
            .collect();
        topics.extend([
            Topic::Unreachable,
            Topic::TimedOut,
            Topic::MethodNotAllowed,
            Topic::BadRequest,
            Topic::UriTooLong,
            Topic::TooLarge,
            Topic::BodyTimedOut,
        ]);
        for t in topics {
            for lang in [Lang::Nl, Lang::En] {
                let w = words(t, lang);
                assert!(!w.title.is_empty() && !w.paragraphs.is_empty());
            }
            assert_ne!(words(t, Lang::Nl).title, words(t, Lang::En).title);
        }
    }
}
