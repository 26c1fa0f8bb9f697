//! Client connection timeouts, kept per connection rather than per request:
//!
//! - `listen.header_read_timeout`: a request head must be complete this long after its first
//!   byte (or after the connection opened): a client that trickles its head (slowloris) is cut
//!   off;
//! - `listen.idle_timeout`: a connection with no request in progress and no byte moving either
//!   way for this long is closed: idle keep-alive connections, and clients that stop reading a
//!   response.
//!
//! A request waiting for the upstream is not idle: `upstream.response_timeout` governs it.
//!
//! [`TimedIo`] wraps the socket and learns from [`Tracked`], which wraps the service, when a
//! request starts and when its response is ready. One timer per connection, moved only when it
//! fires early: nothing is allocated or registered per request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What the service side tells the socket side of one connection.
#[derive(Default, Debug)]
pub struct Activity {
    /// Requests handed to the service so far.
    started: AtomicU64,
    /// Requests whose response head is not ready yet.
    in_flight: AtomicU32,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request head since `since`.
    Idle,
    /// A request head is arriving, since `since`.
    Head,
    /// A request is in the service, or its response is being written.
    Busy,
}

/// A client socket with the connection's timeouts.
pub struct TimedIo<T> {
    io: T,
    activity: Arc<Activity>,
    limits: Limits,
    phase: Phase,
    since: Instant,
    seen: u64,
    /// The connection's one timer, and the deadline it is set for.
    timer: Pin<Box<Sleep>>,
    armed: Instant,
}

impl<T> TimedIo<T> {
    pub fn new(io: T, activity: Arc<Activity>, limits: Limits) -> Self {
        let now = Instant::now();
        // A new connection owes us a request head: the header timeout runs from the start.
        let deadline = now + limits.header_read;
        TimedIo {
            io,
            activity,
            limits,
            phase: Phase::Head,
            since: now,
            seen: 0,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            armed: deadline,
        }
    }

    /// Catches up with the service side.
    fn sync(&mut self, now: Instant) {
        let started = self.activity.started.load(Ordering::Acquire);
        if started != self.seen {
            self.seen = started;
            self.phase = Phase::Busy;
        }
        if self.phase == Phase::Busy && self.activity.in_flight.load(Ordering::Acquire) == 0 {
            // The response is being written, or has been: from here, silence counts as idle.
            self.phase = Phase::Idle;
            self.since = now;
        }
    }

    /// Bytes moved. The deadline that follows is armed here too: after writing a response,
    /// hyper may wait for the next request without reading again first.
    fn on_progress(&mut self, read: bool, cx: &mut Context<'_>) {
        let now = Instant::now();
        self.sync(now);
        match self.phase {
            Phase::Idle if read => {
                self.phase = Phase::Head;
                self.since = now;
            }
            Phase::Idle => self.since = now,
            Phase::Head | Phase::Busy => {}
        }
        if let Some(deadline) = self.deadline() {
            self.arm(deadline, cx);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle => Some(self.since + self.limits.idle),
            Phase::Head => Some(self.since + self.limits.header_read),
            Phase::Busy => None,
        }
    }

    /// Makes sure the timer wakes us by `deadline`. It is moved only when it would fire late,
    /// or has fired; one that fires early is moved then. Most requests never touch it.
    fn arm(&mut self, deadline: Instant, cx: &mut Context<'_>) {
        if deadline < self.armed || self.timer.is_elapsed() {
            self.timer.as_mut().reset(deadline);
            self.armed = deadline;
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            // Fired for an earlier deadline that activity has since pushed back.
            self.timer.as_mut().reset(deadline);
            self.armed = deadline;
            let _ = self.timer.as_mut().poll(cx);
        }
    }

    /// Called when the socket has nothing for us: is a deadline past?
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let now = Instant::now();
        self.sync(now);
        let Some(deadline) = self.deadline() else {
            return Ok(());
        };
        if now >= deadline {
            let what = match self.phase {
                Phase::Head => "listen.header_read_timeout",
                _ => "listen.idle_timeout",
            };
            return Err(io::Error::new(io::ErrorKind::TimedOut, what));
        }
        self.arm(deadline, cx);
        Ok(())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.on_progress(true, cx);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                self.check(cx)?;
                Poll::Pending
            }
        }
    }
}

impl<T> TimedIo<T> {
    /// What a write gave: progress for the timeouts, or, when the socket is full, a check.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) if n > 0 => self.on_progress(false, cx),
            Poll::Ready(_) => {}
            Poll::Pending => self.check(cx)?,
        }
        written
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, data);
        self.after_write(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The service of one connection, telling [`TimedIo`] when requests start and when their
/// responses are ready.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::AcqRel);
        self.activity.started.fetch_add(1, Ordering::AcqRel);
        TrackedFuture {
            inner: self.inner.call(req),
            done: Done(Some(self.activity.clone())),
        }
    }
}

/// Marks the request done when its response is ready, or when it is dropped unfinished.
struct Done(Option<Arc<Activity>>);

impl Done {
    fn finish(&mut self) {
        if let Some(activity) = self.0.take() {
            activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        self.finish();
    }
}

pin_project_lite::pin_project! {
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        done: Done,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        this.done.finish();
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits() -> Limits {
        Limits {
            header_read: Duration::from_millis(200),
            idle: Duration::from_millis(400),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_gets_the_header_timeout() {
        let (_client, server) = tokio::io::duplex(64);
        let mut io = TimedIo::new(server, Arc::default(), limits());
        let started = Instant::now();
        let err = io.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "listen.header_read_timeout");
        assert_eq!(started.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_head_is_cut_at_the_header_timeout() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = TimedIo::new(server, Arc::default(), limits());
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if client.write_all(b"G").await.is_err() {
                    break;
                }
            }
        });
        let mut buf = [0u8; 8];
        let err = loop {
            match io.read(&mut buf).await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.to_string(), "listen.header_read_timeout");
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        trickle.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_a_response_gets_the_idle_timeout_not_during_a_request() {
        let (mut client, server) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::default());
        let mut io = TimedIo::new(server, activity.clone(), limits());
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(io.read(&mut [0u8; 64]).await.unwrap() > 0);
        // The request is in the service for longer than both limits: no timeout.
        activity.started.fetch_add(1, Ordering::AcqRel);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        let pending = tokio::time::timeout(Duration::from_secs(2), io.read(&mut [0u8; 8])).await;
        assert!(pending.is_err(), "a request in flight is not idle");
        // The response is ready and written; then silence.
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let idle_from = Instant::now();
        let err = io.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.to_string(), "listen.idle_timeout");
        assert_eq!(idle_from.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timer_is_armed_by_the_write_itself() {
        // hyper may write a response and then wait without reading: the write must arm the
        // idle deadline, or only the connection's earlier, later deadline would wake it.
        let (mut client, server) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::default());
        let mut io = TimedIo::new(
            server,
            activity.clone(),
            Limits {
                header_read: Duration::from_secs(30),
                idle: Duration::from_millis(400),
            },
        );
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(io.read(&mut [0u8; 64]).await.unwrap() > 0);
        activity.started.fetch_add(1, Ordering::AcqRel);
        let written_at = Instant::now();
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        // The task is woken by the timer at the idle deadline, not at the header deadline.
        std::future::poll_fn(|cx| io.timer.as_mut().poll(cx)).await;
        assert_eq!(written_at.elapsed(), Duration::from_millis(400));
    }
}
