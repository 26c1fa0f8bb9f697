//! `clients.ocl_url`: the MedMij OAuth Client List from the stelselnode (core.lijsten.300),
//! fetched at start and every `clients.ocl_refresh` with `If-None-Match` / `If-Modified-Since`,
//! over rustls (the CA of `clients.ocl_ca_file`, or the system's roots). A list is read strictly
//! ([`parse_ocl_strict`]), is refused when its `Volgnummer` is lower than the one in use or when
//! it would drop more than `clients.ocl_max_shrink` of the entries in use, and only then swaps
//! the one in use, whole. On any failure the last good list stays, the failure is logged and
//! counted. A list not confirmed for `clients.ocl_max_age` is dropped (fail closed: only
//! `clients.static` remains, so every other authorization request is 1a, and `/ready` fails).
//! The last good list is kept in `clients.ocl_cache_file`, its age in the file's mtime, so that
//! a restart serves before the stelselnode answers.
//!
//! The refresher runs on a thread of its own ([`crate::runtime::spawn_thread`]); the guard and
//! the token guard only read the list it swaps in.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::{Config, ConfigError, OclUrl};
use crate::ops::metrics::{Metrics, OclFetch};
use crate::ops::ocl::OclHealth;
use crate::vert::clients::{Ocl, check_shrink, parse_ocl_strict};
use crate::vert::{Client, ClientList};

/// One fetch, from connecting to the last byte of the body.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Far above any real OCL (a few hundred PGOs, some tens of kilobytes).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The validators of the list in use, sent back on the next fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<HeaderValue>,
}

/// What the stelselnode answered.
#[derive(Debug)]
pub enum Fetched {
    /// `304 Not Modified`: the list in use is current.
    NotModified,
    /// `200` with a body, and its validators.
    Body(Bytes, Validators),
}

/// Why a fetch brought nothing.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer: {0}")]
    Unreachable(String),
    #[error("answered {0}")]
    Status(StatusCode),
}

/// Where a list comes from: the stelselnode, or (in tests) a script.
pub trait Fetch: Send + 'static {
    fn fetch(
        &self,
        validators: &Validators,
    ) -> impl Future<Output = Result<Fetched, FetchError>> + Send;
}

/// The running refresher; stopped on drop.
pub struct OclTask {
    trigger: mpsc::Sender<oneshot::Sender<()>>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl OclTask {
    /// Asks for a fetch now, without waiting for it (SIGHUP).
    pub fn trigger(&self) {
        let (done, _) = oneshot::channel();
        let _ = self.trigger.try_send(done);
    }

    /// Fetches now (besides the schedule) and returns when that fetch is done (tests; not
    /// from within a runtime).
    pub fn refresh(&self) {
        let (done, wait) = oneshot::channel();
        if self.trigger.blocking_send(done).is_ok() {
            let _ = wait.blocking_recv();
        }
    }
}

impl Drop for OclTask {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The CA roots `clients.ocl_ca_file` names: read at start and by `--check`.
pub fn load_roots(ocl: &OclUrl) -> Result<rustls::RootCertStore, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &ocl.ca_file {
        Some(path) => {
            let error = |message: String| ConfigError {
                key: "clients.ocl_ca_file".into(),
                message,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| error(format!("{}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(error(format!(
                    "{}: no CA certificate in it",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "clients.ocl_url: a system CA certificate could not be read");
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(roots)
}

/// The stelselnode over HTTP/1.1, TLS by rustls.
pub struct Stelselnode {
    url: Uri,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Stelselnode {
    pub fn new(ocl: &OclUrl, roots: rustls::RootCertStore) -> Result<Self, rustls::Error> {
        let tls = match ocl.url.scheme_str() {
            Some("https") => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
            _ => None,
        };
        Ok(Stelselnode {
            url: ocl.url.clone(),
            tls,
        })
    }

    async fn exchange(&self, validators: &Validators) -> Result<Fetched, FetchError> {
        let unreachable = |e: &dyn std::fmt::Display| FetchError::Unreachable(e.to_string());
        let host = self.url.host().unwrap_or("");
        let port = self
            .url
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
            .await
            .map_err(|e| unreachable(&e))?;
        let target = self
            .url
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let authority = self.url.authority().map_or(host, |a| a.as_str()).to_owned();
        let mut request = Request::get(target)
            .header(header::HOST, authority)
            .header(header::ACCEPT, "application/xml, text/xml")
            .header(header::USER_AGENT, "medmij-vert-proxy");
        if let Some(etag) = &validators.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(date) = &validators.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, date);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| unreachable(&e))?;
        let response = match &self.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                )
                .map_err(|e| unreachable(&e))?;
                let stream = tls.connect(name, tcp).await.map_err(|e| unreachable(&e))?;
                send(TokioIo::new(stream), request).await?
            }
            None => send(TokioIo::new(tcp), request).await?,
        };
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if status != StatusCode::OK {
            return Err(FetchError::Status(status));
        }
        let validators = Validators {
            etag: response.headers().get(header::ETAG).cloned(),
            last_modified: response.headers().get(header::LAST_MODIFIED).cloned(),
        };
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| FetchError::Unreachable(format!("body: {e}")))?
            .to_bytes();
        Ok(Fetched::Body(body, validators))
    }
}

async fn send<I>(
    io: I,
    request: Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, FetchError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let unreachable = |e: hyper::Error| FetchError::Unreachable(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(unreachable)?;
    tokio::spawn(connection);
    sender.send_request(request).await.map_err(unreachable)
}

impl Fetch for Stelselnode {
    async fn fetch(&self, validators: &Validators) -> Result<Fetched, FetchError> {
        tokio::time::timeout(FETCH_TIMEOUT, self.exchange(validators))
            .await
            .unwrap_or_else(|_| Err(FetchError::Unreachable("timed out".into())))
    }
}

/// Starts the refresher for `config.clients.ocl_url` on a thread of its own.
pub fn start(
    config: &Config,
    live: Arc<ArcSwap<ClientList>>,
    health: Arc<OclHealth>,
    metrics: Arc<Metrics>,
) -> io::Result<Option<OclTask>> {
    let Some(ocl) = config.clients.ocl_url.clone() else {
        return Ok(None);
    };
    let roots = load_roots(&ocl).map_err(|e| io::Error::other(e.to_string()))?;
    let stelselnode = Stelselnode::new(&ocl, roots).map_err(io::Error::other)?;
    let refresher = Refresher::new(
        stelselnode,
        ocl,
        config.clients.static_clients.clone(),
        live,
        health,
        metrics,
    );
    let (trigger, triggers) = mpsc::channel(4);
    let (stop, stopped) = watch::channel(false);
    let thread =
        crate::runtime::spawn_thread("vert-ocl", move || refresher.run(triggers, stopped))?;
    Ok(Some(OclTask {
        trigger,
        stop,
        thread: Some(thread),
    }))
}

/// The list in use, with what it takes to keep it current.
struct InUse {
    clients: Vec<Client>,
    sequence: u64,
    validators: Validators,
    /// When it goes stale, on the refresher's clock.
    stale_at: Instant,
}

pub struct Refresher<F> {
    fetch: F,
    settings: OclUrl,
    statics: Vec<Client>,
    live: Arc<ArcSwap<ClientList>>,
    health: Arc<OclHealth>,
    metrics: Arc<Metrics>,
    in_use: Option<InUse>,
    /// The list in use went stale: only the static entries are live.
    dropped: bool,
}

impl<F: Fetch> Refresher<F> {
    pub fn new(
        fetch: F,
        settings: OclUrl,
        statics: Vec<Client>,
        live: Arc<ArcSwap<ClientList>>,
        health: Arc<OclHealth>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Refresher {
            fetch,
            settings,
            statics,
            live,
            health,
            metrics,
            in_use: None,
            dropped: false,
        }
    }

    /// Until stopped: the cached copy first, then a fetch at once and every `ocl_refresh`, one
    /// more on each trigger; the list dropped when it goes stale in between.
    pub async fn run(
        mut self,
        mut triggers: mpsc::Receiver<oneshot::Sender<()>>,
        mut stopped: watch::Receiver<bool>,
    ) {
        self.load_cache();
        // The first fetch before any trigger is taken: a trigger always finds it done.
        tokio::select! {
            _ = stopped.changed() => return,
            () = self.refresh() => {}
        }
        let mut next = Instant::now() + self.settings.refresh;
        loop {
            let stale_at = match &self.in_use {
                Some(in_use) if !self.dropped => Some(in_use.stale_at),
                _ => None,
            };
            tokio::select! {
                _ = stopped.changed() => return,
                trigger = triggers.recv() => match trigger {
                    Some(done) => {
                        self.refresh().await;
                        let _ = done.send(());
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(next) => {
                    self.refresh().await;
                    next = Instant::now() + self.settings.refresh;
                }
                _ = tokio::time::sleep_until(stale_at.unwrap_or(next)), if stale_at.is_some() => {
                    self.drop_stale();
                }
            }
        }
    }

    /// One fetch, and what comes of it.
    pub async fn refresh(&mut self) {
        let validators = self
            .in_use
            .as_ref()
            .map(|in_use| in_use.validators.clone())
            .unwrap_or_default();
        let result = match self.fetch.fetch(&validators).await {
            Ok(Fetched::NotModified) if self.in_use.is_some() => {
                // Confirmed as it is: nothing to read.
                self.confirm(SystemTime::now());
                touch(self.settings.cache_file.as_deref());
                OclFetch::NotModified
            }
            Ok(Fetched::NotModified) => {
                tracing::warn!("clients.ocl_url: 304 without a list in use");
                OclFetch::Status
            }
            Ok(Fetched::Body(body, validators)) => match self.take(&body) {
                Ok(ocl) => {
                    tracing::info!(
                        clients = ocl.clients.len(),
                        volgnummer = ocl.sequence,
                        "clients.ocl_url: new client list in use"
                    );
                    self.install(ocl, validators, SystemTime::now());
                    write_cache(self.settings.cache_file.as_deref(), &body);
                    OclFetch::Updated
                }
                Err((result, why)) => {
                    tracing::warn!(reason = %why, "clients.ocl_url: list refused; the one in use stays");
                    result
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "clients.ocl_url: fetch failed; the list in use stays");
                match e {
                    FetchError::Unreachable(_) => OclFetch::Unreachable,
                    FetchError::Status(_) => OclFetch::Status,
                }
            }
        };
        self.metrics.ocl_fetch(result);
    }

    /// Reads and checks a new list against the one in use.
    fn take(&self, body: &[u8]) -> Result<Ocl, (OclFetch, String)> {
        let invalid = |why: String| (OclFetch::Invalid, why);
        let text = std::str::from_utf8(body).map_err(|_| invalid("not UTF-8".into()))?;
        let ocl = parse_ocl_strict(text).map_err(|e| invalid(e.to_string()))?;
        if let Some(in_use) = &self.in_use {
            if ocl.sequence < in_use.sequence {
                return Err((
                    OclFetch::Older,
                    format!(
                        "Volgnummer {} is older than {} in use",
                        ocl.sequence, in_use.sequence
                    ),
                ));
            }
            check_shrink(&in_use.clients, &ocl.clients, self.settings.max_shrink)
                .map_err(|e| (OclFetch::Shrunk, e.to_string()))?;
        }
        Ok(ocl)
    }

    /// `ocl` in use from now on, confirmed at `confirmed`.
    fn install(&mut self, ocl: Ocl, validators: Validators, confirmed: SystemTime) {
        self.in_use = Some(InUse {
            clients: ocl.clients,
            sequence: ocl.sequence,
            validators,
            stale_at: Instant::now(),
        });
        self.confirm(confirmed);
    }

    /// The list in use is current as of `at`: live (again), and stale `ocl_max_age` after.
    fn confirm(&mut self, at: SystemTime) {
        let Some(in_use) = &mut self.in_use else {
            return;
        };
        let age = SystemTime::now().duration_since(at).unwrap_or_default();
        let left = self.settings.max_age.saturating_sub(age);
        in_use.stale_at = Instant::now() + left;
        if left.is_zero() {
            // A cached copy that is already too old: kept for the shrink check, never served.
            self.health.confirmed(at);
            self.drop_stale();
            return;
        }
        // Static entries first: they win on a clash (as with `ocl_file`).
        let mut all = self.statics.clone();
        all.extend(in_use.clients.iter().cloned());
        self.live.store(Arc::new(ClientList::new(all)));
        self.dropped = false;
        self.health.confirmed(at);
        self.metrics.ocl_entries(in_use.clients.len());
        // The list in use is current as of `at`: what the client-list age (and its alert) reads.
        self.metrics.clients_loaded(at);
    }

    /// Fail closed: a list the stelselnode has not confirmed for `ocl_max_age` may name PGOs
    /// taken off since; only the static entries stay.
    fn drop_stale(&mut self) {
        tracing::error!(
            "clients.ocl_url: the client list was not confirmed within clients.ocl_max_age; refusing every client not in clients.static until a fetch succeeds"
        );
        self.live
            .store(Arc::new(ClientList::new(self.statics.iter().cloned())));
        self.dropped = true;
        self.health.expired();
        self.metrics.ocl_entries(0);
    }

    /// The cached copy, when there is one that reads: its age is the file's.
    fn load_cache(&mut self) {
        let Some(path) = self.settings.cache_file.clone() else {
            return;
        };
        let read = || -> Result<(Ocl, SystemTime), String> {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(|e| e.to_string())?;
            let ocl = parse_ocl_strict(&text).map_err(|e| e.to_string())?;
            Ok((ocl, modified))
        };
        match read() {
            Ok((ocl, modified)) => {
                tracing::info!(
                    clients = ocl.clients.len(),
                    file = %path.display(),
                    "clients.ocl_cache_file: serving the cached client list until the stelselnode answers"
                );
                self.install(ocl, Validators::default(), modified);
            }
            Err(e) if !path.exists() => {
                tracing::debug!(error = %e, "clients.ocl_cache_file: none yet");
            }
            Err(e) => {
                tracing::warn!(error = %e, file = %path.display(), "clients.ocl_cache_file: unreadable, not used");
            }
        }
    }
}

/// The last good list to disk, whole or not at all (a new file renamed over the old).
fn write_cache(path: Option<&Path>, body: &[u8]) {
    let Some(path) = path else { return };
    let mut temporary = PathBuf::from(path);
    temporary.as_mut_os_string().push(".new");
    let written = std::fs::write(&temporary, body).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        tracing::warn!(error = %e, file = %path.display(), "clients.ocl_cache_file: not written");
    }
}

/// A `304`: the cached copy is as current as a new one; its mtime says so.
fn touch(path: Option<&Path>) {
    let Some(path) = path else { return };
    let touched = std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::warn!(error = %e, file = %path.display(), "clients.ocl_cache_file: not touched");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use crate::vert::clients::OCL_NAMESPACE;

    fn ocl(sequence: u64, hosts: &[&str]) -> Bytes {
        let entries: String = hosts
            .iter()
            .map(|h| format!("<OAuthclient><Hostname>{h}</Hostname><OAuthclientOrganisatienaam>{h}</OAuthclientOrganisatienaam></OAuthclient>"))
            .collect();
        Bytes::from(format!(
            "<OAuthclientlist xmlns=\"{OCL_NAMESPACE}\"><Tijdstempel>2026-11-01T12:00:00Z</Tijdstempel><Volgnummer>{sequence}</Volgnummer><OAuthclients>{entries}</OAuthclients></OAuthclientlist>"
        ))
    }

    /// Answers from a queue, recording the validators each fetch sent.
    #[derive(Clone, Default)]
    struct Script {
        answers: Arc<Mutex<Vec<Result<Fetched, FetchError>>>>,
        sent: Arc<Mutex<Vec<Validators>>>,
    }

    impl Script {
        fn then(&self, answer: Result<Fetched, FetchError>) {
            self.answers.lock().unwrap().insert(0, answer);
        }
    }

    impl Fetch for Script {
        fn fetch(
            &self,
            validators: &Validators,
        ) -> impl Future<Output = Result<Fetched, FetchError>> + Send {
            self.sent.lock().unwrap().push(validators.clone());
            let answer = self
                .answers
                .lock()
                .unwrap()
                .pop()
                .unwrap_or_else(|| Err(FetchError::Unreachable("nothing scripted".into())));
            std::future::ready(answer)
        }
    }

    fn settings(max_shrink: usize) -> OclUrl {
        OclUrl {
            url: Uri::from_static("https://stelselnode.example/ocl.xml"),
            refresh: Duration::from_secs(3600),
            max_age: Duration::from_secs(3 * 3600),
            max_shrink,
            ca_file: None,
            cache_file: None,
        }
    }

    fn refresher(
        script: &Script,
    ) -> (
        Refresher<Script>,
        Arc<ArcSwap<ClientList>>,
        Arc<OclHealth>,
        Arc<Metrics>,
    ) {
        let live = Arc::new(ArcSwap::from_pointee(ClientList::default()));
        let health = Arc::new(OclHealth::new(Duration::from_secs(3 * 3600)));
        let metrics = Metrics::with_ocl();
        let statics = vec![Client {
            hostname: "static.example.nl".into(),
            name: "Static".into(),
        }];
        let r = Refresher::new(
            script.clone(),
            settings(50),
            statics,
            live.clone(),
            health.clone(),
            metrics.clone(),
        );
        (r, live, health, metrics)
    }

    fn etag(tag: &'static str) -> Validators {
        Validators {
            etag: Some(HeaderValue::from_static(tag)),
            last_modified: Some(HeaderValue::from_static("Sun, 01 Nov 2026 12:00:00 GMT")),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ocl_refresh_updates_confirms_refuses_and_drops_a_stale_list() {
        let script = Script::default();
        let (mut r, live, health, metrics) = refresher(&script);
        assert!(health.ready().is_err());
        script.then(Ok(Fetched::Body(ocl(1, &["a.nl", "b.nl"]), etag("\"1\""))));
        r.refresh().await;
        assert!(live.load().get("a.nl").is_some());
        assert!(live.load().get("static.example.nl").is_some());
        assert_eq!(health.ready(), Ok(()));
        // Conditional: the validators of the list in use go back.
        script.then(Ok(Fetched::NotModified));
        r.refresh().await;
        assert_eq!(script.sent.lock().unwrap()[1], etag("\"1\""));
        // A broken list, one that drops more than half, an older one: refused, the old one stays.
        for body in [
            Bytes::from_static(b"<html>maintenance</html>"),
            ocl(2, &[]),
            ocl(2, &["c.nl"]),
            ocl(0, &["a.nl", "b.nl", "c.nl"]),
        ] {
            script.then(Ok(Fetched::Body(body, etag("\"x\""))));
            r.refresh().await;
            assert!(live.load().get("a.nl").is_some() && live.load().get("b.nl").is_some());
        }
        let text = metrics.encode();
        for series in [
            "medmij_vert_ocl_fetches_total{result=\"updated\"} 1",
            "medmij_vert_ocl_fetches_total{result=\"not_modified\"} 1",
            "medmij_vert_ocl_fetches_total{result=\"invalid\"} 2",
            "medmij_vert_ocl_fetches_total{result=\"shrunk\"} 1",
            "medmij_vert_ocl_fetches_total{result=\"older\"} 1",
            "medmij_vert_ocl_last_fetch{result=\"older\"} 1",
            "medmij_vert_ocl_last_fetch{result=\"updated\"} 0",
            "medmij_vert_ocl_entries 2",
        ] {
            assert!(text.contains(series), "{series}\n{text}");
        }
        // Half is allowed: a new client appears, one leaves.
        script.then(Ok(Fetched::Body(ocl(3, &["a.nl", "c.nl"]), etag("\"3\""))));
        r.refresh().await;
        assert!(live.load().get("c.nl").is_some() && live.load().get("b.nl").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn ocl_a_list_the_stelselnode_does_not_confirm_within_max_age_is_dropped() {
        let script = Script::default();
        let (r, live, health, _) = refresher(&script);
        script.then(Ok(Fetched::Body(ocl(1, &["a.nl"]), Validators::default())));
        let (trigger, triggers) = mpsc::channel(1);
        let (_stop, stopped) = watch::channel(false);
        let task = tokio::spawn(r.run(triggers, stopped));
        // The first fetch at once; every later one fails (nothing scripted).
        let (done, wait) = oneshot::channel();
        trigger.send(done).await.unwrap();
        wait.await.unwrap();
        assert!(live.load().get("a.nl").is_some());
        // Two hours and a bit: still within ocl_max_age (3 h), two failed refreshes later.
        tokio::time::sleep(Duration::from_secs(2 * 3600 + 60)).await;
        assert!(live.load().get("a.nl").is_some());
        assert_eq!(health.ready(), Ok(()));
        // Past it: dropped, only the static entry left, not ready.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(live.load().get("a.nl").is_none());
        assert!(live.load().get("static.example.nl").is_some());
        assert!(health.ready().is_err());
        // The stelselnode answers again (304 for the list it had): in use again.
        script.then(Ok(Fetched::NotModified));
        let (done, wait) = oneshot::channel();
        trigger.send(done).await.unwrap();
        wait.await.unwrap();
        assert!(live.load().get("a.nl").is_some());
        assert_eq!(health.ready(), Ok(()));
        task.abort();
    }
}
