//! Logs. Decision lines (target `medmij_vert_proxy::decision`) carry the outcome, the rule id,
//! `MedMij-Request-ID` and `X-Correlation-ID`; nothing logged ever holds a code, a state, a birth
//! date or a query string.

use std::io::IsTerminal;

use http::Request;
use tower_http::LatencyUnit;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnResponse, MakeSpan, TraceLayer};
use tracing::{Level, Span};
use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The access-log span: method and path. Not the query: on this proxy it holds states, codes
/// and birth dates. (tower-http's default span records the whole URI.)
#[derive(Clone, Copy, Debug)]
pub struct AccessSpan;

impl<B> MakeSpan<B> for AccessSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        tracing::info_span!(
            target: "medmij_vert_proxy::access",
            "request",
            method = %req.method(),
            path = req.uri().path(),
        )
    }
}

pub type AccessLogLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    AccessSpan,
    (),
    DefaultOnResponse,
    (),
    (),
    (),
>;

/// One line per request (`log.access = true`): method, path, status, latency.
pub fn access_log() -> AccessLogLayer {
    TraceLayer::new_for_http()
        .make_span_with(AccessSpan)
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(LatencyUnit::Micros),
        )
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}
