//! A small fake legacy MedMij Authorization Server, for the demo command and the integration
//! tests. It knows nothing of the proxy's rules: it shows a login page on which the Persoon
//! logs in as themselves or on behalf of someone listed, redirects to whatever `redirect_uri` it
//! was given with a fresh code and the `state` it received, and adds the representation signal
//! headers (SPEC §3.3) to that redirect. Everything works with form POSTs, so curl can drive it.
//!
//! Also, for tests and curl: `/echo` answers with the request it got (method, path, query,
//! headers, body) and `/demo/hop-by-hop` answers with hop-by-hop headers the proxy must drop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use askama::Template;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use medmij_vert_proxy::state::seal::generate_key_line;
use medmij_vert_proxy::vert::query::UriBuilder;

/// A person the demo AS knows. The logged-in Persoon is `self`; the others they may represent.
struct Person {
    id: &'static str,
    name: &'static str,
    birthdate: &'static str,
    /// How the Persoon may act for them (`None` for the Persoon themselves).
    representation: Option<&'static str>,
}

const PEOPLE: [Person; 3] = [
    Person {
        id: "self",
        name: "Jan Jansen",
        birthdate: "19800101",
        representation: None,
    },
    Person {
        id: "piet",
        name: "Piet Jansen (machtiging)",
        birthdate: "19700901",
        representation: Some("onbehalfof"),
    },
    Person {
        id: "sanne",
        name: "Sanne Jansen (kind, ouderlijk gezag)",
        birthdate: "20200315",
        representation: Some("onbehalfofchild"),
    },
];

/// The header names the demo AS uses for the signal (the proxy's `[representation]`).
#[derive(Debug, Clone)]
pub struct SignalHeaders {
    pub request: HeaderName,
    pub used: HeaderName,
    pub birthdate: HeaderName,
}

impl Default for SignalHeaders {
    fn default() -> Self {
        SignalHeaders {
            request: HeaderName::from_static("x-vert-requested"),
            used: HeaderName::from_static("x-vert-representation"),
            birthdate: HeaderName::from_static("x-vert-birthdate"),
        }
    }
}

/// An authorization request the demo AS is showing a login page for.
struct Pending {
    redirect_uri: String,
    state: Option<String>,
    client_id: String,
    scope: String,
}

struct Grant {
    subject: &'static str,
    client_id: String,
    scope: String,
}

#[derive(Default)]
struct Store {
    pending: HashMap<String, Pending>,
    codes: HashMap<String, Grant>,
    /// Every code ever issued, for tests that check a withheld code appears nowhere.
    issued: Vec<String>,
    /// Authorization requests received (tests: a refused request never arrives).
    authorize_requests: usize,
    /// The code issued at each login, by login id (tests: a code reaches exactly its flow).
    code_by_login: HashMap<String, String>,
}

struct Demo {
    headers: SignalHeaders,
    store: Mutex<Store>,
}

/// The running demo AS.
pub struct DemoAs {
    /// What it issued, for the integration tests to read (the binary only runs it).
    #[allow(dead_code)]
    demo: Arc<Demo>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl DemoAs {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the integration tests read of the demo AS (this module is compiled into their harness);
/// the binary, and its own unit tests, have no use for it.
#[cfg(test)]
#[allow(dead_code)]
impl DemoAs {
    /// The last code the demo AS issued (tests: it must appear nowhere when withheld).
    pub fn last_code(&self) -> Option<String> {
        self.demo
            .store
            .lock()
            .expect("demo store")
            .issued
            .last()
            .cloned()
    }

    /// How many authorization requests reached the demo AS.
    pub fn authorize_requests(&self) -> usize {
        self.demo
            .store
            .lock()
            .expect("demo store")
            .authorize_requests
    }

    /// The code issued when the login with this id was posted.
    pub fn code_for_login(&self, login_id: &str) -> Option<String> {
        self.demo
            .store
            .lock()
            .expect("demo store")
            .code_by_login
            .get(login_id)
            .cloned()
    }

    /// How many codes the demo AS has issued.
    pub fn codes_issued(&self) -> usize {
        self.demo.store.lock().expect("demo store").issued.len()
    }
}

/// Starts the demo AS on `addr` (port 0 for any free port), on a thread of its own.
pub fn start(addr: SocketAddr, headers: SignalHeaders) -> io::Result<DemoAs> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (tx, mut rx) = watch::channel(false);
    let demo = Arc::new(Demo {
        headers,
        store: Mutex::default(),
    });
    let shared = demo.clone();
    let thread = medmij_vert_proxy::runtime::spawn_thread("demo-as", move || async move {
        let Ok(listener) = TcpListener::from_std(listener) else {
            tracing::error!("demo AS: no listener");
            return;
        };
        loop {
            let stream = tokio::select! {
                _ = rx.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let demo = demo.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let demo = demo.clone();
                    async move { Ok::<_, Infallible>(demo.handle(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })?;
    Ok(DemoAs {
        demo: shared,
        addr,
        shutdown: tx,
        thread: Some(thread),
    })
}

type DemoResponse = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> DemoResponse {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> DemoResponse {
    respond(status, "text/plain; charset=utf-8", body)
}

fn json(status: StatusCode, body: String) -> DemoResponse {
    respond(status, "application/json", body)
}

/// The same URI, spelled as some URL libraries do: host in capitals, the first letter of the
/// path percent-encoded, a `./` segment.
fn respell(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut respelled = format!("{scheme}://{}/.", host.to_ascii_uppercase());
    let mut chars = path.chars();
    match (chars.next(), chars.next()) {
        (Some('/'), Some(c)) if c.is_ascii_alphanumeric() => {
            respelled.push_str(&format!("/%{:02X}", c as u32));
            respelled.push_str(chars.as_str());
        }
        _ => respelled.push_str(path),
    }
    respelled
}

fn redirect(location: &str) -> DemoResponse {
    let mut r = text(StatusCode::FOUND, "");
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => text(StatusCode::BAD_REQUEST, "unusable redirect_uri"),
    }
}

/// The decoded form fields (lenient, as a legacy AS would be).
fn form(bytes: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn new_id() -> String {
    // 32 random bytes, URL-safe; the first 22 characters are plenty for a demo code.
    generate_key_line()[..22].to_owned()
}

struct LoginOption {
    id: &'static str,
    label: String,
}

#[derive(Template)]
#[template(path = "demo_login.html")]
struct LoginPage<'a> {
    client_id: &'a str,
    scope: &'a str,
    requested: &'a str,
    action: String,
    options: Vec<LoginOption>,
}

impl Demo {
    async fn handle(&self, req: Request<Incoming>) -> DemoResponse {
        let path = req.uri().path().to_owned();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/oauth2/authorize") => self.authorize(&req),
            (Method::POST, p) if p.starts_with("/oauth2/login/") => {
                let id = p["/oauth2/login/".len()..].to_owned();
                let body = read_body(req.into_body()).await;
                self.login(&id, &form(&body))
            }
            (Method::POST, "/oauth2/token") => {
                let body = read_body(req.into_body()).await;
                self.token(&form(&body))
            }
            (_, "/echo") => echo(req).await,
            (_, "/demo/hop-by-hop") => {
                let mut r = text(StatusCode::OK, "hop-by-hop test\n");
                let h = r.headers_mut();
                h.insert(header::CONNECTION, HeaderValue::from_static("x-private"));
                h.insert("x-private", HeaderValue::from_static("secret"));
                h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
                h.insert(
                    header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=x"),
                );
                h.insert("x-kept", HeaderValue::from_static("yes"));
                r
            }
            (_, "/") => text(
                StatusCode::OK,
                "demo legacy AS: /oauth2/authorize, /oauth2/login/{id}, /oauth2/token, /echo\n",
            ),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn authorize(&self, req: &Request<Incoming>) -> DemoResponse {
        self.store.lock().expect("demo store").authorize_requests += 1;
        let params = form(req.uri().query().unwrap_or("").as_bytes());
        let Some(redirect_uri) = params.get("redirect_uri") else {
            return text(StatusCode::BAD_REQUEST, "redirect_uri missing\n");
        };
        let requested = req
            .headers()
            .get(&self.headers.request)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let id = new_id();
        let client_id = params.get("client_id").cloned().unwrap_or_default();
        let scope = params.get("scope").cloned().unwrap_or_default();
        let page = LoginPage {
            client_id: &client_id,
            scope: &scope,
            requested: if requested.is_empty() {
                "nee"
            } else {
                &requested
            },
            action: format!("/oauth2/login/{id}"),
            options: PEOPLE
                .iter()
                .map(|p| LoginOption {
                    id: p.id,
                    label: match p.representation {
                        None => format!("Inloggen als mijzelf ({})", p.name),
                        Some(kind) => {
                            format!("Namens {}, geboren {} ({kind})", p.name, p.birthdate)
                        }
                    },
                })
                .collect(),
        }
        .render()
        .unwrap_or_default();
        self.store.lock().expect("demo store").pending.insert(
            id,
            Pending {
                redirect_uri: redirect_uri.clone(),
                state: params.get("state").cloned(),
                client_id,
                scope,
            },
        );
        respond(StatusCode::OK, "text/html; charset=utf-8", page)
    }

    fn login(&self, id: &str, fields: &HashMap<String, String>) -> DemoResponse {
        let Some(pending) = self.store.lock().expect("demo store").pending.remove(id) else {
            return text(StatusCode::NOT_FOUND, "unknown or used login\n");
        };
        let choice = fields.get("as").map(String::as_str).unwrap_or("self");
        let with_state = |uri: UriBuilder| match &pending.state {
            Some(state) => uri.text("state", state),
            None => uri,
        };
        if choice == "deny" {
            let uri = UriBuilder::new(&pending.redirect_uri).text("error", "access_denied");
            return redirect(&with_state(uri).finish());
        }
        let Some(person) = PEOPLE.iter().find(|p| p.id == choice) else {
            return text(StatusCode::BAD_REQUEST, "unknown person\n");
        };
        let code = new_id();
        {
            let mut store = self.store.lock().expect("demo store");
            store.issued.push(code.clone());
            store.code_by_login.insert(id.to_owned(), code.clone());
            store.codes.insert(
                code.clone(),
                Grant {
                    subject: person.name,
                    client_id: pending.client_id,
                    scope: pending.scope,
                },
            );
        }
        // `respell=1` plays an AS whose URL library respells the redirect_uri equivalently
        // (RFC 3986 §6.2.2): the proxy releases the code at the client's own spelling.
        let redirect_uri = match fields.get("respell").map(String::as_str) {
            Some("1") => respell(&pending.redirect_uri),
            _ => pending.redirect_uri.clone(),
        };
        let uri = UriBuilder::new(&redirect_uri).text("code", &code);
        let mut response = redirect(&with_state(uri).finish());
        // The signal (SPEC §3.3); `signal=omit` plays an AS that forgets it, `signal=twice`
        // one that sends it twice, contradicting itself.
        let signal = fields.get("signal").map(String::as_str);
        if signal != Some("omit") {
            let h = response.headers_mut();
            h.insert(
                self.headers.used.clone(),
                HeaderValue::from_static(person.representation.unwrap_or("none")),
            );
            if signal == Some("twice") {
                h.append(
                    self.headers.used.clone(),
                    HeaderValue::from_static(if person.representation.is_some() {
                        "none"
                    } else {
                        "onbehalfof"
                    }),
                );
            }
            if person.representation.is_some() {
                h.insert(
                    self.headers.birthdate.clone(),
                    HeaderValue::from_static(person.birthdate),
                );
            }
        }
        response
    }

    fn token(&self, fields: &HashMap<String, String>) -> DemoResponse {
        if fields.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return json(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"unsupported_grant_type\"}".into(),
            );
        }
        let grant = fields
            .get("code")
            .and_then(|code| self.store.lock().expect("demo store").codes.remove(code));
        match grant {
            None => json(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"invalid_grant\"}".into(),
            ),
            Some(grant) => json(
                StatusCode::OK,
                format!(
                    "{{\"access_token\":{},\"token_type\":\"Bearer\",\"expires_in\":900,\"scope\":{},\"client_id\":{},\"subject\":{}}}",
                    json_string(&new_id()),
                    json_string(&grant.scope),
                    json_string(&grant.client_id),
                    json_string(grant.subject),
                ),
            ),
        }
    }
}

async fn read_body(body: Incoming) -> Bytes {
    Limited::new(body, 1 << 20)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

/// The request as the demo AS received it, as JSON. Status from `?status=NNN`.
async fn echo(req: Request<Incoming>) -> DemoResponse {
    let (parts, body) = req.into_parts();
    let status = form(parts.uri.query().unwrap_or("").as_bytes())
        .get("status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let body = read_body(body).await;
    let headers: Vec<String> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            format!(
                "[{},{}]",
                json_string(k.as_str()),
                json_string(&String::from_utf8_lossy(v.as_bytes()))
            )
        })
        .collect();
    json(
        status,
        format!(
            "{{\"method\":{},\"path\":{},\"query\":{},\"headers\":[{}],\"body\":{}}}",
            json_string(parts.method.as_str()),
            json_string(parts.uri.path()),
            json_string(parts.uri.query().unwrap_or("")),
            headers.join(","),
            json_string(&String::from_utf8_lossy(&body)),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::respell;

    #[test]
    fn respelled_but_equivalent() {
        let uri = "https://pgo.example.nl/callback";
        assert_eq!(respell(uri), "https://PGO.EXAMPLE.NL/./%63allback");
        assert!(medmij_vert_proxy::vert::uri::equivalent(uri, &respell(uri)));
    }
}
