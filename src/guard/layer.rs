//! [`VertGuardLayer`]: wraps a service in a [`VertGuard`] sharing one [`Guard`].

use std::sync::Arc;

use super::Guard;
use super::service::VertGuard;
use crate::vocab::Peer;

#[derive(Clone)]
pub struct VertGuardLayer {
    guard: Arc<Guard>,
    /// The client end of the connection the services are for (releases count against its
    /// share of the records); none in a stack without connections.
    peer: Option<Peer>,
}

impl VertGuardLayer {
    pub fn new(guard: Guard) -> Self {
        VertGuardLayer {
            guard: Arc::new(guard),
            peer: None,
        }
    }

    /// The layer for one connection's stack: once per connection, not per request.
    pub fn for_peer(&self, peer: Peer) -> Self {
        VertGuardLayer {
            guard: self.guard.clone(),
            peer: Some(peer),
        }
    }
}

impl<S> tower::Layer<S> for VertGuardLayer {
    type Service = VertGuard<S>;

    fn layer(&self, inner: S) -> VertGuard<S> {
        VertGuard::new(inner, self.guard.clone(), self.peer.clone())
    }
}
