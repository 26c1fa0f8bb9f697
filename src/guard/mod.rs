//! The policy wing: the three points where the proxy applies [`crate::vert`] to HTTP, each a
//! tower layer reading the route the router set ([`crate::seam::router`]), each deciding
//! through `vert` and recording its decision one way ([`decision`]: one line, one count).
//!
//! - [`AuthorizeLayer`] ([`authorize`]): authorization requests decided before they go
//!   upstream, returns into a flow checked; the flow handed on in the request's extensions.
//! - [`ReleaseLayer`] ([`release`], with its [`ResponseFuture`]): the one place that looks at
//!   upstream responses, where a flow's code is released or withheld.
//! - [`TokenGuardLayer`] ([`token`]): only codes the proxy released reach the token endpoint.
//!
//! Beside them: [`Guard`] ([`shared`], what the authorize and release points share),
//! [`answers`] (the exception table as HTTP) and [`target`] (the target the AS gets).
//!
//! Generic over the inner service's body and error types, as tower-http's middleware is: the
//! points sit between the sanitizing front and the error-page layer (see [`crate::server`]),
//! and their tests use `tower::service_fn` inner services, no sockets.

mod answers;
mod authorize;
mod decision;
mod release;
mod shared;
mod target;
#[cfg(test)]
mod tests;
mod token;

pub use authorize::{Authorize, AuthorizeLayer};
pub use release::{Release, ReleaseLayer, ResponseFuture};
pub use shared::Guard;
pub use token::{TokenGuard, TokenGuardLayer};
