//! The one scripted upstream of the tests: a raw HTTP/1.1 server on a port of 127.0.0.1 the
//! kernel picks, that records every byte it receives and answers each request head as its
//! script says. Raw, so that it can misbehave as an AS can (ignore bodies, reset mid-body,
//! send bytes no HTTP library would); its scripts stand in for a sloppy AS ([`Upstream::recorder`]),
//! a redirecting one ([`Upstream::scripted`]), a faulty one ([`Upstream::faults`]) or any other
//! ([`Upstream::start`]). Stopped, with its connections, on drop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as the upstream read it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The head as received, request line to the blank line.
    pub head: String,
    pub target: String,
    /// The body, when the upstream reads bodies ([`Bodies`]).
    pub body: String,
    /// The head and the body read, byte for byte.
    pub raw: Vec<u8>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A header's value (the first), by name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// A query parameter as sent (not decoded), or "".
    pub fn param(&self, name: &str) -> &str {
        self.target
            .split_once('?')
            .map_or("", |(_, q)| q)
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
    }
}

/// What the upstream does with a request.
pub enum Answer {
    /// These bytes as they are: a response, or anything else.
    Bytes(Vec<u8>),
    /// These bytes, then a TCP reset (RST, not FIN).
    ResetAfter(Vec<u8>),
    /// Nothing, until the peer closes.
    Hang,
    /// The answer, after a while.
    Later(Duration, Box<Answer>),
}

impl Answer {
    /// `200 OK` with this body.
    pub fn ok(body: &str) -> Answer {
        Answer::Bytes(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }

    /// A `302` to `location` with these extra headers and a body, as real ASs write one.
    pub fn redirect(location: &str, headers: &[(String, String)], body: &str) -> Answer {
        let mut answer = format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            answer.push_str(&format!("{name}: {value}\r\n"));
        }
        Answer::Bytes((answer + "\r\n" + body).into_bytes())
    }
}

/// How request bodies are read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    /// Not at all: heads only, as an AS at its sloppiest (a smuggled body is read as the next
    /// request, as a real AS with that bug would).
    Ignored,
    /// `Content-Length` bytes after each head.
    Read,
    /// Read, except after `Expect: 100-continue`, which is answered at once, and the reading
    /// goes on where it stopped (an AS that answers expectations early, without draining).
    IgnoredAfterExpect,
}

type Script = Arc<dyn Fn(&Request) -> Answer + Send + Sync>;

pub struct Upstream {
    pub addr: SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
    seen: Arc<Mutex<Vec<Request>>>,
    connections: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    script: Arc<Mutex<Script>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Answers as `script` says, reading bodies as `bodies` says; a connection with no request
    /// for `idle_close` is closed by the upstream.
    pub fn start(
        bodies: Bodies,
        idle_close: Option<Duration>,
        script: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> Upstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Arc::new(script)));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let conn = Conn {
            bytes: bytes.clone(),
            seen: seen.clone(),
            closed: closed.clone(),
            script: script.clone(),
            bodies,
            idle_close,
        };
        let counter = connections.clone();
        let thread =
            medmij_vert_proxy::runtime::spawn_thread("test-upstream", move || async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let mut tasks = tokio::task::JoinSet::new();
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => break,
                        s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    tasks.spawn(conn.clone().serve(stream));
                }
                tasks.shutdown().await;
            })
            .unwrap();
        Upstream {
            addr,
            bytes,
            seen,
            connections,
            closed,
            script,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A legacy AS at its sloppiest: heads only, bodies ignored; `200 ok` to everything until
    /// [`Upstream::answer_path`] scripts a redirect.
    pub fn recorder() -> Upstream {
        Upstream::start(Bodies::Ignored, None, |_| Answer::ok("ok"))
    }

    /// A `302` to every request, to the Location and with the signal [`Upstream::set`] gave.
    pub fn scripted() -> Upstream {
        Upstream::scripted_with_idle_close(None)
    }

    /// [`Upstream::scripted`], closing a keep-alive connection idle for `idle_close`.
    pub fn scripted_with_idle_close(idle_close: Option<Duration>) -> Upstream {
        let upstream = Upstream::start(Bodies::Read, idle_close, |_| Answer::ok(""));
        upstream.set("", None, None);
        upstream
    }

    /// An upstream that misbehaves on purpose, by path: `/ok` 200; `/reset-mid` a 200 head
    /// and part of the body, then a TCP reset; `/reset-before` a reset before any byte;
    /// `/location-obs` a 302 whose Location holds bytes that are not ASCII; `/location-twice`
    /// two Location headers; `/location-relative-code` a relative 302 carrying a code; `/slow`
    /// and `/slower` the answer after one and three seconds; `/never` no answer until the proxy
    /// closes the connection. Every answer closes its connection.
    pub fn faults() -> Upstream {
        Upstream::start(Bodies::Read, None, |req| {
            let closing = |bytes: &[u8]| Answer::Bytes(bytes.to_vec());
            match req.path() {
                "/reset-mid" => Answer::ResetAfter(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789".to_vec(),
                ),
                "/reset-before" => Answer::ResetAfter(Vec::new()),
                "/never" => Answer::Hang,
                "/location-obs" => closing(b"HTTP/1.1 302 Found\r\nlocation: https://pgo.example.nl/cb?code=C0DE&state=x\xff\xfe\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
                "/location-twice" => closing(b"HTTP/1.1 302 Found\r\nlocation: /a\r\nlocation: https://pgo.example.nl/cb?code=C0DE\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
                "/location-relative-code" => closing(b"HTTP/1.1 302 Found\r\nlocation: /consent?code=internal&step=2\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
                path @ ("/slow" | "/slower") => Answer::Later(
                    Duration::from_secs(if path == "/slow" { 1 } else { 3 }),
                    Box::new(closing(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow")),
                ),
                _ => closing(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nfine"),
            }
        })
    }

    /// From now on, answers as `script` says.
    pub fn script(&self, script: impl Fn(&Request) -> Answer + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    /// Every request a `302` to `location`, with the signal headers given, and a body that
    /// names a code (which must never reach the client).
    pub fn set(&self, location: &str, used: Option<&str>, birthdate: Option<&str>) {
        let mut headers = Vec::new();
        headers.extend(used.map(|u| ("x-vert-representation".to_owned(), u.to_owned())));
        headers.extend(birthdate.map(|b| ("x-vert-birthdate".to_owned(), b.to_owned())));
        let location = location.to_owned();
        self.script(move |_| Answer::redirect(&location, &headers, "redirecting C0DE"));
    }

    /// Requests whose target starts with `path` get a `302` to `location`, `{state}` and
    /// `{code}` replaced by the `state` and `code` they carried, with these headers; anything
    /// else `200 ok`.
    pub fn answer_path(&self, path: &str, location: &str, headers: &[(&str, &str)]) {
        let (path, location) = (path.to_owned(), location.to_owned());
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.script(move |req| {
            if !req.target.starts_with(&path) {
                return Answer::ok("ok");
            }
            // With the body real ASs write ("Redirecting to …"): it carries the sealed state,
            // so the proxy must keep it from the client, and read it so the connection is
            // reused.
            let location = location
                .replace("{state}", req.param("state"))
                .replace("{code}", req.param("code"));
            Answer::redirect(&location, &headers, &format!("Redirecting to {location}"))
        });
    }

    /// [`Upstream::answer_path`] for authorization requests.
    pub fn answer_authorize(&self, location: &str, headers: &[(&str, &str)]) {
        self.answer_path("/oauth2/authorize", location, headers);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every byte received so far, on all connections.
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    /// Every request read so far, in order of arrival.
    pub fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
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

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits until a request for `path` has arrived: an event to wait for, not a time.
    pub fn wait_request(&self, path: &str) {
        super::wait_until(&format!("a request for {path}"), || {
            self.seen.lock().unwrap().iter().any(|r| r.path() == path)
        });
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
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection's share of the upstream.
#[derive(Clone)]
struct Conn {
    bytes: Arc<Mutex<Vec<u8>>>,
    seen: Arc<Mutex<Vec<Request>>>,
    closed: Arc<AtomicUsize>,
    script: Arc<Mutex<Script>>,
    bodies: Bodies,
    idle_close: Option<Duration>,
}

impl Conn {
    async fn serve(self, mut stream: tokio::net::TcpStream) {
        self.exchange(&mut stream).await;
        self.closed.fetch_add(1, Ordering::SeqCst);
    }

    /// Reads requests and answers them until either side ends the connection.
    async fn exchange(&self, stream: &mut tokio::net::TcpStream) {
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                // Between requests, the idle timeout applies.
                let idle = self.idle_close.filter(|_| pending.is_empty());
                if !self.read_more(stream, &mut pending, idle).await {
                    return;
                }
                continue;
            };
            let raw: Vec<u8> = pending.drain(..end + 4).collect();
            let head = String::from_utf8_lossy(&raw).into_owned();
            let mut request = Request {
                target: head.split_whitespace().nth(1).unwrap_or("/").to_owned(),
                head: head.clone(),
                body: String::new(),
                raw,
            };
            let early = self.bodies == Bodies::IgnoredAfterExpect
                && request
                    .header("expect")
                    .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
            if self.bodies != Bodies::Ignored && !early {
                let length: usize = request
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while pending.len() < length {
                    if !self.read_more(stream, &mut pending, None).await {
                        return;
                    }
                }
                request.body = String::from_utf8_lossy(&pending[..length]).into_owned();
                request.raw.extend(pending.drain(..length));
            }
            self.seen.lock().unwrap().push(request.clone());
            let script = self.script.lock().unwrap().clone();
            if !answer(stream, script(&request)).await {
                return;
            }
        }
    }

    /// Reads what comes, recording it; false when the connection ended (or stayed idle).
    async fn read_more(
        &self,
        stream: &mut tokio::net::TcpStream,
        pending: &mut Vec<u8>,
        idle: Option<Duration>,
    ) -> bool {
        let mut buf = [0u8; 4096];
        let read = stream.read(&mut buf);
        let n = match idle {
            None => read.await,
            Some(idle) => match tokio::time::timeout(idle, read).await {
                Ok(read) => read,
                Err(_) => return false,
            },
        };
        match n {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.bytes.lock().unwrap().extend_from_slice(&buf[..n]);
                pending.extend_from_slice(&buf[..n]);
                true
            }
        }
    }
}

/// Acts out an answer; false when the connection is to end (a reset, a hang, `connection:
/// close`, or the peer gone).
async fn answer(stream: &mut tokio::net::TcpStream, answer: Answer) -> bool {
    match answer {
        Answer::Bytes(bytes) => {
            let closing = String::from_utf8_lossy(&bytes)
                .to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n");
            stream.write_all(&bytes).await.is_ok() && !closing
        }
        Answer::ResetAfter(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            if !bytes.is_empty() {
                // The part reaches the proxy before the reset does.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = socket2::SockRef::from(&*stream).set_linger(Some(Duration::ZERO));
            false
        }
        Answer::Hang => {
            let mut buf = [0u8; 1024];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            false
        }
        Answer::Later(delay, then) => {
            tokio::time::sleep(delay).await;
            Box::pin(self::answer(stream, *then)).await
        }
    }
}
