//! Why the upstream gave no response: the one error of the way to the AS, made by the connector
//! (a new connection failed) and by the pool (an exchange failed), read by the proxy and its
//! error pages. Its own module so that neither of its makers imports the other for it.

use std::io;

use crate::timed_io::Activity;

/// Why the upstream gave no response.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    #[error("connect: upstream.connect_timeout elapsed")]
    ConnectTimeout,
    /// No response head within `upstream.response_timeout`.
    #[error("upstream.response_timeout elapsed")]
    ResponseTimeout,
    /// The HTTP exchange failed (the upstream closed the connection, sent garbage, …). The
    /// message names the whole chain: hyper's own says only "connection error".
    #[error("{}", chain(.0))]
    Http(#[source] hyper::Error),
}

/// An error and its sources, `: `-separated, for one log field.
fn chain(error: &hyper::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl PoolError {
    pub fn is_connect(&self) -> bool {
        matches!(self, PoolError::Connect(_) | PoolError::ConnectTimeout)
    }

    /// A failed exchange on a connection, told apart from one its timer ended.
    pub(crate) fn exchange(error: hyper::Error, activity: &Activity) -> Self {
        if activity.timed_out() {
            PoolError::ResponseTimeout
        } else {
            PoolError::Http(error)
        }
    }
}
