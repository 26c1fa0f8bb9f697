//! The records in Redis, for instances behind a load balancer: one Redis (`store.url`), the
//! master the sentinels name (`store.sentinels`), or a Redis Cluster (`store.cluster`).
//!
//! Redis replicates asynchronously: a write the master acknowledged can be lost when a replica
//! that never saw it is promoted. For this proxy that write is "this flow released its code", so
//! with `store.min_replicas = N` every write is followed by `WAIT N store.timeout` on the same
//! connection, and a write that reached fewer replicas does not count ([`StoreError::NotDurable`]):
//! the code is withheld. Every command names one key, so none needs a hash tag in a Cluster; the
//! `WAIT` goes in one pipeline with its write, which the cluster client sends to that key's master.

use std::sync::Mutex;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{AsyncConnectionConfig, Cmd, FromRedisValue, IntoConnectionInfo, RedisResult};

use super::{Digest, Store, StoreError, StoreFuture};
use crate::config::Redis;

/// Redis, reached as `store.url`, `store.sentinels` or `store.cluster` says.
pub struct RedisStore {
    nodes: Nodes,
    /// Every key gets this prefix, so that one Redis can serve other things too.
    prefix: &'static [u8],
    timeout: Duration,
    min_replicas: u32,
}

enum Nodes {
    /// `redis`'s connection manager: reconnects by itself.
    One(ConnectionManager),
    Sentinel(Sentinel),
    Cluster(Cluster),
}

impl RedisStore {
    /// Connects on first use: a Redis that is not reachable now is not an error here; requests
    /// fail closed until it is. Must be called within a tokio runtime.
    pub fn new(redis: &Redis, timeout: Duration, min_replicas: u32) -> Result<Self, StoreError> {
        let unusable = |e: ::redis::RedisError| StoreError::Unavailable(e.to_string());
        // A write and its `WAIT` (which may take all of `store.timeout`) share one answer.
        let response = if min_replicas > 0 {
            timeout * 2
        } else {
            timeout
        };
        let nodes = match redis {
            Redis::Url(url) => {
                let client = ::redis::Client::open(url.expose()).map_err(unusable)?;
                let config = ::redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(response))
                    .set_number_of_retries(1);
                let manager =
                    ConnectionManager::new_lazy_with_config(client, config).map_err(unusable)?;
                Nodes::One(manager)
            }
            Redis::Sentinel { sentinels, master } => {
                let nodes = master
                    .nodes
                    .expose()
                    .into_connection_info()
                    .map_err(unusable)?;
                let mut node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(nodes.redis_settings().clone());
                if let ::redis::ConnectionAddr::TcpTls { insecure, .. } = nodes.addr() {
                    node = node.set_tls_mode(match insecure {
                        false => ::redis::TlsMode::Secure,
                        true => ::redis::TlsMode::Insecure,
                    });
                }
                let client = SentinelClient::build(
                    sentinels.iter().map(|u| u.expose()).collect(),
                    &master.name,
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(unusable)?;
                Nodes::Sentinel(Sentinel {
                    discovery: tokio::sync::Mutex::new(client),
                    master: Mutex::new((0, None)),
                    config: AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(response)),
                })
            }
            Redis::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes.iter().map(|u| u.expose()))
                    .connection_timeout(timeout)
                    .response_timeout(response)
                    .retries(2)
                    .build()
                    .map_err(unusable)?;
                Nodes::Cluster(Cluster {
                    client,
                    connection: tokio::sync::OnceCell::new(),
                })
            }
        };
        Ok(RedisStore {
            nodes,
            prefix: b"medmij-vert:",
            timeout,
            min_replicas,
        })
    }

    fn key(&self, key: &Digest) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(self.prefix);
        full.extend_from_slice(key);
        full
    }

    /// A read.
    async fn read<T: FromRedisValue>(&self, cmd: Cmd) -> Result<T, StoreError> {
        let (answer, _) = self.run(cmd, false).await?;
        Ok(answer)
    }

    /// A write, and with `store.min_replicas` the number of replicas `WAIT` counted.
    async fn write<T: FromRedisValue>(&self, cmd: Cmd) -> Result<(T, Replicas), StoreError> {
        self.run(cmd, self.min_replicas > 0).await
    }

    async fn run<T: FromRedisValue>(
        &self,
        cmd: Cmd,
        wait: bool,
    ) -> Result<(T, Replicas), StoreError> {
        let wait = wait.then(|| (self.min_replicas, self.timeout.as_millis().max(1) as u64));
        // `WAIT` may take all of `store.timeout`; the write before it gets as long again.
        let deadline = if wait.is_some() {
            self.timeout * 2
        } else {
            self.timeout
        };
        let sent = async {
            match &self.nodes {
                Nodes::One(manager) => query(&mut manager.clone(), &cmd, wait).await,
                Nodes::Sentinel(sentinel) => sentinel.query(&cmd, wait).await,
                Nodes::Cluster(cluster) => cluster.query(&cmd, wait).await,
            }
        };
        match tokio::time::timeout(deadline, sent).await {
            Ok(result) => result.map_err(|e| StoreError::Unavailable(e.to_string())),
            Err(_) => {
                if let Nodes::Sentinel(sentinel) = &self.nodes {
                    sentinel.forget(None);
                }
                Err(StoreError::Unavailable(
                    "no answer within store.timeout".into(),
                ))
            }
        }
    }

    /// A write the master made counts only when `WAIT` reached `store.min_replicas`.
    fn durable(&self, replicas: Replicas) -> Result<(), StoreError> {
        match replicas {
            Some(replicas) if replicas < self.min_replicas => {
                if let Nodes::Sentinel(sentinel) = &self.nodes {
                    // A master cut off from its replicas may have been replaced already.
                    sentinel.forget(None);
                }
                Err(StoreError::NotDurable {
                    replicas,
                    wanted: self.min_replicas,
                })
            }
            _ => Ok(()),
        }
    }
}

/// What `WAIT` counted, when it was asked.
type Replicas = Option<u32>;

/// `cmd`, followed by `WAIT n ms` in the same pipeline when `wait` says so: `WAIT` counts the
/// replicas that have every write this connection made, the one before it included.
async fn query<C: ConnectionLike + Send, T: FromRedisValue>(
    connection: &mut C,
    cmd: &Cmd,
    wait: Option<(u32, u64)>,
) -> RedisResult<(T, Replicas)> {
    match wait {
        None => Ok((cmd.query_async(connection).await?, None)),
        Some((replicas, millis)) => {
            let mut pipe = ::redis::pipe();
            pipe.add_command(cmd.clone())
                .cmd("WAIT")
                .arg(replicas)
                .arg(millis);
            let (answer, counted): (T, u32) = pipe.query_async(connection).await?;
            Ok((answer, Some(counted)))
        }
    }
}

/// The master the sentinels name, found through `redis`'s sentinel client (which checks that
/// the node it names holds the master role), and found again after any failure: a master that
/// went away, refused a write as a replica (`READONLY`, demoted), or lost its replicas.
struct Sentinel {
    discovery: tokio::sync::Mutex<SentinelClient>,
    /// The connection to the master now, with a generation so that a request forgets only the
    /// connection it failed on.
    master: Mutex<(u64, Option<MultiplexedConnection>)>,
    config: AsyncConnectionConfig,
}

impl Sentinel {
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let (generation, Some(connection)) =
            &*self.master.lock().unwrap_or_else(|e| e.into_inner())
        {
            return Ok((*generation, connection.clone()));
        }
        let mut discovery = self.discovery.lock().await;
        // Another request may have found it while this one waited.
        if let (generation, Some(connection)) =
            &*self.master.lock().unwrap_or_else(|e| e.into_inner())
        {
            return Ok((*generation, connection.clone()));
        }
        let client = discovery.async_get_client().await?;
        let connection = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let mut master = self.master.lock().unwrap_or_else(|e| e.into_inner());
        master.0 += 1;
        master.1 = Some(connection.clone());
        Ok((master.0, connection))
    }

    /// The next request asks the sentinels again (`None`: whatever connection is current).
    fn forget(&self, generation: Option<u64>) {
        let mut master = self.master.lock().unwrap_or_else(|e| e.into_inner());
        if generation.is_none_or(|g| g == master.0) {
            master.1 = None;
        }
    }

    async fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        wait: Option<(u32, u64)>,
    ) -> RedisResult<(T, Replicas)> {
        let (generation, mut connection) = self.connection().await?;
        let answer = query(&mut connection, cmd, wait).await;
        if answer.is_err() {
            self.forget(Some(generation));
        }
        answer
    }
}

/// A Redis Cluster through `redis`'s cluster client, which follows `MOVED` and `ASK` and
/// refreshes its slot map after a failover. Connected on first use.
struct Cluster {
    client: ClusterClient,
    connection: tokio::sync::OnceCell<ClusterConnection>,
}

impl Cluster {
    async fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        wait: Option<(u32, u64)>,
    ) -> RedisResult<(T, Replicas)> {
        let connection = self
            .connection
            .get_or_try_init(|| self.client.get_async_connection())
            .await?;
        query(&mut connection.clone(), cmd, wait).await
    }
}

impl Store for RedisStore {
    fn claim(&self, key: Digest, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(&key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        Box::pin(async move {
            let (answer, replicas): (Option<String>, _) = self.write(cmd).await?;
            let claimed = answer.is_some();
            // A refusal stands however far the record that caused it got.
            if claimed {
                self.durable(replicas)?;
            }
            Ok(claimed)
        })
    }

    fn take(&self, key: Digest) -> StoreFuture<'_, bool> {
        let mut cmd = ::redis::cmd("GETDEL");
        cmd.arg(self.key(&key));
        Box::pin(async move {
            let (answer, replicas): (Option<Vec<u8>>, _) = self.write(cmd).await?;
            if answer.is_some() {
                self.durable(replicas)?;
            }
            Ok(answer.is_some())
        })
    }

    fn get(&self, key: Digest) -> StoreFuture<'_, Option<Vec<u8>>> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.key(&key));
        Box::pin(async move { self.read(cmd).await })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Every form, nothing listening: the error that reaches the log names no password.
    #[tokio::test]
    async fn a_store_error_never_shows_the_password() {
        for text in [
            "[store]\nsentinels = [\"redis://u:s3cretpw@127.0.0.1:1\"]\nsentinel_master = \"redis://u:s3cretpw@m\"\n",
            "[store]\ncluster = [\"redis://u:s3cretpw@127.0.0.1:1\"]\n",
            "[store]\nurl = \"redis://u:s3cretpw@127.0.0.1:1\"\n",
            "[store]\nurl = \"rediss://u:s3cretpw@127.0.0.1:1\"\n",
        ] {
            let c = crate::config::Config::from_toml(&format!("[upstream]\nurl=\"http://a:1\"\n[clients]\nstatic=[{{hostname=\"a.nl\"}}]\n{text}"), std::path::Path::new(".")).unwrap();
            let s = RedisStore::new(
                c.store.redis.as_ref().unwrap(),
                Duration::from_millis(300),
                1,
            )
            .unwrap();
            let e = s
                .claim([0; 32], b"1", Duration::from_secs(1))
                .await
                .unwrap_err();
            assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }
}
