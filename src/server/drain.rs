//! [`Drain`]: a worker's client connections closed gracefully when it shuts down, as
//! hyper-util's `GracefulShutdown` does it, without its cost on every poll of a connection.
//!
//! hyper-util polls a `watch` channel's `changed()` each time the connection's task runs
//! (callgrind: about 160 instructions a poll, two polls a request). Here the signal is a flag
//! read on each poll; the task's waker is registered with a [`Notify`] once, and again only if
//! the task's waker changes. hyper-util's watchers are still handed out and held, one per
//! connection, for what they do well: counting the open connections and waiting for them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::{self, GracefulConnection, GracefulShutdown};
use tokio::sync::{Notify, futures::OwnedNotified};

/// One worker's connections, to drain on shutdown.
#[derive(Default)]
pub struct Drain {
    /// One watcher per connection, held until it ends: counts them and waits for them.
    tickets: GracefulShutdown,
    draining: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Drain {
    /// For a new connection.
    pub fn watcher(&self) -> Watcher {
        Watcher {
            ticket: self.tickets.watcher(),
            draining: self.draining.clone(),
            notify: self.notify.clone(),
        }
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.tickets.count()
    }

    /// Tells every connection to finish the request in hand and close, and waits until all
    /// have.
    pub async fn shutdown(self) {
        self.draining.store(true, Ordering::Release);
        // Wakes every connection whose notification was made before this call, polled or not.
        self.notify.notify_waiters();
        self.tickets.shutdown().await;
    }
}

/// One connection's part in a [`Drain`].
pub struct Watcher {
    ticket: graceful::Watcher,
    draining: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Watcher {
    /// `conn`, closed gracefully when the drain starts.
    pub fn watch<C: GracefulConnection>(self, conn: C) -> Watched<C> {
        Watched {
            conn,
            // Made now: a drain that starts before the first poll still completes it.
            notified: Box::pin(self.notify.notified_owned()),
            draining: self.draining,
            waker: None,
            closing: false,
            _ticket: self.ticket,
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection that closes gracefully when its drain starts.
    pub struct Watched<C> {
        #[pin]
        conn: C,
        notified: Pin<Box<OwnedNotified>>,
        draining: Arc<AtomicBool>,
        // The waker `notified` was last polled with.
        waker: Option<Waker>,
        // Told to close.
        closing: bool,
        _ticket: graceful::Watcher,
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.closing {
            let mut drained = this.draining.load(Ordering::Acquire);
            if !drained && !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *this.waker = Some(cx.waker().clone());
                drained = this.notified.as_mut().poll(cx).is_ready();
            }
            if drained {
                *this.closing = true;
                this.conn.as_mut().graceful_shutdown();
            }
        }
        this.conn.poll(cx)
    }
}
