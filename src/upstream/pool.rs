//! Keep-alive connections to the one upstream, one pool per worker: the idle list
//! ([`crate::upstream::idle`]), new connections ([`crate::upstream::connector`]), and here the
//! way of one request ([`Sending`]) and the body that gives its connection back.
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
//!
//! `upstream.response_timeout` and `upstream.pool_idle_timeout` are kept by each connection's
//! [`TimedIo`]: one timer per connection, none per request, and no clock read by the pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;

use crate::config;
use crate::ops::metrics::Metrics;
use crate::timed_io::InFlight;
use crate::upstream::connector::{Conn, Connector};
use crate::upstream::error::PoolError;
use crate::upstream::idle::IdleList;
use crate::vocab::Buffered;

struct Inner {
    connector: Connector,
    /// A connection idle for `upstream.pool_idle_timeout` closes itself ([`TimedIo`]).
    idle: IdleList<Conn>,
}

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Idle connections now (for tests that wait for one to come back).
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.inner.idle.kept()
    }

    pub fn new(cfg: &config::UpstreamConfig, metrics: Arc<Metrics>) -> Self {
        Pool {
            inner: Arc::new(Inner {
                connector: Connector::new(cfg, metrics),
                idle: IdleList::new(cfg.pool_max_idle),
            }),
        }
    }

    /// Sends a request (origin-form URI, `Host` set) and returns the response head; the body
    /// streams, and gives the connection back when read to the end.
    pub fn send(&self, req: Request<Buffered>) -> Sending {
        let mut sending = Sending {
            state: Step::Done,
            pool: self.inner.clone(),
            req: None,
            in_flight: InFlight::none(),
        };
        sending.state = match self.inner.idle.take() {
            // The usual way: an idle connection that takes the request now. Handed to hyper
            // here, the request is never stored in (and moved with) this future.
            Some(conn) if conn.sender.is_ready() => sending.exchange(conn, true, req),
            Some(conn) => {
                sending.req = Some(Box::new(req));
                Step::Ready { conn, reused: true }
            }
            None => {
                sending.req = Some(Box::new(req));
                Step::connect(&self.inner)
            }
        };
        sending
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<Conn, PoolError>> + Send>>;

type Exchange = Pin<
    Box<dyn Future<Output = Result<Response<Incoming>, TrySendError<Request<Buffered>>>> + Send>,
>;

/// One request's way through the pool: [`Pool::send`]'s future. Written out rather than an
/// `async fn`, whose state would move the request (a few hundred bytes) at every step: here
/// the request goes to hyper as it arrives when an idle connection is ready for it, and waits
/// boxed otherwise; the steps move only handles.
pub struct Sending {
    pool: Arc<Inner>,
    state: Step,
    /// Until a connection takes it; back here when hyper hands it back unsent.
    req: Option<Box<Request<Buffered>>>,
    in_flight: InFlight,
}

/// Where a request is on its way.
enum Step {
    /// No idle connection: making one (rare, so boxed).
    Connecting(Connecting),
    /// A connection, waiting for it to take the request. `reused`: it came from the idle list,
    /// so it may have been closed while idle.
    Ready { conn: Conn, reused: bool },
    /// Sent, until the response head is there.
    Exchanging {
        conn: Conn,
        reused: bool,
        exchange: Exchange,
    },
    /// The response (or the error) was handed out.
    Done,
}

impl Step {
    fn connect(pool: &Arc<Inner>) -> Step {
        let pool = pool.clone();
        Step::Connecting(Box::pin(async move { pool.connector.connect().await }))
    }

    fn next_connection(pool: &Arc<Inner>) -> Step {
        match pool.idle.take() {
            Some(conn) => Step::Ready { conn, reused: true },
            None => Step::connect(pool),
        }
    }
}

impl Sending {
    /// Hands `req` to `conn`, which is ready for it.
    fn exchange(&mut self, mut conn: Conn, reused: bool, req: Request<Buffered>) -> Step {
        self.in_flight = conn.activity.start();
        let exchange = Box::pin(conn.sender.try_send_request(req));
        Step::Exchanging {
            conn,
            reused,
            exchange,
        }
    }
}

impl Future for Sending {
    type Output = Result<Response<PooledBody>, PoolError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            // Each step owns what it waits on; a step that is not ready is put back.
            this.state = match std::mem::replace(&mut this.state, Step::Done) {
                Step::Connecting(mut connect) => match connect.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = Step::Connecting(connect);
                        return Poll::Pending;
                    }
                    Poll::Ready(connected) => Step::Ready {
                        conn: connected?,
                        reused: false,
                    },
                },
                Step::Ready { mut conn, reused } => match conn.sender.poll_ready(cx) {
                    Poll::Pending => {
                        this.state = Step::Ready { conn, reused };
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(())) => {
                        let req = this.req.take().expect("a request not yet sent");
                        this.exchange(conn, reused, *req)
                    }
                    // Closed while idle: another.
                    Poll::Ready(Err(_)) if reused => Step::next_connection(&this.pool),
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(PoolError::exchange(e, &conn.activity)));
                    }
                },
                Step::Exchanging {
                    conn,
                    reused,
                    mut exchange,
                } => match exchange.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = Step::Exchanging {
                            conn,
                            reused,
                            exchange,
                        };
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(response)) => {
                        this.in_flight.finish();
                        let lease = Some((conn, this.pool.clone()));
                        return Poll::Ready(Ok(response.map(|body| PooledBody {
                            body: Some(body),
                            lease,
                        })));
                    }
                    Poll::Ready(Err(mut e)) => match e.take_message() {
                        // Not sent: the pooled connection was going away. Another.
                        Some(unsent) if reused => {
                            this.req = Some(Box::new(unsent));
                            Step::next_connection(&this.pool)
                        }
                        _ => {
                            let error = PoolError::exchange(e.into_error(), &conn.activity);
                            return Poll::Ready(Err(error));
                        }
                    },
                },
                Step::Done => panic!("Sending polled after it completed"),
            };
        }
    }
}

/// An upstream response body that gives its connection back to the pool once read to the end.
/// Dropped before the end, the connection goes with it (HTTP/1.1 cannot skip the rest).
pub struct PooledBody {
    /// `None` once handed to a drain ([`crate::pages::Drainable`]): an empty body.
    body: Option<Incoming>,
    lease: Option<(Conn, Arc<Inner>)>,
}

/// How long a drained body may take to arrive whole before its connection is given up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl crate::pages::Drainable for PooledBody {
    /// The rest of the body is read by a task of its own, which gives the connection back at
    /// the end: the client's response cannot carry it (hyper drops a body under
    /// `Content-Length: 0` unread), and a new upstream connection per released redirect costs
    /// more than the task (callgrind).
    fn drained(mut self) -> Self {
        if let Some(body) = self.body.take() {
            let mut rest = PooledBody {
                body: Some(body),
                lease: self.lease.take(),
            };
            if rest.is_end_stream() {
                rest.release();
                return self;
            }
            // A redirect's few bytes usually came with its head: what is there is read now,
            // and when that is the end (the connection given back by `poll_frame`) no task is
            // needed (callgrind: about 1,100 instructions a released redirect). Otherwise the
            // task reads the rest; its first poll replaces the waker that saw nothing.
            let mut cx = Context::from_waker(std::task::Waker::noop());
            loop {
                match Pin::new(&mut rest).poll_frame(&mut cx) {
                    Poll::Ready(Some(Ok(_))) => {}
                    // The end, or a broken body (its connection is not reused).
                    Poll::Ready(None | Some(Err(_))) => return self,
                    Poll::Pending => break,
                }
            }
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let read = async {
                        use http_body_util::BodyExt as _;
                        while let Some(Ok(_)) = rest.frame().await {}
                    };
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, read).await;
                });
            }
        }
        self
    }
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((conn, pool)) = self.lease.take() {
            pool.idle.give_back(conn);
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
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(body).poll_frame(cx));
        if frame.is_none() {
            self.release();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body known to be empty (a redirect, a 204) is never polled to its end.
        if self.body.as_ref().is_some_and(Incoming::is_end_stream) {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Full};
    use hyper::server::conn::http1 as server;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tokio::net::TcpListener;

    /// An upstream on 127.0.0.1:0 answering `200` with a body of `len` bytes; it counts the
    /// connections it accepts, and with `close_idle` closes each connection after one answer.
    async fn upstream(len: usize, close_idle: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| async move {
                        let body = Full::new(Bytes::from(vec![b'x'; len]));
                        Ok::<_, Infallible>(Response::new(body))
                    });
                    let mut http = server::Builder::new();
                    http.timer(TokioTimer::new()).keep_alive(!close_idle);
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        (addr, accepted)
    }

    fn pool(authority: &str) -> (Pool, Arc<Metrics>) {
        let metrics = Metrics::new();
        let cfg = config::UpstreamConfig {
            authority: authority.parse().unwrap(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(30),
            pool_max_idle: 4,
            health_path: None,
        };
        (Pool::new(&cfg, metrics.clone()), metrics)
    }

    fn get() -> Request<Buffered> {
        Request::get("/x")
            .header("host", "as")
            .body(Buffered::default())
            .unwrap()
    }

    /// Sends one request and reads its body to the end.
    async fn exchange(pool: &Pool) -> usize {
        let response = pool.send(get()).await.unwrap();
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .len()
    }

    #[tokio::test]
    async fn a_connection_is_kept_alive_and_reused() {
        let (addr, accepted) = upstream(10, false).await;
        let (pool, _) = pool(&addr);
        for _ in 0..5 {
            assert_eq!(exchange(&pool).await, 10);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
        let (addr, accepted) = upstream(100_000, false).await;
        let (pool, _) = pool(&addr);
        let response = pool.send(get()).await.unwrap();
        drop(response); // HTTP/1.1 cannot skip the rest of a body
        assert_eq!(exchange(&pool).await, 100_000);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // The second one, read to its end, is reused.
        assert_eq!(exchange(&pool).await, 100_000);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_drained_body_yields_nothing_and_its_connection_is_reused() {
        use crate::pages::Drainable;
        let (addr, accepted) = upstream(1000, false).await;
        let (pool, _) = pool(&addr);
        for _ in 0..3 {
            let body = pool.send(get()).await.unwrap().into_body().drained();
            assert_eq!(body.size_hint().exact(), Some(0));
            assert_eq!(body.collect().await.unwrap().to_bytes().len(), 0);
            // The drain gives the connection back when the rest has been read.
            while pool.idle() == 0 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "read to its end: reused"
        );
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_used_again() {
        let (addr, accepted) = upstream(10, true).await;
        let (pool, _) = pool(&addr);
        for n in 1..=3 {
            assert_eq!(exchange(&pool).await, 10);
            assert_eq!(accepted.load(Ordering::SeqCst), n);
        }
    }

    #[tokio::test]
    async fn a_refused_connect_is_an_error_and_counted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (pool, metrics) = pool(&format!("127.0.0.1:{port}"));
        let Err(error) = pool.send(get()).await else {
            panic!("a response from a closed port")
        };
        assert!(error.is_connect(), "{error}");
        assert!(
            metrics
                .encode()
                .contains("medmij_vert_upstream_connect_failures_total 1")
        );
    }
}
