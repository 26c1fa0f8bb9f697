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

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use demo::{DemoAs, SignalHeaders};
use medmij_vert_proxy::config::Config;
use medmij_vert_proxy::config::resources::Resources;
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

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// An upstream that answers every request with a 302 to the Location the test set, with the
/// signal headers the test set.
/// Location, representation used, birth date.
type Script = (String, Option<String>, Option<String>);

pub struct Scripted {
    addr: SocketAddr,
    script: std::sync::Arc<std::sync::Mutex<Script>>,
    connections: std::sync::Arc<AtomicUsize>,
    closed: std::sync::Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Scripted {
    pub fn start() -> Scripted {
        Scripted::start_with_idle_close(None)
    }

    /// Like [`Scripted::start`], closing a keep-alive connection idle for `idle_close`.
    pub fn start_with_idle_close(idle_close: Option<Duration>) -> Scripted {
        use hyper::server::conn::http1;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let script = std::sync::Arc::new(std::sync::Mutex::new((String::new(), None, None)));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = script.clone();
        let connections = std::sync::Arc::new(AtomicUsize::new(0));
        let closed = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let closed_counter = closed.clone();
        medmij_vert_proxy::server::runtime::spawn_thread("test-scripted", move || async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let stream = tokio::select! {
                    _ = &mut stopped => break,
                    s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                let closed = closed_counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                        let (location, used, birthdate) = shared.lock().unwrap().clone();
                        async move {
                            let mut r = http::Response::builder().status(302);
                            if let Ok(v) = http::HeaderValue::from_str(&location) {
                                r = r.header("location", v);
                            }
                            if let Some(u) = used {
                                r = r.header("x-vert-representation", u);
                            }
                            if let Some(b) = birthdate {
                                r = r.header("x-vert-birthdate", b);
                            }
                            Ok::<_, std::convert::Infallible>(
                                r.body(Full::new(Bytes::from_static(b"redirecting C0DE")))
                                    .unwrap(),
                            )
                        }
                    });
                    let mut builder = http1::Builder::new();
                    builder
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(idle_close);
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        })
        .unwrap();
        Scripted {
            addr,
            script,
            connections,
            closed,
            stop: Some(stop),
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits until `count` connections have closed (by either side), however long a busy
    /// machine takes: the tests wait for the event, not for a time.
    pub async fn wait_closed(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.closed.load(Ordering::SeqCst) < count {
            assert!(tokio::time::Instant::now() < deadline, "no close seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, location: &str, used: Option<&str>, birthdate: Option<&str>) {
        *self.script.lock().unwrap() = (
            location.to_string(),
            used.map(str::to_string),
            birthdate.map(str::to_string),
        );
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A raw upstream that misbehaves on purpose, by path:
/// `/ok` 200; `/reset-mid` a 200 head and part of the body, then a TCP reset;
/// `/reset-before` a reset before any byte; `/location-obs` a 302 whose Location holds bytes
/// that are not ASCII; `/location-twice` two Location headers; `/location-relative-code` a
/// relative 302 carrying a code; `/slow` and `/slower` the answer after one and three seconds;
/// `/never` no answer until the proxy closes the connection. Stops accepting on drop.
pub struct FaultUpstream {
    pub addr: SocketAddr,
    /// The paths requested so far, in order of arrival.
    paths: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultUpstream {
    pub fn start() -> FaultUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stopped, seen) = (stop.clone(), paths.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let seen = seen.clone();
                    // Each ends with its connection.
                    std::thread::spawn(move || serve_fault(stream, &seen));
                }
            }
        });
        FaultUpstream {
            addr,
            paths,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until a request for `path` has arrived: an event to wait for, not a time.
    pub fn wait_request(&self, path: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.paths.lock().unwrap().iter().any(|p| p == path) {
            assert!(std::time::Instant::now() < deadline, "{path} never arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for FaultUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_fault(mut stream: TcpStream, paths: &std::sync::Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    paths.lock().unwrap().push(path.clone());
    let reset = |stream: TcpStream| {
        let socket = socket2::Socket::from(stream);
        let _ = socket.set_linger(Some(Duration::ZERO));
        drop(socket);
    };
    match path.as_str() {
        "/reset-mid" => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789");
            let _ = stream.flush();
            std::thread::sleep(Duration::from_millis(100));
            reset(stream);
        }
        "/reset-before" => reset(stream),
        "/never" => {
            let _ = stream.read(&mut byte);
        }
        "/location-obs" => {
            let _ = stream.write_all(b"HTTP/1.1 302 Found\r\nlocation: https://pgo.example.nl/cb?code=C0DE&state=x\xff\xfe\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
        "/location-twice" => {
            let _ = stream.write_all(b"HTTP/1.1 302 Found\r\nlocation: /a\r\nlocation: https://pgo.example.nl/cb?code=C0DE\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
        "/location-relative-code" => {
            let _ = stream.write_all(b"HTTP/1.1 302 Found\r\nlocation: /consent?code=internal&step=2\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
        "/slow" | "/slower" => {
            let secs = if path == "/slow" { 1 } else { 3 };
            std::thread::sleep(Duration::from_secs(secs));
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow",
            );
        }
        _ => {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nfine",
            );
        }
    }
}

/// A legacy AS at its sloppiest, that records every byte it receives: it reads request heads
/// only and ignores bodies (so a body smuggled to it would be read as the next request, as a
/// real AS with that bug would). A request whose path starts with the prefix the test set gets
/// a 302 to the Location template the test set, `{state}` and `{code}` replaced by the `state`
/// and `code` it received,
/// with the signal headers the test set; anything else gets `200 ok`. Stopped, with its
/// connections, on drop.
/// The scripted answer: for targets starting with this path, a Location template and headers.
type Answer = (String, String, Vec<(String, String)>);

pub struct Recorder {
    addr: SocketAddr,
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    connections: std::sync::Arc<AtomicUsize>,
    script: std::sync::Arc<std::sync::Mutex<Answer>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = std::sync::Arc::new(AtomicUsize::new(0));
        let script = std::sync::Arc::new(std::sync::Mutex::new((
            String::new(),
            String::new(),
            Vec::new(),
        )));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (record, counter, shared) = (bytes.clone(), connections.clone(), script.clone());
        let thread =
            medmij_vert_proxy::server::runtime::spawn_thread("test-recorder", move || async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let mut tasks = tokio::task::JoinSet::new();
                loop {
                    let mut stream = tokio::select! {
                        _ = &mut stopped => break,
                        s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let (record, shared) = (record.clone(), shared.clone());
                    tasks.spawn(async move {
                        let mut pending = Vec::new();
                        let mut buf = [0u8; 4096];
                        loop {
                            let n = match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            record.lock().unwrap().extend_from_slice(&buf[..n]);
                            pending.extend_from_slice(&buf[..n]);
                            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n")
                            {
                                let head: Vec<u8> = pending.drain(..end + 4).collect();
                                let answer = Recorder::answer(&head, &shared.lock().unwrap());
                                if stream.write_all(answer.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                        }
                    });
                }
                tasks.shutdown().await;
            })
            .unwrap();
        Recorder {
            addr,
            bytes,
            connections,
            script,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn answer(head: &[u8], script: &Answer) -> String {
        let head = String::from_utf8_lossy(head);
        let target = head.split_whitespace().nth(1).unwrap_or("/");
        let (prefix, template, headers) = script;
        if prefix.is_empty() || !target.starts_with(prefix.as_str()) {
            return "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string();
        }
        let param = |name: &str| {
            target
                .split_once('?')
                .map_or("", |(_, q)| q)
                .split('&')
                .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or("")
                .to_owned()
        };
        // With the body real ASs write ("Redirecting to …"): it carries the sealed state, so
        // the proxy must keep it from the client, and read it so the connection is reused.
        let location = template
            .replace("{state}", &param("state"))
            .replace("{code}", &param("code"));
        let body = format!("Redirecting to {location}");
        let mut answer = format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            answer.push_str(&format!("{name}: {value}\r\n"));
        }
        answer + "\r\n" + &body
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every byte received so far, on all connections.
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    /// The last request line received that contains `needle` (searched in place: a load
    /// test asks this for every flow).
    pub fn request_line_with(&self, needle: &str) -> Option<String> {
        let bytes = self.bytes.lock().unwrap();
        let needle = needle.as_bytes();
        let at = bytes.windows(needle.len()).rposition(|w| w == needle)?;
        let start = bytes[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let end = bytes[at..]
            .iter()
            .position(|b| *b == b'\r')
            .map_or(bytes.len(), |i| at + i);
        Some(String::from_utf8_lossy(&bytes[start..end]).into_owned())
    }

    /// The `state` of the last request line received that contains `needle`: the sealed state
    /// the proxy sent, for a test to return into the flow with.
    pub fn state_in_request_with(&self, needle: &str) -> Option<String> {
        let line = self.request_line_with(needle)?;
        let target = line.split_whitespace().find(|w| w.starts_with('/'))?;
        target
            .split(['?', '&'])
            .find_map(|pair| pair.strip_prefix("state="))
            .map(str::to_owned)
    }

    /// Request heads received so far (a body it ignored counts when it looks like one).
    pub fn requests(&self) -> usize {
        self.received().matches(" HTTP/1.1\r\n").count()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The answer to authorization requests: `location` with `{state}`, and these headers.
    pub fn answer_authorize(&self, location: &str, headers: &[(&str, &str)]) {
        self.answer_path("/oauth2/authorize", location, headers);
    }

    /// The answer to requests whose target starts with `path`.
    pub fn answer_path(&self, path: &str, location: &str, headers: &[(&str, &str)]) {
        *self.script.lock().unwrap() = (
            path.to_string(),
            location.to_string(),
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        );
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
