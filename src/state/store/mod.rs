//! Where the proxy's two small records live: the flows that released a code (one code per flow)
//! and the keyed hashes of released codes (the token guard). One trait, two implementations:
//! [`MemoryStore`] for a single instance (the default), [`RedisStore`] for instances behind a
//! load balancer ([`redis`]: one Redis, a master found through Sentinel, or a Cluster).
//!
//! Only 32-byte digests, expiry times and, beside a code's record, the public hostname of the
//! client it was released to are stored: flow ids are random, codes are stored as keyed hashes
//! (HMAC with a key derived from the state key), so the store never holds a usable code or
//! anything personal.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::ops::metrics::Metrics;
use crate::state::seal::KeyRing;

mod redis;
pub use self::redis::RedisStore;

/// A record's key: a digest.
pub type Digest = [u8; 32];

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why the store could not answer. The proxy then fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The in-process store holds `store.max_entries` live records.
    #[error("the in-process store is full (store.max_entries)")]
    Full,
    /// Redis did not answer (the message is Redis's, for the log).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Redis recorded it, but `WAIT` counted fewer replicas than `store.min_replicas` within
    /// `store.timeout`: a failover could lose the record, so it does not count.
    #[error(
        "the record reached {replicas} replica(s) within store.timeout, store.min_replicas is {wanted}"
    )]
    NotDurable { replicas: u32, wanted: u32 },
}

/// Records with a lifetime, each claimed at most once and taken at most once.
pub trait Store: Send + Sync {
    /// Records `key` with `value` for `ttl` unless it is recorded already (Redis `SET NX PX`):
    /// `true` when this call recorded it.
    fn claim(&self, key: Digest, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool>;

    /// Removes `key` (Redis `GETDEL`): `true` when it was recorded and had not expired.
    fn take(&self, key: Digest) -> StoreFuture<'_, bool>;

    /// The value of `key` when it is recorded and has not expired (Redis `GET`).
    fn get(&self, key: Digest) -> StoreFuture<'_, Option<Vec<u8>>>;
}

/// The value of a record whose value says nothing (a flow's, a presentation's lock); also what
/// a code's record holds when a version before the client was recorded made it.
const NO_VALUE: &[u8] = b"1";

/// What presenting a code found.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// Released and not used up: it may go to the AS, once at a time.
    Go(Presentation),
    /// Never released by the proxy, or expired.
    NotReleased,
    /// Withheld by the proxy: the AS sent it, and the flow's checks failed.
    Withheld,
    /// Released, and it became a token.
    Redeemed,
    /// Released to a client that is no longer on the client list.
    ClientNotListed,
    /// Another presentation of it is at the AS now.
    InFlight,
}

/// A code on its way to the AS: its record, and the lock that keeps presentations apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Presentation {
    record: Digest,
    lock: Digest,
}

/// The key of the lock of a code's presentation: a digest of its record's key, so that it can
/// meet no other record.
fn presenting(record: &Digest) -> Digest {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(b"medmij-vert presenting ");
    hash.update(record);
    hash.finalize().into()
}

/// The key of what became of a code that has no release record (withheld, redeemed): a digest
/// of the record's key, so that it can meet no other record, and an older version that looks
/// up the record finds nothing and refuses as before.
fn fate(record: &Digest) -> Digest {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(b"medmij-vert fate ");
    hash.update(record);
    hash.finalize().into()
}

/// The values of a [`fate`] record.
const WITHHELD: &[u8] = b"withheld";
const REDEEMED: &[u8] = b"redeemed";

/// Why a release was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The flow released a code before.
    AlreadyUsed,
    /// Its source holds its share of the records (`store.source_share_percent`).
    OverShare,
    Store(StoreError),
}

/// A presentation's lock, unless [`Records::with_presenting_ttl`] says otherwise.
const PRESENTING_TTL: Duration = Duration::from_secs(35);

/// Where a release comes from, for the share of the records one source may hold: the client
/// address as the proxy determines it (`listen.trusted_proxies`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Ip(IpAddr),
    /// Not known (a stack built without the peer, or a balancer's unreadable entry): all such
    /// share one bucket, so they fail closed together, never past the bound.
    Unknown,
}

/// One bucket of the shares: an IPv4 address, an IPv6 prefix, or the unknown source's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Bucket {
    V4(u32),
    V6 { prefix: u128, len: u8 },
    Unknown,
}

/// The IPv6 prefixes one party holds, and how many shares each may hold: a host commonly has a
/// /64, a household a /56 (and can spread its flows over its 256 /64s), a site a /48 (65,536 of
/// them). Counting each level bounds what one party fills however it spreads its addresses.
const V6_LEVELS: [(u8, usize); 3] = [(64, 1), (56, 2), (48, 4)];

impl Source {
    pub fn new(ip: IpAddr) -> Self {
        Source::Ip(ip.to_canonical())
    }

    pub fn unknown() -> Self {
        Source::Unknown
    }

    /// The buckets a release from here counts in, with how many shares each may hold; the
    /// first is the finest, in which the live records are counted once. An array, not an
    /// iterator chain: this runs on every release.
    fn buckets(self) -> ([(Bucket, usize); 3], usize) {
        let one = |bucket| ([(bucket, 1); 3], 1);
        match self {
            Source::Unknown => one(Bucket::Unknown),
            Source::Ip(IpAddr::V4(v4)) => one(Bucket::V4(v4.to_bits())),
            Source::Ip(IpAddr::V6(v6)) => {
                let bits = v6.to_bits();
                let level = |(len, shares): (u8, usize)| {
                    let prefix = bits & (u128::MAX << (128 - u32::from(len)));
                    (Bucket::V6 { prefix, len }, shares)
                };
                (V6_LEVELS.map(level), V6_LEVELS.len())
            }
        }
    }
}

impl Bucket {
    /// Whether its records are counted in [`Shares::live`] (each record is in one such).
    fn is_finest(self) -> bool {
        !matches!(self, Bucket::V6 { len, .. } if len != V6_LEVELS[0].0)
    }
}

/// The live records of each source, in this instance: no source may hold more than its share,
/// so that no one client can fill `store.max_entries` and make every other Persoon's release
/// fail closed. Records expire in the order they were made (one lifetime for all), so each
/// bucket keeps a queue of expiry times.
struct Shares {
    per_source: usize,
    ttl: Duration,
    by_bucket: HashMap<Bucket, VecDeque<Instant>, BucketHasher>,
    live: usize,
    /// When the map holds this many buckets, the ones with nothing live are dropped.
    sweep_at: usize,
}

impl Shares {
    fn new(per_source: usize, ttl: Duration) -> Self {
        Shares {
            per_source,
            ttl,
            by_bucket: HashMap::with_hasher(bucket_hasher()),
            live: 0,
            sweep_at: 1024,
        }
    }

    /// Counts `records` more for `source` in each of its buckets, unless that takes one over
    /// its share: the expiry they were counted with, for [`Shares::refund`].
    fn admit(&mut self, source: Source, records: usize, now: Instant) -> Option<Instant> {
        if self.by_bucket.len() >= self.sweep_at {
            let live = &mut self.live;
            self.by_bucket.retain(|bucket, queue| {
                let expired = expire(queue, now);
                if bucket.is_finest() {
                    *live -= expired;
                }
                !queue.is_empty()
            });
            self.sweep_at = (self.by_bucket.len() * 2).max(1024);
        }
        let expiry = now + self.ttl;
        // Counted bucket by bucket, one lookup each; a bucket over its share takes back what
        // the finer ones were given (their last entries: nothing came in between).
        let (buckets, n) = source.buckets();
        for (counted, &(bucket, shares)) in buckets[..n].iter().enumerate() {
            let queue = self.by_bucket.entry(bucket).or_default();
            let expired = expire(queue, now);
            if bucket.is_finest() {
                self.live -= expired;
            }
            if queue.len() + records > self.per_source.saturating_mul(shares) {
                for (finer, _) in &buckets[..counted] {
                    if let Some(queue) = self.by_bucket.get_mut(finer) {
                        queue.truncate(queue.len().saturating_sub(records));
                    }
                }
                return None;
            }
            queue.extend(std::iter::repeat_n(expiry, records));
        }
        self.live += records;
        Some(expiry)
    }

    /// Takes back `records` counted at `expiry` that were never made (the flow had released
    /// already): a refused replay uses up no share.
    fn refund(&mut self, source: Source, records: usize, expiry: Instant) {
        let (buckets, n) = source.buckets();
        for &(bucket, _) in &buckets[..n] {
            let Some(queue) = self.by_bucket.get_mut(&bucket) else {
                continue;
            };
            for _ in 0..records {
                // Its own entries are at the back, or next to ones admitted since with a
                // later expiry.
                if let Some(at) = queue.iter().rposition(|e| *e == expiry) {
                    queue.remove(at);
                    if bucket.is_finest() {
                        self.live -= 1;
                    }
                }
            }
        }
    }
}

/// The share map's hasher: foldhash, keyed from the operating system's randomness. Its keys
/// are client addresses, which a client chooses (an IPv6 /48 holds 2^80 of them), so the hash
/// must be keyed; SipHash cost about 190 instructions a release for one IPv4 bucket, foldhash
/// a fraction of it (issue 31).
type BucketHasher = foldhash::fast::SeedableRandomState;

fn bucket_hasher() -> BucketHasher {
    static SHARED: std::sync::OnceLock<foldhash::SharedSeed> = std::sync::OnceLock::new();
    let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(random_u64()));
    foldhash::fast::SeedableRandomState::with_seed(random_u64(), shared)
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Without the OS's randomness there is no key: stop rather than go on unkeyed.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    u64::from_le_bytes(bytes)
}

/// Drops the expired times at the front of a queue; how many.
fn expire(queue: &mut VecDeque<Instant>, now: Instant) -> usize {
    let before = queue.len();
    while queue.front().is_some_and(|expiry| *expiry <= now) {
        queue.pop_front();
    }
    before - queue.len()
}

/// What the proxy records, over a [`Store`]: the flows that released a code, and (with the
/// token guard on) the keyed hashes of the codes released.
pub struct Records {
    store: Arc<dyn Store>,
    keys: Arc<ArcSwap<KeyRing>>,
    /// How long a released flow is remembered: as long as its state could still be opened.
    flow_ttl: Duration,
    /// `token_guard.code_ttl`, when the token guard is on.
    code_ttl: Option<Duration>,
    /// How long a presentation's lock lives when it is never settled (the proxy stopped, the
    /// client went away mid-flight): the AS's answer is due within `upstream.response_timeout`.
    presenting_ttl: Duration,
    shares: Mutex<Shares>,
    metrics: Arc<Metrics>,
}

impl Records {
    /// `per_source`: how many live records one [`Source`]'s releases may hold.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<ArcSwap<KeyRing>>,
        flow_ttl: Duration,
        code_ttl: Option<Duration>,
        per_source: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        // A code's record lives no longer than its flow's in practice; both are counted for
        // the longer of the two, which can only make a share end later, never earlier.
        let ttl = flow_ttl.max(code_ttl.unwrap_or_default());
        Records {
            store,
            keys,
            flow_ttl,
            code_ttl,
            presenting_ttl: PRESENTING_TTL,
            shares: Mutex::new(Shares::new(per_source.max(1), ttl)),
            metrics,
        }
    }

    /// The lock of a presentation lives this long at most (`upstream.response_timeout` and a
    /// margin; the default is 30 s).
    /// The records as the config sizes them.
    pub fn from_config(
        config: &Config,
        keys: Arc<ArcSwap<KeyRing>>,
        store: Arc<dyn Store>,
        metrics: &Arc<Metrics>,
    ) -> Records {
        metrics.store_capacity(config.store.max_entries);
        Records::new(
            store,
            keys,
            config.state.flow_ttl + config.state.clock_skew,
            config.token_guard.as_ref().map(|t| t.code_ttl),
            config.store.max_entries * config.store.source_share_percent / 100,
            metrics.clone(),
        )
        // A code presented at the token endpoint: the AS answers within upstream.response_timeout.
        .with_presenting_ttl(config.upstream.response_timeout + Duration::from_secs(5))
    }

    pub fn with_presenting_ttl(mut self, ttl: Duration) -> Self {
        self.presenting_ttl = ttl;
        self
    }

    /// The records one release makes: the flow's, and the code's with the token guard on.
    fn per_release(&self) -> usize {
        1 + usize::from(self.code_ttl.is_some())
    }

    /// Before a code is released: its source holds less than its share, its flow has released
    /// none before (the flow is recorded now), and the code is recorded for the token guard.
    /// `client`: the flow's, kept beside the code's record, so that a client taken off the list
    /// redeems none of the codes it was released.
    pub async fn release(
        &self,
        flow_id: Digest,
        code: &str,
        client: &str,
        source: Source,
    ) -> Result<(), Refused> {
        let admitted = {
            let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
            let admitted = shares.admit(source, self.per_release(), Instant::now());
            self.metrics.store_records(shares.live);
            admitted
        };
        let Some(expiry) = admitted else {
            self.metrics.share_refusal();
            return Err(Refused::OverShare);
        };
        // Charged before the store is asked, so that parallel releases cannot overrun a
        // share; a store error keeps the charge (the record may have landed).
        let claimed = self.store.claim(flow_id, NO_VALUE, self.flow_ttl).await;
        match self.counted(claimed).map_err(Refused::Store)? {
            true => {}
            false => {
                let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
                shares.refund(source, self.per_release(), expiry);
                self.metrics.store_records(shares.live);
                return Err(Refused::AlreadyUsed);
            }
        }
        if let Some(code_ttl) = self.code_ttl {
            let digest = self.keys.load().code_digests(code).next();
            let digest = digest.expect("a key ring has a key");
            let recorded = self.store.claim(digest, client.as_bytes(), code_ttl).await;
            if let Err(error) = self.counted(recorded) {
                self.remove_withheld(digest, code_ttl).await;
                return Err(Refused::Store(error));
            }
        }
        Ok(())
    }

    /// The record of a code that is withheld may be in the store all the same: it reached too
    /// few replicas, or it landed and the answer was lost (a master killed mid-command, whose
    /// replica had it). A withheld code must not be redeemable, so its record is removed now,
    /// or, while the store does not answer, retried in the background until it does (a new
    /// master promoted) or the record would have expired. Removing a code's record can only
    /// refuse a code, never release one.
    async fn remove_withheld(&self, digest: Digest, ttl: Duration) {
        if self.store.take(digest).await.is_ok() {
            return;
        }
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        metrics.withheld_record(1);
        let until = tokio::time::Instant::now() + ttl;
        tokio::spawn(async move {
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if store.take(digest).await.is_ok() {
                    break;
                }
            }
            metrics.withheld_record(-1);
        });
    }

    /// Whether withheld codes are marked: with the token guard on.
    pub fn marks_withheld(&self) -> bool {
        self.code_ttl.is_some()
    }

    /// A code the proxy withheld (with the token guard on): remembered for the token guard's
    /// decision line, so that its presentation says `withheld` rather than "never released".
    /// Only for the token guard's accounts, never to refuse or release anything, so best
    /// effort: a store error is counted and the code is refused as never released all the
    /// same. The mark is a record, so it counts against its source's share, and a source
    /// over its share gets no mark.
    pub async fn withhold(&self, code: &str, source: Source) {
        let Some(code_ttl) = self.code_ttl else {
            return;
        };
        let admitted = {
            let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
            let admitted = shares.admit(source, 1, Instant::now());
            self.metrics.store_records(shares.live);
            admitted
        };
        let Some(expiry) = admitted else {
            return;
        };
        let digest = self.keys.load().code_digests(code).next();
        let digest = digest.expect("a key ring has a key");
        let marked = self.store.claim(fate(&digest), WITHHELD, code_ttl).await;
        // A mark already there (the same code withheld twice) made no record: its charge is
        // given back, as a refused release's is. A store error keeps it (it may have landed).
        if let Ok(false) = self.counted(marked) {
            let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
            shares.refund(source, 1, expiry);
            self.metrics.store_records(shares.live);
        }
    }

    /// What became of a code without a release record: withheld, redeemed, or (no mark)
    /// never released.
    async fn fate_of(&self, digests: &[Digest]) -> Result<Presented, StoreError> {
        for digest in digests {
            match self.counted(self.store.get(fate(digest)).await)?.as_deref() {
                Some(WITHHELD) => return Ok(Presented::Withheld),
                Some(REDEEMED) => return Ok(Presented::Redeemed),
                _ => {}
            }
        }
        Ok(Presented::NotReleased)
    }

    /// A token request's code, presented: recorded (released by the proxy, not yet redeemed,
    /// not expired), and no other presentation of it at the AS now. The record stays until
    /// [`Records::settle`] says the AS issued a token: an AS that refuses a presentation (a
    /// wrong `code_verifier`, checked before the code is consumed; a 5xx) leaves the code
    /// presentable again, as it would without the proxy. `listed`: whether a client is on the
    /// client list now.
    pub async fn present(
        &self,
        code: &str,
        listed: impl Fn(&str) -> bool,
    ) -> Result<Presented, StoreError> {
        let keys = self.keys.load_full();
        // Recorded under the sealing key of the moment; looked up under every key.
        let digests: Vec<Digest> = keys.code_digests(code).collect();
        let mut found = None;
        for digest in &digests {
            let value = self.store.get(*digest).await;
            if let Some(client) = self.counted(value)? {
                found = Some((*digest, client));
                break;
            }
        }
        let Some((record, client)) = found else {
            return self.fate_of(&digests).await;
        };
        // A record made before clients were recorded names none: the flow's check stood then.
        if client != NO_VALUE && !std::str::from_utf8(&client).is_ok_and(&listed) {
            return Ok(Presented::ClientNotListed);
        }
        let lock = presenting(&record);
        let claimed = self.store.claim(lock, NO_VALUE, self.presenting_ttl).await;
        match self.counted(claimed) {
            Ok(true) => {}
            Ok(false) => return Ok(Presented::InFlight),
            Err(error) => {
                // The claim may still have landed: let it go, so that a retry is not refused
                // as overlapping (best effort; it expires by itself otherwise).
                let _ = self.store.take(lock).await;
                return Err(error);
            }
        }
        // A presentation that ended between the lookup and the claim may have used it up.
        match self
            .counted(self.store.get(record).await)
            .map(|v| v.is_some())
        {
            Ok(true) => Ok(Presented::Go(Presentation { record, lock })),
            Ok(false) => {
                let _ = self.store.take(lock).await;
                self.fate_of(&[record]).await
            }
            Err(error) => {
                let _ = self.store.take(lock).await;
                Err(error)
            }
        }
    }

    /// The AS's answer to a presentation: with a token issued the code's record is used up,
    /// so the code never reaches the AS again; either way the next presentation may go.
    pub async fn settle(&self, presentation: Presentation, issued: bool) {
        if issued {
            let taken = self.store.take(presentation.record).await;
            // Should this fail, the lock stays until it expires, and a replay after that reaches
            // an AS that has consumed the code already (logged and counted as a store error).
            if self.counted(taken).is_err() {
                return;
            }
            // Remembered for the token guard's decision line on a replay (best effort: without
            // it a replay is refused all the same, as never released).
            if let Some(code_ttl) = self.code_ttl {
                let marked = self
                    .store
                    .claim(fate(&presentation.record), REDEEMED, code_ttl);
                let _ = self.counted(marked.await);
            }
        }
        let _ = self.counted(self.store.take(presentation.lock).await);
    }

    fn counted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result {
            tracing::warn!(%error, "store error: failing closed");
            self.metrics.store_error();
        }
        result
    }
}

/// The map's hasher. Keys are random nonces or keyed hashes, uniform and not chosen by anyone
/// who could aim at a bucket (the nonces are the proxy's own random numbers, the code hashes
/// are keyed with a secret), so their bytes folded into one word are as good a hash as
/// SipHash's, at a fraction of its cost (about 2,000 instructions a request on the rule path,
/// callgrind).
#[derive(Clone, Copy, Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` hashes as its bytes (arrays write no length prefix).
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
}

type DigestMap = HashMap<Digest, (Instant, Box<[u8]>), std::hash::BuildHasherDefault<DigestHasher>>;

/// For a single instance: a map in memory, bounded, with expired entries evicted.
pub struct MemoryStore {
    entries: Mutex<DigestMap>,
    max_entries: usize,
}

impl MemoryStore {
    pub fn new(max_entries: usize) -> Self {
        MemoryStore {
            entries: Mutex::new(DigestMap::default()),
            max_entries,
        }
    }

    fn claim_now(
        &self,
        key: Digest,
        value: &[u8],
        ttl: Duration,
        now: Instant,
    ) -> Result<bool, StoreError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.get(&key).is_some_and(|(expiry, _)| *expiry > now) {
            return Ok(false);
        }
        if entries.len() >= self.max_entries {
            // Evicting the expired ones costs a pass over the map, but only when it is full.
            entries.retain(|_, (expiry, _)| *expiry > now);
            if entries.len() >= self.max_entries {
                return Err(StoreError::Full);
            }
        }
        entries.insert(key, (now + ttl, value.into()));
        Ok(true)
    }

    fn get_now(&self, key: Digest, now: Instant) -> Option<Vec<u8>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (expiry, value) = entries.get(&key)?;
        (*expiry > now).then(|| value.to_vec())
    }

    fn take_now(&self, key: Digest, now: Instant) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&key).is_some_and(|(expiry, _)| expiry > now)
    }
}

impl Store for MemoryStore {
    fn claim(&self, key: Digest, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
        let result = self.claim_now(key, value, ttl, Instant::now());
        Box::pin(std::future::ready(result))
    }

    fn take(&self, key: Digest) -> StoreFuture<'_, bool> {
        let result = Ok(self.take_now(key, Instant::now()));
        Box::pin(std::future::ready(result))
    }

    fn get(&self, key: Digest) -> StoreFuture<'_, Option<Vec<u8>>> {
        let result = Ok(self.get_now(key, Instant::now()));
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Digest = [1; 32];
    const B: Digest = [2; 32];
    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_key_is_claimed_once_until_it_expires() {
        let store = MemoryStore::new(10);
        let now = Instant::now();
        assert_eq!(store.claim_now(A, b"1", MINUTE, now), Ok(true));
        assert_eq!(store.claim_now(A, b"1", MINUTE, now), Ok(false));
        assert_eq!(store.claim_now(B, b"1", MINUTE, now), Ok(true));
        // Expired: it may be claimed again.
        assert_eq!(store.claim_now(A, b"1", MINUTE, now + MINUTE * 2), Ok(true));
    }

    #[test]
    fn a_key_is_taken_once_and_not_after_it_expired() {
        let store = MemoryStore::new(10);
        let now = Instant::now();
        assert!(!store.take_now(A, now));
        store.claim_now(A, b"1", MINUTE, now).unwrap();
        assert!(store.take_now(A, now));
        assert!(!store.take_now(A, now));
        store.claim_now(B, b"1", MINUTE, now).unwrap();
        assert!(!store.take_now(B, now + MINUTE * 2));
    }

    #[test]
    fn the_digest_hasher_spreads_random_keys() {
        use std::hash::BuildHasher;
        let build = std::hash::BuildHasherDefault::<DigestHasher>::default();
        let keys: Vec<Digest> = (0..1000u32)
            .map(|i| {
                let mut key = [0u8; 32];
                key[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
                key[9] = i as u8;
                key
            })
            .collect();
        let hashes: std::collections::HashSet<u64> =
            keys.iter().map(|k| build.hash_one(k)).collect();
        assert_eq!(hashes.len(), keys.len());
        // A key that differs only past the first eight bytes still hashes apart.
        let (mut a, mut b) = ([7u8; 32], [7u8; 32]);
        a[20] = 1;
        b[20] = 2;
        assert_ne!(build.hash_one(a), build.hash_one(b));
    }

    #[test]
    fn memory_is_bounded_and_expired_entries_are_evicted() {
        let store = MemoryStore::new(2);
        let now = Instant::now();
        store.claim_now([1; 32], b"1", MINUTE, now).unwrap();
        store.claim_now([2; 32], b"1", MINUTE * 10, now).unwrap();
        // Full, nothing expired: fail closed.
        assert_eq!(
            store.claim_now([3; 32], b"1", MINUTE, now),
            Err(StoreError::Full)
        );
        // The first expires: room again.
        assert_eq!(
            store.claim_now([3; 32], b"1", MINUTE, now + MINUTE * 2),
            Ok(true)
        );
        assert_eq!(store.entries.lock().unwrap().len(), 2);
    }

    #[test]
    fn one_source_fills_its_share_another_is_still_served() {
        let mut shares = Shares::new(4, MINUTE);
        let now = Instant::now();
        let busy = Source::new("192.0.2.1".parse().unwrap());
        let other = Source::new("192.0.2.2".parse().unwrap());
        assert!(shares.admit(busy, 2, now).is_some());
        assert!(shares.admit(busy, 2, now).is_some());
        assert!(shares.admit(busy, 2, now).is_none());
        assert!(shares.admit(other, 2, now).is_some());
        // Its records expire, and so does its refusal.
        assert!(shares.admit(busy, 2, now + MINUTE).is_some());
        assert_eq!(shares.live, 4);
    }

    fn v6(text: &str) -> Source {
        Source::new(text.parse().unwrap())
    }

    #[test]
    fn an_ipv6_source_counts_in_its_slash_64_56_and_48_and_mapped_ipv4_is_ipv4() {
        let buckets = |s: Source| {
            let (buckets, n) = s.buckets();
            buckets[..n].iter().map(|(b, _)| *b).collect::<Vec<_>>()
        };
        let (a, b) = (
            buckets(v6("2001:db8:1:2::1")),
            buckets(v6("2001:db8:1:2:ffff::9")),
        );
        assert_eq!(a, b);
        let other_64 = buckets(v6("2001:db8:1:3::1"));
        assert_ne!(a[0], other_64[0]);
        assert_eq!(a[1..], other_64[1..]);
        let other_56 = buckets(v6("2001:db8:1:100::1"));
        assert_ne!(a[1], other_56[1]);
        assert_eq!(a[2], other_56[2]);
        assert_eq!(
            Source::new("::ffff:192.0.2.1".parse().unwrap()),
            Source::new("192.0.2.1".parse().unwrap())
        );
        assert_eq!(buckets(Source::unknown()), [Bucket::Unknown]);
    }

    /// Issue 26, finding 3: twenty /64s of one /56, then every /56 of one /48.
    #[test]
    fn many_slash_64s_of_one_slash_56_or_one_slash_48_hold_no_more_than_their_share() {
        let mut shares = Shares::new(4, MINUTE);
        let now = Instant::now();
        let admitted = (0..20u32)
            .filter(|i| {
                shares
                    .admit(v6(&format!("2001:db8:0:{i:x}::1")), 1, now)
                    .is_some()
            })
            .count();
        assert_eq!(admitted, 8, "a /56 holds two shares");
        let admitted = (1..=255u32)
            .filter(|i| {
                shares
                    .admit(v6(&format!("2001:db8:0:{:x}::1", i << 8)), 1, now)
                    .is_some()
            })
            .count();
        assert_eq!(
            admitted, 8,
            "the /48 holds four shares, the /56 above had two"
        );
        assert!(
            shares.admit(v6("2001:db8:1::1"), 1, now).is_some(),
            "the next /48"
        );
        assert!(
            shares
                .admit(Source::new("192.0.2.1".parse().unwrap()), 1, now)
                .is_some()
        );
        assert_eq!(shares.live, 18);
    }

    #[test]
    fn a_refund_gives_back_exactly_what_was_counted() {
        let mut shares = Shares::new(2, MINUTE);
        let now = Instant::now();
        let source = v6("2001:db8::1");
        let expiry = shares.admit(source, 2, now).unwrap();
        assert!(shares.admit(source, 1, now).is_none());
        shares.refund(source, 2, expiry);
        assert_eq!(shares.live, 0);
        assert!(shares.admit(source, 2, now).is_some());
    }

    #[test]
    fn sources_with_nothing_live_are_swept() {
        let mut shares = Shares::new(2, MINUTE);
        let now = Instant::now();
        for i in 0..1024u32 {
            let ip = std::net::Ipv4Addr::from(i);
            assert!(shares.admit(Source::new(ip.into()), 1, now).is_some());
        }
        // All expired: the next admit sweeps them.
        assert!(
            shares
                .admit(Source::unknown(), 1, now + MINUTE * 2)
                .is_some()
        );
        assert_eq!(shares.by_bucket.len(), 1);
        assert_eq!(shares.live, 1);
    }

    /// Records in process with the token guard on (two records a release), flows and codes
    /// kept a minute, each source holding at most `per_source`.
    fn shared_records(per_source: usize, metrics: Arc<Metrics>) -> Records {
        Records::new(
            Arc::new(MemoryStore::new(100)),
            Arc::new(ArcSwap::from_pointee(KeyRing::random())),
            MINUTE,
            Some(MINUTE),
            per_source,
            metrics,
        )
    }

    #[tokio::test]
    async fn a_source_over_its_share_is_refused_and_counted() {
        let metrics = Metrics::new();
        let records = shared_records(4, metrics.clone());
        let busy = Source::new("192.0.2.1".parse().unwrap());
        let other = Source::new("192.0.2.2".parse().unwrap());
        // Two records a release with the token guard on: two releases fill a share of four.
        records
            .release([1; 32], "a", "pgo.example.nl", busy)
            .await
            .unwrap();
        records
            .release([2; 32], "b", "pgo.example.nl", busy)
            .await
            .unwrap();
        assert_eq!(
            records.release([3; 32], "c", "pgo.example.nl", busy).await,
            Err(Refused::OverShare)
        );
        records
            .release([4; 32], "d", "pgo.example.nl", other)
            .await
            .unwrap();
        let text = metrics.encode();
        assert!(
            text.contains("medmij_vert_store_share_refusals_total 1"),
            "{text}"
        );
        assert!(text.contains("medmij_vert_store_records 6"), "{text}");
    }

    /// Issue 26, finding 3: the share is charged for records made, not for refused replays.
    #[tokio::test]
    async fn a_refused_replay_uses_up_no_share() {
        let records = shared_records(4, Metrics::new());
        let source = Source::new("192.0.2.1".parse().unwrap());
        records
            .release([1; 32], "a", "pgo.example.nl", source)
            .await
            .unwrap();
        for _ in 0..5 {
            let replay = records
                .release([1; 32], "a", "pgo.example.nl", source)
                .await;
            assert_eq!(replay, Err(Refused::AlreadyUsed));
        }
        records
            .release([2; 32], "b", "pgo.example.nl", source)
            .await
            .unwrap();
    }

    fn records(store: Arc<dyn Store>) -> Records {
        Records::new(
            store,
            Arc::new(ArcSwap::from_pointee(KeyRing::random())),
            MINUTE,
            Some(MINUTE),
            100,
            Metrics::new(),
        )
    }

    /// Issue 28: the token guard's line tells a withheld code and a redeemed one apart from
    /// one never released; the marks are records of their own, which no lookup of a release
    /// record meets, and a mark counts against its source's share.
    #[tokio::test]
    async fn a_withheld_or_redeemed_code_is_told_apart_from_one_never_released() {
        let records = records(Arc::new(MemoryStore::new(100)));
        let source = Source::new("203.0.113.9".parse().unwrap());
        records.withhold("WITHHELD", source).await;
        assert_eq!(
            records.present("WITHHELD", |_| true).await,
            Ok(Presented::Withheld)
        );
        assert_eq!(
            records.present("NEVER", |_| true).await,
            Ok(Presented::NotReleased)
        );
        records
            .release([1; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        let Ok(Presented::Go(presentation)) = records.present("C0DE", |_| true).await else {
            panic!("a released code goes")
        };
        records.settle(presentation, true).await;
        assert_eq!(
            records.present("C0DE", |_| true).await,
            Ok(Presented::Redeemed)
        );
        // A withheld mark never makes a code presentable, whatever comes after it.
        records.withhold("C0DE", Source::unknown()).await;
        assert_eq!(
            records.present("C0DE", |_| true).await,
            Ok(Presented::Redeemed)
        );
        // Marks count against the source's share (100 records, this source one of them): a
        // source over its share gets none.
        let tight = Records::new(
            Arc::new(MemoryStore::new(100)),
            Arc::new(ArcSwap::from_pointee(KeyRing::random())),
            MINUTE,
            Some(MINUTE),
            1,
            Metrics::new(),
        );
        tight.withhold("FIRST", source).await;
        tight.withhold("SECOND", source).await;
        assert_eq!(
            tight.present("FIRST", |_| true).await,
            Ok(Presented::Withheld)
        );
        assert_eq!(
            tight.present("SECOND", |_| true).await,
            Ok(Presented::NotReleased)
        );
    }

    /// A code withheld twice is marked once, and its second charge given back.
    #[tokio::test]
    async fn a_code_withheld_twice_takes_one_share() {
        let records = shared_records(2, Metrics::new());
        let source = Source::new("203.0.113.9".parse().unwrap());
        for code in ["FIRST", "FIRST", "SECOND", "THIRD"] {
            records.withhold(code, source).await;
        }
        for (code, fate) in [
            ("FIRST", Presented::Withheld),
            ("SECOND", Presented::Withheld),
            ("THIRD", Presented::NotReleased),
        ] {
            assert_eq!(records.present(code, |_| true).await, Ok(fate), "{code}");
        }
    }

    /// Without the token guard, nothing is marked (and nothing is counted).
    #[tokio::test]
    async fn withheld_codes_are_marked_only_with_the_token_guard_on() {
        let off = Records::new(
            Arc::new(MemoryStore::new(100)),
            Arc::new(ArcSwap::from_pointee(KeyRing::random())),
            MINUTE,
            None,
            100,
            Metrics::new(),
        );
        assert!(!off.marks_withheld());
        off.withhold("C0DE", Source::unknown()).await;
        assert_eq!(
            off.present("C0DE", |_| true).await,
            Ok(Presented::NotReleased)
        );
    }

    #[tokio::test]
    async fn token_retries_a_code_stays_presentable_until_the_as_issues_a_token() {
        let records = records(Arc::new(MemoryStore::new(100)));
        records
            .release([1; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        assert_eq!(
            records.present("OTHER", |_| true).await,
            Ok(Presented::NotReleased)
        );
        // The AS refuses (a wrong code_verifier, a 5xx): presentable again.
        let Ok(Presented::Go(first)) = records.present("C0DE", |_| true).await else {
            panic!("a released code goes")
        };
        // While it is at the AS, no second presentation overlaps it.
        assert_eq!(
            records.present("C0DE", |_| true).await,
            Ok(Presented::InFlight)
        );
        records.settle(first, false).await;
        let Ok(Presented::Go(second)) = records.present("C0DE", |_| true).await else {
            panic!("presentable again after a refusal")
        };
        // The AS issues a token: never again.
        records.settle(second, true).await;
        assert_eq!(
            records.present("C0DE", |_| true).await,
            Ok(Presented::Redeemed)
        );
    }

    /// A code's record names its client; one made before clients were recorded names none and
    /// is not held to the list (a rolling upgrade redeems the codes the old version released).
    #[tokio::test]
    async fn a_codes_record_names_its_client_and_an_older_one_none() {
        let store = Arc::new(MemoryStore::new(100));
        let records = records(store.clone());
        records
            .release([1; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        let listed = |c: &str| c == "pgo.example.nl";
        assert!(matches!(
            records.present("C0DE", listed).await,
            Ok(Presented::Go(_))
        ));
        assert_eq!(
            records.present("C0DE", |_| false).await,
            Ok(Presented::ClientNotListed)
        );
        let older = records.keys.load().code_digests("OLD").next().unwrap();
        store.claim(older, NO_VALUE, MINUTE).await.unwrap();
        assert!(matches!(
            records.present("OLD", |_| false).await,
            Ok(Presented::Go(_))
        ));
    }

    /// A store whose `get` answers once as it was, then sees the record gone: a presentation
    /// that ended between another's lookup and its claim.
    struct UsedUpMeanwhile(MemoryStore, std::sync::atomic::AtomicBool);

    impl Store for UsedUpMeanwhile {
        fn claim(&self, key: Digest, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
            self.0.claim(key, value, ttl)
        }
        fn take(&self, key: Digest) -> StoreFuture<'_, bool> {
            self.0.take(key)
        }
        fn get(&self, key: Digest) -> StoreFuture<'_, Option<Vec<u8>>> {
            let first = !self.1.swap(true, std::sync::atomic::Ordering::SeqCst);
            if first {
                self.0.get(key)
            } else {
                Box::pin(std::future::ready(Ok(None)))
            }
        }
    }

    #[tokio::test]
    async fn token_retries_a_code_used_up_between_lookup_and_claim_does_not_go() {
        let store = Arc::new(UsedUpMeanwhile(MemoryStore::new(100), Default::default()));
        let records = records(store.clone());
        records
            .release([1; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await
            .unwrap();
        assert_eq!(
            records.present("C0DE", |_| true).await,
            Ok(Presented::NotReleased)
        );
        // And its lock is let go.
        assert_eq!(
            store.0.entries.lock().unwrap().len(),
            2,
            "the flow's and the code's records only"
        );
    }

    /// A store that records the code's claim and then loses the answer (a master killed
    /// mid-command), and whose first two removals fail (no master yet).
    struct LostAnswer {
        inner: MemoryStore,
        claims: std::sync::atomic::AtomicUsize,
        failing_takes: std::sync::atomic::AtomicUsize,
    }

    impl Store for LostAnswer {
        fn claim(&self, key: Digest, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
            use std::sync::atomic::Ordering::SeqCst;
            let landed = self.inner.claim_now(key, value, ttl, Instant::now());
            let result = match self.claims.fetch_add(1, SeqCst) {
                1 => Err(StoreError::Unavailable("the answer was lost".into())),
                _ => landed,
            };
            Box::pin(std::future::ready(result))
        }
        fn take(&self, key: Digest) -> StoreFuture<'_, bool> {
            use std::sync::atomic::Ordering::SeqCst;
            let failing = self
                .failing_takes
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Box::pin(std::future::ready(Err(StoreError::Unavailable(
                    "no master".into(),
                ))));
            }
            self.inner.take(key)
        }
        fn get(&self, key: Digest) -> StoreFuture<'_, Option<Vec<u8>>> {
            self.inner.get(key)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_withheld_codes_record_that_landed_is_removed_once_the_store_answers() {
        let store = Arc::new(LostAnswer {
            inner: MemoryStore::new(100),
            claims: Default::default(),
            failing_takes: 2.into(),
        });
        let metrics = Metrics::new();
        let records = Records::new(
            store.clone(),
            Arc::new(ArcSwap::from_pointee(KeyRing::random())),
            MINUTE,
            Some(MINUTE),
            100,
            metrics.clone(),
        );
        // The flow's claim lands; the code's lands too, but its answer is lost: withheld.
        let refused = records
            .release([1; 32], "C0DE", "pgo.example.nl", Source::unknown())
            .await;
        assert!(matches!(refused, Err(Refused::Store(_))), "{refused:?}");
        // The immediate removal failed: the record is still there, and counted as pending.
        assert_eq!(store.inner.entries.lock().unwrap().len(), 2);
        assert!(
            metrics
                .encode()
                .contains("medmij_vert_store_withheld_records 1")
        );
        // Retried until the store answers (the second retry).
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            records.present("C0DE", |_| true).await,
            Ok(Presented::NotReleased)
        );
        assert!(
            metrics
                .encode()
                .contains("medmij_vert_store_withheld_records 0")
        );
        // The flow's record stays: that flow released nothing and never will.
        assert_eq!(store.inner.entries.lock().unwrap().len(), 1);
    }
}
