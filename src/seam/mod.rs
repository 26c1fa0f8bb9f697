//! The HTTP seam, before any rule applies: each request read once, one way, as the most lenient
//! framework behind the proxy would read it.

pub mod answer;
pub mod form;
pub mod forwarded;
pub mod limits;
pub mod paths;
pub mod router;
pub mod sanitize;
