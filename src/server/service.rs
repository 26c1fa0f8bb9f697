//! [`PerConnection`]: a connection's tower stack as hyper's service, without a clone of the
//! stack per request.
//!
//! hyper calls its service through `&self` and never asks whether it is ready; hyper-util's
//! `TowerToHyperService` therefore clones the whole stack for every request, polls the clone
//! ready, calls it and drops it (callgrind: the clone, the drop and the moves of the clone
//! were several hundred instructions a request). Here the stack is owned once: a request
//! checks it ready with a waker that wakes nothing and calls it at once when it is. A stack
//! that is not ready (none of this proxy's layers makes one wait today) is cloned, and the
//! clone is polled ready from the request's own future, with the task's waker: tower's
//! contract, `poll_ready` until ready and then `call`, holds either way.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

/// One connection's service: hyper's view of a tower stack.
pub struct PerConnection<S> {
    /// Only ever borrowed within `call`, which hyper makes from the connection's one task.
    service: RefCell<S>,
}

impl<S> PerConnection<S> {
    pub fn new(service: S) -> Self {
        PerConnection {
            service: RefCell::new(service),
        }
    }
}

impl<S, R> hyper::service::Service<R> for PerConnection<S>
where
    S: tower::Service<R> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = PerConnectionFuture<S, R>;

    fn call(&self, req: R) -> Self::Future {
        let mut service = self.service.borrow_mut();
        let mut noop = Context::from_waker(Waker::noop());
        match service.poll_ready(&mut noop) {
            Poll::Ready(Ok(())) => PerConnectionFuture::Called {
                future: service.call(req),
            },
            Poll::Ready(Err(error)) => PerConnectionFuture::Failed { error: Some(error) },
            // Nothing would wake the task for the stack itself: a clone waits with its waker.
            Poll::Pending => PerConnectionFuture::Waiting {
                waiting: Box::new(Waiting {
                    service: service.clone(),
                    req: Some(req),
                }),
            },
        }
    }
}

/// A clone of a stack that was not ready, and the request for it (rare, so boxed: the
/// request's future stays the size of the stack's).
pub struct Waiting<S, R> {
    service: S,
    req: Option<R>,
}

pin_project_lite::pin_project! {
    #[project = Projected]
    pub enum PerConnectionFuture<S: tower::Service<R>, R> {
        Called { #[pin] future: S::Future },
        Waiting { waiting: Box<Waiting<S, R>> },
        Failed { error: Option<S::Error> },
    }
}

impl<S, R> Future for PerConnectionFuture<S, R>
where
    S: tower::Service<R>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                Projected::Called { future } => return future.poll(cx),
                Projected::Waiting { waiting } => {
                    ready!(waiting.service.poll_ready(cx))?;
                    let req = waiting.req.take().expect("a request not yet called");
                    let future = waiting.service.call(req);
                    self.set(PerConnectionFuture::Called { future });
                }
                Projected::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after it completed")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::service::Service as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Ready after `pending` polls, each of which wakes the task it was given.
    #[derive(Clone)]
    struct Slow {
        pending: Arc<AtomicUsize>,
    }

    impl tower::Service<u32> for Slow {
        type Response = u32;
        type Error = &'static str;
        type Future = std::future::Ready<Result<u32, &'static str>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
            let left = self.pending.load(Ordering::SeqCst);
            if left == 0 {
                return Poll::Ready(Ok(()));
            }
            self.pending.store(left - 1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            Poll::Pending
        }

        fn call(&mut self, req: u32) -> Self::Future {
            std::future::ready(if req == 0 { Err("zero") } else { Ok(req * 2) })
        }
    }

    fn slow(pending: usize) -> PerConnection<Slow> {
        PerConnection::new(Slow {
            pending: Arc::new(AtomicUsize::new(pending)),
        })
    }

    #[tokio::test]
    async fn a_ready_stack_is_called_without_a_clone() {
        let service = slow(0);
        assert_eq!(service.call(2).await, Ok(4));
        assert_eq!(service.call(0).await, Err("zero"));
        assert!(matches!(
            service.call(3),
            PerConnectionFuture::Called { .. }
        ));
    }

    #[tokio::test]
    async fn a_stack_not_ready_is_waited_for_with_the_tasks_waker() {
        let service = slow(3);
        let future = service.call(5);
        assert!(matches!(future, PerConnectionFuture::Waiting { .. }));
        // The clone is polled by the task until ready, then called.
        assert_eq!(future.await, Ok(10));
        assert_eq!(service.call(1).await, Ok(2));
    }

    #[tokio::test]
    async fn a_failed_readiness_is_the_requests_error() {
        #[derive(Clone)]
        struct Broken;
        impl tower::Service<u32> for Broken {
            type Response = u32;
            type Error = &'static str;
            type Future = std::future::Ready<Result<u32, &'static str>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
                Poll::Ready(Err("broken"))
            }
            fn call(&mut self, _: u32) -> Self::Future {
                unreachable!("called when not ready")
            }
        }
        let service = PerConnection::new(Broken);
        assert_eq!(service.call(1).await, Err("broken"));
    }
}
