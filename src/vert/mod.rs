//! The MedMij Vertegenwoordiging rules, pure: plain functions and types, no I/O, no sockets, no
//! HTTP types. The HTTP side (`guard`) imports this module; this module imports nothing of it.
//!
//! - [`authorize`]: an authorization request → [`authorize::Decision`] (ext.vert.authint.200/201,
//!   core.authint.207 1a/1b, Vert 3).
//! - [`flow_return`]: an upstream redirect + the sealed flow + the AS's signal →
//!   [`flow_return::Verdict`] (ext.vert.authint.202, Vert 1, Vert 2, Vert 4, fail closed).
//! - [`exceptions`]: the exception table as data.

pub mod age;
pub mod authorize;
pub mod birthdate;
pub mod clients;
pub mod events;
pub mod exceptions;
pub mod flow;
pub mod flow_return;
pub mod fold;
pub mod fresh_login;
pub mod query;
pub mod resume;
pub mod rule;
pub mod syntax;
pub mod token;
pub mod uri;

pub use birthdate::Birthdate;
pub use clients::{Client, ClientList};
pub use exceptions::Exception;
pub use flow::{Flow, Kind, Requested};
pub use fresh_login::FreshLogin;
pub use rule::Rule;
