//! Prometheus metrics (`prometheus-client`), served on the admin listener's `/metrics`. One
//! [`Metrics`] per running proxy, shared by its workers.
//!
//! Every label value is one of a closed set of constants: an outcome, a rule id, an exception's
//! name, a route class, a status class, a file kind. Never a code, a state, a birth date, a
//! client-supplied id or a path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use crate::vocab::Route;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `forwarded`, `resumed`, `refused`, `error_redirect`, `released`, `restored`,
    /// `withheld`, `passed`; on the token path also `redeemed`, `busy`, `store_unavailable`.
    pub outcome: &'static str,
    /// The rule id of the decision log line (`vert::Rule`).
    pub rule: &'static str,
    /// The exception's MedMij name, or empty.
    pub exception: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `authorize` or `other`.
    route: &'static str,
    /// `1xx` … `5xx`.
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `clients`, `keys`, `tls` or `pages`.
    file: &'static str,
    /// `ok` or `error`.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    /// `clients`, `keys`, `tls` or `pages`.
    file: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// No labels: a family of one series that exists only once set (the certificate's expiry,
/// absent without `[listen.tls]`, so that no alert reads a zero as "expired in 1970").
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Unlabelled {}

/// Why the upstream gave no response (the proxy answered with its own page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// No response head within `upstream.response_timeout`: 504.
    Timeout,
    /// Refused, not connected within `upstream.connect_timeout`, reset: 502.
    Failed,
}

impl UpstreamFailure {
    pub const ALL: [UpstreamFailure; 2] = [UpstreamFailure::Timeout, UpstreamFailure::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OclFetchLabels {
    result: &'static str,
}

/// What one fetch of `clients.ocl_url` came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OclFetch {
    /// A new list, checked and taken into use.
    Updated,
    /// `304`: the list in use confirmed, nothing parsed.
    NotModified,
    /// No answer: connection, TLS or timeout.
    Unreachable,
    /// An answer other than `200` or `304`.
    Status,
    /// Not an OCL by the schema's structure.
    Invalid,
    /// It would drop more than `clients.ocl_max_shrink` of the entries in use.
    Shrunk,
    /// A lower `Volgnummer` than the list in use.
    Older,
}

impl OclFetch {
    pub const ALL: [OclFetch; 7] = [
        OclFetch::Updated,
        OclFetch::NotModified,
        OclFetch::Unreachable,
        OclFetch::Status,
        OclFetch::Invalid,
        OclFetch::Shrunk,
        OclFetch::Older,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OclFetch::Updated => "updated",
            OclFetch::NotModified => "not_modified",
            OclFetch::Unreachable => "unreachable",
            OclFetch::Status => "status",
            OclFetch::Invalid => "invalid",
            OclFetch::Shrunk => "shrunk",
            OclFetch::Older => "older",
        }
    }

    /// Whether the list in use is confirmed current.
    pub fn is_success(self) -> bool {
        matches!(self, OclFetch::Updated | OclFetch::NotModified)
    }
}

/// The OCL from `clients.ocl_url`: registered only with that key, under `medmij_vert_ocl_*`.
struct OclMetrics {
    age: Gauge,
    entries: Gauge,
    fetches: Family<OclFetchLabels, Counter>,
    last_fetch: Family<OclFetchLabels, Gauge>,
}

pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    /// Each decision series' counter, found by the addresses of its three label values (each
    /// a `&'static str` of a closed set): a decision is a few instructions, not the family's
    /// SipHash of three strings under its lock (about 400 instructions, twice a flow).
    decision_handles: std::sync::RwLock<HashMap<[usize; 3], Counter, rustc_hash::FxBuildHasher>>,
    /// By route class and status class, made at start: counted on every request, so without
    /// the family's hash lookup and lock.
    requests: [[Counter; 5]; 3],
    upstream_response: Histogram,
    open_connections: Gauge,
    upstream_connect_failures: Counter,
    reloads: Family<ReloadLabels, Counter>,
    store_errors: Counter,
    store_records: Gauge,
    store_capacity: Gauge,
    share_refusals: Counter,
    withheld_records: Gauge,
    /// By [`UpstreamFailure`], made at start.
    upstream_errors: [Counter; 2],
    /// 1 when the last read of the file worked, 0 when it was refused (the old one serves).
    last_reload_successful: Family<FileLabels, Gauge>,
    /// Unix time at which the client list in use was read; its age is worked out at each
    /// scrape.
    clients_loaded: Gauge,
    clients_age: Gauge,
    /// The `notAfter` of the certificate in use, Unix time; only with `[listen.tls]`.
    tls_not_after: Family<Unlabelled, Gauge>,
    /// 1 when the admin listener's last readiness probe found the AS, 0 otherwise.
    ready: Gauge,
    ocl: Option<OclMetrics>,
}

/// Every metric: its name (under `medmij_vert_`) and its help text, in the order `/metrics`
/// shows them; [`registered`] takes the help from here.
const HELP: &[(&str, &str)] = &[
    (
        "decisions",
        "Decisions, one per decision log line, by outcome, rule id and MedMij exception",
    ),
    (
        "requests",
        "Requests answered, by route class and status class",
    ),
    (
        "upstream_response_seconds",
        "Time from the request going upstream to the upstream's response head",
    ),
    ("open_connections", "Client connections open"),
    (
        "upstream_connect_failures",
        "Connections to the upstream that could not be made",
    ),
    (
        "reloads",
        "Reloads of the files the config names (SIGHUP), by file and result",
    ),
    (
        "store_errors",
        "Store (in-process or Redis) operations that failed; the proxy failed closed",
    ),
    (
        "store_records",
        "Live records this instance made (released flows and, with the token guard, codes), counted against store.max_entries",
    ),
    (
        "store_withheld_records",
        "Records of withheld codes that may have reached Redis and are still being removed (retried until Redis takes the removal)",
    ),
    (
        "store_capacity",
        "store.max_entries: the records the store holds before it fails closed (in-process), and the base of each source's share",
    ),
    (
        "store_share_refusals",
        "Releases withheld because their source held its share of the records (store.source_share)",
    ),
    (
        "upstream_errors",
        "Requests the upstream gave no response to, by kind: timeout (504 page), failed (502 page)",
    ),
    (
        "last_reload_successful",
        "1 when the last reload of the file worked, 0 when it was refused and the one before still serves",
    ),
    (
        "clients_loaded_timestamp_seconds",
        "Unix time at which the client list in use was read (at start, or the last reload that worked)",
    ),
    (
        "clients_age_seconds",
        "Seconds since the client list in use was read",
    ),
    (
        "tls_certificate_not_after_timestamp_seconds",
        "notAfter of the public listener's certificate in use, Unix time (only with [listen.tls])",
    ),
    (
        "ready",
        "1 when the last readiness probe reached the upstream (what /ready answers), 0 otherwise",
    ),
    (
        "ocl_age_seconds",
        "Seconds since the stelselnode last confirmed the OCL in use (clients.ocl_url)",
    ),
    (
        "ocl_entries",
        "OAuth clients on the OCL in use (clients.ocl_url)",
    ),
    (
        "ocl_fetches",
        "Fetches of clients.ocl_url, by result (updated, not_modified, or why the list in use stayed)",
    ),
    (
        "ocl_last_fetch",
        "1 for the result of the last fetch of clients.ocl_url, 0 for the others",
    ),
];

/// `metric`, registered under `name` with its help text from [`HELP`].
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &'static str, metric: M) -> M {
    let (_, help) = HELP
        .iter()
        .find(|(n, _)| *n == name)
        .expect("every metric has its row in HELP");
    registry.register(name, *help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("medmij_vert");
        let r = &mut registry;
        let decisions = registered(r, "decisions", Family::default());
        let family = registered(r, "requests", Family::<RequestLabels, Counter>::default());
        let requests = Route::COUNTED.map(|route| {
            let route = route.label();
            ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|status| {
                family
                    .get_or_create(&RequestLabels { route, status })
                    .clone()
            })
        });
        // 1 ms to about 33 s.
        let buckets = exponential_buckets(0.001, 2.0, 16);
        let upstream_response = registered(r, "upstream_response_seconds", Histogram::new(buckets));
        let open_connections = registered(r, "open_connections", Gauge::default());
        let upstream_connect_failures =
            registered(r, "upstream_connect_failures", Counter::default());
        let reloads = registered(r, "reloads", Family::default());
        let store_errors = registered(r, "store_errors", Counter::default());
        let store_records = registered(r, "store_records", Gauge::default());
        let withheld_records = registered(r, "store_withheld_records", Gauge::default());
        let store_capacity = registered(r, "store_capacity", Gauge::default());
        let share_refusals = registered(r, "store_share_refusals", Counter::default());
        let family = registered(
            r,
            "upstream_errors",
            Family::<KindLabels, Counter>::default(),
        );
        let upstream_errors = UpstreamFailure::ALL.map(|kind| {
            family
                .get_or_create(&KindLabels {
                    kind: kind.as_str(),
                })
                .clone()
        });
        Metrics {
            upstream_errors,
            last_reload_successful: registered(r, "last_reload_successful", Family::default()),
            clients_loaded: registered(r, "clients_loaded_timestamp_seconds", Gauge::default()),
            clients_age: registered(r, "clients_age_seconds", Gauge::default()),
            tls_not_after: registered(
                r,
                "tls_certificate_not_after_timestamp_seconds",
                Family::default(),
            ),
            ready: registered(r, "ready", Gauge::default()),
            ocl: None,
            store_errors,
            store_records,
            store_capacity,
            share_refusals,
            withheld_records,
            registry,
            decisions,
            decision_handles: Default::default(),
            requests,
            upstream_response,
            open_connections,
            upstream_connect_failures,
            reloads,
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// With the OCL's metrics (`clients.ocl_url`).
    pub fn with_ocl() -> Arc<Self> {
        let mut metrics = Metrics::default();
        let r = &mut metrics.registry;
        let age = registered(r, "ocl_age_seconds", Gauge::default());
        let entries = registered(r, "ocl_entries", Gauge::default());
        let fetches = registered(r, "ocl_fetches", Family::default());
        let last_fetch = Family::<OclFetchLabels, Gauge>::default();
        for result in OclFetch::ALL {
            last_fetch
                .get_or_create(&OclFetchLabels {
                    result: result.as_str(),
                })
                .set(0);
        }
        let last_fetch = registered(r, "ocl_last_fetch", last_fetch);
        metrics.ocl = Some(OclMetrics {
            age,
            entries,
            fetches,
            last_fetch,
        });
        Arc::new(metrics)
    }

    /// A fetch of `clients.ocl_url` and what it came to.
    pub fn ocl_fetch(&self, result: OclFetch) {
        if let Some(ocl) = &self.ocl {
            ocl.fetches
                .get_or_create(&OclFetchLabels {
                    result: result.as_str(),
                })
                .inc();
            for other in OclFetch::ALL {
                ocl.last_fetch
                    .get_or_create(&OclFetchLabels {
                        result: other.as_str(),
                    })
                    .set(i64::from(other == result));
            }
        }
    }

    /// The OCL in use: its entries, or none (never loaded, or stale and dropped).
    pub fn ocl_entries(&self, entries: usize) {
        if let Some(ocl) = &self.ocl {
            ocl.entries.set(i64::try_from(entries).unwrap_or(i64::MAX));
        }
    }

    /// Since the OCL in use was confirmed; set when `/metrics` is read.
    pub fn ocl_age(&self, age: Option<Duration>) {
        if let Some(ocl) = &self.ocl {
            ocl.age
                .set(age.map_or(-1, |a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX)));
        }
    }

    pub fn decision(&self, labels: DecisionLabels) {
        let key = [labels.outcome, labels.rule, labels.exception].map(|s| s.as_ptr() as usize);
        let handles = self
            .decision_handles
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(counter) = handles.get(&key) {
            counter.inc();
            return;
        }
        drop(handles);
        // The first of its kind: the family's own series (the one exposed), kept by the key.
        let counter = self.decisions.get_or_create(&labels).clone();
        counter.inc();
        let mut handles = self
            .decision_handles
            .write()
            .unwrap_or_else(|e| e.into_inner());
        handles.insert(key, counter);
    }

    /// A decision's series, shown at 0 before its first count.
    pub fn declare_decision(&self, labels: DecisionLabels) {
        let _made = self.decisions.get_or_create(&labels);
    }

    /// One answered request, under its route as counted ([`Route::counted`]): the series of
    /// [`Route::COUNTED`], in its order.
    pub fn request(&self, route: Route, status: http::StatusCode) {
        let route = match route {
            Route::Authorize => 0,
            Route::Token => 1,
            Route::Below | Route::Other | Route::Unreadable => 2,
        };
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.requests[route][class].inc();
    }

    /// The live records this instance holds, after a change.
    pub fn store_records(&self, live: usize) {
        self.store_records
            .set(i64::try_from(live).unwrap_or(i64::MAX));
    }

    pub fn store_capacity(&self, max_entries: usize) {
        self.store_capacity
            .set(i64::try_from(max_entries).unwrap_or(i64::MAX));
    }

    pub fn share_refusal(&self) {
        self.share_refusals.inc();
    }

    pub fn upstream_response(&self, took: Duration) {
        self.upstream_response.observe(took.as_secs_f64());
    }

    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    pub fn upstream_connect_failed(&self) {
        self.upstream_connect_failures.inc();
    }

    pub fn reload(&self, file: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads
            .get_or_create(&ReloadLabels { file, result })
            .inc();
        self.last_reload_successful
            .get_or_create(&FileLabels { file })
            .set(i64::from(ok));
    }

    pub fn upstream_error(&self, kind: UpstreamFailure) {
        self.upstream_errors[kind as usize].inc();
    }

    /// The client list in use was read at `at` (at start, or by a reload that worked).
    pub fn clients_loaded(&self, at: SystemTime) {
        self.clients_loaded.set(unix_seconds(at));
    }

    /// The certificate now handed out expires at `not_after` (Unix time).
    pub fn tls_not_after(&self, not_after: i64) {
        self.tls_not_after
            .get_or_create(&Unlabelled {})
            .set(not_after);
    }

    pub fn ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// A withheld code's record to remove (`1`), or removed (`-1`).
    pub fn withheld_record(&self, delta: i64) {
        self.withheld_records.inc_by(delta);
    }

    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        // An age is only true at the moment it is read.
        let loaded = self.clients_loaded.get();
        if loaded > 0 {
            self.clients_age
                .set(unix_seconds(SystemTime::now()).saturating_sub(loaded));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Seconds since the Unix epoch (negative before it, which no clock here shows).
fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_help_is_one_metric_registered_with_it() {
        let m = Metrics::with_ocl();
        // A family shows once it has a series.
        m.declare_decision(DecisionLabels {
            outcome: "forwarded",
            rule: "ext.vert.authint.200",
            exception: "",
        });
        m.reload("clients", true);
        m.tls_not_after(1);
        m.ocl_fetch(OclFetch::Updated);
        let text = m.encode();
        for (i, (name, help)) in HELP.iter().enumerate() {
            assert!(
                !HELP[..i].iter().any(|(other, _)| other == name),
                "{name}: two rows"
            );
            assert!(
                text.contains(&format!("# HELP medmij_vert_{name} {help}.")),
                "{name} is not registered with its help:\n{text}"
            );
        }
    }

    #[test]
    fn counts_appear_with_their_labels() {
        let m = Metrics::default();
        m.decision(DecisionLabels {
            outcome: "withheld",
            rule: "ext.vert.authint.202",
            exception: "Authorization interface Vertegenwoordiging 1",
        });
        m.request(Route::Authorize, http::StatusCode::FOUND);
        m.reload("clients", false);
        m.connection_opened();
        m.upstream_response(Duration::from_millis(3));
        let text = m.encode();
        assert!(text.contains("medmij_vert_decisions_total{outcome=\"withheld\",rule=\"ext.vert.authint.202\",exception=\"Authorization interface Vertegenwoordiging 1\"} 1"), "{text}");
        assert!(text.contains("medmij_vert_requests_total{route=\"authorize\",status=\"3xx\"} 1"));
        assert!(text.contains("medmij_vert_reloads_total{file=\"clients\",result=\"error\"} 1"));
        assert!(text.contains("medmij_vert_open_connections 1"));
        assert!(text.contains("medmij_vert_upstream_response_seconds_count 1"));
        assert!(text.ends_with("# EOF\n"));
    }

    /// The handle cache keys by address: the same labels from two places (two addresses)
    /// count in one series, and other labels in another.
    #[test]
    fn a_decision_counts_in_its_series_whichever_copy_of_its_labels_names_it() {
        let m = Metrics::default();
        let copy: &'static str = String::from("released").leak();
        for outcome in ["released", copy, "released", copy] {
            m.decision(DecisionLabels {
                outcome,
                rule: "ext.vert.authint.202",
                exception: "",
            });
        }
        m.decision(DecisionLabels {
            outcome: "withheld",
            rule: "ext.vert.authint.202",
            exception: "",
        });
        let text = m.encode();
        let series = |outcome: &str| {
            format!(
                "medmij_vert_decisions_total{{outcome=\"{outcome}\",rule=\"ext.vert.authint.202\",exception=\"\"}} "
            )
        };
        assert!(text.contains(&(series("released") + "4")), "{text}");
        assert!(text.contains(&(series("withheld") + "1")), "{text}");
    }

    /// Every upstream failure kind is a series from the start (at 0), so that a rate over
    /// them is 0 rather than absent before the first one.
    #[test]
    fn upstream_failures_show_at_zero_then_count() {
        let m = Metrics::default();
        let text = m.encode();
        for kind in UpstreamFailure::ALL {
            let series = format!(
                "medmij_vert_upstream_errors_total{{kind=\"{}\"}} 0",
                kind.as_str()
            );
            assert!(text.contains(&series), "{series}\n{text}");
        }
        m.upstream_error(UpstreamFailure::Timeout);
        let text = m.encode();
        assert!(text.contains("medmij_vert_upstream_errors_total{kind=\"timeout\"} 1"));
        assert!(text.contains("medmij_vert_upstream_errors_total{kind=\"failed\"} 0"));
    }

    /// The age is worked out when the metrics are read, from the time the list was loaded.
    #[test]
    fn the_client_list_age_is_read_at_the_scrape() {
        let m = Metrics::default();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        m.clients_loaded(hour_ago);
        let text = m.encode();
        let loaded = super::unix_seconds(hour_ago);
        assert!(
            text.contains(&format!(
                "medmij_vert_clients_loaded_timestamp_seconds {loaded}\n"
            )),
            "{text}"
        );
        let age: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("medmij_vert_clients_age_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        // At least the hour; a slow machine may add to it, never take from it.
        assert!((3600..3600 * 24).contains(&age), "{age}");
    }

    #[test]
    fn the_certificate_expiry_is_absent_until_a_certificate_is_loaded() {
        let m = Metrics::default();
        let name = "medmij_vert_tls_certificate_not_after_timestamp_seconds";
        assert!(
            !m.encode().lines().any(|l| l.starts_with(name)),
            "no sample without TLS"
        );
        m.tls_not_after(1_900_000_000);
        assert!(m.encode().contains(&format!("{name} 1900000000\n")));
    }

    #[test]
    fn last_reload_successful_follows_the_last_reload_of_each_file() {
        let m = Metrics::default();
        m.reload("clients", false);
        m.reload("tls", true);
        let text = m.encode();
        assert!(text.contains("medmij_vert_last_reload_successful{file=\"clients\"} 0"));
        assert!(text.contains("medmij_vert_last_reload_successful{file=\"tls\"} 1"));
        m.reload("clients", true);
        let text = m.encode();
        assert!(text.contains("medmij_vert_last_reload_successful{file=\"clients\"} 1"));
        assert!(text.contains("medmij_vert_reloads_total{file=\"clients\",result=\"error\"} 1"));
    }

    #[test]
    fn ready_is_0_until_a_probe_says_otherwise() {
        let m = Metrics::default();
        assert!(m.encode().contains("medmij_vert_ready 0\n"));
        m.ready(true);
        assert!(m.encode().contains("medmij_vert_ready 1\n"));
        m.ready(false);
        assert!(m.encode().contains("medmij_vert_ready 0\n"));
    }
}
