//! The way to the AS: the proxy service, its connection pool, and its connections (timed by
//! [`crate::timed_io`], as the client connections are).

pub mod connector;
pub mod error;
pub mod error_pages;
pub mod idle;
pub mod pool;
pub mod proxy;
