//! A new connection to the upstream: TCP within `upstream.connect_timeout`, the connection's
//! own timer ([`TimedIo`]), hyper's HTTP/1 handshake, and the task that drives it.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config;
use crate::ops::metrics::Metrics;
use crate::timed_io::{Activity, IoTimeouts, TimedIo};
use crate::upstream::error::PoolError;
use crate::upstream::idle::Reusable;
use crate::vocab::Buffered;

/// A connection: the handle to send on, and what its timer learns from.
pub struct Conn {
    pub sender: SendRequest<Buffered>,
    pub activity: Arc<Activity>,
}

impl Reusable for Conn {
    fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

pub struct Connector {
    authority: String,
    connect_timeout: Duration,
    timeouts: IoTimeouts,
    metrics: Arc<Metrics>,
}

impl Connector {
    pub fn new(cfg: &config::UpstreamConfig, metrics: Arc<Metrics>) -> Self {
        Connector {
            authority: cfg.authority.to_string(),
            connect_timeout: cfg.connect_timeout,
            timeouts: IoTimeouts::upstream(cfg.response_timeout, cfg.pool_idle_timeout),
            metrics,
        }
    }

    pub async fn connect(&self) -> Result<Conn, PoolError> {
        let connect = TcpStream::connect(self.authority.as_str());
        let stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| PoolError::ConnectTimeout)
            .and_then(|connected| connected.map_err(PoolError::Connect))
            .inspect_err(|_| self.metrics.upstream_connect_failed())?;
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = TimedIo::new(stream, activity.clone(), self.timeouts);
        let (sender, connection) = http1::Builder::new()
            // As on the client side (server.rs): small messages, one write.
            .writev(false)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| PoolError::exchange(e, &activity))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Conn { sender, activity })
    }
}
