//! `proxy.toml` → a validated, typed [`Config`]. No side effects: nothing is opened, bound or
//! read here (files named by the config are read by [`crate::server::resources`]). Every problem is
//! reported at once, each naming its key; unknown keys are errors.

mod check;
pub mod keys;
mod pages;
mod store;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use http::uri::Authority;
use ipnet::IpNet;
use toml::Table;

use crate::vert::{Client, FreshLogin, Kind};

use check::Check;
pub use pages::Pages;
pub use store::{Redis, RedisUrl, SentinelMaster, StoreConfig};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub upstream: UpstreamConfig,
    pub oauth: OAuth,
    pub clients: Clients,
    pub representation: Representation,
    pub state: State,
    pub log: Log,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub pages: Pages,
    pub token_guard: Option<TokenGuardConfig>,
}

/// `[token_guard]`: only codes the proxy released reach the AS's token endpoint.
#[derive(Debug, Clone)]
pub struct TokenGuardConfig {
    pub path: String,
    /// How long a released code may be redeemed.
    pub code_ttl: Duration,
}

/// The admin listener: `/live`, `/ready`, `/metrics`. Off unless `admin.addr` is set; never on
/// the public listener.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub addr: Option<SocketAddr>,
}

/// `[listen.tls]`: the public listener speaks TLS with this certificate and key (PEM), reloaded
/// on SIGHUP.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    /// Peers whose `X-Forwarded-*` headers are kept (extended) rather than replaced.
    pub trusted_proxies: Vec<IpNet>,
    /// Accept loops, each on its own thread and single-threaded runtime. 0 = one per CPU.
    pub workers: usize,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_uri_length: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    /// Request bodies are buffered before the upstream exchange opens; larger ones get 413.
    pub max_body_bytes: usize,
    /// A body not read within this gets 408, and nothing goes upstream.
    pub body_read_timeout: Duration,
    pub shutdown_grace: Duration,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `host:port` of the legacy AS (plain HTTP on a private network).
    pub authority: Authority,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    /// `/ready` asks this path of the upstream (any answer counts); without it, a TCP connect.
    pub health_path: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OAuth {
    /// RFC 9207: the AS's issuer identifier, sent as `iss` on every redirect the proxy writes
    /// itself (the AS's own carry its own).
    pub issuer: Option<String>,
    pub authorize_path: String,
    /// Match guarded paths ignoring letter case (many AS frameworks route that way).
    pub case_insensitive_paths: bool,
}

#[derive(Debug, Clone)]
pub struct Clients {
    pub ocl_file: Option<PathBuf>,
    pub static_clients: Vec<Client>,
    /// `clients.ocl_url` and its keys: the OCL from the stelselnode.
    pub ocl_url: Option<OclUrl>,
}

/// The OCL fetched from a URL (`clients.ocl_url`), refreshed, checked, cached.
#[derive(Debug, Clone)]
pub struct OclUrl {
    /// `https://…`, or `http://` to a loopback address.
    pub url: http::Uri,
    pub refresh: Duration,
    pub max_age: Duration,
    /// Percent of the entries in use that one new list may drop.
    pub max_shrink: usize,
    pub ca_file: Option<PathBuf>,
    pub cache_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Representation {
    pub scopes: Vec<Kind>,
    pub strip_scope_token: bool,
    /// MedMij 2.x age limits: `onbehalfofchild` under 12, `onbehalfof` 16 or older.
    pub age_rules: bool,
    /// `fresh_login` and `fresh_login_max_age_zero`: what a request for a representation gets
    /// added to ask the AS for a fresh login.
    pub fresh_login: FreshLogin,
    pub request_header: HeaderName,
    pub used_header: HeaderName,
    pub birthdate_header: HeaderName,
}

#[derive(Debug, Clone)]
pub struct State {
    pub key_file: Option<PathBuf>,
    pub flow_ttl: Duration,
    pub clock_skew: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Log {
    /// A `tracing` filter directive (`info`, `medmij_vert_proxy=debug`, …).
    pub level: String,
    pub format: LogFormat,
    /// One line per request (method, path without query, status, time).
    pub access: bool,
}

/// One problem in the configuration, named by its key (`listen.addr`,
/// `clients.static[2].hostname`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found, in file order per section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads a configuration from TOML text. Relative file paths are taken relative to
    /// `base_dir` (the directory of the config file).
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let root: Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigErrors(vec![ConfigError {
                key: String::new(),
                message: format!("not valid TOML: {}", e.to_string().trim_end()),
            }])
        })?;
        let mut c = Check::default();
        for key in root.keys() {
            if key.contains('.') || !keys::is_section(key) {
                c.error(key, "unknown section");
            }
        }
        let listen = c.listen(&root, base_dir);
        let upstream = c.upstream(&root);
        let oauth = c.oauth(&root);
        let clients = c.clients(&root, base_dir);
        let representation = c.representation(&root);
        let state = c.state(&root, base_dir);
        let log = c.log(&root);
        let admin = c.admin(&root);
        let store = c.store(&root);
        let token_guard = c.token_guard(&root);

        // Port 0 on both means two different ports, chosen at bind.
        if admin.addr == Some(listen.addr) && listen.addr.port() != 0 {
            c.error(
                "admin.addr",
                "must differ from listen.addr (never on the public listener)",
            );
        }

        let pages = c.pages(&root, base_dir);

        if c.errors.is_empty() {
            Ok(Config {
                pages,
                listen,
                upstream,
                oauth,
                clients,
                representation,
                state,
                log,
                admin,
                store,
                token_guard,
            })
        } else {
            Err(ConfigErrors(c.errors))
        }
    }
}

/// One method per section, in file order: each reads its keys and checks what only that
/// section decides; what two sections decide together is checked in [`Config::from_toml`].
impl Check {
    /// `[listen]`: the public listener, its limits and timeouts, and its TLS files.
    fn listen(&mut self, root: &Table, base_dir: &Path) -> Listen {
        let s = self.section(root, "listen");
        let mut listen = Listen {
            addr: self
                .parsed(&s, "addr", "an address like 127.0.0.1:8080")
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            trusted_proxies: self.list(&s, "trusted_proxies", |v| {
                v.parse::<IpNet>()
                    .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| "not an IP address or CIDR range".to_string())
            }),
            workers: self.integer(&s, "workers"),
            max_connections: self.integer(&s, "max_connections"),
            header_read_timeout: self.duration(&s, "header_read_timeout"),
            idle_timeout: self.duration(&s, "idle_timeout"),
            max_uri_length: self.integer(&s, "max_uri_length"),
            max_headers: self.integer(&s, "max_headers"),
            max_header_bytes: self.integer(&s, "max_header_bytes"),
            max_body_bytes: self.integer(&s, "max_body_bytes"),
            body_read_timeout: self.duration(&s, "body_read_timeout"),
            shutdown_grace: self.duration(&s, "shutdown_grace"),
            tls: None,
        };
        let tls = self.subsection(&s, "listen.tls", "tls");
        if tls.table.is_some() {
            let mut file = |key: &str| match self.string(&tls, key) {
                Some(path) => Some(base_dir.join(path)),
                None => {
                    self.error(tls.key(key), "missing (a PEM file)");
                    None
                }
            };
            let (cert_file, key_file) = (file("cert_file"), file("key_file"));
            listen.tls = cert_file
                .zip(key_file)
                .map(|(cert_file, key_file)| TlsFiles {
                    cert_file,
                    key_file,
                });
        }
        if listen.max_uri_length > listen.max_header_bytes {
            self.error(
                "listen.max_uri_length",
                "cannot exceed listen.max_header_bytes (the request line counts against both)",
            );
        }
        listen
    }

    /// `[upstream]`: the legacy AS and the pool's timeouts.
    fn upstream(&mut self, root: &Table) -> UpstreamConfig {
        let s = self.section(root, "upstream");
        let authority = match self.string(&s, "url") {
            None => {
                self.error(
                    "upstream.url",
                    "missing (the legacy AS, e.g. http://127.0.0.1:9000)",
                );
                None
            }
            Some(url) => match upstream_authority(url) {
                Ok(a) => Some(a),
                Err(e) => {
                    self.error("upstream.url", e);
                    None
                }
            },
        };
        let upstream = UpstreamConfig {
            authority: authority.unwrap_or_else(|| Authority::from_static("invalid")),
            connect_timeout: self.duration(&s, "connect_timeout"),
            response_timeout: self.duration(&s, "response_timeout"),
            // Below the keep-alive timeouts of common servers, so that the upstream seldom
            // closes a connection just as the proxy sends on it.
            pool_idle_timeout: self.duration(&s, "pool_idle_timeout"),
            pool_max_idle: self.integer(&s, "pool_max_idle"),
            health_path: self.string(&s, "health_path").map(str::to_owned),
        };
        if let Some(path) = &upstream.health_path
            && (!path.starts_with('/') || path.bytes().any(|b| !b.is_ascii_graphic()))
        {
            self.error("upstream.health_path", "must be a path starting with /");
        }
        upstream
    }

    /// `[oauth]`: the authorize path and the issuer.
    fn oauth(&mut self, root: &Table) -> OAuth {
        let s = self.section(root, "oauth");
        let authorize_path = self.text(&s, "authorize_path").to_owned();
        if let Err(e) = check_path(&authorize_path) {
            self.error("oauth.authorize_path", e);
        }
        let issuer = self.string(&s, "issuer").map(str::to_owned);
        if let Some(issuer) = &issuer
            && let Err(e) = check_issuer(issuer)
        {
            self.error("oauth.issuer", e);
        }
        OAuth {
            issuer,
            authorize_path,
            case_insensitive_paths: self.boolean(&s, "case_insensitive_paths"),
        }
    }

    /// `[clients]`: the client list, from a file, inline, or from `clients.ocl_url`.
    fn clients(&mut self, root: &Table, base_dir: &Path) -> Clients {
        let s = self.section(root, "clients");
        let ocl_url = self
            .string(&s, "ocl_url")
            .and_then(|url| match check_ocl_url(url) {
                Ok(url) => Some(url),
                Err(e) => {
                    self.error("clients.ocl_url", e);
                    None
                }
            });
        let clients = Clients {
            ocl_file: self.string(&s, "ocl_file").map(|p| base_dir.join(p)),
            static_clients: self.static_clients(&s),
            ocl_url: ocl_url.map(|url| OclUrl {
                url,
                refresh: self.duration(&s, "ocl_refresh"),
                max_age: self.duration(&s, "ocl_max_age"),
                max_shrink: self.integer(&s, "ocl_max_shrink"),
                ca_file: self.string(&s, "ocl_ca_file").map(|p| base_dir.join(p)),
                cache_file: self.string(&s, "ocl_cache_file").map(|p| base_dir.join(p)),
            }),
        };
        if s.has("ocl_url") && s.has("ocl_file") {
            self.error(
                "clients.ocl_url",
                "clients.ocl_file and clients.ocl_url are exclusive: give one",
            );
        }
        if !s.has("ocl_url") {
            for key in [
                "ocl_refresh",
                "ocl_max_age",
                "ocl_max_shrink",
                "ocl_ca_file",
                "ocl_cache_file",
            ] {
                if s.has(key) {
                    self.error(s.key(key), "only with clients.ocl_url");
                }
            }
        }
        if let Some(ocl) = &clients.ocl_url
            && ocl.max_age < ocl.refresh
        {
            self.error(
                "clients.ocl_max_age",
                "must be at least clients.ocl_refresh (a list would go stale between two fetches)",
            );
        }
        clients
    }

    /// `[representation]`: the scopes, the fresh login and the headers to the AS.
    fn representation(&mut self, root: &Table) -> Representation {
        let s = self.section(root, "representation");
        let mut scopes = self.list(&s, "scopes", |v| {
            Kind::from_token(v)
                .ok_or_else(|| "expected \"onbehalfof\" or \"onbehalfofchild\"".into())
        });
        scopes.dedup();
        let representation = Representation {
            scopes,
            strip_scope_token: self.boolean(&s, "strip_scope_token"),
            age_rules: self.boolean(&s, "age_rules"),
            fresh_login: FreshLogin {
                prompt_login: self.boolean(&s, "fresh_login"),
                max_age_zero: self.boolean(&s, "fresh_login_max_age_zero"),
            },
            request_header: self.header(&s, "request_header"),
            used_header: self.header(&s, "used_header"),
            birthdate_header: self.header(&s, "birthdate_header"),
        };
        if representation.fresh_login.max_age_zero && !representation.fresh_login.prompt_login {
            self.error(
                "representation.fresh_login_max_age_zero",
                "needs representation.fresh_login = true (max_age=0 goes only beside prompt=login)",
            );
        }
        let names = [
            ("request_header", &representation.request_header),
            ("used_header", &representation.used_header),
            ("birthdate_header", &representation.birthdate_header),
        ];
        for (i, (key, name)) in names.iter().enumerate() {
            if names[..i].iter().any(|(_, other)| other == name) {
                self.error(
                    format!("representation.{key}"),
                    "must differ from the other representation headers",
                );
            }
        }
        representation
    }

    /// `[state]`: the key file and the flow's lifetime.
    fn state(&mut self, root: &Table, base_dir: &Path) -> State {
        let s = self.section(root, "state");
        let state = State {
            key_file: self.string(&s, "key_file").map(|p| base_dir.join(p)),
            flow_ttl: self.duration(&s, "flow_ttl"),
            clock_skew: self.duration(&s, "clock_skew"),
        };
        if state.flow_ttl < Duration::from_secs(60) {
            self.error(
                "state.flow_ttl",
                "must be at least 1m (a DigiD login takes time)",
            );
        }
        state
    }

    /// `[log]`: level and format.
    fn log(&mut self, root: &Table) -> Log {
        let s = self.section(root, "log");
        let format = match self.text(&s, "format") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                self.error("log.format", "expected \"text\" or \"json\"");
                LogFormat::Text
            }
        };
        let level = self.text(&s, "level").to_owned();
        if let Err(e) = check_level(&level) {
            self.error("log.level", format!("not a log filter: {e}"));
        }
        Log {
            level,
            format,
            access: self.boolean(&s, "access"),
        }
    }

    /// `[admin]`: the admin listener.
    fn admin(&mut self, root: &Table) -> AdminConfig {
        let s = self.section(root, "admin");
        AdminConfig {
            addr: self.string(&s, "addr").and_then(|addr| match addr.parse() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.error("admin.addr", "not an address like 127.0.0.1:9901");
                    None
                }
            }),
        }
    }

    /// `[token_guard]`: the token endpoint, when the proxy guards it.
    fn token_guard(&mut self, root: &Table) -> Option<TokenGuardConfig> {
        let s = self.section(root, "token_guard");
        match s.table {
            None => None,
            Some(_) => {
                let path = match self.string(&s, "path") {
                    Some(path) => path.to_owned(),
                    None => {
                        self.error("token_guard.path", "missing (the AS's token endpoint)");
                        String::new()
                    }
                };
                if !path.is_empty()
                    && let Err(e) = check_path(&path)
                {
                    self.error("token_guard.path", e);
                }
                Some(TokenGuardConfig {
                    path,
                    code_ttl: self.duration(&s, "code_ttl"),
                })
            }
        }
    }
}

/// `http://host:port` with nothing after the authority but an optional `/`.
fn upstream_authority(url: &str) -> Result<Authority, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        "must start with http:// (the legacy AS sits on a private network; https is not supported)"
            .to_string()
    })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err("must be http://host:port, without path, query or userinfo".into());
    }
    authority
        .parse::<Authority>()
        .map_err(|_| "not a valid host:port".to_string())
}

/// `clients.ocl_url`: `https://host[:port]/path`, or `http://` to a loopback address (a test
/// stelselnode: the list decides who gets codes, so it never travels in the clear).
fn check_ocl_url(url: &str) -> Result<http::Uri, &'static str> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "not a URL like https://stelselnode.medmij.nl/MedMij_OAuthclientlist.xml")?;
    let host = uri.host().unwrap_or("");
    if host.is_empty() || url.contains('@') || url.contains('#') {
        return Err("must be https://host/path, without userinfo or fragment");
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") => {
            let loopback = host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(uri)
            } else {
                Err("must be https (plain http only to a loopback address, for tests)")
            }
        }
        _ => Err("must be an https URL"),
    }
}

/// An issuer identifier (RFC 8414 §2): an `https` URL (`http` for a test AS) without query or
/// fragment.
fn check_issuer(issuer: &str) -> Result<(), &'static str> {
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .ok_or("must be an https URL (the AS's issuer identifier)")?;
    if rest.is_empty() || issuer.contains(['?', '#']) || !crate::vert::clients::is_uri_text(issuer)
    {
        return Err(
            "must be a URL without query or fragment, as the AS's discovery document names it",
        );
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must start with /");
    }
    // One trailing `/` is allowed (Django's routes end in one); the router matches both
    // spellings, and the AS gets the configured one.
    let body = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments_ok = body[1..].split('/').all(|s| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    });
    if !segments_ok {
        return Err(
            "must be a plain path: segments of A-Z a-z 0-9 - . _ ~, no empty, . or .. segment (one trailing / allowed)",
        );
    }
    Ok(())
}

/// Checks a `log.level` directive without installing anything (the subscriber is
/// the telemetry module's; the config only asks whether the text parses).
fn check_level(level: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_toml(text, Path::new("/etc/vert"))
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse("[upstream]\nurl = \"http://127.0.0.1:9000\"\n").unwrap();
        assert_eq!(c.listen.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.upstream.authority.as_str(), "127.0.0.1:9000");
        assert_eq!(c.upstream.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.upstream.response_timeout, Duration::from_secs(30));
        assert_eq!(c.oauth.authorize_path, "/oauth2/authorize");
        assert!(c.oauth.case_insensitive_paths);
        assert_eq!(c.representation.scopes, vec![Kind::OnBehalfOf]);
        assert!(!c.representation.strip_scope_token);
        assert_eq!(c.representation.request_header, "x-vert-requested");
        assert_eq!(c.representation.used_header, "x-vert-representation");
        assert_eq!(c.representation.birthdate_header, "x-vert-birthdate");
        assert_eq!(c.state.flow_ttl, Duration::from_secs(30 * 60));
        assert_eq!(c.state.key_file, None);
        assert!(c.listen.trusted_proxies.is_empty());
    }

    #[test]
    fn the_shipped_proxy_toml_is_valid() {
        let text = include_str!("../../proxy.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.clients.static_clients[0].hostname, "pgo.example.nl");
    }

    #[test]
    fn tls_and_admin_keys_are_checked_by_name() {
        let got = errors(
            r#"
            [listen]
            addr = "127.0.0.1:8080"
            [listen.tls]
            cert_file = "proxy.crt"
            chain = "x"
            [upstream]
            url = "http://a:1"
            health_path = "health"
            [clients]
            static = [ { hostname = "pgo.example.nl" } ]
            [admin]
            addr = "127.0.0.1:8080"
            "#,
        );
        assert_eq!(
            got,
            [
                "listen.tls.chain: unknown key",
                "listen.tls.key_file: missing (a PEM file)",
                "upstream.health_path: must be a path starting with /",
                "admin.addr: must differ from listen.addr (never on the public listener)",
            ]
        );
        let c = Config::from_toml(
            "[upstream]\nurl = \"http://a:1\"\n[clients]\nstatic = [{ hostname = \"p.nl\" }]\n[listen.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n[admin]\naddr = \"0.0.0.0:9901\"\n",
            Path::new("/etc/vert"),
        )
        .unwrap();
        let tls = c.listen.tls.unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("/etc/vert/c.pem"));
        assert_eq!(tls.key_file, PathBuf::from("/etc/vert/k.pem"));
        assert_eq!(c.admin.addr, Some("0.0.0.0:9901".parse().unwrap()));
    }

    #[test]
    fn fresh_login_keys_default_off_and_max_age_needs_fresh_login() {
        let c = parse("[upstream]\nurl = \"http://a:1\"\n").unwrap();
        assert_eq!(c.representation.fresh_login, FreshLogin::OFF);
        let c = parse(
            "[upstream]\nurl = \"http://a:1\"\n[representation]\nfresh_login = true\nfresh_login_max_age_zero = true\n",
        )
        .unwrap();
        assert_eq!(
            c.representation.fresh_login,
            FreshLogin {
                prompt_login: true,
                max_age_zero: true
            }
        );
        assert_eq!(
            errors(
                "[upstream]\nurl = \"http://a:1\"\n[representation]\nfresh_login_max_age_zero = true\n"
            ),
            [
                "representation.fresh_login_max_age_zero: needs representation.fresh_login = true (max_age=0 goes only beside prompt=login)"
            ]
        );
    }

    #[test]
    fn ocl_url_forms_and_its_keys() {
        let c = parse(
            "[upstream]\nurl = \"http://a:1\"\n[clients]\nocl_url = \"https://stelselnode.medmij.nl/MedMij_OAuthclientlist.xml?api=2\"\nocl_cache_file = \"ocl.cache\"\n",
        )
        .unwrap();
        let ocl = c.clients.ocl_url.unwrap();
        assert_eq!(ocl.refresh, Duration::from_secs(3600));
        assert_eq!(ocl.max_age, Duration::from_secs(24 * 3600));
        assert_eq!(ocl.max_shrink, 50);
        assert_eq!(ocl.cache_file, Some(PathBuf::from("/etc/vert/ocl.cache")));
        assert_eq!(ocl.ca_file, None);
        for ok in [
            "http://127.0.0.1:8443/ocl.xml",
            "http://[::1]/ocl",
            "http://localhost:1/x",
        ] {
            assert!(check_ocl_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://stelselnode.medmij.nl/ocl.xml",
            "http://10.0.0.1/ocl.xml",
            "ftp://x/y",
            "https://u@x/y",
            "stelselnode.medmij.nl",
        ] {
            assert!(check_ocl_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            errors(
                "[upstream]\nurl = \"http://a:1\"\n[clients]\nocl_file = \"ocl.xml\"\nocl_url = \"https://x/ocl\"\n"
            ),
            ["clients.ocl_url: clients.ocl_file and clients.ocl_url are exclusive: give one"]
        );
        assert_eq!(
            errors(
                "[upstream]\nurl = \"http://a:1\"\n[clients]\nocl_file = \"ocl.xml\"\nocl_refresh = \"5m\"\nocl_max_shrink = 101\n"
            ),
            [
                "clients.ocl_refresh: only with clients.ocl_url",
                "clients.ocl_max_shrink: only with clients.ocl_url",
            ]
        );
        assert_eq!(
            errors(
                "[upstream]\nurl = \"http://a:1\"\n[clients]\nocl_url = \"https://x/ocl\"\nocl_refresh = \"2h\"\nocl_max_age = \"1h\"\n"
            ),
            [
                "clients.ocl_max_age: must be at least clients.ocl_refresh (a list would go stale between two fetches)"
            ]
        );
    }

    #[test]
    fn every_error_at_once_each_named_by_key() {
        let got = errors(
            r#"
            [listen]
            addr = "nonsense"
            trusted_proxies = ["10.0.0.0/8", "not-an-ip"]
            bogus = 1
            [upstream]
            url = "https://as.internal"
            connect_timeout = "soon"
            [oauth]
            authorize_path = "oauth2/authorize"
            [clients]
            static = [ { hostname = "PGO.example.nl" }, { hostname = "ok.nl", extra = 1 } ]
            [representation]
            scopes = ["onbehalfof", "OnBehalfOfChild"]
            used_header = "X-Vert-Requested"
            [state]
            flow_ttl = 30
            [extra]
            "#,
        );
        let want = [
            "extra: unknown section",
            "listen.bogus: unknown key",
            "listen.addr: \"nonsense\" is not an address like 127.0.0.1:8080",
            "listen.trusted_proxies[1]: not an IP address or CIDR range",
            "upstream.url: must start with http:// (the legacy AS sits on a private network; https is not supported)",
            "upstream.connect_timeout: \"soon\" is not a duration like \"500ms\", \"30s\" or \"30m\"",
            "oauth.authorize_path: must start with /",
            "clients.static[0].hostname: \"PGO.example.nl\" is not a lower-case hostname (the client_id)",
            "clients.static[1].extra: unknown key",
            "representation.scopes[1]: expected \"onbehalfof\" or \"onbehalfofchild\"",
            "representation.used_header: must differ from the other representation headers",
            "state.flow_ttl: expected a string, found integer",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn missing_upstream_is_named() {
        assert_eq!(
            errors(""),
            ["upstream.url: missing (the legacy AS, e.g. http://127.0.0.1:9000)"]
        );
    }

    #[test]
    fn toml_syntax_error_is_reported() {
        let e = errors("[listen\naddr=1");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("not valid TOML"), "{e:?}");
    }

    #[test]
    fn relative_files_are_relative_to_the_config() {
        let c = parse(
            "[upstream]\nurl=\"http://a:1\"\n[clients]\nocl_file=\"ocl.xml\"\n[state]\nkey_file=\"/abs/state.key\"\n",
        )
        .unwrap();
        assert_eq!(c.clients.ocl_file, Some(PathBuf::from("/etc/vert/ocl.xml")));
        assert_eq!(c.state.key_file, Some(PathBuf::from("/abs/state.key")));
    }

    #[test]
    fn upstream_url_forms() {
        for ok in [
            "http://127.0.0.1:9000",
            "http://as.internal:80/",
            "http://[::1]:9000",
        ] {
            assert!(upstream_authority(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://a/prefix",
            "ftp://a",
            "http://u@a:1",
            "http://a:1?x",
            "http://",
        ] {
            assert!(upstream_authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_keys_are_checked_and_a_low_contrast_accent_is_refused_with_its_ratio() {
        let got = errors(
            "[upstream]\nurl=\"http://a:1\"\n[pages]\norganisation = \"Ziekenhuis Oost\"\ncontact_phone = \"call us\"\ncontact_url = \"http://oost.example.nl/help\"\naccent_color = \"#ffcc00\"\n",
        );
        assert_eq!(
            got,
            [
                "pages.contact_phone: must be a phone number: digits, spaces, + - ( ) (at least 6 digits)",
                "pages.contact_url: must be an https URL",
                "pages.accent_color: #ffcc00 has a contrast of 1.51:1 with the button's white text; at least 4.5:1 is needed (WCAG 2.1 AA)",
            ]
        );
        let c = Config::from_toml(
            "[upstream]\nurl=\"http://a:1\"\n[pages]\norganisation = \"Ziekenhuis Oost\"\ncontact_phone = \"+31 (0)20-123 45 67\"\ncontact_url = \"https://oost.example.nl/help\"\naccent_color = \"#01689b\"\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.pages.organisation.as_deref(), Some("Ziekenhuis Oost"));
        assert_eq!(
            errors("[upstream]\nurl=\"http://a:1\"\n[pages]\naccent_color = \"blue\"\n"),
            ["pages.accent_color: must be a colour like #01689b"]
        );
    }

    #[test]
    fn issuer_forms() {
        for ok in [
            "https://as.example.nl",
            "https://as.example.nl/oidc",
            "http://127.0.0.1:9000",
        ] {
            assert!(check_issuer(ok).is_ok(), "{ok}");
        }
        for bad in [
            "as.example.nl",
            "https://",
            "https://as/x?y",
            "https://as/#f",
            "https://a s",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
        let got = errors("[upstream]\nurl=\"http://a:1\"\n[oauth]\nissuer = \"ftp://x\"\n");
        assert_eq!(
            got,
            ["oauth.issuer: must be an https URL (the AS's issuer identifier)"]
        );
    }

    #[test]
    fn authorize_path_forms() {
        assert!(check_path("/oauth2/authorize").is_ok());
        assert!(check_path("/o/authorize/").is_ok());
        for bad in [
            "/oauth2/authorize//",
            "//",
            "/a//b",
            "/a/../b",
            "/a%2Fb",
            "/a;b",
            "relative",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_range_checked() {
        let got = errors(
            "[upstream]\nurl=\"http://a:1\"\n[listen]\nmax_connections = 0\nmax_uri_length = 60000\nidle_timeout = \"0s\"\n",
        );
        assert_eq!(
            got,
            [
                "listen.max_connections: must be between 1 and 1000000",
                "listen.idle_timeout: must be longer than 0s",
                "listen.max_uri_length: cannot exceed listen.max_header_bytes (the request line counts against both)",
            ]
        );
    }

    #[test]
    fn hop_by_hop_signal_header_is_refused() {
        let got = errors(
            "[upstream]\nurl=\"http://a:1\"\n[representation]\nused_header = \"Connection\"\n",
        );
        assert_eq!(
            got,
            ["representation.used_header: a hop-by-hop header cannot carry the signal"]
        );
    }

    const UP: &str = "[upstream]\nurl=\"http://a:1\"\n";

    #[test]
    fn store_names_one_redis_in_each_form() {
        let c = parse(&format!(
            "{UP}[store]\nurl = \"rediss://app:s3cret@redis.internal:6380/2\"\n"
        ))
        .unwrap();
        assert!(matches!(&c.store.redis, Some(Redis::Url(u)) if u.is_tls()));
        let c = parse(&format!(
            "{UP}[store]\nsentinels = [\"10.0.0.1:26379\", \"redis://sent:pw@10.0.0.2:26379\"]\nsentinel_master = \"rediss://app:pw@mymaster/1\"\nmin_replicas = 1\n"
        ))
        .unwrap();
        let Some(Redis::Sentinel { sentinels, master }) = &c.store.redis else {
            panic!("{:?}", c.store.redis)
        };
        assert_eq!(sentinels[0].expose(), "redis://10.0.0.1:26379");
        assert_eq!(master.name, "mymaster");
        assert!(master.nodes.is_tls());
        assert_eq!(c.store.min_replicas, 1);
        let c = parse(&format!(
            "{UP}[store]\nsentinels = [\"127.0.0.1:26379\"]\nsentinel_master = \"mymaster\"\n"
        ))
        .unwrap();
        let Some(Redis::Sentinel { master, .. }) = &c.store.redis else {
            panic!()
        };
        assert_eq!(
            (master.name.as_str(), master.nodes.is_tls()),
            ("mymaster", false)
        );
        let c = parse(&format!(
            "{UP}[store]\ncluster = [\"127.0.0.1:7000\", \"127.0.0.1:7001\"]\n"
        ))
        .unwrap();
        assert!(matches!(&c.store.redis, Some(Redis::Cluster(nodes)) if nodes.len() == 2));
        let c = parse(UP).unwrap();
        assert_eq!((c.store.redis, c.store.min_replicas), (None, 0));
    }

    #[test]
    fn store_refuses_two_redis_forms_and_every_malformed_one() {
        let got = errors(&format!(
            "{UP}[store]\nurl = \"redis://a:6379\"\ncluster = [\"b:7000\"]\n"
        ));
        assert_eq!(
            got,
            ["store.cluster: store.url is set too: name one Redis, not both"]
        );
        let got = errors(&format!(
            "{UP}[store]\nsentinels = [\"a:26379\"]\nsentinel_master = \"m\"\ncluster = [\"b:7000\"]\n"
        ));
        assert_eq!(
            got,
            ["store.cluster: store.sentinels is set too: name one Redis, not both"]
        );
        let got = errors(&format!(
            "{UP}[store]\nurl = \"http://a\"\nmin_replicas = 17\n"
        ));
        assert_eq!(
            got,
            [
                "store.url: must start with redis:// or rediss://",
                "store.min_replicas: must be between 0 and 16",
            ]
        );
        let got = errors(&format!("{UP}[store]\nmin_replicas = 1\n"));
        assert_eq!(
            got,
            [
                "store.min_replicas: needs a Redis (store.url, store.sentinels or store.cluster): the in-process store has no replicas"
            ]
        );
        let got = errors(&format!(
            "{UP}[store]\nsentinels = [\"redis://a:26379\", \"rediss://b:26379\", 7, \"redis://u:pw@[zz\"]\n"
        ));
        assert_eq!(
            got,
            [
                "store.sentinels[2]: expected a string, found integer",
                "store.sentinels[3]: not a Redis URL like redis://[user:password@]host[:port][/db] or rediss://…",
                "store.sentinels: mixes redis:// and rediss://: all or none speak TLS",
                "store.sentinel_master: missing (the master's name, as the sentinels monitor it)",
            ]
        );
        let got = errors(&format!(
            "{UP}[store]\nsentinel_master = \"m\"\nsentinels = []\ncluster_x = 1\n"
        ));
        assert_eq!(
            got,
            [
                "store.cluster_x: unknown key",
                "store.sentinels: names no sentinel",
            ]
        );
        let got = errors(&format!("{UP}[store]\nsentinel_master = \"m\"\n"));
        assert_eq!(got, ["store.sentinel_master: needs store.sentinels"]);
        let got = errors(&format!(
            "{UP}[store]\ncluster = [\"redis://u:a@h:7000\", \"redis://u:b@h:7001\"]\n"
        ));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("store.cluster: "), "{got:?}");
        assert!(
            !got[0].contains(":a@") && !got[0].contains(":b@"),
            "{got:?}"
        );
        // The password never reaches an error, nor `Debug`.
        let got = errors(&format!("{UP}[store]\nurl = \"redis://u:s3cret@[zz\"\n"));
        assert!(!got[0].contains("s3cret"), "{got:?}");
        let c = parse(&format!("{UP}[store]\nurl = \"rediss://u:s3cret@h:1/0\"\n")).unwrap();
        let shown = format!("{:?}", c.store);
        assert!(
            !shown.contains("s3cret") && shown.contains("rediss://***@h:1/0"),
            "{shown}"
        );
    }

    /// The configuration reference (`docs/configuration.md`) documents every key the config
    /// reads, and no other: one row per key, named as `--check` names it.
    #[test]
    fn the_configuration_reference_is_the_key_table() {
        let doc = include_str!("../../docs/configuration.md");
        let reference = &doc[doc.find("\n## Every key").unwrap()..];
        let reference = match reference[3..].find("\n## ") {
            Some(end) => &reference[..end + 3],
            None => reference,
        };
        let documented: Vec<&str> = reference.lines().filter(|l| l.starts_with("| `")).collect();
        let table: Vec<String> = keys::KEYS
            .iter()
            .map(|k| {
                format!(
                    "| `{}.{}` | {} | {} |",
                    k.section,
                    k.name,
                    k.shown_default(),
                    k.doc
                )
            })
            .collect();
        assert!(
            documented == table,
            "docs/configuration.md's table differs from config::keys::KEYS; it should read:\n{}",
            table.join("\n")
        );
    }
}
