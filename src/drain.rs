//! Graceful shutdown of the open client connections of one worker.
//!
//! hyper-util's `GracefulShutdown` does the same with a `watch` channel, whose change future
//! is polled (and its waker registered again) every time a connection is polled: about 1 % of
//! the proxy's instructions per request. Here a connection registers its task's waker once;
//! after that each poll costs one atomic load until the drain starts.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    /// Set under the `registry` lock, so that no connection registers after the drain has
    /// woken the registered ones.
    draining: AtomicBool,
    registry: Mutex<Registry>,
    open: AtomicUsize,
    /// Signalled when the last connection ends during the drain.
    ended: Notify,
}

/// The waker of each open connection's task, by slot.
#[derive(Default)]
struct Registry {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deregister(&self, slot: usize) {
        let mut registry = self.registry();
        registry.wakers[slot] = None;
        registry.free.push(slot);
    }
}

/// The open connections of one worker.
#[derive(Default, Clone)]
pub struct Drain {
    inner: Arc<Inner>,
}

impl Drain {
    /// `conn`, to be spawned as a task of its own: it stops taking requests when the drain
    /// starts.
    pub fn watch<C: GracefulConnection>(&self, conn: C) -> Watched<C> {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        Watched {
            conn,
            inner: self.inner.clone(),
            slot: Slot::Unregistered,
        }
    }

    /// Connections open.
    pub fn count(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Asks every open connection to finish the request in progress and close, and waits
    /// until they have.
    pub async fn shutdown(self) {
        {
            let registry = self.inner.registry();
            self.inner.draining.store(true, Ordering::Release);
            for waker in registry.wakers.iter().flatten() {
                waker.wake_by_ref();
            }
        }
        loop {
            // Created before the count is read: a notification in between is not lost.
            let ended = self.inner.ended.notified();
            if self.count() == 0 {
                return;
            }
            ended.await;
        }
    }
}

enum Slot {
    Unregistered,
    Registered(usize),
    /// The drain has begun for this connection.
    Draining,
}

pin_project_lite::pin_project! {
    /// A connection that closes gracefully when its worker drains.
    pub struct Watched<C> {
        #[pin]
        conn: C,
        inner: Arc<Inner>,
        slot: Slot,
    }

    impl<C> PinnedDrop for Watched<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Slot::Registered(slot) = *this.slot {
                this.inner.deregister(slot);
            }
            let last = this.inner.open.fetch_sub(1, Ordering::AcqRel) == 1;
            if last && this.inner.draining.load(Ordering::Acquire) {
                this.inner.ended.notify_waiters();
            }
        }
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        let drain = match *this.slot {
            Slot::Draining => false,
            Slot::Registered(_) => this.inner.draining.load(Ordering::Acquire),
            Slot::Unregistered => {
                // Once per connection: the waker of its task does not change.
                let mut registry = this.inner.registry();
                if this.inner.draining.load(Ordering::Acquire) {
                    true
                } else {
                    let slot = match registry.free.pop() {
                        Some(slot) => slot,
                        None => {
                            registry.wakers.push(None);
                            registry.wakers.len() - 1
                        }
                    };
                    registry.wakers[slot] = Some(cx.waker().clone());
                    *this.slot = Slot::Registered(slot);
                    false
                }
            }
        };
        if drain {
            if let Slot::Registered(slot) = *this.slot {
                this.inner.deregister(slot);
            }
            *this.slot = Slot::Draining;
            this.conn.as_mut().graceful_shutdown();
        }
        this.conn.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::sync::oneshot;

    /// A real hyper connection over an in-memory pipe, watched by `drain` and spawned; the
    /// client's end. The service answers once `gate` opens (at once when there is none).
    fn serve(drain: &Drain, gate: Option<oneshot::Receiver<()>>) -> DuplexStream {
        let (client, server) = tokio::io::duplex(4096);
        let gate = std::sync::Mutex::new(gate);
        let service = hyper::service::service_fn(move |_req| {
            let gate = gate.lock().unwrap().take();
            async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"done"))))
            }
        });
        let mut http = http1::Builder::new();
        // No timeout of hyper's own: only the drain may end an idle connection here.
        http.timer(TokioTimer::new()).header_read_timeout(None);
        let conn = http.serve_connection(TokioIo::new(server), service);
        tokio::spawn(drain.watch(conn));
        client
    }

    /// Lets every ready task run.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// The peer closed the pipe: a read gives end of stream (after any bytes still in it).
    async fn closed(client: &mut DuplexStream) -> Vec<u8> {
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        rest
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_close_at_once_when_the_drain_starts() {
        let drain = Drain::default();
        let mut clients: Vec<DuplexStream> = (0..3).map(|_| serve(&drain, None)).collect();
        settle().await;
        assert_eq!(drain.count(), 3);
        // On the paused clock, a drain that never ends runs into this at once.
        tokio::time::timeout(Duration::from_secs(60), drain.clone().shutdown())
            .await
            .expect("idle connections do not hold up the drain");
        assert_eq!(drain.count(), 0);
        for client in &mut clients {
            assert!(closed(client).await.is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_finishes_before_its_connection_closes() {
        let drain = Drain::default();
        let (open_gate, gate) = oneshot::channel();
        let mut client = serve(&drain, Some(gate));
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        settle().await;
        let mut shutdown = Box::pin(drain.clone().shutdown());
        // The request holds the drain open.
        tokio::select! {
            biased;
            _ = &mut shutdown => panic!("drained with a request in flight"),
            _ = settle() => {}
        }
        open_gate.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(60), shutdown)
            .await
            .expect("the drain ends with the request");
        let answer = String::from_utf8(closed(&mut client).await).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_watched_after_the_drain_began_closes_at_once() {
        let drain = Drain::default();
        let first = serve(&drain, None);
        settle().await;
        drop(first); // its connection ends by itself
        settle().await;
        assert_eq!(drain.count(), 0);
        let shutdown = tokio::spawn(drain.clone().shutdown());
        settle().await;
        let mut late = serve(&drain, None);
        assert!(closed(&mut late).await.is_empty());
        tokio::time::timeout(Duration::from_secs(60), shutdown)
            .await
            .expect("the drain ends")
            .unwrap();
    }
}
