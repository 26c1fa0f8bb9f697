//! The integration tests, one binary: each module a concern, all on real sockets of 127.0.0.1
//! (the demo AS, scripted upstreams, the proxy in process or as the built binary, redis-server,
//! chromedriver). `cargo test --test it <module>::` runs one module.
//!
//! `tests/logs.rs` is a binary of its own: it installs the process-wide trace subscriber.

mod support;

mod architecture;
mod browser;
mod cli;
mod differential;
mod docs;
mod fresh_login;
mod hostile;
mod interop;
mod load;
mod monitoring;
mod ocl;
mod operations;
mod properties;
mod proxy;
mod redis;
mod seam;
mod shutdown;
mod vertegenwoordiging;
