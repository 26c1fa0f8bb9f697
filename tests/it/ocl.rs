//! Issue 29, item 2: `clients.ocl_url`, against a local HTTPS stelselnode with a certificate
//! from a test CA (`clients.ocl_ca_file`). Fetches are triggered (`Running::refresh_ocl`, as
//! SIGHUP does), so nothing waits on the refresh interval; the clock-driven parts (the
//! schedule, a list going stale while the proxy runs) are `server::ocl`'s unit tests on
//! tokio's paused clock.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const NS: &str = "xmlns://afsprakenstelsel.medmij.nl/oauthclientlist/release2/";

fn ocl(sequence: u64, hosts: &[&str]) -> String {
    let entries: String = hosts
        .iter()
        .map(|h| format!("<OAuthclient><Hostname>{h}</Hostname><OAuthclientOrganisatienaam>{h}</OAuthclientOrganisatienaam></OAuthclient>"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<OAuthclientlist xmlns=\"{NS}\"><Tijdstempel>2026-11-01T12:00:00Z</Tijdstempel><Volgnummer>{sequence}</Volgnummer><OAuthclients>{entries}</OAuthclients></OAuthclientlist>"
    )
}

/// What the stelselnode serves: the body and its ETag, or `None` for a `503`.
type Serving = Arc<Mutex<Option<(String, String)>>>;

/// An HTTPS server on 127.0.0.1 with a certificate for that address from a CA of its own;
/// answers `304` when `If-None-Match` names the ETag it serves. Stopped on drop.
struct Stelselnode {
    addr: SocketAddr,
    ca_file: PathBuf,
    serving: Serving,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stelselnode {
    fn start(dir: &Path) -> Stelselnode {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test stelselnode CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = dir.join("stelselnode-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let serving: Serving = Arc::default();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (s, h) = (serving.clone(), heads.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => accepted.unwrap(),
                    };
                    let (acceptor, s, h) = (acceptor.clone(), s.clone(), h.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        h.lock().unwrap().push(head.clone());
                        let serving = s.lock().unwrap().clone();
                        let answer = match serving {
                            None => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                            Some((_, etag))
                                if head
                                    .to_ascii_lowercase()
                                    .contains(&format!("if-none-match: {}", etag.to_ascii_lowercase())) =>
                            {
                                format!("HTTP/1.1 304 Not Modified\r\netag: {etag}\r\nconnection: close\r\n\r\n")
                            }
                            Some((body, etag)) => format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\netag: {etag}\r\nlast-modified: Sun, 01 Nov 2026 12:00:00 GMT\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            ),
                        };
                        let _ = tls.write_all(answer.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        });
        Stelselnode {
            addr,
            ca_file,
            serving,
            heads,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn serve(&self, body: &str, etag: &str) {
        *self.serving.lock().unwrap() = Some((body.to_owned(), etag.to_owned()));
    }

    fn down(&self) {
        *self.serving.lock().unwrap() = None;
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// The proxy's keys for this stelselnode, with `extra` keys of `[clients]` and the
    /// admin listener on.
    fn config(&self, extra: &str) -> String {
        format!(
            "[admin]\naddr = \"127.0.0.1:0\"\n[clients]\nstatic = []\nocl_url = \"https://{}/MedMij_OAuthclientlist.xml?api=2\"\nocl_ca_file = \"{}\"\n{extra}",
            self.addr,
            self.ca_file.display()
        )
    }
}

impl Drop for Stelselnode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The proxy's answer to an authorization request for `client`: 200 (forwarded, the demo
/// AS's login page) or 400 (1a: not on the client list).
fn authorize_status(h: &Harness, client: &str) -> u16 {
    let target = format!(
        "/oauth2/authorize?response_type=code&client_id={client}&redirect_uri=https%3A%2F%2F{client}%2Fcb&state=s1&scope=48"
    );
    raw_status(&raw(
        h.proxy_addr(),
        format!("GET {target} HTTP/1.1\r\nHost: as.example.nl\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(30),
    ))
}

#[test]
fn ocl_url_a_new_client_appears_after_a_refresh_and_a_304_costs_no_parse() {
    let dir = temp_dir();
    let node = Stelselnode::start(&dir);
    node.serve(&ocl(1, &["pgo.example.nl", "a.example.nl"]), "\"v1\"");
    let h = Harness::start(&node.config(""));
    h.running().refresh_ocl();
    assert_eq!(authorize_status(&h, "pgo.example.nl"), 200);
    assert_eq!(authorize_status(&h, "new.example.nl"), 400);
    assert_eq!(h.admin_get("/ready").0, 200);
    assert_eq!(h.metric("medmij_vert_ocl_entries"), 2);
    // The stelselnode publishes a list with a new PGO.
    node.serve(
        &ocl(2, &["pgo.example.nl", "a.example.nl", "new.example.nl"]),
        "\"v2\"",
    );
    h.running().refresh_ocl();
    assert_eq!(authorize_status(&h, "new.example.nl"), 200);
    assert_eq!(h.metric("medmij_vert_ocl_entries"), 3);
    let heads = node.heads();
    let last = heads.last().unwrap().to_ascii_lowercase();
    assert!(last.contains("if-none-match: \"v1\"\r\n"), "{last}");
    assert!(
        last.contains("if-modified-since: sun, 01 nov 2026 12:00:00 gmt\r\n"),
        "{last}"
    );
    // Unchanged: 304. What the stelselnode now holds under that ETag is never read (were it
    // read, it would be refused as broken). (One 304 came already: the fetch at start, then
    // the first trigger.)
    node.serve("<html>not an OCL</html>", "\"v2\"");
    h.running().refresh_ocl();
    h.running().refresh_ocl();
    assert_eq!(
        h.metric("medmij_vert_ocl_fetches_total{result=\"not_modified\"}"),
        3
    );
    assert_eq!(
        h.metric("medmij_vert_ocl_fetches_total{result=\"invalid\"}"),
        0
    );
    assert_eq!(
        h.metric("medmij_vert_ocl_last_fetch{result=\"not_modified\"}"),
        1
    );
    assert_eq!(h.metric("medmij_vert_ocl_entries"), 3);
    assert_eq!(authorize_status(&h, "new.example.nl"), 200);
}

#[test]
fn ocl_url_a_broken_or_shrunken_list_is_refused_and_the_old_one_kept() {
    let dir = temp_dir();
    let node = Stelselnode::start(&dir);
    let four = [
        "pgo.example.nl",
        "a.example.nl",
        "b.example.nl",
        "c.example.nl",
    ];
    node.serve(&ocl(5, &four), "\"v5\"");
    let h = Harness::start(&node.config(""));
    h.running().refresh_ocl();
    assert_eq!(h.metric("medmij_vert_ocl_entries"), 4);
    for (body, result) in [
        ("<html>Onderhoud</html>".to_owned(), "invalid"),
        (ocl(6, &[]), "invalid"),
        (ocl(6, &["pgo.example.nl", "pgo.example.nl"]), "invalid"),
        (ocl(6, &["pgo.example.nl"]), "shrunk"),
        (ocl(4, &four), "older"),
    ] {
        node.serve(&body, &format!("\"{result}-{}\"", body.len()));
        h.running().refresh_ocl();
        assert_eq!(
            h.metric(&format!(
                "medmij_vert_ocl_last_fetch{{result=\"{result}\"}}"
            )),
            1,
            "{body}"
        );
        for client in four {
            assert_eq!(authorize_status(&h, client), 200, "{client} after {body}");
        }
    }
    assert_eq!(
        h.metric("medmij_vert_ocl_fetches_total{result=\"invalid\"}"),
        3
    );
    // The stelselnode down: the list in use stays, still ready (it is younger than max_age).
    node.down();
    h.running().refresh_ocl();
    assert_eq!(
        h.metric("medmij_vert_ocl_fetches_total{result=\"status\"}"),
        1
    );
    assert_eq!(h.admin_get("/ready").0, 200);
    assert_eq!(authorize_status(&h, "c.example.nl"), 200);
}

#[test]
fn ocl_url_a_restart_serves_from_the_cache_and_a_stale_list_fails_ready_and_refuses_flows() {
    let dir = temp_dir();
    let node = Stelselnode::start(&dir);
    let cache = dir.join("ocl-cache.xml");
    let extra = format!("ocl_cache_file = \"{}\"\n", cache.display());
    node.serve(&ocl(7, &["pgo.example.nl", "a.example.nl"]), "\"v7\"");
    let first = Harness::start(&node.config(&extra));
    first.running().refresh_ocl();
    assert!(
        std::fs::read_to_string(&cache)
            .unwrap()
            .contains("<Volgnummer>7<")
    );
    drop(first);
    // Restarted while the stelselnode does not answer: the cached copy serves.
    node.down();
    let second = Harness::start(&node.config(&extra));
    second.running().refresh_ocl();
    assert_eq!(authorize_status(&second, "pgo.example.nl"), 200);
    assert_eq!(second.admin_get("/ready").0, 200);
    assert_eq!(second.metric("medmij_vert_ocl_entries"), 2);
    drop(second);
    // The same cache, last confirmed two days ago (beyond ocl_max_age, 24h): stale. /ready
    // fails and every authorization request is 1a, fail closed.
    std::fs::File::options()
        .append(true)
        .open(&cache)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(48 * 3600))
        .unwrap();
    let stale = Harness::start(&node.config(&extra));
    stale.running().refresh_ocl();
    let (status, body) = stale.admin_get("/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("more than clients.ocl_max_age"), "{body}");
    assert_eq!(authorize_status(&stale, "pgo.example.nl"), 400);
    assert_eq!(stale.metric("medmij_vert_ocl_entries"), 0);
    // The stelselnode back: served again, the cache renewed.
    node.serve(&ocl(8, &["pgo.example.nl", "a.example.nl"]), "\"v8\"");
    stale.running().refresh_ocl();
    assert_eq!(authorize_status(&stale, "pgo.example.nl"), 200);
    assert_eq!(stale.admin_get("/ready").0, 200);
}

#[test]
fn ocl_url_no_list_ever_loaded_fails_ready_and_refuses_flows() {
    let dir = temp_dir();
    let node = Stelselnode::start(&dir);
    node.down();
    let h = Harness::start(&node.config(""));
    h.running().refresh_ocl();
    let (status, body) = h.admin_get("/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no client list was ever loaded"), "{body}");
    assert_eq!(authorize_status(&h, "pgo.example.nl"), 400);
    // Another CA than the one the stelselnode's certificate chains to: no list either.
    let other = Stelselnode::start(&temp_dir());
    node.serve(&ocl(1, &["pgo.example.nl"]), "\"v1\"");
    let wrong_ca = node.config("").replace(
        &node.ca_file.display().to_string(),
        &other.ca_file.display().to_string(),
    );
    let h = Harness::start(&wrong_ca);
    h.running().refresh_ocl();
    assert_eq!(authorize_status(&h, "pgo.example.nl"), 400);
    assert!(h.metric("medmij_vert_ocl_fetches_total{result=\"unreachable\"}") >= 1);
}
