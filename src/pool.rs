//! Keep-alive connections to the one upstream, one pool per worker.
//!
//! hyper-util's general-purpose client keys its pool by scheme and authority (SipHash on every
//! checkout and return), boxes and re-wraps every request and stores connection info in every
//! response's extensions; for a proxy with exactly one upstream that is a large share of the
//! time it spends per request. This pool is a list: take the most recently used connection,
//! give it back when the response body has been read to the end.
//!
//! A connection taken from the pool may have been closed by the upstream a moment ago (its
//! keep-alive timeout): when hyper hands the request back unsent, it is sent again on another
//! connection. A request that may have reached the upstream is never sent twice.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config;

/// Why the upstream gave no response.
#[derive(Debug)]
pub enum PoolError {
    Connect(io::Error),
    ConnectTimeout,
    /// The HTTP exchange failed (the upstream closed the connection, sent garbage, …).
    Http(hyper::Error),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Connect(e) => write!(f, "connect: {e}"),
            PoolError::ConnectTimeout => write!(f, "connect: upstream.connect_timeout elapsed"),
            PoolError::Http(e) => {
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

impl PoolError {
    pub fn is_connect(&self) -> bool {
        matches!(self, PoolError::Connect(_) | PoolError::ConnectTimeout)
    }
}

struct Idle {
    sender: SendRequest<Incoming>,
    since: Instant,
}

struct Inner {
    authority: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Most recently used at the back.
    idle: Mutex<VecDeque<Idle>>,
}

impl Inner {
    fn take(&self) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(entry) = idle.pop_back() {
            if !entry.sender.is_closed() && entry.since.elapsed() < self.idle_timeout {
                return Some(entry.sender);
            }
        }
        None
    }

    fn give_back(&self, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The oldest sit at the front: drop the ones past their time while we are here.
        while idle.front().is_some_and(|e| {
            now.duration_since(e.since) >= self.idle_timeout || e.sender.is_closed()
        }) {
            idle.pop_front();
        }
        if idle.len() < self.max_idle {
            idle.push_back(Idle { sender, since: now });
        }
    }
}

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    pub fn new(cfg: &config::Upstream) -> Self {
        Pool {
            inner: Arc::new(Inner {
                authority: cfg.authority.to_string(),
                connect_timeout: cfg.connect_timeout,
                idle_timeout: cfg.pool_idle_timeout,
                max_idle: cfg.pool_max_idle,
                idle: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// Sends a request (origin-form URI, `Host` set) and returns the response head; the body
    /// streams, and gives the connection back when read to the end.
    pub async fn send(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Response<PooledBody>, PoolError> {
        loop {
            let (mut sender, reused) = match self.inner.take() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            if let Err(e) = std::future::poll_fn(|cx| sender.poll_ready(cx)).await {
                if reused {
                    continue; // closed while idle
                }
                return Err(PoolError::Http(e));
            }
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let pool = self.inner.clone();
                    return Ok(response.map(|body| PooledBody {
                        body,
                        lease: Some((sender, pool)),
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: the pooled connection was going away. Try another.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(PoolError::Http(e.into_error())),
                },
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Incoming>, PoolError> {
        let connect = TcpStream::connect(self.inner.authority.as_str());
        let stream = tokio::time::timeout(self.inner.connect_timeout, connect)
            .await
            .map_err(|_| PoolError::ConnectTimeout)?
            .map_err(PoolError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            // As on the client side (server.rs): small messages, one write.
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// An upstream response body that gives its connection back to the pool once read to the end.
/// Dropped before the end, the connection goes with it (HTTP/1.1 cannot skip the rest).
pub struct PooledBody {
    body: Incoming,
    lease: Option<(SendRequest<Incoming>, Arc<Inner>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((sender, pool)) = self.lease.take() {
            pool.give_back(sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if frame.is_none() {
            self.release();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body known to be empty (a redirect, a 204) is never polled to its end.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}
