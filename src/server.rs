//! The listener: worker threads, each a single-threaded runtime with its own accept loop
//! (`SO_REUSEPORT`) and its own upstream pool, so that a request never crosses threads; the
//! connection cap; graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceBuilder;

use crate::config::Config;
use crate::conn::{Activity, Limits, TimedIo, Tracked};
use crate::drain::Drain;
use crate::error_pages::ErrorPagesLayer;
use crate::forwarded::Peer;
use crate::guard::{Guard, VertGuardLayer};
use crate::limits::LimitsLayer;
use crate::pool::Pool;
use crate::proxy::UpstreamFactory;
use crate::resources::Resources;
use crate::sanitize::SanitizeLayer;
use crate::telemetry;

/// A running proxy.
pub struct Running {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// The address it listens on (with the real port when the config said port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting (new connections are refused), lets requests in flight finish within
    /// `listen.shutdown_grace`, then returns.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

/// What every worker shares.
struct Shared {
    config: Config,
    guard: VertGuardLayer,
    limits: LimitsLayer,
    trusted: Vec<IpNet>,
    connections: Arc<Semaphore>,
}

/// Binds the listener(s) and starts the workers.
pub fn start(config: Config, resources: Resources) -> io::Result<Running> {
    let workers = match config.listen.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let listeners = bind(config.listen.addr, workers)?;
    let addr = listeners[0].local_addr()?;
    let shared = Arc::new(Shared {
        guard: VertGuardLayer::new(Guard::new(&config, resources)),
        limits: LimitsLayer::new(&config.listen),
        trusted: config.listen.trusted_proxies.clone(),
        connections: Arc::new(Semaphore::new(config.listen.max_connections)),
        config,
    });
    let (tx, rx) = watch::channel(false);
    let mut handles = Vec::with_capacity(workers);
    for (i, listener) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let rx = rx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("vert-worker-{i}"))
            .spawn(move || {
                if let Err(e) = run_worker(&shared, listener, rx) {
                    tracing::error!(error = %e, "worker stopped");
                }
            })?;
        handles.push(handle);
    }
    Ok(Running {
        addr,
        shutdown: tx,
        workers: handles,
    })
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
        let upstream = UpstreamFactory::new(Pool::new(&shared.config.upstream), &shared.config.upstream);
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .keep_alive(true)
            // Messages to and from an AS are small: one buffer and one write() cost fewer
            // instructions than a vectored write of head and body (callgrind).
            .writev(false)
            // Kept by TimedIo per connection: hyper's own costs a timer per request.
            .header_read_timeout(None)
            .max_header_size(listen.max_header_bytes);
        let limits = Limits::client(listen.header_read_timeout, listen.idle_timeout);
        // hyper keeps up to 100 headers on the stack; any other limit costs a heap allocation
        // per request, so it is only set when the operator asks for it.
        if listen.max_headers != 100 {
            http.max_headers(listen.max_headers);
        }
        let drain = Drain::default();
        let access_log = shared.config.log.access;
        loop {
            let (stream, peer) = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, most likely: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
            let activity = Arc::new(Activity::default());
            // The whole stack, outermost first: what the client sent is cleaned before any
            // layer decides or adds anything.
            let service = ServiceBuilder::new()
                .layer(SanitizeLayer) // hop-by-hop, overrides, `_` names, one Host, no stray body
                .layer(shared.limits) // target length; body buffered, bounded, timed
                .layer(shared.guard.clone()) // MedMij: authorize decisions in, verdicts out
                .layer(ErrorPagesLayer) // no upstream answer: 502 / 504 page
                .service(upstream.for_peer(Peer::new(peer.ip(), trusted)));
            let service = Tracked::new(service, activity.clone());
            let io = TokioIo::new(TimedIo::new(stream, activity, limits));
            // Two branches, two service types: the access log costs nothing when it is off.
            if access_log {
                let service = ServiceBuilder::new()
                    .layer(telemetry::access_log())
                    .service(service);
                let conn = http.serve_connection(io, TowerToHyperService::new(service));
                tokio::spawn(serve(drain.watch(conn), permit));
            } else {
                let conn = http.serve_connection(io, TowerToHyperService::new(service));
                tokio::spawn(serve(drain.watch(conn), permit));
            }
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

async fn serve<C, E>(conn: C, permit: OwnedSemaphorePermit)
where
    C: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
    drop(permit);
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
