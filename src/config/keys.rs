//! Every key of `proxy.toml`, once: its section, name, kind (how it is read), default and a
//! one-line doc. The unknown-key check and the defaults of every read come from this table, and
//! a test keeps `docs/configuration.md`, the configuration reference, equal to it.

use std::time::Duration;

/// How a key's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A string (a path, a URL, an address, a header name, a name), checked where it is read.
    Text,
    /// A string like `"500ms"`, `"30s"` or `"30m"`, longer than 0.
    Duration,
    /// An integer in `min..=max`.
    Integer {
        min: usize,
        max: usize,
    },
    Bool,
    /// An array (of strings, or of tables for `clients.static`).
    List,
    /// A table inside the section (`listen.tls`), whose keys have their own rows.
    Table,
}

/// What a key is when the file does not give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// Unset: the feature is off, or the value comes from elsewhere (the note says which).
    None,
    /// The file must give it.
    Required,
    Text(&'static str),
    Duration(&'static str),
    Integer(usize),
    Bool(bool),
    List(&'static [&'static str]),
}

#[derive(Debug)]
pub struct Key {
    pub section: &'static str,
    pub name: &'static str,
    pub kind: KeyKind,
    pub default: DefaultValue,
    /// Said after the default in the reference (`(one per CPU)`), or empty.
    pub note: &'static str,
    pub doc: &'static str,
}

impl Key {
    /// The default as the reference writes it.
    pub fn shown_default(&self) -> String {
        let value = match self.default {
            DefaultValue::None => "none".to_owned(),
            DefaultValue::Required => "(required)".to_owned(),
            DefaultValue::Text(t) | DefaultValue::Duration(t) => format!("`\"{t}\"`"),
            DefaultValue::Integer(n) => format!("`{n}`"),
            DefaultValue::Bool(b) => format!("`{b}`"),
            DefaultValue::List(items) => {
                let items: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
                format!("`[{}]`", items.join(", "))
            }
        };
        match self.note {
            "" => value,
            note => format!("{value} {note}"),
        }
    }

    /// The default of a [`KeyKind::Duration`] key.
    pub fn default_duration(&self) -> Duration {
        match self.default {
            DefaultValue::Duration(text) => {
                humantime::parse_duration(text).expect("defaults parse")
            }
            _ => panic!("{}.{} has no duration default", self.section, self.name),
        }
    }
}

/// The key `name` of `section`. Every read names a key of this table; one that does not is a
/// bug, found by any test that parses a config.
pub fn key(section: &str, name: &str) -> &'static Key {
    KEYS.iter()
        .find(|k| k.section == section && k.name == name)
        .unwrap_or_else(|| panic!("{section}.{name} is not in config::keys::KEYS"))
}

/// Whether `section` has the key `name`.
pub fn known(section: &str, name: &str) -> bool {
    KEYS.iter().any(|k| k.section == section && k.name == name)
}

/// The top-level sections.
pub fn is_section(name: &str) -> bool {
    KEYS.iter().any(|k| k.section == name)
}

const fn key_(
    section: &'static str,
    name: &'static str,
    kind: KeyKind,
    default: DefaultValue,
    note: &'static str,
    doc: &'static str,
) -> Key {
    Key {
        section,
        name,
        kind,
        default,
        note,
        doc,
    }
}

const fn int(min: usize, max: usize) -> KeyKind {
    KeyKind::Integer { min, max }
}

use DefaultValue::{Bool as B, Duration as D, Integer as I, None as N, Required, Text as T};
use KeyKind::{Bool, Duration as Dur, List, Table, Text};

/// In the reference's order: the public contract of SPEC §5 and its extensions. One key a line.
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    key_("listen", "addr", Text, T("127.0.0.1:8080"), "", "the public listener"),
    key_("listen", "trusted_proxies", List, DefaultValue::List(&[]), "", "IPs or CIDRs whose `X-Forwarded-*`/`Forwarded` are kept and extended; from anyone else they are dropped and set anew"),
    key_("listen", "workers", int(0, 1024), I(0), "(one per CPU)", "accept loops, each a thread with its own single-threaded runtime and upstream pool"),
    key_("listen", "max_connections", int(1, 1_000_000), I(10_000), "", "concurrent client connections; beyond it a connection gets `503` and is closed"),
    key_("listen", "header_read_timeout", Dur, D("10s"), "", "a request head must be complete this long after its first byte, or after the connection opened; otherwise the connection is closed (slowloris)"),
    key_("listen", "idle_timeout", Dur, D("60s"), "", "a connection with no request in progress and no byte moving either way this long is closed (idle keep-alive, a client that stops reading)"),
    key_("listen", "max_uri_length", int(256, 64 * 1024), I(8 * 1024), "", "a longer request target gets `414` (at most `max_header_bytes`)"),
    key_("listen", "max_headers", int(8, 1000), I(100), "", "more request headers get `431`"),
    key_("listen", "max_header_bytes", int(1024, 1024 * 1024), I(16 * 1024), "", "request line plus headers; more gets `431`"),
    key_("listen", "max_body_bytes", int(0, 64 * 1024 * 1024), I(1024 * 1024), "(1 MiB)", "request bodies are read whole before the AS is contacted; a larger one gets `413` (announced or streamed), nothing sent upstream"),
    key_("listen", "body_read_timeout", Dur, D("10s"), "", "a body not read whole within this gets `408`, nothing sent upstream"),
    key_("listen", "shutdown_grace", Dur, D("10s"), "", "on SIGTERM/SIGINT: stop accepting, let requests in flight finish this long, exit"),
    key_("listen", "tls", Table, N, "(plain HTTP)", "`[listen.tls]`: the public listener speaks TLS 1.2/1.3 (see [operating.md, *TLS*](operating.md#tls))"),
    key_("listen.tls", "cert_file", Text, Required, "in `[listen.tls]`", "PEM certificate chain"),
    key_("listen.tls", "key_file", Text, Required, "in `[listen.tls]`", "PEM private key"),
    key_("admin", "addr", Text, N, "(off)", "the admin listener: `/live`, `/ready`, `/metrics`; never the public one"),
    key_("store", "url", Text, N, "(in process)", "`redis://…` or `rediss://…`: the records of released flows and codes, shared by instances"),
    key_("store", "sentinels", List, N, "", "the sentinels (`host:port` or URLs) of the master named by `store.sentinel_master`; instead of `store.url`"),
    key_("store", "sentinel_master", Text, N, "", "the master's name, or `rediss://user:password@name/db` for the nodes' TLS, ACL and database"),
    key_("store", "cluster", List, N, "", "Redis Cluster nodes (`host:port` or URLs) to start from; instead of `store.url`"),
    key_("store", "min_replicas", int(0, 16), I(0), "", "a write counts only once `WAIT` reports this many replicas within `store.timeout`; otherwise the code is withheld (1 recommended with Sentinel or Cluster; 0–16)"),
    key_("store", "max_entries", int(1, 100_000_000), I(100_000), "", "the in-process store's bound"),
    key_("store", "timeout", Dur, D("1s"), "", "each Redis command (a write and its `WAIT`: twice that); slower fails closed"),
    key_("store", "source_share_percent", int(1, 100), I(5), "", "the share of `store.max_entries` (1–100) that one source's releases may hold; over it, its releases fail closed while others are served"),
    key_("token_guard", "path", Text, N, "(off)", "the AS's token endpoint (a plain path, may end in `/`): only codes the proxy released reach it, once"),
    key_("token_guard", "code_ttl", Dur, D("10m"), "", "how long a released code may be redeemed"),
    key_("upstream", "url", Text, Required, "", "the legacy AS, `http://host:port`"),
    key_("upstream", "connect_timeout", Dur, D("2s"), "", "connecting to the AS; failing is `502`"),
    key_("upstream", "response_timeout", Dur, D("30s"), "", "from the request going out until the AS's response head; slower is `504`"),
    key_("upstream", "pool_idle_timeout", Dur, D("30s"), "", "an upstream connection with no request in flight and no byte moving this long is closed: idle in the pool, or a response body that stalls (keep it below the AS's keep-alive timeout)"),
    key_("upstream", "pool_max_idle", int(0, 100_000), I(256), "", "idle upstream connections kept per worker"),
    key_("upstream", "health_path", Text, N, "", "`/ready` asks this path of the AS (any HTTP answer counts); without it, a TCP connect"),
    key_("oauth", "authorize_path", Text, T("/oauth2/authorize"), "", "the AS's authorize endpoint (a plain path; may end in `/`: both spellings get the checks, the AS gets the configured one)"),
    key_("oauth", "case_insensitive_paths", Bool, B(true), "", "see [security.md, *Paths*](security.md#paths-which-requests-get-the-authorize-checks)"),
    key_("oauth", "issuer", Text, N, "", "the AS's issuer identifier (an `https` URL without query): sent as `iss` on every redirect the proxy writes itself (1b, Vert 3, the age limits, the link back of Vert 4 and the age page), RFC 9207; the AS's own `iss` passes untouched"),
    key_("clients", "ocl_file", Text, N, "", "the MedMij OAuth Client List (XML, release 2 namespace)"),
    key_("clients", "ocl_url", Text, N, "", "the OCL from the stelselnode (`https://…`; `http://` only to a loopback address, for tests): fetched at start and every `ocl_refresh`, checked strictly, swapped in whole (see [operating.md, *The client list from the stelselnode*](operating.md#the-client-list-from-the-stelselnode)); not beside `ocl_file`"),
    key_("clients", "ocl_refresh", Dur, D("1h"), "", "with `ocl_url`: how often the OCL is fetched again (`If-None-Match` / `If-Modified-Since`)"),
    key_("clients", "ocl_max_age", Dur, D("24h"), "", "with `ocl_url`: an OCL not confirmed by the stelselnode for this long is dropped: `/ready` fails and every authorization request is 1a"),
    key_("clients", "ocl_max_shrink", int(0, 100), I(50), "(percent)", "with `ocl_url`: a new OCL that would drop more than this share of the entries in use at once is refused (an empty one always)"),
    key_("clients", "ocl_ca_file", Text, N, "(the system's roots)", "with `ocl_url`: PEM CA certificates the stelselnode's certificate must chain to"),
    key_("clients", "ocl_cache_file", Text, N, "", "with `ocl_url`: the last good OCL is written here and read at start, so that a restart serves before the stelselnode answers"),
    key_("clients", "static", List, DefaultValue::List(&[]), "", "`{ hostname = \"…\", name = \"…\" }` entries, in addition to the OCL (they win on a clash)"),
    key_("representation", "scopes", List, DefaultValue::List(&["onbehalfof"]), "", "tokens accepted; add `\"onbehalfofchild\"` for MedMij 2.x"),
    key_("representation", "strip_scope_token", Bool, B(false), "", "remove the token from the forwarded `scope`"),
    key_("representation", "age_rules", Bool, B(false), "", "MedMij 2.x age limits: `onbehalfofchild` under 12, `onbehalfof` 16 or older (see [rules.md, *MedMij 2.x*](rules.md#medmij-2x-the-age-limits))"),
    key_("representation", "fresh_login", Bool, B(false), "", "a request for `onbehalfof` or `onbehalfofchild` goes to the AS with `prompt=login` merged into the client's `prompt` (`prompt=none` is answered `login_required`): the AS asks for a fresh login instead of reusing one (see [integrating.md, *Fresh login*](integrating.md#fresh-login))"),
    key_("representation", "fresh_login_max_age_zero", Bool, B(false), "", "with `fresh_login`: `max_age=0` too, in place of the client's `max_age`"),
    key_("representation", "request_header", Text, T("X-Vert-Requested"), "", "to the AS: representation asked"),
    key_("representation", "used_header", Text, T("X-Vert-Representation"), "", "from the AS: representation used"),
    key_("representation", "birthdate_header", Text, T("X-Vert-Birthdate"), "", "from the AS: birth date on record"),
    key_("state", "key_file", Text, N, "", "sealing keys (see [operating.md, *Upgrades and key rotation*](operating.md#upgrades-and-key-rotation))"),
    key_("state", "flow_ttl", Dur, D("30m"), "", "a flow's code is withheld after this (at least `1m`)"),
    key_("state", "clock_skew", Dur, D("60s"), "", "how far in the future another instance's clock may be"),
    key_("log", "level", Text, T("info"), "", "a `tracing` filter (`info`, `medmij_vert_proxy=debug`)"),
    key_("log", "format", Text, T("text"), "", "`text` or `json`"),
    key_("log", "access", Bool, B(false), "", "one line per request: method, path (never the query), status, latency"),
    key_("pages", "organisation", Text, N, "", "the DVA's name: on every page, in its title, and where the text says \"uw zorgaanbieder\" / \"your healthcare provider\""),
    key_("pages", "contact_phone", Text, N, "", "the helpdesk's phone number, shown (and linked as `tel:`) under the helpdesk code"),
    key_("pages", "contact_url", Text, N, "", "the helpdesk's web page (`https` only), shown under the helpdesk code"),
    key_("pages", "logo_file", Text, N, "", "a PNG or SVG of at most 64 KiB, read at start and on SIGHUP, embedded in the pages (`--check` refuses one it cannot read)"),
    key_("pages", "accent_color", Text, N, "(the pages' own `#01689b`)", "the button colour, `#rrggbb`; `--check` refuses one whose contrast with the button's white text is below 4.5:1 (WCAG 2.1 AA), naming the ratio"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_once_and_its_default_of_its_kind() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(
                !KEYS[..i]
                    .iter()
                    .any(|o| o.section == k.section && o.name == k.name),
                "{}.{} twice",
                k.section,
                k.name
            );
            assert!(!k.doc.is_empty(), "{}.{} has no doc", k.section, k.name);
            let fits = match (k.kind, k.default) {
                (_, DefaultValue::None | DefaultValue::Required) => true,
                (KeyKind::Text, DefaultValue::Text(_)) | (KeyKind::Bool, DefaultValue::Bool(_)) => {
                    true
                }
                (KeyKind::List, DefaultValue::List(_)) => true,
                (KeyKind::Duration, DefaultValue::Duration(text)) => {
                    humantime::parse_duration(text).is_ok_and(|d| !d.is_zero())
                }
                (KeyKind::Integer { min, max }, DefaultValue::Integer(n)) => {
                    (min..=max).contains(&n)
                }
                _ => false,
            };
            assert!(
                fits,
                "{}.{}: {:?} for {:?}",
                k.section, k.name, k.default, k.kind
            );
            // A table's keys are in a section of its name.
            if k.kind == KeyKind::Table {
                let inner = format!("{}.{}", k.section, k.name);
                assert!(
                    KEYS.iter().any(|o| o.section == inner),
                    "{inner} has no keys"
                );
            }
        }
    }
}
