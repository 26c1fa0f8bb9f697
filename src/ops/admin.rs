//! The admin listener (`admin.addr`, off unless set; never the public listener): `GET /live`,
//! `GET /ready`, `GET /metrics`. Its own thread and runtime, so that a busy public side does
//! not starve the probes, and a slow probe does not touch the public side.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use crate::config;
use crate::ops::metrics::Metrics;
use crate::ops::ocl::{OclHealth, OclNotReady};

/// The upstream is probed at most this often; `/ready` in between answers from the last probe.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// A running admin listener.
pub struct Admin {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Why `/ready` says no: the upstream, as the probe found it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotReady {
    #[error("upstream {authority}: no connection within upstream.connect_timeout")]
    ConnectTimeout { authority: String },
    #[error("upstream {authority}: {source}")]
    Connect {
        authority: String,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("upstream {target}: not an HTTP answer")]
    NotHttp { target: String },
    #[error("upstream {target}: {source}")]
    Exchange {
        target: String,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("upstream {target}: no answer within upstream.response_timeout")]
    ResponseTimeout { target: String },
    /// The OCL from `clients.ocl_url`: none yet, or stale (then every flow is refused).
    #[error("{0}")]
    Ocl(#[from] OclNotReady),
}

/// Why `medmij-vert-proxy health` says no.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("admin listener {addr}: {source}")]
    Unreachable {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// What the admin listener answered instead of 200 (its body, or "no answer").
    #[error("{0}")]
    Answered(String),
}

struct State {
    metrics: Arc<Metrics>,
    /// With `clients.ocl_url`: the list in use, as the refresher left it.
    ocl: Option<Arc<OclHealth>>,
    upstream: config::UpstreamConfig,
    /// When the upstream was last probed, and what that said.
    probe: Mutex<Option<(Instant, Result<(), NotReady>)>>,
}

/// Binds `addr` and serves on a thread of its own.
pub fn start(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    upstream: &config::UpstreamConfig,
    ocl: Option<Arc<OclHealth>>,
) -> io::Result<Admin> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State {
        metrics,
        ocl,
        upstream: upstream.clone(),
        probe: Mutex::new(None),
    });
    let (shutdown, mut stopped) = watch::channel(false);
    let thread = crate::runtime::spawn_thread("vert-admin", move || async move {
        let Ok(listener) = TcpListener::from_std(listener) else {
            return;
        };
        loop {
            let stream = tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        crate::runtime::accept_failed(&e, "admin").await;
                        continue;
                    }
                },
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(state, &req).await) }
                });
                let mut http = http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5));
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })?;
    Ok(Admin {
        addr,
        shutdown,
        thread: Some(thread),
    })
}

async fn answer(state: Arc<State>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/live" => text(StatusCode::OK, "live\n".into()),
        "/ready" => match ready(&state).await {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => {
            refresh_readiness(&state);
            if let Some(ocl) = &state.ocl {
                state.metrics.ocl_age(ocl.age());
            }
            let mut response = text(StatusCode::OK, state.metrics.encode());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "/live, /ready, /metrics\n".into()),
    }
}

/// Ready: the config and its files are loaded (they are, or the proxy would not have started;
/// a failed reload keeps the previous ones), and the upstream answered a probe within the
/// last [`PROBE_EVERY`].
async fn ready(state: &State) -> Result<(), NotReady> {
    // No client list, or a stale one: every flow is refused, whatever the AS does.
    if let Some(ocl) = &state.ocl {
        ocl.ready()?;
    }
    // One probe at a time; the others wait for its answer.
    let mut probe = state.probe.lock().await;
    if let Some((at, result)) = &*probe
        && at.elapsed() < PROBE_EVERY
    {
        return result.clone();
    }
    let result = probe_upstream(&state.upstream).await;
    state.metrics.ready(result.is_ok());
    *probe = Some((Instant::now(), result.clone()));
    result
}

/// `medmij_vert_ready` follows the AS also when nothing asks `/ready`: a scrape whose last
/// probe is older than [`PROBE_EVERY`] starts one in the background and answers at once with
/// the last result (a scrape never waits up to `upstream.response_timeout` on a slow AS).
fn refresh_readiness(state: &Arc<State>) {
    let Ok(probe) = state.probe.try_lock() else {
        return; // a probe is running: its result sets the gauge
    };
    if probe
        .as_ref()
        .is_some_and(|(at, _)| at.elapsed() < PROBE_EVERY)
    {
        return;
    }
    drop(probe);
    let state = state.clone();
    tokio::spawn(async move {
        let _ = ready(&state).await;
    });
}

/// A TCP connect within `upstream.connect_timeout`; with `upstream.health_path`, also an
/// HTTP answer of any status on that path within `upstream.response_timeout`.
async fn probe_upstream(upstream: &config::UpstreamConfig) -> Result<(), NotReady> {
    let authority = upstream.authority.as_str();
    let mut stream = tokio::time::timeout(upstream.connect_timeout, TcpStream::connect(authority))
        .await
        .map_err(|_| NotReady::ConnectTimeout {
            authority: authority.to_owned(),
        })?
        .map_err(|e| NotReady::Connect {
            authority: authority.to_owned(),
            source: Arc::new(e),
        })?;
    let Some(path) = &upstream.health_path else {
        return Ok(());
    };
    let exchange = async {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, io::Error>(head)
    };
    let target = format!("{authority}{path}");
    match tokio::time::timeout(upstream.response_timeout, exchange).await {
        Ok(Ok(head)) if head.starts_with(b"HTTP/1.") => Ok(()),
        Ok(Ok(_)) => Err(NotReady::NotHttp { target }),
        Ok(Err(e)) => Err(NotReady::Exchange {
            target,
            source: Arc::new(e),
        }),
        Err(_) => Err(NotReady::ResponseTimeout { target }),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// What `medmij-vert-proxy health` asks the admin listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/live`: the proxy answers. A container's HEALTHCHECK: an orchestrator that replaces
    /// unhealthy containers must not restart a healthy proxy while the AS is down.
    Live,
    /// `/ready`: the AS is reachable too. For load balancers and Kubernetes' readiness probe.
    Ready,
}

/// `medmij-vert-proxy health`: asks the admin listener at `addr` for `/live` or `/ready`. An
/// unspecified address (`0.0.0.0`, `::`) is asked on loopback. `Err` says why not.
pub fn check(addr: SocketAddr, probe: Probe, timeout: Duration) -> Result<(), Unhealthy> {
    use std::io::{Read, Write};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let unreachable = |source| Unhealthy::Unreachable { addr, source };
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(unreachable)?;
    stream
        .write_all(match probe {
            Probe::Live => b"GET /live HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
            Probe::Ready => b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        })
        .map_err(unreachable)?;
    let mut answer = String::new();
    let _ = stream.take(4096).read_to_string(&mut answer);
    if answer.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        let why = answer
            .split("\r\n\r\n")
            .nth(1)
            .map(str::trim)
            .filter(|body| !body.is_empty())
            .unwrap_or("no answer");
        Err(Unhealthy::Answered(why.to_owned()))
    }
}
