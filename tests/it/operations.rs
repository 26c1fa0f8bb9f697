//! What an operations team runs on day one: the admin listener (`/live`, `/ready`,
//! `/metrics`), TLS with a certificate reload, reloads of the client list and the state keys on
//! SIGHUP, and the `health` command.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use medmij_vert_proxy::state::seal::generate_key_line;

const ADMIN: &str = "[admin]\naddr = \"127.0.0.1:0\"\n";
const SELF: &str = "&scope=48";

/// A listener on a fixed port that can go away and come back (the upstream for `/ready`).
fn bind_reusable(addr: SocketAddr) -> TcpListener {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.bind(&addr.into()).unwrap();
    socket.listen(16).unwrap();
    socket.into()
}

#[test]
fn live_and_ready_follow_the_upstream() {
    let upstream = bind_reusable("127.0.0.1:0".parse().unwrap());
    let upstream_addr = upstream.local_addr().unwrap();
    let h = Harness::start_with_upstream(&format!("http://{upstream_addr}"), ADMIN);
    assert_eq!(h.admin_get("/live"), (200, "live\n".into()));
    assert_eq!(h.admin_get("/ready").0, 200);
    // The upstream goes away: not ready, with the reason; still live.
    drop(upstream);
    wait_until("/ready turns 503", || h.admin_get("/ready").0 == 503);
    let (_, why) = h.admin_get("/ready");
    assert!(why.starts_with("not ready: upstream 127.0.0.1:"), "{why}");
    assert_eq!(h.admin_get("/live").0, 200);
    // And back.
    let _upstream = bind_reusable(upstream_addr);
    wait_until("/ready turns 200", || h.admin_get("/ready").0 == 200);
    // Only on the admin listener: the public one forwards these paths to the AS.
    assert_eq!(h.admin_get("/nothing").0, 404);
}

/// `medmij_vert_ready` follows the AS from scrapes alone (Prometheus asks `/metrics`, not
/// `/ready`), and a request the AS cannot take counts in `medmij_vert_upstream_errors_total`.
#[test]
fn the_ready_gauge_follows_the_upstream_from_scrapes_alone() {
    let upstream = bind_reusable("127.0.0.1:0".parse().unwrap());
    let upstream_addr = upstream.local_addr().unwrap();
    let h = Harness::start_with_upstream(&format!("http://{upstream_addr}"), ADMIN);
    let ready = || h.metric("medmij_vert_ready");
    wait_until("medmij_vert_ready 1", || ready() == 1);
    drop(upstream);
    wait_until("medmij_vert_ready 0", || ready() == 0);
    let r = raw(
        h.proxy_addr(),
        b"GET /anything HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n",
        Duration::from_secs(30),
    );
    assert_eq!(raw_status(&r), 502, "{r}");
    assert_eq!(
        h.metric("medmij_vert_upstream_errors_total{kind=\"failed\"}"),
        1
    );
    assert_eq!(
        h.metric("medmij_vert_upstream_errors_total{kind=\"timeout\"}"),
        0
    );
    let _upstream = bind_reusable(upstream_addr);
    wait_until("medmij_vert_ready 1 again", || ready() == 1);
}

#[tokio::test]
async fn metrics_count_each_decision_of_a_flow_walk() {
    let h = Harness::start(ADMIN);
    let decisions = |outcome: &str, rule: &str, exception: &str| {
        format!(
            "medmij_vert_decisions_total{{outcome=\"{outcome}\",rule=\"{rule}\",exception=\"{exception}\"}}"
        )
    };
    // Released for yourself, twice.
    for _ in 0..2 {
        let r = h.flow(SELF, &[("as", "self")]).await;
        assert_eq!(r.status, 302);
    }
    // Vert 1.
    let r = h
        .flow(
            "&scope=48%20onbehalfof&MedMij_geboortedatum=19700901",
            &[("as", "self")],
        )
        .await;
    assert_eq!(r.status, 403);
    // Vert 3: nothing forwarded.
    let r = get(&h.authorize_url("&scope=48%20onbehalfof")).await;
    assert_eq!(r.status, 302);

    let (status, text) = h.admin_get("/metrics");
    assert_eq!(status, 200);
    let count = |series: &str| metric_value(&text, series);
    assert_eq!(
        count(&decisions("forwarded", "core.authint.200", "")),
        2,
        "{text}"
    );
    assert_eq!(
        count(&decisions("forwarded", "ext.vert.authint.201", "")),
        1
    );
    assert_eq!(count(&decisions("released", "ext.vert.authint.202", "")), 2);
    assert_eq!(
        count(&decisions(
            "withheld",
            "ext.vert.authint.202",
            "Authorization interface Vertegenwoordiging 1"
        )),
        1
    );
    assert_eq!(
        count(&decisions(
            "error_redirect",
            "ext.vert.authint.200",
            "Authorization interface Vertegenwoordiging 3"
        )),
        1
    );
    assert_eq!(
        count("medmij_vert_requests_total{route=\"authorize\",status=\"3xx\"}"),
        1
    );
    assert_eq!(
        count("medmij_vert_requests_total{route=\"authorize\",status=\"2xx\"}"),
        3
    );
    assert!(count("medmij_vert_requests_total{route=\"other\",status=\"3xx\"}") >= 2);
    assert!(count("medmij_vert_upstream_response_seconds_count") >= 6);
    // No fail-closed withhold yet, and its series is there at 0: the alert's `increase()`
    // sees the first one.
    assert!(
        text.contains(&format!(
            "{} 0\n",
            decisions("withheld", "ext.vert.authint.202", "fail closed")
        )),
        "{text}"
    );
    // Never a code, a state, a birth date or a client's id in a label.
    for secret in ["st-1", "19700901", "pgo.example.nl", "code="] {
        assert!(!text.contains(secret), "{secret} in the metrics:\n{text}");
    }
}

// --- TLS ------------------------------------------------------------------------------------

/// A self-signed certificate for `localhost` and its key, written as PEM files.
fn write_certificate(dir: &Path, name: &str) -> rustls::pki_types::CertificateDer<'static> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), generated.cert.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{name}.key")),
        generated.signing_key.serialize_pem(),
    )
    .unwrap();
    generated.cert.der().clone()
}

/// A TLS client that trusts only `root`.
fn tls_client(
    root: &rustls::pki_types::CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn tls_connect(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> std::io::Result<TlsStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

/// One keep-alive request on an open TLS connection; the status.
async fn tls_get(stream: &mut TlsStream) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The demo AS's echo is short; read until the JSON body closes.
    while !answer.ends_with(b"}\n") && !answer.ends_with(b"}") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    raw_status(&String::from_utf8_lossy(&answer))
}

/// Issue 18, finding 4: behind `[listen.tls]` the AS is told `X-Forwarded-Proto: https`, also
/// when the client claims otherwise (Django's CSRF check and its URLs depend on it).
#[tokio::test]
async fn x_forwarded_proto_is_https_when_the_listener_speaks_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir();
    let root = write_certificate(&dir, "xfp");
    let tls = format!(
        "[listen.tls]\ncert_file = \"{0}/xfp.crt\"\nkey_file = \"{0}/xfp.key\"\n",
        dir.display()
    );
    let h = Harness::start(&tls);
    let connector = tls_client(&root, &[&rustls::version::TLS13]);
    let mut stream = tls_connect(h.proxy_addr(), &connector).await.unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(
        answer.contains("[\"x-forwarded-proto\",\"https\"]"),
        "{answer}"
    );
    assert_eq!(answer.matches("x-forwarded-proto").count(), 1, "{answer}");
}

#[tokio::test]
async fn tls_serves_and_a_new_certificate_is_taken_on_reload_while_connections_stay_open() {
    let dir = temp_dir();
    let first = write_certificate(&dir, "first");
    let tls = format!(
        "{ADMIN}[listen.tls]\ncert_file = \"{0}/first.crt\"\nkey_file = \"{0}/first.key\"\n",
        dir.display()
    );
    let h = Harness::start(&tls);
    let addr = h.proxy_addr();
    let tls13 = &[&rustls::version::TLS13];
    let tls12 = &[&rustls::version::TLS12];
    let mut open = tls_connect(addr, &tls_client(&first, tls13)).await.unwrap();
    assert_eq!(tls_get(&mut open).await, 200);
    let mut open12 = tls_connect(addr, &tls_client(&first, tls12)).await.unwrap();
    assert_eq!(tls_get(&mut open12).await, 200);

    // A new certificate in the same files, and a reload (what SIGHUP does).
    let second = write_certificate(&dir, "first");
    h.running().reload();
    assert_eq!(
        h.metric("medmij_vert_reloads_total{file=\"tls\",result=\"ok\"}"),
        1
    );
    // New connections get the new certificate...
    let mut fresh = tls_connect(addr, &tls_client(&second, tls13))
        .await
        .unwrap();
    assert_eq!(tls_get(&mut fresh).await, 200);
    assert!(tls_connect(addr, &tls_client(&first, tls13)).await.is_err());
    // ...and the connection opened before the reload still serves.
    assert_eq!(tls_get(&mut open).await, 200);

    // A broken certificate: the reload fails, the second one stays.
    std::fs::write(dir.join("first.crt"), "not a certificate").unwrap();
    h.running().reload();
    assert_eq!(
        h.metric("medmij_vert_reloads_total{file=\"tls\",result=\"error\"}"),
        1
    );
    let mut again = tls_connect(addr, &tls_client(&second, tls13))
        .await
        .unwrap();
    assert_eq!(tls_get(&mut again).await, 200);
    // Plain HTTP on the TLS port gets nowhere.
    let r = raw(
        addr,
        b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(30),
    );
    assert_eq!(raw_status(&r), 0, "{r}");
}

/// The gauges the expiry and staleness alerts read: the certificate's `notAfter` at start and
/// after a reload, and when the client list in use was read, with the last reload's result.
#[test]
fn the_certificate_expiry_and_the_client_list_load_are_metrics() {
    let dir = temp_dir();
    let write = |year: i32| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("c.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("c.key"), key.serialize_pem()).unwrap();
    };
    write(2031);
    std::fs::write(dir.join("ocl.xml"), ocl(&["pgo.example.nl"])).unwrap();
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = unix_now();
    let h = Harness::start(&format!(
        "{ADMIN}[listen.tls]\ncert_file = \"{0}/c.crt\"\nkey_file = \"{0}/c.key\"\n\
         [clients]\nocl_file = \"{0}/ocl.xml\"\n",
        dir.display()
    ));
    let not_after = "medmij_vert_tls_certificate_not_after_timestamp_seconds";
    let loaded = "medmij_vert_clients_loaded_timestamp_seconds";
    assert_eq!(h.metric(not_after), 1_925_078_400, "2031-01-02T00:00:00Z");
    let at_start = h.metric(loaded);
    assert!((before..=unix_now()).contains(&at_start), "{at_start}");
    write(2032);
    h.running().reload();
    assert_eq!(h.metric(not_after), 1_956_614_400, "2032-01-02T00:00:00Z");
    assert_eq!(
        h.metric("medmij_vert_last_reload_successful{file=\"tls\"}"),
        1
    );
    assert_eq!(
        h.metric("medmij_vert_last_reload_successful{file=\"clients\"}"),
        1
    );
    // A broken list: the old one serves, the gauge says the reload failed.
    std::fs::write(dir.join("ocl.xml"), "<OAuthclientlist>broken").unwrap();
    h.running().reload();
    assert_eq!(
        h.metric("medmij_vert_last_reload_successful{file=\"clients\"}"),
        0
    );
    assert!(h.metric(loaded) >= at_start);
    let _ = std::fs::remove_dir_all(dir);
}

// --- Reload of the client list and the keys ---------------------------------------------

const OCL_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<OAuthclientlist xmlns="xmlns://afsprakenstelsel.medmij.nl/oauthclientlist/release2/">
  <Tijdstempel>2026-11-01T12:00:00Z</Tijdstempel>
  <Volgnummer>1</Volgnummer>
  <OAuthclients>
"#;

fn ocl(hosts: &[&str]) -> String {
    let mut xml = OCL_HEAD.to_owned();
    for host in hosts {
        xml.push_str(&format!(
            "    <OAuthclient><Hostname>{host}</Hostname><OAuthclientOrganisatienaam>{host}</OAuthclientOrganisatienaam></OAuthclient>\n"
        ));
    }
    xml + "  </OAuthclients>\n</OAuthclientlist>\n"
}

/// The proxy binary with `config` (TOML) in `dir`; its public and admin addresses.
fn start_binary(dir: &Path, config: &str) -> (Child, SocketAddr, SocketAddr) {
    let (child, public, admin) = crate::support::start_binary(dir, config, &[]);
    (child, public, admin.expect("admin.addr set"))
}

fn signal(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn admin_metric(admin: SocketAddr, series: &str) -> u64 {
    let r = raw(
        admin,
        b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        Duration::from_secs(30),
    );
    metric_value(&r, series)
}

fn authorize_status(addr: SocketAddr, client: &str) -> u16 {
    let target = format!(
        "/oauth2/authorize?response_type=code&client_id={client}&redirect_uri=https%3A%2F%2F{client}%2Fcb&state=s&scope=48"
    );
    raw_status(&raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(30),
    ))
}

/// Issue 26, finding 6: a flow begun before its client was taken off the list (new OCL,
/// SIGHUP) gets no code at its return, as a return into its flow gets none.
#[test]
fn delisted_a_flow_begun_before_its_client_left_the_list_gets_no_code() {
    let upstream = Upstream::scripted();
    upstream.answer_path(
        "/login",
        "https://pgo.example.nl/cb?code=C0DE&state={state}",
        &[("x-vert-representation", "none")],
    );
    let dir = temp_dir();
    std::fs::write(dir.join("ocl.xml"), ocl(&["pgo.example.nl"])).unwrap();
    let (mut child, addr, admin) = start_binary(
        &dir,
        &format!(
            "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n\
             [upstream]\nurl = \"{}\"\n[clients]\nocl_file = \"ocl.xml\"\n",
            upstream.url()
        ),
    );
    assert_eq!(authorize_status(addr, "pgo.example.nl"), 200);
    let sealed = upstream
        .state_in_request_with("/oauth2/authorize")
        .expect("the flow reached the AS");
    std::fs::write(dir.join("ocl.xml"), ocl(&["other.example.nl"])).unwrap();
    signal(&child, "-HUP");
    let ok = "medmij_vert_reloads_total{file=\"clients\",result=\"ok\"}";
    wait_until("the reload", || admin_metric(admin, ok) == 1);
    let r = raw(
        addr,
        format!("GET /login?state={sealed} HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(30),
    );
    assert_eq!(raw_status(&r), 502, "{r}");
    assert!(!r.contains("C0DE"), "{r}");
    let withheld = "medmij_vert_decisions_total{outcome=\"withheld\",rule=\"ext.vert.authint.202\",exception=\"fail closed\"}";
    assert_eq!(admin_metric(admin, withheld), 1);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sighup_reloads_the_client_list_and_a_broken_one_keeps_the_old() {
    let upstream = Upstream::recorder();
    let dir = temp_dir();
    std::fs::write(dir.join("ocl.xml"), ocl(&["pgo.example.nl"])).unwrap();
    std::fs::write(dir.join("state.key"), generate_key_line() + "\n").unwrap();
    let (mut child, addr, admin) = start_binary(
        &dir,
        &format!(
            "[listen]\naddr = \"127.0.0.1:0\"\nworkers = 2\n[admin]\naddr = \"127.0.0.1:0\"\n\
             [upstream]\nurl = \"{}\"\n[clients]\nocl_file = \"ocl.xml\"\n[state]\nkey_file = \"state.key\"\n",
            upstream.url()
        ),
    );
    let ok = "medmij_vert_reloads_total{file=\"clients\",result=\"ok\"}";
    let failed = "medmij_vert_reloads_total{file=\"clients\",result=\"error\"}";
    assert_eq!(authorize_status(addr, "pgo.example.nl"), 200);
    assert_eq!(
        authorize_status(addr, "new.example.nl"),
        400,
        "1a before the reload"
    );

    std::fs::write(
        dir.join("ocl.xml"),
        ocl(&["pgo.example.nl", "new.example.nl"]),
    )
    .unwrap();
    signal(&child, "-HUP");
    wait_until("the reload", || admin_metric(admin, ok) == 1);
    assert_eq!(
        authorize_status(addr, "new.example.nl"),
        200,
        "admitted after the reload"
    );

    std::fs::write(dir.join("ocl.xml"), "<OAuthclientlist>broken").unwrap();
    signal(&child, "-HUP");
    wait_until("the failed reload", || admin_metric(admin, failed) == 1);
    assert_eq!(
        authorize_status(addr, "new.example.nl"),
        200,
        "the old list stays"
    );
    assert_eq!(
        admin_metric(
            admin,
            "medmij_vert_reloads_total{file=\"keys\",result=\"ok\"}"
        ),
        2
    );

    // health: 0 while ready...
    let health = || {
        Command::new(env!("CARGO_BIN_EXE_medmij-vert-proxy"))
            .args(["health", "--config"])
            .arg(dir.join("proxy.toml"))
            .output()
            .unwrap()
    };
    // The config says port 0; health asks the address the proxy actually has.
    let with_admin = std::fs::read_to_string(dir.join("proxy.toml"))
        .unwrap()
        .replace(
            "[admin]\naddr = \"127.0.0.1:0\"",
            &format!("[admin]\naddr = \"{admin}\""),
        );
    std::fs::write(dir.join("proxy.toml"), with_admin).unwrap();
    let out = health();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...1 when the upstream is gone.
    drop(upstream);
    wait_until("health fails", || !health().status.success());
    let out = health();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ready: upstream"));
    // Liveness (the image's HEALTHCHECK) stays 0 while the AS is down: the proxy answers.
    let live = Command::new(env!("CARGO_BIN_EXE_medmij-vert-proxy"))
        .args(["health", "--live", "--config"])
        .arg(dir.join("proxy.toml"))
        .output()
        .unwrap();
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&live.stdout), "live\n");

    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn health_without_an_admin_listener_or_a_proxy_is_1() {
    let dir = temp_dir();
    let config = dir.join("proxy.toml");
    std::fs::write(&config, "[upstream]\nurl = \"http://127.0.0.1:9\"\n[clients]\nstatic = [{ hostname = \"pgo.example.nl\" }]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medmij-vert-proxy"))
        .args(["health", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin.addr is not set"));
    // An admin address nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        format!("[upstream]\nurl = \"http://127.0.0.1:9\"\n[clients]\nstatic = [{{ hostname = \"pgo.example.nl\" }}]\n[admin]\naddr = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medmij-vert-proxy"))
        .args(["health", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(dir);
}

/// The sealed state the AS received in its last authorization request.
fn sealed_state(upstream: &Upstream) -> String {
    let received = upstream.received();
    let target = received.rsplit("GET /oauth2/authorize?").next().unwrap();
    let query = target.split_whitespace().next().unwrap();
    query
        .split('&')
        .find_map(|p| p.strip_prefix("state="))
        .unwrap()
        .to_owned()
}

#[test]
fn key_rotation_a_flow_sealed_with_the_old_key_is_released_after_the_reload() {
    let upstream = Upstream::recorder();
    let h = Harness::start_with_upstream(&upstream.url(), ADMIN);
    let addr = h.proxy_addr();
    let key_file = h.dir.join("state.key");
    let old = std::fs::read_to_string(&key_file).unwrap();
    let start_flow = || {
        let r = raw(
            addr,
            format!(
                "GET /oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state=st-1&scope=48 HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
            Duration::from_secs(30),
        );
        assert_eq!(raw_status(&r), 200, "{r}");
        sealed_state(&upstream)
    };
    let finish_flow = |sealed: &str| {
        upstream.answer_path(
            "/oauth2/consent",
            &format!("{REDIRECT}?code=C0DE&state={sealed}"),
            &[("x-vert-representation", "none")],
        );
        raw(
            addr,
            b"GET /oauth2/consent HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n",
            Duration::from_secs(30),
        )
    };
    let in_flight = start_flow();

    // Runbook step 1: a new first key; the old one stays on the next line.
    std::fs::write(&key_file, format!("{}\n{old}", generate_key_line())).unwrap();
    h.running().reload();
    assert_eq!(
        h.metric("medmij_vert_reloads_total{file=\"keys\",result=\"ok\"}"),
        1
    );
    let r = finish_flow(&in_flight);
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(
        r.contains(&format!("location: {REDIRECT}?code=C0DE&state=st-1\r\n")),
        "{r}"
    );
    // Sealed with the new key, both.
    let sealed_with_new = start_flow();
    let sealed_with_new_too = start_flow();

    // Step 3, after state.flow_ttl: the old line removed. A state sealed with the old key no
    // longer opens (fail closed); one sealed with the new key is released.
    let new_only = std::fs::read_to_string(&key_file).unwrap();
    std::fs::write(&key_file, new_only.lines().next().unwrap()).unwrap();
    h.running().reload();
    let r = finish_flow(&in_flight);
    assert_eq!(raw_status(&r), 502, "{r}");
    let r = finish_flow(&sealed_with_new);
    assert_eq!(raw_status(&r), 302, "{r}");

    // A broken key file keeps the keys in use.
    std::fs::write(&key_file, "not a key\n").unwrap();
    h.running().reload();
    assert_eq!(
        h.metric("medmij_vert_reloads_total{file=\"keys\",result=\"error\"}"),
        1
    );
    let r = finish_flow(&sealed_with_new_too);
    assert_eq!(raw_status(&r), 302, "{r}");
}

/// Issue 22: `pages.logo_file` is read at start and again on reload (SIGHUP); a logo that
/// cannot be read keeps the one in use, and is counted.
#[tokio::test]
async fn the_pages_logo_is_read_again_on_reload_and_a_bad_one_keeps_the_old() {
    let dir = temp_dir();
    let logo = dir.join("logo.svg");
    let svg = |fill: &str| {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\" fill=\"{fill}\"/></svg>"
        )
    };
    std::fs::write(&logo, svg("red")).unwrap();
    let h = Harness::start(&format!(
        "{ADMIN}[pages]\norganisation = \"Ziekenhuis Oost\"\nlogo_file = \"{}\"\n",
        logo.display()
    ));
    let page = || async {
        get(&format!(
            "{}/oauth2/authorize?response_type=code&client_id=unknown.example&redirect_uri=https%3A%2F%2Funknown.example%2Fcb&state=s",
            h.base
        ))
        .await
    };
    let embedded = |fill: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(svg(fill))
    };
    let first = page().await;
    assert_eq!(first.status, 400);
    assert!(first.body.contains(&embedded("red")), "{}", first.body);
    assert!(first.body.contains("Ziekenhuis Oost"));
    std::fs::write(&logo, svg("blue")).unwrap();
    h.running().reload();
    assert!(page().await.body.contains(&embedded("blue")));
    // Not a logo: the blue one stays.
    std::fs::write(&logo, "GIF89a").unwrap();
    h.running().reload();
    assert!(page().await.body.contains(&embedded("blue")));
    assert_eq!(
        h.metric("medmij_vert_reloads_total{file=\"pages\",result=\"error\"}"),
        1
    );
}
