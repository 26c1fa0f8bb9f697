//! Shared test harness: the demo AS and the proxy on `127.0.0.1:0`, and a client that never
//! follows redirects.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The demo AS, the binary's own module (not the library's), compiled into the harness.
#[path = "../../../src/demo/mod.rs"]
pub mod demo;
pub mod ha;
pub mod upstream;

pub use upstream::{Answer, Bodies, Upstream};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use demo::{DemoAs, SignalHeaders};
use medmij_vert_proxy::config::Config;
use medmij_vert_proxy::server::resources::Resources;
use medmij_vert_proxy::server::{self, Running};
use medmij_vert_proxy::state::seal::{KeyRing, generate_key_line};

pub const PGO: &str = "pgo.example.nl";
pub const REDIRECT: &str = "https://pgo.example.nl/callback";
pub const REDIRECT_ENC: &str = "https%3A%2F%2Fpgo.example.nl%2Fcallback";

/// A fresh directory under the system temp dir, for key files and configs.
pub fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vert-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The proxy and the demo AS, shut down on drop.
pub struct Harness {
    pub demo: Option<DemoAs>,
    pub proxy: Option<Running>,
    pub base: String,
    pub keys: KeyRing,
    pub key_line: String,
    pub dir: PathBuf,
}

impl Harness {
    /// The demo AS and a proxy in front of it; `extra` is TOML added to the config.
    pub fn start(extra: &str) -> Harness {
        let demo = demo::start("127.0.0.1:0".parse().unwrap(), SignalHeaders::default()).unwrap();
        let upstream = format!("http://{}", demo.addr());
        let mut h = Harness::start_with_upstream(&upstream, extra);
        h.demo = Some(demo);
        h
    }

    /// A proxy in front of any upstream.
    pub fn start_with_upstream(upstream: &str, extra: &str) -> Harness {
        Harness::start_with_key(upstream, extra, &generate_key_line())
    }

    /// A second instance beside `other`: the same upstream and state key (as a load balancer's
    /// pool would have), with its own `extra`.
    pub fn beside(other: &Harness, upstream: &str, extra: &str) -> Harness {
        Harness::start_with_key(upstream, extra, &other.key_line)
    }

    fn start_with_key(upstream: &str, extra: &str, key_line: &str) -> Harness {
        let dir = temp_dir();
        let key_line = key_line.to_owned();
        std::fs::write(dir.join("state.key"), format!("{key_line}\n")).unwrap();
        let toml = config_text(upstream, extra);
        let config = Config::from_toml(&toml, &dir).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let resources = Resources::load(&config).unwrap();
        let proxy = server::start(config, resources).unwrap();
        let base = format!("http://{}", proxy.addr());
        Harness {
            demo: None,
            proxy: Some(proxy),
            base,
            keys: KeyRing::from_key_file(&key_line).unwrap(),
            key_line,
            dir,
        }
    }

    pub fn demo(&self) -> &DemoAs {
        self.demo.as_ref().expect("a demo AS")
    }

    pub fn demo_base(&self) -> String {
        format!("http://{}", self.demo().addr())
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy.as_ref().unwrap().addr()
    }

    pub fn running(&self) -> &Running {
        self.proxy.as_ref().unwrap()
    }

    /// `GET` on the admin listener (the config must set `admin.addr`): status and body.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let addr = self.running().admin_addr().expect("admin.addr set");
        let r = raw(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(30),
        );
        let body = r.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (raw_status(&r), body)
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> u64 {
        let (_, text) = self.admin_get("/metrics");
        metric_value(&text, series)
    }

    /// The authorize URL through the proxy for the standard client, plus `extra` params.
    pub fn authorize_url(&self, extra: &str) -> String {
        format!(
            "{}/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state=st-1{extra}",
            self.base
        )
    }

    /// Authorizes through the proxy, then logs in at the demo AS (through the proxy) with the
    /// given form fields; returns the response the browser would get.
    pub async fn flow(&self, authorize_extra: &str, login: &[(&str, &str)]) -> Reply {
        let page = get(&self.authorize_url(authorize_extra)).await;
        assert_eq!(page.status, 200, "login page expected: {page:?}");
        self.login(&page, login).await
    }

    /// Posts the login form of a demo AS login page through the proxy.
    pub async fn login(&self, page: &Reply, fields: &[(&str, &str)]) -> Reply {
        let path = login_path(&page.body);
        post_form(&format!("{}{path}", self.base), fields).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(p) = self.proxy.take() {
            p.shutdown();
        }
        if let Some(d) = self.demo.take() {
            d.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The test config: defaults for tests, with `extra` (TOML) merged over them key by key.
pub fn config_text(upstream: &str, extra: &str) -> String {
    let defaults = format!(
        r#"
        [listen]
        addr = "127.0.0.1:0"
        workers = 1
        shutdown_grace = "2s"
        [upstream]
        url = "{upstream}"
        response_timeout = "5s"
        [clients]
        static = [ {{ hostname = "{PGO}", name = "Voorbeeld PGO" }}, {{ hostname = "other.example.nl", name = "Ander PGO" }} ]
        [representation]
        scopes = ["onbehalfof", "onbehalfofchild"]
        [state]
        key_file = "state.key"
        [log]
        level = "warn"
        "#
    );
    let mut merged: toml::Table = defaults.parse().unwrap();
    let extra: toml::Table = extra.parse().unwrap();
    for (section, values) in extra {
        match (merged.get_mut(&section), values) {
            (Some(toml::Value::Table(base)), toml::Value::Table(values)) => base.extend(values),
            (_, values) => {
                merged.insert(section, values);
            }
        }
    }
    merged.to_string()
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }

    /// Everything the browser gets: status line aside, every header and the body.
    pub fn everything(&self) -> String {
        let mut all = String::new();
        for (k, v) in &self.headers {
            all.push_str(k.as_str());
            all.push_str(": ");
            all.push_str(&String::from_utf8_lossy(v.as_bytes()));
            all.push('\n');
        }
        all.push_str(&self.body);
        all
    }

    /// Asserts that `secret` appears in no header and not in the body.
    pub fn assert_absent(&self, secret: &str) {
        assert!(!secret.is_empty());
        assert!(
            !self.everything().contains(secret),
            "{secret:?} leaked in the response:\n{}",
            self.everything()
        );
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// A plain hyper client: it never follows redirects. Keep one per test to reuse connections.
pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(req: Request<Full<Bytes>>) -> Reply {
    send_with(&client(), req).await
}

pub async fn send_with(client: &TestClient, req: Request<Full<Bytes>>) -> Reply {
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("the proxy answers within 20s")
        .expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a whole body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(url: &str) -> Reply {
    send(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::new(Bytes::new())).unwrap()).await
}

pub async fn post_form(url: &str, fields: &[(&str, &str)]) -> Reply {
    let body = serde_urlencoded::to_string(fields).unwrap();
    send(
        Request::builder()
            .method(Method::POST)
            .uri(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
    .await
}

/// The login form's action in a demo AS login page.
pub fn login_path(html: &str) -> String {
    let start = html
        .find("/oauth2/login/")
        .unwrap_or_else(|| panic!("no login form in:\n{html}"));
    html[start..].split('"').next().unwrap().to_string()
}

/// Sends raw bytes and reads until the peer closes or `timeout` passes.
pub fn raw(addr: SocketAddr, request: &[u8], timeout: Duration) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of the metric line `series` (`name{labels}` exactly as exposed) in `text`, 0
/// when absent.
pub fn metric_value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// The proxy binary with `config` (TOML) written into `dir` and `env` set; its public address
/// and, when the config has an `[admin]` section, its admin address, both from its log.
pub fn start_binary(
    dir: &std::path::Path,
    config: &str,
    env: &[(&str, &str)],
) -> (std::process::Child, SocketAddr, Option<SocketAddr>) {
    use std::io::BufRead;
    let path = dir.join("proxy.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_medmij-vert-proxy"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut public, mut admin) = (None, None);
    let want_admin = config.contains("[admin]");
    while public.is_none() || (want_admin && admin.is_none()) {
        let line = lines.next().expect("the proxy logs its addresses").unwrap();
        let Some(rest) = line.split("addr=").nth(1) else {
            continue;
        };
        let addr = rest
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<SocketAddr>()
            .ok();
        if line.contains("admin listener") {
            admin = addr;
        } else if line.contains("listening") {
            public = addr;
        }
    }
    // Keep draining the log so that the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, public.unwrap(), admin)
}

/// Waits for `condition`, however long a busy machine takes (up to 30 s).
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `Location` of a raw HTTP/1.1 response.
pub fn raw_location(response: &str) -> Option<&str> {
    response
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .map(str::trim_end)
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A real `redis-server` (Debian's package) on a free port of 127.0.0.1, no persistence, with
/// a password; killed on drop. `stop` and `start_again` play an outage (on the same port).
pub struct Redis(ha::Node);

impl Redis {
    pub fn start() -> Redis {
        Redis(ha::data_node(None, &[]))
    }

    pub fn url(&self) -> String {
        self.0.url()
    }

    pub fn start_again(&mut self) {
        self.0.restart();
    }

    pub fn stop(&mut self) {
        self.0.kill();
    }
}
