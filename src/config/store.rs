//! `[store]`: where the records of released flows and codes live, and the one Redis (a URL,
//! sentinels, or a cluster) it may name.

use std::fmt;
use std::time::Duration;

use super::check::{Check, Section};

/// Where the records of released flows and codes live.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Shared by instances; none: in-process (one instance).
    pub redis: Option<Redis>,
    /// A write counts only once `WAIT` reports this many replicas (0: once the master has it).
    pub min_replicas: u32,
    /// The in-process store's bound; full with live records, it fails closed.
    pub max_entries: usize,
    /// How long a Redis command may take before the proxy fails closed.
    pub timeout: Duration,
    /// The share of `max_entries`, in percent, that the releases of one source (client
    /// address; an IPv6 /64) may hold at once.
    pub source_share_percent: usize,
}

/// The Redis that holds the records: exactly one of `store.url`, `store.sentinels` or
/// `store.cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redis {
    /// One Redis.
    Url(RedisUrl),
    /// The master named `master` as the sentinels report it, followed across failovers.
    Sentinel {
        sentinels: Vec<RedisUrl>,
        master: SentinelMaster,
    },
    /// A Redis Cluster, found through any of these nodes.
    Cluster(Vec<RedisUrl>),
}

/// `store.sentinel_master`: the master's name, and how to reach the nodes the sentinels name
/// (`rediss://user:password@name/db`: TLS, ACL user, database; a bare name: none of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelMaster {
    pub name: String,
    pub nodes: RedisUrl,
}

impl SentinelMaster {
    fn parse(text: &str) -> Result<SentinelMaster, String> {
        let nodes = if text.contains("://") {
            RedisUrl::parse(text)?
        } else {
            RedisUrl::parse(&format!("redis://{text}"))?
        };
        let info = redis::IntoConnectionInfo::into_connection_info(nodes.expose())
            .map_err(|e| e.to_string())?;
        let name = match info.addr() {
            redis::ConnectionAddr::Tcp(host, _) | redis::ConnectionAddr::TcpTls { host, .. } => {
                host.clone()
            }
            _ => return Err("not a master's name".into()),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("not a master's name".into());
        }
        Ok(SentinelMaster { name, nodes })
    }
}

/// A `redis://` or `rediss://` URL. It may hold a password, so `Debug` shows it without one.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// `redis://…`, `rediss://…`, or `host:port` (read as `redis://host:port`), as the `redis`
    /// crate reads it. The error does not repeat the text, which may hold a password.
    pub(super) fn parse(text: &str) -> Result<RedisUrl, String> {
        let url = if text.contains("://") {
            text.to_owned()
        } else {
            format!("redis://{text}")
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err("must start with redis:// or rediss://".into());
        }
        match redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
            Ok(_) => Ok(RedisUrl(url)),
            Err(_) => Err(
                "not a Redis URL like redis://[user:password@]host[:port][/db] or rediss://…"
                    .into(),
            ),
        }
    }

    /// The URL with its password, for the connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_tls(&self) -> bool {
        self.0.starts_with("rediss://")
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        match rest.rsplit_once('@') {
            Some((_, host)) => write!(f, "{scheme}://***@{host}"),
            None => write!(f, "{scheme}://{rest}"),
        }
    }
}

impl Check {
    /// `[store]`.
    pub(super) fn store(&mut self, root: &toml::Table) -> StoreConfig {
        let s = self.section(root, "store");
        let store = StoreConfig {
            redis: self.redis(&s),
            min_replicas: self.integer(&s, "min_replicas") as u32,
            max_entries: self.integer(&s, "max_entries"),
            timeout: self.duration(&s, "timeout"),
            source_share_percent: self.integer(&s, "source_share_percent"),
        };
        if store.min_replicas > 0 && store.redis.is_none() {
            self.error(
                "store.min_replicas",
                "needs a Redis (store.url, store.sentinels or store.cluster): the in-process store has no replicas",
            );
        }
        store
    }

    /// `[store]`'s Redis: one of `url`, `sentinels` (with `sentinel_master`) and `cluster`.
    fn redis(&mut self, s: &Section<'_>) -> Option<Redis> {
        let url = self
            .string(s, "url")
            .map(|text| RedisUrl::parse(text).map_err(|e| self.error("store.url", e)));
        let sentinels = s.has("sentinels").then(|| {
            let list = self.list(s, "sentinels", RedisUrl::parse);
            self.same_scheme("store.sentinels", &list);
            list
        });
        let master = self.string(s, "sentinel_master");
        let cluster = s.has("cluster").then(|| {
            let list = self.list(s, "cluster", RedisUrl::parse);
            if let Err(e) = redis::cluster::ClusterClient::new(list.iter().map(RedisUrl::expose))
                && !list.is_empty()
            {
                self.error("store.cluster", format!("{e}"));
            }
            list
        });
        let given: Vec<&str> = [
            ("store.url", url.is_some()),
            ("store.sentinels", sentinels.is_some()),
            ("store.cluster", cluster.is_some()),
        ]
        .iter()
        .filter_map(|(key, set)| set.then_some(*key))
        .collect();
        if given.len() > 1 {
            self.error(
                given[1],
                format!("{} is set too: name one Redis, not both", given[0]),
            );
            return None;
        }
        if master.is_some() && sentinels.is_none() {
            self.error("store.sentinel_master", "needs store.sentinels");
        }
        if let Some(list) = &sentinels
            && list.is_empty()
        {
            self.error("store.sentinels", "names no sentinel");
        }
        if let Some(list) = &cluster
            && list.is_empty()
        {
            self.error("store.cluster", "names no node");
        }
        if let Some(Ok(url)) = url {
            return Some(Redis::Url(url));
        }
        if let Some(sentinels) = sentinels {
            let master = match master {
                None => {
                    self.error(
                        "store.sentinel_master",
                        "missing (the master's name, as the sentinels monitor it)",
                    );
                    None
                }
                Some(text) => SentinelMaster::parse(text)
                    .map_err(|e| self.error("store.sentinel_master", e))
                    .ok(),
            };
            return master
                .filter(|_| !sentinels.is_empty())
                .map(|master| Redis::Sentinel { sentinels, master });
        }
        cluster.filter(|list| !list.is_empty()).map(Redis::Cluster)
    }

    /// The `redis` crate speaks TLS to all of a list's nodes or to none.
    fn same_scheme(&mut self, key: &str, list: &[RedisUrl]) {
        if list.iter().any(|u| u.is_tls() != list[0].is_tls()) {
            self.error(key, "mixes redis:// and rediss://: all or none speak TLS");
        }
    }
}
