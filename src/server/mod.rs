//! The listener: worker threads, each a single-threaded runtime with its own accept loop
//! (`SO_REUSEPORT`) and its own upstream pool, so that a request never crosses threads; TLS;
//! the connection cap; the layer stack of each connection; reload; graceful shutdown.

pub mod drain;
pub mod live;
pub mod ocl;
pub mod resources;
pub mod service;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceBuilder;

use crate::config::{Config, Listen, Redis, StoreConfig};
use crate::guard::{AuthorizeLayer, Guard, ReleaseLayer, TokenGuardLayer};
use crate::ops::admin::{self, Admin};
use crate::ops::metrics::Metrics;
use crate::ops::ocl::OclHealth;
use crate::ops::record::RecordLayer;
use crate::ops::telemetry;
use crate::pages::BRANDING;
use crate::seam::limits::LimitsLayer;
use crate::seam::paths::Routes;
use crate::seam::router::RouteLayer;
use crate::seam::sanitize::SanitizeLayer;
use crate::server::drain::{Drain, Watcher};
use crate::server::live::Live;
use crate::server::resources::Resources;
use crate::server::service::PerConnection;
use crate::server::tls::Tls;
use crate::state::store::{MemoryStore, RedisStore, Store};
use crate::timed_io::{Activity, IoTimeouts, TimedIo, Tracked};
use crate::upstream::error_pages::ErrorPagesLayer;
use crate::upstream::pool::Pool;
use crate::upstream::proxy::{Upstream, UpstreamFactory};
use crate::vocab::Peer;

/// A running proxy.
pub struct Running {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    admin: Option<Admin>,
    /// Drives the Redis connection, when the records are in Redis.
    store_runtime: Option<StoreRuntime>,
    /// Keeps the OCL from `clients.ocl_url` current.
    ocl: Option<ocl::OclTask>,
}

impl Running {
    /// The address it listens on (with the real port when the config said port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when `admin.addr` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::addr)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Reads the files the config names again (SIGHUP): client list, state keys, TLS
    /// certificate. Each is checked before it replaces the one in use; a bad one keeps the
    /// old one running, is logged and counted (`medmij_vert_reloads_total`).
    pub fn reload(&self) {
        let shared = &self.shared;
        shared.live.reload(&shared.config, &shared.metrics);
        if let Some(ocl) = &self.ocl {
            ocl.trigger();
        }
        if let Some(tls) = &shared.tls {
            live::reload_one("tls", tls.reload(), &shared.metrics, |()| {
                tracing::info!("TLS certificate reloaded");
                if let Some(not_after) = tls.not_after() {
                    shared.metrics.tls_not_after(not_after);
                }
            });
        }
    }

    /// Fetches `clients.ocl_url` now and returns when that is done (not from within a
    /// runtime: it blocks). Nothing without the key.
    pub fn refresh_ocl(&self) {
        if let Some(ocl) = &self.ocl {
            ocl.refresh();
        }
    }

    /// Stops accepting (new connections are refused), lets requests in flight finish within
    /// `listen.shutdown_grace`, then returns.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for worker in self.workers {
            let _ = worker.join();
        }
        if let Some(admin) = self.admin {
            admin.shutdown();
        }
        drop(self.store_runtime);
        drop(self.ocl);
    }
}

/// A thread with a runtime of its own for the Redis connection manager, whose background
/// task must outlive any one request (workers use it from their own runtimes).
struct StoreRuntime {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StoreRuntime {
    fn start(
        config: &crate::config::StoreConfig,
        redis: &Redis,
    ) -> io::Result<(Arc<dyn Store>, Self)> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (made, store) = std::sync::mpsc::channel();
        let (redis, timeout, min_replicas) = (redis.clone(), config.timeout, config.min_replicas);
        let thread = crate::runtime::spawn_thread("vert-store", move || async move {
            let _ = made.send(RedisStore::new(&redis, timeout, min_replicas));
            let _ = stopped.await;
        })?;
        let store = store
            .recv()
            .map_err(|_| io::Error::other("store: the store thread ended"))?
            .map_err(|e| io::Error::other(format!("store: {e}")))?;
        Ok((
            Arc::new(store),
            StoreRuntime {
                stop: Some(stop),
                thread: Some(thread),
            },
        ))
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What every worker shares.
struct Shared {
    config: Config,
    authorize: AuthorizeLayer,
    release: ReleaseLayer,
    token_guard: TokenGuardLayer,
    router: RouteLayer,
    limits: LimitsLayer,
    record: RecordLayer,
    trusted: Vec<IpNet>,
    connections: Arc<Semaphore>,
    tls: Option<Tls>,
    metrics: Arc<Metrics>,
    /// The client list, keys, branding and records; reloaded here, read by the layers.
    live: Live,
}

/// Binds the listener(s) (and the admin listener) and starts the workers.
pub fn start(config: Config, resources: Resources) -> io::Result<Running> {
    let workers = match config.listen.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let tls = match &config.listen.tls {
        Some(files) => Some(Tls::new(files).map_err(io::Error::other)?),
        None => None,
    };
    let listeners = bind(config.listen.addr, workers)?;
    let addr = listeners[0].local_addr()?;
    let (metrics, ocl_health) = match &config.clients.ocl_url {
        None => (Metrics::new(), None),
        Some(ocl) => (
            Metrics::with_ocl(),
            Some(Arc::new(OclHealth::new(ocl.max_age))),
        ),
    };
    if let Some(not_after) = tls.as_ref().and_then(Tls::not_after) {
        metrics.tls_not_after(not_after);
    }
    let admin = match config.admin.addr {
        Some(admin_addr) => Some(admin::start(
            admin_addr,
            metrics.clone(),
            &config.upstream,
            ocl_health.clone(),
        )?),
        None => None,
    };
    let (store, store_runtime) = open_store(&config.store)?;
    let live = Live::new(&config, resources, store, &metrics);
    let ocl = match ocl_health {
        Some(health) => ocl::start(&config, live.clients.clone(), health, metrics.clone())?,
        None => None,
    };
    let (authorize, release, token_guard, router) = rule_layers(&config, &live, &metrics);
    let shared = Arc::new(Shared {
        authorize,
        release,
        token_guard,
        router,
        limits: LimitsLayer::new(&config.listen),
        record: RecordLayer::new(metrics.clone()),
        trusted: config.listen.trusted_proxies.clone(),
        connections: Arc::new(Semaphore::new(config.listen.max_connections)),
        tls,
        metrics,
        live,
        config,
    });
    let (tx, rx) = watch::channel(false);
    let handles = spawn_workers(&shared, listeners, &rx)?;
    Ok(Running {
        addr,
        shutdown: tx,
        workers: handles,
        shared,
        admin,
        store_runtime,
        ocl,
    })
}

/// The records: in-process, or in the Redis `[store]` names (on a runtime of its own).
fn open_store(config: &StoreConfig) -> io::Result<(Arc<dyn Store>, Option<StoreRuntime>)> {
    Ok(match &config.redis {
        None => (Arc::new(MemoryStore::new(config.max_entries)), None),
        Some(redis) => {
            let (store, runtime) = StoreRuntime::start(config, redis)?;
            (store, Some(runtime))
        }
    })
}

/// The layers that apply the rules (the three policy points: authorize, release, token), and
/// the router that decides which requests they see.
fn rule_layers(
    config: &Config,
    live: &Live,
    metrics: &Arc<Metrics>,
) -> (AuthorizeLayer, ReleaseLayer, TokenGuardLayer, RouteLayer) {
    let guard = Arc::new(Guard::new(
        config,
        live.clients.clone(),
        live.keys.clone(),
        live.records.clone(),
        metrics.clone(),
    ));
    let token_guard = match &config.token_guard {
        Some(t) => TokenGuardLayer::new(
            live.records.clone(),
            live.clients.clone(),
            &t.path,
            metrics.clone(),
        ),
        None => TokenGuardLayer::off(live.records.clone()),
    };
    let routes = Routes::new(
        &config.oauth.authorize_path,
        config.token_guard.as_ref().map(|t| t.path.as_str()),
        config.oauth.case_insensitive_paths,
    );
    (
        AuthorizeLayer::new(guard.clone()),
        ReleaseLayer::new(guard),
        token_guard,
        RouteLayer::new(routes),
    )
}

/// One thread per listening socket, each with its own runtime ([`run_worker`]).
fn spawn_workers(
    shared: &Arc<Shared>,
    listeners: Vec<std::net::TcpListener>,
    shutdown: &watch::Receiver<bool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let rx = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("vert-worker-{i}"))
            .spawn(move || {
                if let Err(e) = run_worker(&shared, listener, rx) {
                    tracing::error!(error = %e, "worker stopped");
                }
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// One listening socket per worker, all on the same address: the kernel spreads connections.
fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(count);
    for _ in 0..count {
        // After the first bind, port 0 has become a real port.
        let addr = listeners.first().map_or(Ok(addr), |l| l.local_addr())?;
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        socket.set_reuse_port(count > 1)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        listeners.push(socket.into());
    }
    Ok(listeners)
}

fn run_worker(
    shared: &Arc<Shared>,
    listener: std::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listen = &shared.config.listen;
        let listener = TcpListener::from_std(listener)?;
        let upstream = UpstreamFactory::new(
            Pool::new(&shared.config.upstream, shared.metrics.clone()),
            &shared.config.upstream,
            shared.metrics.clone(),
        );
        let http = Arc::new(client_http(listen));
        let timeouts = IoTimeouts::client(listen.header_read_timeout, listen.idle_timeout);
        let drain = Drain::default();
        loop {
            let (stream, peer) = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        crate::runtime::accept_failed(&e, "public").await;
                        continue;
                    }
                },
            };
            let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
                tokio::spawn(refuse_over_capacity(stream));
                continue;
            };
            let _ = stream.set_nodelay(true);
            let trusted = shared.trusted.iter().any(|net| net.contains(&peer.ip()));
            crate::seam::forwarded::warn_if_an_unnamed_balancer(peer.ip(), shared.trusted.len());
            let peer = Peer::new(peer.ip(), trusted, shared.tls.is_some());
            let connection = Connection {
                shared: shared.clone(),
                upstream: upstream.for_peer(peer.clone()),
                peer,
                activity: Arc::new(Activity::default()),
                http: http.clone(),
                drain: drain.watcher(),
            };
            // Timeouts count raw bytes, so the TLS handshake is under the head's timeout.
            let io = TimedIo::new(stream, connection.activity.clone(), timeouts);
            let open = Open::new(&shared.metrics);
            let branding = shared.live.branding.clone();
            tokio::spawn(BRANDING.scope(branding, async move {
                match &connection.shared.tls {
                    None => connection.serve(io).await,
                    Some(tls) => match tls.acceptor().accept(io).await {
                        Ok(tls_stream) => connection.serve(tls_stream).await,
                        Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                    },
                }
                drop((open, permit));
            }));
        }
        // New connections are refused from here on.
        drop(listener);
        let open = drain.count();
        tokio::select! {
            _ = drain.shutdown() => {}
            _ = tokio::time::sleep(listen.shutdown_grace) => {
                tracing::warn!(connections = open, "listen.shutdown_grace over; closing connections still open");
            }
        }
        Ok(())
    })
}

/// hyper's HTTP/1 server side, as every client connection of a worker speaks it.
fn client_http(listen: &Listen) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .keep_alive(true)
        // Messages to and from an AS are small: one buffer and one write() cost fewer
        // instructions than a vectored write of head and body (callgrind).
        .writev(false)
        // Kept by TimedIo per connection: hyper's own costs a timer per request.
        .header_read_timeout(None)
        .max_header_size(listen.max_header_bytes);
    // hyper keeps up to 100 headers on the stack; any other limit costs a heap allocation
    // per request, so it is only set when the operator asks for it.
    if listen.max_headers != 100 {
        http.max_headers(listen.max_headers);
    }
    http
}

/// One client connection, until its stream is ready to serve (after the TLS handshake).
struct Connection {
    shared: Arc<Shared>,
    upstream: Upstream,
    /// Who the client is (the guard counts releases by it), for this connection's stack.
    peer: Peer,
    activity: Arc<Activity>,
    http: Arc<http1::Builder>,
    /// Closes the connection gracefully when the worker drains.
    drain: Watcher,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let shared = &self.shared;
        // The whole stack, outermost first: what the client sent is cleaned before any
        // layer decides or adds anything.
        let service = ServiceBuilder::new()
            .layer(shared.record.clone()) // requests by route and status class
            .layer(SanitizeLayer) // hop-by-hop, overrides, `_` names, one Host, no stray body
            .layer(shared.router.clone()) // the route, decided once from one reading of the path
            .layer(shared.limits) // target length; body buffered, bounded, timed
            .layer(shared.authorize.clone()) // MedMij: authorization requests decided
            .layer(shared.release.for_peer(self.peer)) // MedMij: codes released or withheld
            .layer(shared.token_guard.clone()) // only released codes reach the token endpoint
            .layer(ErrorPagesLayer) // no upstream answer: 502 / 504 page
            .service(self.upstream);
        let service = Tracked::new(service, self.activity);
        let io = TokioIo::new(io);
        // Two branches, two service types: the access log costs nothing when it is off.
        let result = if shared.config.log.access {
            let service = ServiceBuilder::new()
                .layer(telemetry::access_log())
                .service(service);
            let conn = self.http.serve_connection(io, PerConnection::new(service));
            self.drain.watch(conn).await
        } else {
            let conn = self.http.serve_connection(io, PerConnection::new(service));
            self.drain.watch(conn).await
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Counts a client connection in `medmij_vert_open_connections` while it lives.
struct Open(Arc<Metrics>);

impl Open {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.connection_opened();
        Open(metrics.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// `listen.max_connections` reached: a short, deliberate answer instead of a silent wait.
async fn refuse_over_capacity(mut stream: TcpStream) {
    tracing::warn!("listen.max_connections reached: 503");
    let answer = async {
        stream
            .write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
            )
            .await?;
        stream.shutdown().await
    };
    // A peer that does not read cannot hold the task.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), answer).await;
}
