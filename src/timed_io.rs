//! Connection timeouts, kept per connection rather than per request, on both sides: the server
//! ([`crate::server`]) times its client connections with it, the pool ([`crate::upstream`]) its
//! upstream connections, so it is a module of its own, beside both.
//!
//! Client connections ([`IoTimeouts::client`]):
//! - `listen.header_read_timeout`: a request head must be complete this long after its first
//!   byte (or after the connection opened): a client that trickles its head (slowloris) is cut
//!   off;
//! - `listen.idle_timeout`: a connection with no request in progress and no byte moving either
//!   way for this long is closed: idle keep-alive connections, and clients that stop reading a
//!   response. A request waiting for the upstream is not idle.
//!
//! Upstream connections ([`IoTimeouts::upstream`]):
//! - `upstream.response_timeout`: the response head must arrive this long after the request
//!   started to go out;
//! - `upstream.pool_idle_timeout`: a pooled connection with nothing in flight and no byte
//!   moving for this long is closed (the pool skips closed ones).
//!
//! [`TimedIo`] wraps the socket and learns from an [`InFlight`] guard per request, held by
//! whoever waits for the response head, when requests start and end. One timer per
//! connection, moved only when it would fire late or has fired, and polled only when moved:
//! nothing is allocated, registered or polled per request.
//!
//! # The contract this module relies on
//!
//! It is correct only while these hold; each is hyper's behaviour today, not its promise, so
//! `tests/it/hostile.rs` (slowloris, a client that stops reading, a stalled upstream) and
//! `bench/ablation.sh` (the crates' timeouts in its place, counted) are the checks to run on
//! every hyper or hyper-util upgrade:
//!
//! 1. **One task polls both directions.** hyper's HTTP/1 connection polls reads and writes of
//!    its IO from the one task that drives it; the timer registers that task's waker and is
//!    re-registered only when the waker changes ([`Waker::will_wake`]). A connection split
//!    across tasks would leave one direction without a timer.
//! 2. **The waker identifies the task.** `will_wake` must be true for the same task, so that
//!    the timer is not re-registered on every poll (the cost the module avoids) and a new task
//!    is never left unregistered.
//! 3. **hyper keeps no timer of its own.** The server sets `header_read_timeout(None)`
//!    (`server/mod.rs`): hyper's default would add a timer per request beside this one.
//! 4. **`max_headers` is left alone at 100.** hyper keeps up to 100 headers on the stack and
//!    allocates for any other limit, so the server sets it only when `listen.max_headers` is
//!    not 100 (`server/mod.rs`); the head-size limit is `max_header_size` either way.
//! 5. **A socket that found nothing wakes the waker it was asked with** (`AsyncRead`'s own
//!    contract, which tokio's sockets keep): a read after one that found nothing is answered
//!    `Pending` without asking the socket, until the socket has woken the task ([`Reads`]).
//!    The timers are checked on such reads as on any other.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What the request side tells the socket side of one connection.
#[derive(Default, Debug)]
pub struct Activity {
    /// Requests started so far.
    started: AtomicU64,
    /// Requests whose response head is not there yet.
    in_flight: AtomicU32,
    /// A limit ended the connection ([`Elapsed`]): the request side reads this when hyper
    /// reports the failed exchange, rather than searching hyper's error for the cause.
    timed_out: AtomicBool,
}

impl Activity {
    /// Whether a limit of the connection was over (its reads and writes then fail).
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }

    /// Marks a request started; it is in flight until the guard is finished or dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::AcqRel);
        InFlight(Some(self.clone()))
    }
}

/// One request in flight; over when its response head is there, or when it is dropped.
#[derive(Debug)]
pub struct InFlight(Option<Arc<Activity>>);

impl InFlight {
    /// A guard for no request.
    pub fn none() -> Self {
        InFlight(None)
    }

    pub fn finish(&mut self) {
        if let Some(activity) = self.0.take() {
            activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One timeout: how long, and the config key named when it fires.
#[derive(Debug, Clone, Copy)]
pub struct IoTimeout {
    pub after: Duration,
    pub key: &'static str,
}

/// The timeouts of one kind of connection, per phase; `None`: the phase may last.
#[derive(Debug, Clone, Copy)]
pub struct IoTimeouts {
    /// The peer started a message head (or owes one from the start): complete it in time.
    head: Option<IoTimeout>,
    /// Nothing in flight and no byte moving.
    idle: Option<IoTimeout>,
    /// A request in flight, from its first byte out.
    busy: Option<IoTimeout>,
}

impl IoTimeouts {
    pub fn client(header_read: Duration, idle: Duration) -> Self {
        IoTimeouts {
            head: Some(IoTimeout {
                after: header_read,
                key: "listen.header_read_timeout",
            }),
            idle: Some(IoTimeout {
                after: idle,
                key: "listen.idle_timeout",
            }),
            busy: None,
        }
    }

    pub fn upstream(response: Duration, pool_idle: Duration) -> Self {
        IoTimeouts {
            // Bytes with nothing in flight are the rest of a body, or the upstream closing.
            head: None,
            idle: Some(IoTimeout {
                after: pool_idle,
                key: "upstream.pool_idle_timeout",
            }),
            busy: Some(IoTimeout {
                after: response,
                key: "upstream.response_timeout",
            }),
        }
    }

    fn of(&self, phase: Phase) -> Option<IoTimeout> {
        match phase {
            Phase::Idle => self.idle,
            Phase::Head => self.head,
            Phase::Busy => self.busy,
        }
    }
}

/// The error a [`TimedIo`] read or write ends with when a limit is over (kind `TimedOut`).
#[derive(Debug)]
pub struct Elapsed {
    pub key: &'static str,
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key)
    }
}

impl std::error::Error for Elapsed {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing in flight, and no byte moving.
    Idle,
    /// The peer is sending a message head.
    Head,
    /// A request is in flight; or, on the client side, its response is being written.
    Busy,
}

/// A socket with its connection's timeouts.
pub struct TimedIo<T> {
    io: T,
    activity: Arc<Activity>,
    timeouts: IoTimeouts,
    phase: Phase,
    /// When the phase's limit is over; `None` when it has none.
    deadline: Option<Instant>,
    seen: u64,
    timer: Timer,
    reads: Reads,
}

impl<T> TimedIo<T> {
    pub fn new(io: T, activity: Arc<Activity>, timeouts: IoTimeouts) -> Self {
        let now = Instant::now();
        // A new client connection owes us a request head: that timeout runs from the start.
        let phase = if timeouts.head.is_some() {
            Phase::Head
        } else {
            Phase::Idle
        };
        let deadline = timeouts.of(phase).map(|limit| now + limit.after);
        TimedIo {
            io,
            activity,
            timeouts,
            phase,
            deadline,
            seen: 0,
            timer: Timer::new(deadline.unwrap_or(now)),
            reads: Reads::new(),
        }
    }

    /// Starts `phase` (again). The clock is read, into `now`, only for a phase with a limit:
    /// this runs on many reads and writes.
    fn enter(&mut self, phase: Phase, now: &mut Option<Instant>) {
        self.phase = phase;
        self.deadline = self
            .timeouts
            .of(phase)
            .map(|limit| *now.get_or_insert_with(Instant::now) + limit.after);
    }

    /// Catches up with the request side. (This and `check` are inlined: they run on most
    /// reads, writes and pending polls of both sides.)
    #[inline]
    fn sync(&mut self, now: &mut Option<Instant>) {
        let started = self.activity.started.load(Ordering::Acquire);
        if started != self.seen {
            self.seen = started;
            self.enter(Phase::Busy, now);
        }
        if self.phase == Phase::Busy && self.activity.in_flight.load(Ordering::Acquire) == 0 {
            // Nothing awaited any more (a response is being written, or has been): from here,
            // silence counts as idle.
            self.enter(Phase::Idle, now);
        }
    }

    /// Bytes moved. The deadline that follows is armed here too: after writing a response,
    /// hyper may wait for the next request without reading again first.
    #[inline(always)]
    fn on_progress(&mut self, read: bool, cx: &mut Context<'_>) {
        let mut now = None;
        self.sync(&mut now);
        if self.phase == Phase::Idle {
            let next = if read && self.timeouts.head.is_some() {
                Phase::Head
            } else {
                Phase::Idle
            };
            self.enter(next, &mut now);
        }
        if let Some(deadline) = self.deadline {
            self.timer.arm(deadline, cx);
        }
    }

    /// Called when the socket has nothing for us: is a deadline past?
    #[inline(always)]
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let mut now = None;
        self.sync(&mut now);
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        if self.timer.wakes_by(deadline, cx) {
            // If the deadline is past, the timer has not fired yet: it will wake us to say so.
            return Ok(());
        }
        if *now.get_or_insert_with(Instant::now) >= deadline {
            let key = self.timeouts.of(self.phase).map_or("timeout", |l| l.key);
            self.activity.timed_out.store(true, Ordering::Release);
            return Err(io::Error::new(io::ErrorKind::TimedOut, Elapsed { key }));
        }
        self.timer.arm(deadline, cx);
        Ok(())
    }
}

/// A connection's one timer.
struct Timer {
    sleep: Pin<Box<Sleep>>,
    /// The deadline it is set for.
    armed: Instant,
    /// The task it wakes, once polled.
    waker: Option<Waker>,
}

impl Timer {
    fn new(deadline: Instant) -> Self {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed: deadline,
            waker: None,
        }
    }

    /// Will this task be woken by `deadline` (or earlier) without anything more being done?
    #[inline]
    fn wakes_by(&self, deadline: Instant, cx: &Context<'_>) -> bool {
        self.armed <= deadline && !self.sleep.is_elapsed() && self.registered(cx)
    }

    #[inline]
    fn registered(&self, cx: &Context<'_>) -> bool {
        self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
    }

    /// Makes sure the task is woken by `deadline`. The timer is moved only when it would fire
    /// late, or has fired; one that fires early is moved then. Most requests never touch it:
    /// that check is inlined where bytes move, the rest is not.
    #[inline(always)]
    fn arm(&mut self, deadline: Instant, cx: &mut Context<'_>) {
        if !self.wakes_by(deadline, cx) {
            self.move_to(deadline, cx);
        }
    }

    #[inline(never)]
    fn move_to(&mut self, deadline: Instant, cx: &mut Context<'_>) {
        let moved = deadline < self.armed || self.sleep.is_elapsed();
        if moved {
            self.sleep.as_mut().reset(deadline);
            self.armed = deadline;
        }
        let registered = self.registered(cx);
        if !moved && registered {
            return;
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            // Past an earlier deadline that activity has since pushed back, not yet fired.
            self.sleep.as_mut().reset(deadline);
            self.armed = deadline;
            if self.sleep.as_mut().poll(cx).is_ready() {
                // `deadline` itself is past: the next check will say so.
                cx.waker().wake_by_ref();
            }
        }
        if !registered {
            self.waker = Some(cx.waker().clone());
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.reads.task_changed(cx) {
            // A task the socket does not know: it must be asked, to be told of this one.
        } else if this.reads.blocked && !this.reads.wake.ready.load(Ordering::Acquire) {
            // The socket said it had nothing and has not woken us since: it still has nothing.
            this.check(cx)?;
            return Poll::Pending;
        }
        // Cleared before asking: a wake from here on is for what this read does not see.
        this.reads.wake.ready.store(false, Ordering::SeqCst);
        this.reads.blocked = false;
        let before = buf.filled().len();
        let mut socket_cx = Context::from_waker(&this.reads.waker);
        match Pin::new(&mut this.io).poll_read(&mut socket_cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.on_progress(true, cx);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.reads.blocked = true;
                this.check(cx)?;
                Poll::Pending
            }
        }
    }
}

/// The reading side's waker. hyper asks the socket for more after most polls of its task,
/// whatever woke the task (the response, a write, a timer), and each such read costs the
/// socket a readiness check and a waker registration that find nothing new (callgrind: several
/// of them a request on each side). The socket is given a waker that notes that it woke the
/// task: until it has, a read after one that found nothing finds nothing, and is not asked.
struct Reads {
    /// For the task that reads now; a new one for another task (its first read is asked of
    /// the socket, which then holds the new one).
    wake: Arc<ReadWake>,
    /// `wake` as a waker, made once per task.
    waker: Waker,
    /// The last read found nothing.
    blocked: bool,
}

impl Reads {
    fn new() -> Self {
        Reads::of(Waker::noop().clone())
    }

    fn of(task: Waker) -> Self {
        let wake = Arc::new(ReadWake {
            ready: AtomicBool::new(false),
            task,
        });
        Reads {
            waker: Waker::from(wake.clone()),
            wake,
            blocked: false,
        }
    }

    /// Whether the task that reads is not the one `wake` wakes (it is made so).
    #[inline]
    fn task_changed(&mut self, cx: &Context<'_>) -> bool {
        if self.wake.task.will_wake(cx.waker()) {
            return false;
        }
        *self = Reads::of(cx.waker().clone());
        true
    }
}

struct ReadWake {
    /// Woken since the last read was asked.
    ready: AtomicBool,
    task: Waker,
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::SeqCst);
        self.task.wake_by_ref();
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

/// The service of one client connection, marking each request in flight until its response
/// head is ready.
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
        TrackedFuture {
            in_flight: self.activity.start(),
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: InFlight,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        this.in_flight.finish();
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A timed end of a pipe, the other end, and the activity it learns from.
    fn timed(timeouts: IoTimeouts) -> (TimedIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        let (io, peer) = tokio::io::duplex(256);
        let activity = Arc::new(Activity::default());
        (TimedIo::new(io, activity.clone(), timeouts), peer, activity)
    }

    fn timeouts() -> IoTimeouts {
        IoTimeouts::client(Duration::from_millis(200), Duration::from_millis(400))
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_gets_the_header_timeout() {
        let (mut io, _client, _) = timed(timeouts());
        let started = Instant::now();
        let err = io.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "listen.header_read_timeout");
        assert_eq!(started.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_head_is_cut_at_the_header_timeout() {
        let (mut io, mut client, _) = timed(timeouts());
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
        let (mut io, mut client, activity) = timed(timeouts());
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(io.read(&mut [0u8; 64]).await.unwrap() > 0);
        // The request is in the service for longer than both limits: no timeout.
        let mut in_flight = activity.start();
        let pending = tokio::time::timeout(Duration::from_secs(2), io.read(&mut [0u8; 8])).await;
        assert!(pending.is_err(), "a request in flight is not idle");
        // The response is ready and written; then silence.
        in_flight.finish();
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let idle_from = Instant::now();
        let err = io.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.to_string(), "listen.idle_timeout");
        assert_eq!(idle_from.elapsed(), Duration::from_millis(400));
    }

    /// A pipe end that counts how often it is asked for bytes.
    struct Counted {
        io: DuplexStream,
        reads: Arc<AtomicU32>,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_socket_that_found_nothing_is_asked_again_only_once_it_woke_the_task() {
        let (io, mut client) = tokio::io::duplex(256);
        let reads = Arc::new(AtomicU32::new(0));
        let counted = Counted {
            io,
            reads: reads.clone(),
        };
        let mut io = TimedIo::new(counted, Arc::new(Activity::default()), timeouts());
        let mut buf = [0u8; 64];
        let mut read = |cx: &mut Context<'_>| {
            let mut buf = ReadBuf::new(&mut buf);
            match Pin::new(&mut io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => Some(buf.filled().len()),
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => None,
            }
        };
        // Nothing there: asked once, then not again until it wakes the task.
        std::future::poll_fn(|cx| {
            assert_eq!(read(cx), None);
            assert_eq!(read(cx), None);
            Poll::Ready(())
        })
        .await;
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        // The write woke the reader: it is asked, and has the bytes.
        let n = std::future::poll_fn(|cx| match read(cx) {
            Some(n) => Poll::Ready(n),
            None => Poll::Pending,
        })
        .await;
        assert_eq!(n, 18);
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        std::future::poll_fn(|cx| {
            assert_eq!(read(cx), None);
            Poll::Ready(())
        })
        .await;
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        // Another task is asked even so: the socket must learn to wake it.
        assert_eq!(read(&mut Context::from_waker(Waker::noop())), None);
        assert_eq!(reads.load(Ordering::SeqCst), 4);
    }

    fn upstream() -> IoTimeouts {
        IoTimeouts::upstream(Duration::from_millis(300), Duration::from_millis(1000))
    }

    #[tokio::test(start_paused = true)]
    async fn the_response_timeout_runs_from_the_request_going_out() {
        let (mut io, _peer, activity) = timed(upstream());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _in_flight = activity.start();
        io.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let sent = Instant::now();
        let err = io.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "upstream.response_timeout");
        assert!(err.get_ref().is_some_and(|e| e.is::<Elapsed>()));
        assert_eq!(sent.elapsed(), Duration::from_millis(300));
    }

    /// One request out and its answer's head in, as the pool and hyper would do it.
    async fn exchange(
        io: &mut TimedIo<DuplexStream>,
        peer: &mut DuplexStream,
        activity: &Arc<Activity>,
        answer: &[u8],
    ) {
        let mut request = activity.start();
        io.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        peer.write_all(answer).await.unwrap();
        assert!(io.read(&mut [0u8; 64]).await.unwrap() > 0);
        request.finish();
    }

    #[tokio::test(start_paused = true)]
    async fn each_request_gets_its_own_response_deadline() {
        // The timer armed for the first request fires early for the second: it is moved, and
        // the second request is timed from its own start.
        let (mut io, mut peer, activity) = timed(upstream());
        exchange(
            &mut io,
            &mut peer,
            &activity,
            b"HTTP/1.1 204 No Content\r\n\r\n",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _second = activity.start();
        io.write_all(b"GET /2 HTTP/1.1\r\n\r\n").await.unwrap();
        let sent = Instant::now();
        let err = io.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.to_string(), "upstream.response_timeout");
        assert_eq!(sent.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_upstream_connection_closes_at_the_pool_idle_timeout() {
        let (mut io, mut peer, activity) = timed(upstream());
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n";
        exchange(&mut io, &mut peer, &activity, head).await;
        // Body bytes after the head are progress, not idleness.
        tokio::time::sleep(Duration::from_millis(700)).await;
        peer.write_all(b"body").await.unwrap();
        assert_eq!(io.read(&mut [0u8; 64]).await.unwrap(), 4);
        let last_byte = Instant::now();
        let err = io.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.to_string(), "upstream.pool_idle_timeout");
        assert_eq!(last_byte.elapsed(), Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timer_is_armed_by_the_write_itself() {
        // hyper may write a response and then wait without reading: the write must arm the
        // idle deadline, or only the connection's earlier, later deadline would wake it.
        let (mut io, mut client, activity) = timed(IoTimeouts::client(
            Duration::from_secs(30),
            Duration::from_millis(400),
        ));
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(io.read(&mut [0u8; 64]).await.unwrap() > 0);
        drop(activity.start());
        let written_at = Instant::now();
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        // The task is woken by the timer at the idle deadline, not at the header deadline.
        std::future::poll_fn(|cx| io.timer.sleep.as_mut().poll(cx)).await;
        assert_eq!(written_at.elapsed(), Duration::from_millis(400));
    }
}
