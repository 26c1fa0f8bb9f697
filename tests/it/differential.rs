//! Issue 27: one reading, proven request by request against the real parsers of the frameworks
//! ASs run on. Generated requests (seeded, shrinking: proptest) go through the proxy in front
//! of a capturing upstream; every request the proxy forwards is replayed, byte for byte, to the
//! readers of `tests/differential/` (PHP, Tomcat, Django, Werkzeug, Starlette, Express, Koa,
//! Rack, Go: each an echo app on its framework's own parsing and routing), and must be read by
//! each as the proxy judged it:
//!
//! - forwarded as an authorization request (a new one, a flow coming back, a consent form
//!   posting back): every guarded parameter reads as the flow the proxy sealed says (the
//!   forwarded `state` is opened with the test's key), and no reader finds `request`,
//!   `request_uri` or a `response_mode` other than `query`;
//! - forwarded as a token request: with a code, every reader reads exactly
//!   `grant_type=authorization_code` and that code; with another grant, no reader reads a code
//!   or an `authorization_code` grant;
//! - a reader whose router would dispatch the target to the authorize or token handler sees it
//!   only where the proxy routed it there.
//!
//! A request the proxy refuses, or one a framework refuses itself, needs no agreement.
//! `DIFFERENTIAL_COUNT` and `DIFFERENTIAL_SEED` set the run (`bench/differential.sh`); the
//! default is what `./test.sh` runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use medmij_vert_proxy::state::seal::KeyRing;
use medmij_vert_proxy::vert::authorize::{Param, Parsed};
use medmij_vert_proxy::vert::flow_return::Opened;
use medmij_vert_proxy::vert::token::{self, TokenRequest};
use medmij_vert_proxy::vert::{Birthdate, Flow, FreshLogin, Kind, Requested};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::Value;

use crate::support::{Harness, PGO, REDIRECT};

const AUTHORIZE: &str = "/oauth2/authorize";
const TOKEN: &str = "/oauth2/token";
const READERS: [&str; 9] = [
    "php",
    "tomcat",
    "django",
    "werkzeug",
    "starlette",
    "express",
    "koa",
    "rack",
    "go",
];
/// What `./test.sh` runs: about 6,000 forwarded requests reach each reader.
const DEFAULT_COUNT: u32 = 28_000;
const DEFAULT_SEED: u64 = 27;
/// Cases a worker runs on one proxy before it starts a fresh one (the capture's memory).
const WORKERS: u32 = 4;

// ---------------------------------------------------------------------------------------
// The readers

struct Reader {
    name: &'static str,
    addr: SocketAddr,
    child: Child,
}

impl Reader {
    fn start(name: &'static str) -> Reader {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/differential/start.sh");
        let mut child = Command::new(script)
            .arg(name)
            .env("PHP_CLI_SERVER_WORKERS", "4")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e} (run tests/differential/install.sh)"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("{name} ended before it listened (install.sh run?)"))
                .unwrap();
            if let Some(port) = line.strip_prefix("LISTENING ") {
                break port.trim().parse::<u16>().unwrap();
            }
        };
        // Whatever else it prints is drained, so that a full pipe never stalls it.
        std::thread::spawn(move || lines.for_each(drop));
        Reader {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // TERM, so that a launcher passes it on to the server it started.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// What a reader made of a request: its JSON, or a refusal of its framework's own (a status
/// other than 200, or the connection closed without an answer).
enum Heard {
    Read(Value),
    Refused,
}

/// Sends `request` (a forwarded request, its `Connection` made `close`) and reads the answer,
/// up to its end (`Content-Length`, or the last chunk): not every server closes when asked.
fn ask(addr: SocketAddr, request: &[u8]) -> Heard {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return Heard::Refused;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let complete = |out: &[u8]| {
        let end = find(out, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
        let body = &out[end + 4..];
        let length = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            (name.trim() == "content-length").then(|| value.trim().parse::<usize>().ok())?
        });
        match length {
            Some(length) => (body.len() >= length).then_some(end),
            None if head.contains("transfer-encoding: chunked") => {
                body.ends_with(b"0\r\n\r\n").then_some(end)
            }
            None => None,
        }
    };
    let end = loop {
        if let Some(end) = complete(&out) {
            break Some(end);
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break find(&out, b"\r\n\r\n"),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    };
    let Some(end) = end else {
        return Heard::Refused;
    };
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    if head.split_whitespace().nth(1) != Some("200") {
        return Heard::Refused;
    }
    let mut body = out[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    match serde_json::from_slice(&body) {
        Ok(value) => Heard::Read(value),
        Err(_) => Heard::Refused,
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line) = find(body, b"\r\n") {
        let size = std::str::from_utf8(&body[..line])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || body.len() < line + 2 + size {
            break;
        }
        out.extend_from_slice(&body[line + 2..line + 2 + size]);
        body = &body[(line + 4 + size).min(body.len())..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// The capturing upstream

/// A raw HTTP/1.1 server that hands every request it reads, byte for byte, to the test before
/// it answers it: by the time the proxy answers the client, the forwarded request is known.
struct Capture {
    addr: SocketAddr,
    forwarded: mpsc::Receiver<Vec<u8>>,
}

fn capture() -> Capture {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, forwarded) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, tx));
        }
    });
    Capture { addr, forwarded }
}

fn serve(mut stream: TcpStream, tx: mpsc::Sender<Vec<u8>>) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let end = loop {
            if let Some(end) = find(&pending, b"\r\n\r\n") {
                break end + 4;
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then_some(value)
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while pending.len() < end + length {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        let request: Vec<u8> = pending.drain(..end + length).collect();
        let mut answer = answer_for(&head);
        if head.starts_with("HEAD ") {
            // The head alone: the proxy reads no body after a HEAD.
            answer.truncate(answer.find("\r\n\r\n").map_or(answer.len(), |i| i + 4));
        }
        if tx.send(request).is_err() || stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// The AS's answers: the setup flow gets its code; a token request is refused (the code stays
/// presentable, so every generated token request with it can go through); the rest `200`.
fn answer_for(head: &str) -> String {
    let target = head.split_whitespace().nth(1).unwrap_or("");
    if head
        .to_ascii_lowercase()
        .contains("\r\nx-diff-setup: 1\r\n")
    {
        let state = target
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("state="))
            .unwrap_or("");
        let location = format!("https://pgo.example.nl/callback?code=C0DE&state={state}");
        return format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\nx-vert-representation: none\r\ncontent-length: 0\r\n\r\n"
        );
    }
    if target.starts_with(TOKEN) {
        let body = r#"{"error":"invalid_grant"}"#;
        return format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
    }
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_owned()
}

// ---------------------------------------------------------------------------------------
// The generator

/// Spellings of a name: the families the issue lists (case, PHP's mangling, arrays, Unicode
/// that folds, NUL and control bytes, BOM and zero-width, white space, escapes).
#[derive(Debug, Clone, Copy)]
enum Trick {
    Plain,
    Upper,
    Title,
    Dot,
    Space,
    Plus,
    OpenBracket,
    Brackets,
    Index,
    Nested,
    EscapedFirst,
    NulInside,
    NulEnd,
    LineFeed,
    Control,
    Bom,
    ZeroWidth,
    Fullwidth,
    DotlessI,
    LongS,
    Kelvin,
    LeadingSpace,
    TrailingSpace,
}

const TRICKS: [Trick; 23] = [
    Trick::Plain,
    Trick::Upper,
    Trick::Title,
    Trick::Dot,
    Trick::Space,
    Trick::Plus,
    Trick::OpenBracket,
    Trick::Brackets,
    Trick::Index,
    Trick::Nested,
    Trick::EscapedFirst,
    Trick::NulInside,
    Trick::NulEnd,
    Trick::LineFeed,
    Trick::Control,
    Trick::Bom,
    Trick::ZeroWidth,
    Trick::Fullwidth,
    Trick::DotlessI,
    Trick::LongS,
    Trick::Kelvin,
    Trick::LeadingSpace,
    Trick::TrailingSpace,
];

fn escape(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// The wire text of `name` spelled with `trick`.
fn spell(name: &str, trick: Trick) -> String {
    let first_sep = name.find(['_', '-']);
    let replace_sep = |with: &str| match first_sep {
        Some(i) => format!("{}{with}{}", &name[..i], &name[i + 1..]),
        None => format!("{name}{with}x"),
    };
    let replace_char = |from: char, to: char| match name.find(from) {
        Some(i) => format!(
            "{}{}{}",
            &name[..i],
            escape(&to.to_string()),
            &name[i + from.len_utf8()..]
        ),
        None => name.to_owned(),
    };
    match trick {
        Trick::Plain => name.to_owned(),
        Trick::Upper => name.to_ascii_uppercase(),
        Trick::Title => {
            let mut c = name.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        }
        Trick::Dot => replace_sep("."),
        Trick::Space => replace_sep("%20"),
        Trick::Plus => replace_sep("+"),
        Trick::OpenBracket => replace_sep("%5B"),
        Trick::Brackets => format!("{name}%5B%5D"),
        Trick::Index => format!("{name}%5B0%5D"),
        Trick::Nested => format!("{name}%5Ba%5D"),
        Trick::EscapedFirst => format!("{}{}", escape(&name[..1]), &name[1..]),
        Trick::NulInside => format!("{name}%00x"),
        Trick::NulEnd => format!("{name}%00"),
        Trick::LineFeed => format!("{name}%0Ax"),
        Trick::Control => format!("%01{name}"),
        Trick::Bom => format!("%EF%BB%BF{name}"),
        Trick::ZeroWidth => format!("{}%E2%80%8B{}", &name[..2], &name[2..]),
        Trick::Fullwidth => {
            let first = name.chars().next().unwrap();
            let wide = char::from_u32(first as u32 - 0x20 + 0xFF00).unwrap();
            format!("{}{}", escape(&wide.to_string()), &name[1..])
        }
        Trick::DotlessI => replace_char('i', '\u{131}'),
        Trick::LongS => replace_char('s', '\u{17f}'),
        Trick::Kelvin => replace_char('k', '\u{212a}'),
        Trick::LeadingSpace => format!("+{name}"),
        Trick::TrailingSpace => format!("{name}%20"),
    }
}

const AUTH_NAMES: [&str; 11] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "MedMij_geboortedatum",
    "response_mode",
    "request",
    "request_uri",
    "MedMij-Request-ID",
    "X-Correlation-ID",
];
const TOKEN_NAMES: [&str; 5] = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
];
/// Names no framework binds to a judged one, some of them close to one.
const OTHER_NAMES: [&str; 12] = [
    "x",
    "amp",
    "nonce",
    "prompt",
    "code_challenge",
    "codes",
    "state_x",
    "redirect_uri_x",
    "redirect-uri",
    "xstate",
    "a.b",
    "",
];
const VALUES: [&str; 27] = [
    "{SEALED}",
    "https%3A%2F%2Fevil.example%2Fcb",
    "https%3A%2F%2Fpgo.example.nl%2Fcallback",
    "https://pgo.example.nl/callback",
    "evil.example",
    "pgo.example.nl",
    "attacker",
    "code",
    "token",
    "form_post",
    "query",
    "onbehalfof",
    "48%20onbehalfof",
    "19700901",
    "20000101",
    "",
    "C0DE",
    "authorization_code",
    "refresh_token",
    "1;state=attacker",
    "1;redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
    "x%00y",
    "%FF",
    "%C0%AF",
    "%26state%3Dattacker",
    "a+b",
    "urn:x",
];
const SEPARATORS: [&str; 5] = ["&", "&", "&", ";", "&amp;"];

/// One pair: its name and value as sent (`None`: a bare name), and what goes before it.
#[derive(Debug, Clone)]
struct Pair {
    name: String,
    value: Option<String>,
    sep: &'static str,
}

fn pair(name: &str, value: &str) -> Pair {
    Pair {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        sep: "&",
    }
}

fn extra(names: &'static [&'static str]) -> impl Strategy<Value = Pair> {
    let judged = (
        prop::sample::select(names),
        prop::sample::select(&TRICKS[..]),
    )
        .prop_map(|(name, trick)| spell(name, trick));
    let other = prop::sample::select(&OTHER_NAMES[..]).prop_map(str::to_owned);
    (
        prop_oneof![judged, other],
        prop::option::weighted(
            0.95,
            prop_oneof![
                prop::sample::select(&VALUES[..]).prop_map(str::to_owned),
                Just("x".repeat(3000)),
            ],
        ),
        prop::sample::select(&SEPARATORS[..]),
    )
        .prop_map(|(name, value, sep)| Pair { name, value, sep })
}

/// The parameters of an authorization request, `state` a placeholder for a sealed one when
/// `sealed`; some left out, the rest in any order with up to three extras among them.
fn authorize_pairs(sealed: bool) -> impl Strategy<Value = Vec<Pair>> {
    let scope = prop::sample::select(
        &[
            ("48", None),
            ("48%20onbehalfof", Some("19700901")),
            ("48+onbehalfof", Some("19700901")),
            ("onbehalfofchild", Some("20200101")),
            ("openid%20onbehalfof", Some("19700901")),
        ][..],
    );
    // A flow coming back carries few of them; a new request nearly all.
    let drop_weight = if sealed { 0.4 } else { 0.05 };
    (
        scope,
        prop::collection::vec(prop::bool::weighted(drop_weight), 6),
        prop::collection::vec(extra(&AUTH_NAMES), 0..4),
    )
        .prop_map(move |((scope, birthdate), dropped, extras)| {
            let mut pairs = vec![
                pair("response_type", "code"),
                pair("client_id", PGO),
                pair("redirect_uri", "https%3A%2F%2Fpgo.example.nl%2Fcallback"),
                pair("state", if sealed { "{SEALED}" } else { "s1" }),
                pair("scope", scope),
            ];
            pairs.extend(birthdate.map(|b| pair("MedMij_geboortedatum", b)));
            let mut kept: Vec<Pair> = pairs
                .into_iter()
                .zip(dropped)
                .filter(|(p, dropped)| !dropped || (sealed && p.name == "state"))
                .map(|(p, _)| p)
                .collect();
            kept.extend(extras);
            kept
        })
        .prop_shuffle()
}

fn token_pairs() -> impl Strategy<Value = Vec<Pair>> {
    (
        prop::sample::select(&["authorization_code", "refresh_token", "Authorization_Code"][..]),
        prop::collection::vec(prop::bool::weighted(0.05), 5),
        prop::collection::vec(extra(&TOKEN_NAMES), 0..4),
    )
        .prop_map(|(grant, dropped, extras)| {
            let mut pairs = vec![
                pair("grant_type", grant),
                pair("code", "C0DE"),
                pair("redirect_uri", "https%3A%2F%2Fpgo.example.nl%2Fcallback"),
                pair("client_id", PGO),
                pair("code_verifier", "v"),
            ];
            if grant == "refresh_token" {
                pairs[1] = pair("refresh_token", "r");
            }
            let mut kept: Vec<Pair> = pairs
                .into_iter()
                .zip(dropped)
                .filter(|(_, dropped)| !dropped)
                .map(|(p, _)| p)
                .collect();
            kept.extend(extras);
            kept
        })
        .prop_shuffle()
}

fn join(pairs: &[Pair]) -> String {
    let mut out = String::new();
    for (i, p) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(p.sep);
        }
        out.push_str(&p.name);
        if let Some(value) = &p.value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// Spellings of the authorize path (and, with `oauth2/token`, of the token path), from the
/// families: case, `//`, `%2F`, escapes, dot segments, `;params`, trailing `/` and `.`,
/// suffixes, a path below it, raw bytes, absolute form.
const PATHS: [&str; 33] = [
    "/oauth2/{e}",
    "/oauth2/{e}",
    "/oauth2/{e}",
    "/OAuth2/{E}",
    "/oauth2//{e}",
    "//oauth2/{e}",
    "/oauth2%2F{e}",
    "/oauth2/%2561{e1}",
    "/oauth2/./{e}",
    "/x/../oauth2/{e}",
    "/oauth2/{e}/",
    "/oauth2/{e}//",
    "/oauth2/{e};jsessionid=1",
    "/oauth2;v=1/{e}",
    "/oauth2/x/..;/{e}",
    "/oauth2/{e}.",
    "/oauth2/{e}.json",
    "/oauth2/{e}%20",
    "/oauth2/{e}%2F",
    "/oauth2/{e}/x",
    "/oauth2/{e}/.",
    "/oauth2/{e}%00",
    "/oauth2\\{e}",
    "/%2e%2e/oauth2/{e}",
    "/oauth2/{e}%3B",
    "/oauth2/{e}x",
    "/oauth2x/{e}",
    "/oauth2",
    "/",
    "/login",
    "http://as.example.nl/oauth2/{e}",
    "/oauth2/%C4%B1{e}",
    "/oauth2/\u{131}{e}",
];

fn path(endpoint: &'static str) -> impl Strategy<Value = String> {
    let spelled = prop::sample::select(&PATHS[..]);
    prop_oneof![3 => Just(PATHS[0]), 2 => spelled].prop_map(move |p| {
        p.replace("{e1}", &endpoint[1..])
            .replace("{e}", endpoint)
            .replace("{E}", &endpoint.to_ascii_uppercase())
    })
}

const FORM_TYPES: [&str; 9] = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded; charset=iso-8859-1",
    "Application/X-WWW-Form-Urlencoded",
    "multipart/form-data; boundary=XyZ",
    "application/json",
    "",
];

/// A request as the client sends it.
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    query: String,
    content_type: &'static str,
    body: Option<String>,
    chunked: bool,
    gzip: bool,
}

/// A body in the form the content type names (a multipart or JSON body carries the pairs
/// too: frameworks that read those would find them).
fn body_for(content_type: &str, pairs: &[Pair]) -> String {
    if content_type.starts_with("multipart/") {
        let mut out = String::new();
        for p in pairs {
            out.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{}\r\n",
                p.name,
                p.value.as_deref().unwrap_or("")
            ));
        }
        return out + "--XyZ--\r\n";
    }
    if content_type == "application/json" {
        let fields: Vec<String> = pairs
            .iter()
            .map(|p| format!("\"{}\":\"{}\"", p.name, p.value.as_deref().unwrap_or("")))
            .collect();
        return format!("{{{}}}", fields.join(","));
    }
    join(pairs)
}

/// A `GET` on the authorize path: a new authorization request, or (`sealed`) one that comes
/// back into a flow.
fn get(methods: &'static [&'static str], sealed: bool) -> impl Strategy<Value = Case> {
    (
        prop::sample::select(methods),
        path("authorize"),
        authorize_pairs(sealed),
    )
        .prop_map(|(method, path, pairs)| Case {
            method,
            path,
            query: join(&pairs),
            content_type: "",
            body: None,
            chunked: false,
            gzip: false,
        })
}

fn case() -> impl Strategy<Value = Case> {
    let new = get(
        &[
            "GET", "GET", "GET", "GET", "GET", "GET", "HEAD", "get", "OPTIONS", "DELETE",
        ],
        false,
    );
    let resume = get(&["GET"], true);
    let consent = (
        path("authorize"),
        authorize_pairs(true),
        prop::sample::select(&FORM_TYPES[..]),
        any::<bool>(),
    )
        .prop_map(|(path, pairs, content_type, chunked)| Case {
            method: "POST",
            path,
            query: String::new(),
            content_type,
            body: Some(body_for(content_type, &pairs)),
            chunked,
            gzip: false,
        });
    let token = (
        prop::sample::select(&["POST", "POST", "POST", "POST", "PUT", "post", "OPTIONS"][..]),
        path("token"),
        token_pairs(),
        prop::collection::vec(extra(&TOKEN_NAMES), 0..2),
        prop::sample::select(&FORM_TYPES[..]),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(method, path, pairs, query, content_type, chunked, gzip)| Case {
                method,
                path,
                query: join(&query),
                content_type,
                body: Some(body_for(content_type, &pairs)),
                chunked,
                gzip,
            },
        );
    prop_oneof![5 => new, 2 => resume, 1 => consent, 3 => token]
}

impl Case {
    fn render(&self, sealed: &str) -> Vec<u8> {
        let mut target = self.path.clone();
        if !self.query.is_empty() {
            target.push('?');
            target.push_str(&self.query.replace("{SEALED}", sealed));
        }
        let mut head = format!(
            "{} {target} HTTP/1.1\r\nHost: as.example.nl\r\nConnection: close\r\n",
            self.method
        );
        if !self.content_type.is_empty() {
            head.push_str(&format!("Content-Type: {}\r\n", self.content_type));
        }
        if self.gzip {
            head.push_str("Content-Encoding: gzip\r\n");
        }
        let body = self
            .body
            .as_deref()
            .map(|b| b.replace("{SEALED}", sealed))
            .unwrap_or_default();
        let mut out = head.into_bytes();
        if self.body.is_none() {
            out.extend_from_slice(b"\r\n");
        } else if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            out.extend_from_slice(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes());
        } else {
            out.extend_from_slice(
                format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
            );
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The property

/// The proxy in front of a capturing AS, with one released code (`C0DE`) the token guard lets
/// through, and a sealed state of the standard flow for requests that come back into it.
struct Proxy {
    harness: Harness,
    capture: Capture,
    sealed: String,
}

impl Proxy {
    fn start() -> Proxy {
        let capture = capture();
        let harness = Harness::start_with_upstream(
            &format!("http://{}", capture.addr),
            "[token_guard]\npath = \"/oauth2/token\"\n[store]\nsource_share_percent = 100\n",
        );
        let setup = format!(
            "GET {AUTHORIZE}?response_type=code&client_id={PGO}&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=setup HTTP/1.1\r\nHost: as.example.nl\r\nX-Diff-Setup: 1\r\nConnection: close\r\n\r\n"
        );
        let answer = crate::support::raw(
            harness.proxy_addr(),
            setup.as_bytes(),
            Duration::from_secs(30),
        );
        assert!(answer.contains("code=C0DE"), "the setup flow: {answer}");
        while capture.forwarded.try_recv().is_ok() {}
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sealed = harness.keys.seal(&Flow {
            state: "s1".into(),
            redirect_uri: REDIRECT.into(),
            requested: Some(Requested {
                kind: Kind::OnBehalfOf,
                birthdate: Birthdate::parse_format("19700901").unwrap(),
            }),
            // Valid for the whole run: issued an hour ahead would be refused, so now.
            issued_at: now,
            correlation_id: uuid::Uuid::nil(),
            fresh_login: FreshLogin::OFF,
        });
        Proxy {
            harness,
            capture,
            sealed,
        }
    }

    /// What the proxy forwarded of `case`, if anything.
    fn forward(&self, case: &Case) -> Option<Vec<u8>> {
        let _ = crate::support::raw(
            self.harness.proxy_addr(),
            &case.render(&self.sealed),
            Duration::from_secs(60),
        );
        self.capture.forwarded.try_recv().ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Authorize,
    Token,
    Other,
}

/// A forwarded request with `Connection: close` in place of whatever it had, for a reader.
fn for_reader(forwarded: &[u8]) -> Vec<u8> {
    let end = find(forwarded, b"\r\n\r\n").expect("a head") + 2;
    let head = String::from_utf8_lossy(&forwarded[..end]);
    let mut lines = head.split("\r\n");
    let mut out = String::from(lines.next().unwrap());
    out.push_str("\r\nconnection: close\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&forwarded[end..]);
    bytes
}

/// What a guarded name must read as, in every view of every reader.
enum Expect {
    /// Absent, or exactly this.
    Value(String),
    /// Absent, or one of these.
    OneOf(&'static [&'static str]),
    /// Absent.
    Absent,
    /// Anything (not judged here: ignored by the proxy and the AS alike).
    Any,
}

/// Checks each reader's reading of one forwarded request against the proxy's judgement.
fn agree(forwarded: &[u8], keys: &KeyRing, heard: &[(&str, Heard)]) -> Result<Route, String> {
    let end = find(forwarded, b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&forwarded[..end]);
    let body = &forwarded[end + 4..];
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // The proxy sends a guarded route to its configured path (a flow coming back keeps the
    // trailing `/` an AS's APPEND_SLASH gave it).
    let route = match path.strip_suffix('/').unwrap_or(path) {
        AUTHORIZE => Route::Authorize,
        TOKEN => Route::Token,
        _ => Route::Other,
    };
    for (reader, heard) in heard {
        let Heard::Read(v) = heard else { continue };
        let theirs = v["route"].as_str().unwrap_or("");
        let ours = match route {
            Route::Authorize => "authorize",
            Route::Token => "token",
            Route::Other => "other",
        };
        // Handed to an endpoint the proxy did not route it to: harmless only when that
        // endpoint finds no OAuth parameter in it (a path below the authorize path, which
        // Rack's URLMap hands to it, is forwarded only so).
        let reads_any = ["query", "form", "merged"].iter().any(|view| {
            v.get(view)
                .and_then(Value::as_object)
                .is_some_and(|read| read.values().any(|value| !value.is_null()))
        });
        if matches!(theirs, "authorize" | "token") && theirs != ours && reads_any {
            return Err(format!(
                "{reader} routes {path:?} to {theirs}; the proxy: {ours}"
            ));
        }
    }
    let expected: Vec<(&str, Expect)> = match route {
        Route::Other => return Ok(route),
        Route::Authorize => {
            let body = std::str::from_utf8(body).map_err(|_| "a body not UTF-8")?;
            let (in_query, in_body) = (Parsed::new(query), Parsed::new(body));
            let sealed = in_query
                .single(Param::State)
                .or(in_body.single(Param::State))
                .map(str::to_owned)
                .ok_or("an authorization request forwarded without one state")?;
            let Opened::Flow(flow, _) = keys.open(&sealed) else {
                return Err("an authorization request forwarded without a sealed state".into());
            };
            let birthdate = match flow.requested {
                Some(r) => Expect::Value(r.birthdate.to_string()),
                None => Expect::Any,
            };
            scope_agrees(&flow, heard)?;
            vec![
                ("client_id", Expect::Value(flow.client_id().to_owned())),
                ("redirect_uri", Expect::Value(flow.redirect_uri.clone())),
                ("state", Expect::Value(sealed)),
                ("response_type", Expect::Value("code".into())),
                ("response_mode", Expect::OneOf(&["query"])),
                ("request", Expect::Absent),
                ("request_uri", Expect::Absent),
                ("MedMij_geboortedatum", birthdate),
            ]
        }
        Route::Token => match token::parse(body) {
            TokenRequest::Code(code) => vec![
                ("grant_type", Expect::Value("authorization_code".into())),
                ("code", Expect::Value(code.into_owned())),
            ],
            TokenRequest::OtherGrant => vec![("grant_type", Expect::Any), ("code", Expect::Absent)],
            TokenRequest::Invalid(why) => {
                return Err(format!("a token request forwarded that reads {why:?}"));
            }
        },
    };
    for (reader, heard) in heard {
        let Heard::Read(v) = heard else { continue };
        for view in ["query", "form", "merged"] {
            let Some(read) = v.get(view).and_then(Value::as_object) else {
                continue;
            };
            for (name, expect) in &expected {
                let value = read.get(*name).unwrap_or(&Value::Null);
                let fine = match (expect, value) {
                    (_, Value::Null) | (Expect::Any, _) => true,
                    (Expect::Value(want), Value::String(got)) => got == want,
                    (Expect::OneOf(want), Value::String(got)) => want.contains(&got.as_str()),
                    _ => false,
                };
                // With another grant, no reader may see one that redeems a code.
                let redeems = route == Route::Token
                    && *name == "grant_type"
                    && matches!(expect, Expect::Any)
                    && value.as_str() == Some("authorization_code");
                if !fine || redeems {
                    return Err(format!(
                        "{reader} reads {name} in its {view} view as {value}; the proxy judged it so: {}",
                        describe(expect)
                    ));
                }
            }
        }
    }
    Ok(route)
}

/// The scope: in each reader's reading, the representation tokens in it are exactly the one
/// the flow asked for (none when it asked for none).
fn scope_agrees(flow: &Flow, heard: &[(&str, Heard)]) -> Result<(), String> {
    let want: Vec<&str> = flow.requested.map(|r| r.kind.token()).into_iter().collect();
    for (reader, heard) in heard {
        let Heard::Read(v) = heard else { continue };
        for view in ["query", "form", "merged"] {
            let tokens = match v.get(view).and_then(|r| r.get("scope")) {
                None | Some(Value::Null) => continue,
                Some(Value::String(scope)) => scope
                    .split(' ')
                    .filter(|t| Kind::from_token(t).is_some())
                    .collect::<Vec<_>>(),
                Some(_) => Vec::new(),
            };
            // The token stripped (`representation.strip_scope_token`) is the flow's own.
            if !tokens.iter().all(|t| want.contains(t)) {
                let scope = &v[view]["scope"];
                return Err(format!(
                    "{reader} reads scope in its {view} view as {scope}; the flow asked for {want:?}"
                ));
            }
        }
    }
    Ok(())
}

fn describe(expect: &Expect) -> String {
    match expect {
        Expect::Value(v) => format!("{v:?}"),
        Expect::OneOf(v) => format!("one of {v:?}"),
        Expect::Absent => "absent".into(),
        Expect::Any => "not a code grant".into(),
    }
}

/// One worker's run: `count` cases from `seed`, each forwarded request asked of every reader.
fn run(readers: &[Reader], count: u32, seed: u64) -> Result<Tally, String> {
    let proxy = std::cell::RefCell::new(Proxy::start());
    let tally = std::cell::RefCell::new(Tally::default());
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases: count,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let result = runner.run(&case(), |case| {
        let mut tally = tally.borrow_mut();
        let mut proxy = proxy.borrow_mut();
        tally.sent += 1;
        if tally.sent % 20_000 == 0 {
            // A fresh proxy now and then: the capture's channel and the flows' seal stay young.
            *proxy = Proxy::start();
        }
        let Some(forwarded) = proxy.forward(&case) else {
            return Ok(());
        };
        let request = for_reader(&forwarded);
        let heard: Vec<(&str, Heard)> = std::thread::scope(|s| {
            let asks: Vec<_> = readers
                .iter()
                .map(|r| (r.name, s.spawn(|| ask(r.addr, &request))))
                .collect();
            asks.into_iter()
                .map(|(name, ask)| (name, ask.join().unwrap()))
                .collect()
        });
        tally.forwarded += 1;
        tally.refused_by_a_framework += heard
            .iter()
            .filter(|(_, h)| matches!(h, Heard::Refused))
            .count() as u64;
        match agree(&forwarded, &proxy.harness.keys, &heard) {
            Ok(route) => {
                tally.by_route[route as usize] += 1;
                Ok(())
            }
            Err(why) => Err(TestCaseError::fail(format!(
                "{why}\nforwarded: {}",
                String::from_utf8_lossy(&forwarded)
            ))),
        }
    });
    match result {
        Ok(()) => Ok(tally.into_inner()),
        Err(TestError::Fail(why, case)) => Err(format!(
            "seed {seed}: {why}\nshrunk to: {case:?}\nsent: {}",
            String::from_utf8_lossy(&case.render("<SEALED>"))
        )),
        Err(e) => Err(format!("seed {seed}: {e}")),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sent: u64,
    forwarded: u64,
    refused_by_a_framework: u64,
    /// Authorize, token, other.
    by_route: [u64; 3],
}

#[test]
fn differential_every_reader_reads_what_the_proxy_judged() {
    let count: u32 = std::env::var("DIFFERENTIAL_COUNT")
        .ok()
        .map_or(DEFAULT_COUNT, |v| v.parse().expect("DIFFERENTIAL_COUNT"));
    let seed: u64 = std::env::var("DIFFERENTIAL_SEED")
        .ok()
        .map_or(DEFAULT_SEED, |v| v.parse().expect("DIFFERENTIAL_SEED"));
    let started = Instant::now();
    let readers: Vec<Reader> = READERS.map(Reader::start).into_iter().collect();
    let results: Vec<Result<Tally, String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..u64::from(WORKERS))
            .map(|w| {
                let readers = &readers;
                let share = count / WORKERS + u32::from(w < u64::from(count % WORKERS));
                s.spawn(move || run(readers, share, seed.wrapping_mul(1_000).wrapping_add(w)))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut total = Tally::default();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(t) => {
                total.sent += t.sent;
                total.forwarded += t.forwarded;
                total.refused_by_a_framework += t.refused_by_a_framework;
                for i in 0..3 {
                    total.by_route[i] += t.by_route[i];
                }
            }
            Err(why) => failures.push(why),
        }
    }
    println!(
        "differential: seed {seed}, {} requests generated, {} forwarded (authorize {}, token {}, other {}), each asked of {} readers ({} answers were a framework's own refusal), in {:.0?}",
        total.sent,
        total.forwarded,
        total.by_route[0],
        total.by_route[1],
        total.by_route[2],
        READERS.len(),
        total.refused_by_a_framework,
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    if count >= DEFAULT_COUNT {
        assert!(total.forwarded >= 5_000, "too few forwarded: {total:?}");
    }
}
