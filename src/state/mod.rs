//! What outlives a request: the sealed `state` that carries a flow through the AS, and the
//! records of released flows and codes.

pub mod seal;
pub mod store;
