//! The way to the AS: the proxy service, its connection pool, and the timed connections.

pub mod conn;
pub mod connector;
pub mod error;
pub mod error_pages;
pub mod idle;
pub mod pool;
pub mod proxy;
