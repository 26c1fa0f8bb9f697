//! [`VertGuardLayer`]: wraps a service in a [`VertGuard`] sharing one [`Guard`].

use std::sync::Arc;

use super::Guard;
use super::service::VertGuard;

#[derive(Clone)]
pub struct VertGuardLayer {
    guard: Arc<Guard>,
}

impl VertGuardLayer {
    pub fn new(guard: Guard) -> Self {
        VertGuardLayer {
            guard: Arc::new(guard),
        }
    }

    /// The guard all its services share (for reload).
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
}

impl<S> tower::Layer<S> for VertGuardLayer {
    type Service = VertGuard<S>;

    fn layer(&self, inner: S) -> VertGuard<S> {
        VertGuard::new(inner, self.guard.clone())
    }
}
