//! medmij-vert-proxy: a reverse proxy that adds the MedMij Vertegenwoordiging extension to a
//! legacy OAuth Authorization Server. See README.md for the deployment picture.
//!
//! Data flows one way: request → [`guard`] (asks [`vert`]) → [`proxy`] → upstream → [`proxy`] →
//! [`guard`] (asks [`vert`]) → client. [`vert`] knows nothing of HTTP.
#![forbid(unsafe_code)]

pub mod admin;
pub mod answer;
pub mod config;
pub mod conn;
pub mod demo;
pub mod error_pages;
pub mod form;
pub mod forwarded;
pub mod guard;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod paths;
pub mod pool;
pub mod proxy;
pub mod record;
pub mod resources;
pub mod router;
pub mod runtime;
pub mod sanitize;
pub mod seal;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod token_guard;
pub mod vert;
