//! Real highly available Redis topologies for the store's tests, from Debian's `redis-server`
//! on 127.0.0.1: a master with replicas watched by three sentinels, and a three-master cluster
//! with a replica each. Every node requires a password (the proxy reaches them with ACL
//! credentials), runs without persistence, and is ended by its PID (SIGKILL) on drop.
//!
//! "Cutting a replica's link" is done inside Redis: the replica is given a wrong `masterauth`
//! and its master link is killed, so it cannot resync; the master's later writes reach no
//! replica, and `WAIT` counts none. The master can then be SIGKILLed with writes only it had.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{temp_dir, wait_until};

/// Held by each test that starts a topology: one at a time, so that a machine busy with
/// another test's failover does not make this one's nodes miss their deadlines (a node that
/// does not answer within the timeouts below is failed over).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The data nodes' password (their `default` user), and the sentinels'.
pub const PASSWORD: &str = "vert-data-pw";
pub const SENTINEL_PASSWORD: &str = "vert-sentinel-pw";
pub const MASTER_NAME: &str = "vert";

/// A record's key and its remaining lifetime in ms.
pub type Record = (Vec<u8>, i64);

/// One `redis-server` process.
pub struct Node {
    pub port: u16,
    password: &'static str,
    child: Option<Child>,
    dir: PathBuf,
    /// `redis-server`'s arguments, for a restart.
    args: Vec<String>,
}

impl Node {
    /// Starts `redis-server` with `args` on a port of 127.0.0.1 chosen by the system; a port
    /// taken by another process between that choice and the bind (the server then exits) is
    /// chosen again, and the node is used only once the server on its port reports this
    /// process's id, so parallel tests cannot meet on one. `conf` writes a config file first
    /// (sentinels need one they can rewrite).
    fn start(
        password: &'static str,
        conf: impl Fn(u16, &std::path::Path) -> Option<PathBuf>,
        args: impl Fn(u16) -> Vec<String>,
    ) -> Node {
        for _ in 0..20 {
            let port = free_port();
            let dir = temp_dir();
            let mut all: Vec<String> = conf(port, &dir)
                .map(|file| file.to_str().unwrap().to_owned())
                .into_iter()
                .collect();
            all.extend(["--bind", "127.0.0.1", "--port"].map(String::from));
            all.push(port.to_string());
            all.extend(["--dir".to_owned(), dir.to_str().unwrap().to_owned()]);
            all.extend(args(port));
            let mut node = Node {
                port,
                password,
                child: None,
                dir,
                args: all,
            };
            if node.spawn() {
                return node;
            }
        }
        panic!("redis-server never started");
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; ./test.sh installs it)");
        self.child = Some(child);
        if self.answers_within(Duration::from_secs(10)) {
            return true;
        }
        self.kill();
        false
    }

    /// Starts it again after [`Node::kill`], on its port, with what it kept in its directory
    /// (a cluster node its `nodes.conf`): as an operator restarts a crashed node.
    pub fn restart(&mut self) {
        assert!(self.spawn(), "redis-server :{} did not restart", self.port);
    }

    fn answers_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                return false; // exited: its port was taken
            }
            // Ours, not another test's server that took the port first (same password): the
            // port is handed over only once the process behind it is the one started here.
            let pid = self.child.as_ref().map(Child::id);
            let info = self.try_cmd(&["INFO", "server"]).unwrap_or_default();
            let ours = |pid: u32| {
                info.lines()
                    .any(|l| l.trim() == format!("process_id:{pid}"))
            };
            if pid.is_some_and(ours) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://default:{}@127.0.0.1:{}", self.password, self.port)
    }

    /// A command, its answer as text (bulk strings, integers and status lines; arrays flattened
    /// one item a line).
    pub fn try_cmd(&self, args: &[&str]) -> redis::RedisResult<String> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
        connection.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let value: redis::Value = cmd.query(&mut connection)?;
        Ok(text(value))
    }

    pub fn cmd(&self, args: &[&str]) -> String {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("{args:?} on :{}: {e}", self.port))
    }

    /// `ROLE`'s first word: `master`, `slave` or `sentinel`.
    pub fn role(&self) -> String {
        self.try_cmd(&["ROLE"])
            .map(|r| r.lines().next().unwrap_or("").to_owned())
            .unwrap_or_default()
    }

    /// The node's records (the proxy's keys), each with its remaining lifetime in ms.
    pub fn keys(&self) -> Vec<Record> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg("medmij-vert:*")
            .query(&mut connection)
            .unwrap();
        keys.into_iter()
            .map(|key| {
                let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut connection).unwrap();
                (key, ttl)
            })
            .collect()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Cuts this replica off its master: it cannot authenticate to resync.
    pub fn cut_master_link(&self) {
        self.cmd(&["CONFIG", "SET", "masterauth", "not-the-password"]);
        self.cmd(&["CLIENT", "KILL", "TYPE", "master"]);
        wait_until("the replica's master link is down", || {
            self.cmd(&["INFO", "replication"])
                .contains("master_link_status:down")
        });
    }

    /// Lets it authenticate to its (next) master again.
    pub fn heal_master_auth(&self) {
        self.cmd(&["CONFIG", "SET", "masterauth", PASSWORD]);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    // Below 55536: a cluster node also listens on its port + 10000.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55_536 {
            return port;
        }
    }
}

fn text(value: redis::Value) -> String {
    use redis::Value;
    match value {
        Value::Nil => String::new(),
        Value::Int(n) => n.to_string(),
        Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Value::SimpleString(s) => s,
        Value::Okay => "OK".into(),
        Value::Array(items) | Value::Set(items) => {
            items.into_iter().map(text).collect::<Vec<_>>().join("\n")
        }
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| format!("{}\n{}", text(k), text(v)))
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{other:?}"),
    }
}

/// Every data node: no persistence, a password for clients and for its master, and `extra`.
fn data_args(extra: &[&str]) -> Vec<String> {
    [
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        PASSWORD,
        "--masterauth",
        PASSWORD,
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

/// A data node, a replica of the node on `replica_of` when given.
pub fn data_node(replica_of: Option<u16>, extra: &[&str]) -> Node {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    Node::start(
        PASSWORD,
        |_, _| None,
        move |_| {
            let mut args = data_args(&[]);
            if let Some(master) = replica_of {
                args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
            }
            args.extend(extra.iter().cloned());
            args
        },
    )
}

/// A master, its replicas, and three sentinels (quorum 2, a master down after 1 s).
pub struct Sentinels {
    pub nodes: Vec<Node>,
    pub sentinels: Vec<Node>,
}

impl Sentinels {
    pub fn start(replicas: usize) -> Sentinels {
        let master = data_node(None, &[]);
        let mut nodes = vec![];
        let master_port = master.port;
        nodes.push(master);
        for _ in 0..replicas {
            nodes.push(data_node(Some(master_port), &[]));
        }
        wait_until("the replicas are in sync", || {
            nodes[0]
                .cmd(&["INFO", "replication"])
                .matches("state=online")
                .count()
                == replicas
        });
        let sentinels: Vec<Node> = (0..3)
            .map(|_| {
                Node::start(
                    SENTINEL_PASSWORD,
                    move |port, dir| {
                        let file = dir.join("sentinel.conf");
                        std::fs::write(
                            &file,
                            format!(
                                "port {port}\nbind 127.0.0.1\nrequirepass {SENTINEL_PASSWORD}\n\
                                 sentinel sentinel-pass {SENTINEL_PASSWORD}\n\
                                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                                 sentinel auth-pass {MASTER_NAME} {PASSWORD}\n\
                                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                                 sentinel failover-timeout {MASTER_NAME} 3000\n"
                            ),
                        )
                        .unwrap();
                        Some(file)
                    },
                    |_| vec!["--sentinel".into()],
                )
            })
            .collect();
        let s = Sentinels { nodes, sentinels };
        s.wait_until_watched(replicas);
        s
    }

    /// Every sentinel knows the other two and the replicas: a failover can be agreed.
    fn wait_until_watched(&self, replicas: usize) {
        for sentinel in &self.sentinels {
            wait_until("the sentinels know each other and the replicas", || {
                let others = sentinel.cmd(&["SENTINEL", "sentinels", MASTER_NAME]);
                let known = sentinel.cmd(&["SENTINEL", "replicas", MASTER_NAME]);
                let count = |text: &str| text.lines().filter(|l| *l == "name").count();
                count(&others) == 2 && count(&known) == replicas
            });
        }
    }

    /// The proxy's `[store]` lines for these sentinels.
    pub fn store_config(&self) -> String {
        sentinel_store(&self.sentinels, "redis", 0)
    }

    /// The port the sentinels name as the master now.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let addr = s
                .try_cmd(&["SENTINEL", "get-master-addr-by-name", MASTER_NAME])
                .ok()?;
            addr.lines().nth(1)?.parse().ok()
        })
    }

    pub fn replicas(&self) -> impl Iterator<Item = &Node> {
        let port = self.master_port();
        self.nodes
            .iter()
            .filter(move |n| n.is_running() && Some(n.port) != port)
    }

    /// SIGKILLs the master; its port.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port().expect("a master");
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        node.kill();
        port
    }

    /// Waits until the sentinels name another master than `old` and it takes writes.
    pub fn wait_for_promotion(&self, old: u16) {
        wait_until("the sentinels promote a replica", || {
            self.master_port().is_some_and(|p| p != old)
                && self.nodes.iter().any(|n| {
                    n.is_running() && Some(n.port) == self.master_port() && n.role() == "master"
                })
        });
    }
}

/// Three masters with a replica each, failing over after 1 s.
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Every node also on a TLS port (its port + 1), the cluster bus over TLS too.
    tls: bool,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(None)
    }

    /// Every node speaks TLS beside its plain port (which the tests' own commands use); the
    /// cluster names TLS ports to TLS clients.
    pub fn start_tls(tls: &TlsFiles) -> Cluster {
        Cluster::start_with(Some(tls))
    }

    fn start_with(tls: Option<&TlsFiles>) -> Cluster {
        let conf = tls.map(|tls| tls.conf("tls-cluster yes\n".into()));
        let nodes: Vec<Node> = (0..6)
            .map(|_| {
                Node::start(
                    PASSWORD,
                    |port, dir| conf.as_ref().and_then(|conf| conf(port, dir)),
                    |_| {
                        data_args(&[
                            "--cluster-enabled",
                            "yes",
                            "--cluster-node-timeout",
                            "1000",
                            // A replica cut off from its master may still take over.
                            "--cluster-replica-validity-factor",
                            "0",
                        ])
                    },
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["-a", PASSWORD, "--no-auth-warning", "--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli (Debian package redis-tools)");
        assert!(status.success(), "redis-cli --cluster create");
        let cluster = Cluster {
            nodes,
            tls: tls.is_some(),
        };
        cluster.wait_until_ok();
        cluster
    }

    pub fn wait_until_ok(&self) {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            wait_until("the cluster is ok on every node", || {
                node.try_cmd(&["CLUSTER", "INFO"])
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            });
        }
        // And every replica is in sync with its master.
        wait_until("every replica is in sync", || {
            self.masters()
                .all(|m| m.cmd(&["INFO", "replication"]).contains("state=online"))
        });
    }

    pub fn store_config(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .take(3)
            .map(|n| match self.tls {
                false => format!("\"{}\"", n.url()),
                true => format!("\"rediss://default:{PASSWORD}@127.0.0.1:{}\"", n.port + 1),
            })
            .collect();
        format!("[store]\ncluster = [{}]\n", nodes.join(", "))
    }

    pub fn masters(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && n.role() == "master")
    }

    pub fn replicas(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && n.role() == "slave")
    }

    /// The proxy's records on each node, by port.
    pub fn keys(&self) -> Vec<(u16, Vec<Record>)> {
        self.masters().map(|n| (n.port, n.keys())).collect()
    }

    pub fn node(&mut self, port: u16) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }

    /// Waits until the killed master's slots are served again (its replica promoted).
    pub fn wait_for_promotion(&self) {
        wait_until("the cluster promotes a replica", || {
            self.masters().count() == 3
                && self.masters().all(|n| {
                    n.try_cmd(&["CLUSTER", "INFO"])
                        .is_ok_and(|i| i.contains("cluster_state:ok"))
                })
        });
    }
}

/// A test CA and a certificate for 127.0.0.1 it signed, as PEM files: for nodes that speak TLS.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn new() -> TlsFiles {
        let dir = temp_dir();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "medmij-vert test CA");
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("redis.pem"),
            key: dir.join("redis.key"),
        };
        std::fs::write(&files.ca, ca.pem()).unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    /// A config file for [`Node::start`]: [`TlsFiles::settings`] with the TLS port at the plain
    /// port + 1, and `extra`.
    fn conf(&self, extra: String) -> impl Fn(u16, &std::path::Path) -> Option<PathBuf> + use<> {
        let settings = self.settings(0);
        move |port: u16, dir: &std::path::Path| {
            let file = dir.join("redis.conf");
            let settings = settings.replace("tls-port 0", &format!("tls-port {}", port + 1));
            std::fs::write(&file, format!("{settings}{extra}")).unwrap();
            Some(file)
        }
    }

    /// `redis-server`'s settings for a TLS port beside its plain one (the tests' own commands
    /// use the plain one), TLS to its master and, for a sentinel, to the nodes it watches.
    fn settings(&self, tls_port: u16) -> String {
        format!(
            "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
             tls-auth-clients no\ntls-replication yes\n",
            self.cert.display(),
            self.key.display(),
            self.ca.display()
        )
    }
}

/// A master that speaks TLS, watched by three sentinels that speak TLS; no replicas. Each node's
/// TLS port is its plain port + 1 (taken with it, or both chosen again).
pub struct TlsSentinels {
    pub master: Node,
    pub sentinels: Vec<Node>,
}

impl TlsSentinels {
    pub fn start(tls: &TlsFiles) -> TlsSentinels {
        let master = Node::start(PASSWORD, tls.conf(String::new()), |_| data_args(&[]));
        let master_tls = master.port + 1;
        let sentinels: Vec<Node> = (0..3)
            .map(|_| {
                Node::start(
                    SENTINEL_PASSWORD,
                    tls.conf(format!(
                        "requirepass {SENTINEL_PASSWORD}\nsentinel sentinel-pass {SENTINEL_PASSWORD}\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_tls} 2\n\
                         sentinel auth-pass {MASTER_NAME} {PASSWORD}\n"
                    )),
                    |_| vec!["--sentinel".into()],
                )
            })
            .collect();
        for sentinel in &sentinels {
            wait_until("the sentinels know each other", || {
                let others = sentinel.cmd(&["SENTINEL", "sentinels", MASTER_NAME]);
                others.lines().filter(|l| *l == "name").count() == 2
            });
        }
        TlsSentinels { master, sentinels }
    }

    /// The proxy's `[store]` lines: every node through its TLS port.
    pub fn store_config(&self) -> String {
        sentinel_store(&self.sentinels, "rediss", 1)
    }
}

/// The proxy's `[store]` lines for `sentinels` over `scheme`, each on its port + `offset`, and
/// the master they name with its password.
fn sentinel_store(sentinels: &[Node], scheme: &str, offset: u16) -> String {
    let sentinels: Vec<String> = sentinels
        .iter()
        .map(|s| {
            format!(
                "\"{scheme}://default:{SENTINEL_PASSWORD}@127.0.0.1:{}\"",
                s.port + offset
            )
        })
        .collect();
    format!(
        "[store]\nsentinels = [{}]\nsentinel_master = \"{scheme}://default:{PASSWORD}@{MASTER_NAME}\"\n",
        sentinels.join(", ")
    )
}
