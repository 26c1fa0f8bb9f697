//! medmij-vert-proxy: a reverse proxy that adds the MedMij Vertegenwoordiging extension to a
//! legacy OAuth Authorization Server. See README.md for the deployment picture.
//!
//! The folders are the stack, outside in: [`server`] (listeners, TLS, workers) hands each
//! connection to the [`seam`] (sanitize, route, limits, forwarded headers), then to [`guard`]
//! (the three policy points: authorize, release, token), which asks [`vert`] (the rules: no
//! I/O, no HTTP) and applies its decisions, then to [`upstream`] (the client to the AS). Beside
//! the stack: [`config`], [`state`] (the sealed state and the records), [`pages`], [`ops`]
//! (admin listener, metrics, logs), [`timed_io`] (the connection timeouts, client and upstream
//! side) and [`runtime`] (the threads every listener runs on). Under them all, [`vocab`]: the
//! HTTP words every folder shares (the bodies, the route, the peer, ids), importing none of
//! them. Which folder may use which is a table in `tests/it/architecture.rs`. The demo AS is
//! not part of the library: it is the binary's (`src/demo/`, `medmij-vert-proxy demo`), and the
//! tests compile it into their harness.
#![forbid(unsafe_code)]

pub mod config;
pub mod guard;
pub mod hop_by_hop;
pub mod ops;
pub mod pages;
pub mod runtime;
pub mod seam;
pub mod server;
pub mod state;
pub mod timed_io;
pub mod upstream;
pub mod vert;
pub mod vocab;
