//! One code per flow and the token guard across two proxy instances sharing one real Redis
//! (`redis-server` on a free port), in front of one recording AS: what a load balancer in front
//! of a DVA's pool sees.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::ha;
use crate::support::*;

const SELF: &str = "response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=st-1&scope=48";

struct Pool {
    upstream: Upstream,
    a: Harness,
    b: Harness,
}

/// Two instances with one state key and `store` (a `[store]` section), the token guard on.
fn pool(store: &str) -> Pool {
    let upstream = Upstream::recorder();
    let extra = format!(
        "{store}[token_guard]\npath = \"/oauth2/token\"\n[admin]\naddr = \"127.0.0.1:0\"\n"
    );
    let a = Harness::start_with_upstream(&upstream.url(), &extra);
    let b = Harness::beside(&a, &upstream.url(), &extra);
    Pool { upstream, a, b }
}

fn one_redis(redis: &Redis) -> Pool {
    pool(&format!(
        "[store]\nurl = \"{}\"\ntimeout = \"500ms\"\n",
        redis.url()
    ))
}

fn get(addr: SocketAddr, target: &str) -> String {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(30),
    )
}

fn token(addr: SocketAddr, code: &str) -> String {
    let body = format!("grant_type=authorization_code&code={code}&redirect_uri=x");
    raw(
        addr,
        format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: as\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
        Duration::from_secs(30),
    )
}

/// Starts a flow on `addr`; the sealed state the AS got. `nonce`, passed through to the AS,
/// finds this flow's request among others'.
fn start_flow_marked(p: &Pool, addr: SocketAddr, nonce: &str) -> String {
    let r = get(addr, &format!("/oauth2/authorize?{SELF}&nonce={nonce}"));
    assert_eq!(raw_status(&r), 200, "{r}");
    [format!("nonce={nonce} "), format!("nonce={nonce}&")]
        .iter()
        .find_map(|needle| p.upstream.state_in_request_with(needle))
        .unwrap_or_else(|| panic!("the AS got no authorization request with {nonce}"))
}

fn start_flow(p: &Pool, addr: SocketAddr) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    start_flow_marked(p, addr, &format!("n{n}"))
}

/// The AS answers the consent on `addr` with `code` for the flow `sealed`, signalling `used`.
fn return_flow(p: &Pool, addr: SocketAddr, sealed: &str, code: &str, used: &str) -> String {
    p.upstream.answer_path(
        "/oauth2/consent",
        &format!("{REDIRECT}?code={{code}}&state={{state}}"),
        &[("x-vert-representation", used)],
    );
    get(addr, &format!("/oauth2/consent?code={code}&state={sealed}"))
}

fn token_requests_at_the_as(p: &Pool) -> usize {
    p.upstream.received().matches("POST /oauth2/token ").count()
}

/// Whether the AS ever got a token request for `code`.
fn code_reached_the_as(p: &Pool, code: &str) -> bool {
    p.upstream
        .received()
        .contains(&format!("grant_type=authorization_code&code={code}&"))
}

#[test]
fn a_flow_started_on_one_instance_is_released_once_on_the_other() {
    let redis = Redis::start();
    let p = one_redis(&redis);
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    let sealed = start_flow(&p, a);
    let r = return_flow(&p, b, &sealed, "C0DE-1", "none");
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(r.contains("state=st-1\r\n"), "{r}");
    // The AS issues a second code for the same flow: withheld, on either instance.
    for addr in [a, b] {
        let r = return_flow(&p, addr, &sealed, "C0DE-2", "none");
        assert_eq!(raw_status(&r), 403, "{r}");
        assert!(r.contains("Deze inlog is al gebruikt"), "{r}");
        assert!(!r.contains("C0DE-2"), "{r}");
    }
}

#[test]
fn a_code_released_by_one_instance_is_redeemed_once_through_the_other() {
    let redis = Redis::start();
    let p = one_redis(&redis);
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    let sealed = start_flow(&p, a);
    let r = return_flow(&p, a, &sealed, "C0DE-3", "none");
    assert_eq!(raw_status(&r), 302, "{r}");
    let r = token(b, "C0DE-3");
    assert_eq!(raw_status(&r), 200, "reached the AS: {r}");
    for addr in [a, b] {
        let r = token(addr, "C0DE-3");
        assert_eq!(raw_status(&r), 400, "{r}");
        assert!(r.ends_with("{\"error\":\"invalid_grant\"}"), "{r}");
    }
    assert_eq!(token_requests_at_the_as(&p), 1);
}

#[test]
fn a_withheld_code_is_refused_at_the_token_endpoint_without_reaching_the_as() {
    let redis = Redis::start();
    let p = one_redis(&redis);
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    // Vert 2: representation used, not asked for.
    let sealed = start_flow(&p, a);
    p.upstream.answer_path(
        "/oauth2/consent",
        &format!("{REDIRECT}?code=C0DE-4&state={sealed}"),
        &[
            ("x-vert-representation", "onbehalfof"),
            ("x-vert-birthdate", "19700901"),
        ],
    );
    let r = get(b, "/oauth2/consent");
    assert_eq!(raw_status(&r), 403, "{r}");
    // Fail closed: no signal.
    let sealed = start_flow(&p, b);
    p.upstream.answer_path(
        "/oauth2/consent",
        &format!("{REDIRECT}?code=C0DE-5&state={sealed}"),
        &[],
    );
    let r = get(a, "/oauth2/consent");
    assert_eq!(raw_status(&r), 502, "{r}");
    // A code that left the AS without the proxy's release (a form post, a script).
    for (addr, code) in [(a, "C0DE-4"), (b, "C0DE-5"), (a, "NEVER-RELEASED")] {
        let r = token(addr, code);
        assert_eq!(raw_status(&r), 400, "{code}: {r}");
        assert!(r.ends_with("{\"error\":\"invalid_grant\"}"), "{r}");
    }
    assert_eq!(token_requests_at_the_as(&p), 0);
    // Issue 28: a withheld code presented is its own outcome, whichever instance withheld it
    // and whichever was presented it; the one never released is refused as such.
    let decisions = |outcome: &str| {
        let series = format!(
            "medmij_vert_decisions_total{{outcome=\"{outcome}\",rule=\"proxy.token.released_only\",exception=\"\"}}"
        );
        p.a.metric(&series) + p.b.metric(&series)
    };
    assert_eq!(decisions("withheld"), 2);
    assert_eq!(decisions("refused"), 1);
}

#[test]
fn redis_down_fails_closed_and_recovers_when_it_returns() {
    let mut redis = Redis::start();
    let p = one_redis(&redis);
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    // Released before the outage, redeemed after it.
    let sealed = start_flow(&p, a);
    let r = return_flow(&p, a, &sealed, "C0DE-6", "none");
    assert_eq!(raw_status(&r), 302, "{r}");

    redis.stop();
    let sealed = start_flow(&p, a);
    let r = return_flow(&p, b, &sealed, "C0DE-7", "none");
    assert_eq!(raw_status(&r), 502, "the release cannot be recorded: {r}");
    assert!(!r.contains("C0DE-7"), "{r}");
    let r = token(a, "C0DE-6");
    assert_eq!(raw_status(&r), 503, "{r}");
    assert!(
        r.ends_with("{\"error\":\"temporarily_unavailable\"}"),
        "{r}"
    );
    assert_eq!(token_requests_at_the_as(&p), 0);
    assert!(p.a.metric("medmij_vert_store_errors_total") >= 1);

    // Redis comes back (empty: no persistence). The connection manager reconnects.
    redis.start_again();
    // A fresh flow each try: a try that failed closed may have recorded its flow.
    wait_until("a release after Redis returned", || {
        let sealed = start_flow(&p, b);
        raw_status(&return_flow(&p, a, &sealed, "C0DE-8", "none")) == 302
    });
    let r = token(b, "C0DE-8");
    assert_eq!(raw_status(&r), 200, "{r}");
}

// ---- Sentinel and Cluster: real redis-server processes (tests/it/support/ha.rs) ----

/// The `[store]` lines for a topology, with `min_replicas`.
fn ha_store(store: &str, min_replicas: u32) -> String {
    format!("{store}timeout = \"500ms\"\nmin_replicas = {min_replicas}\n")
}

/// One flow through the pool: started on `a`, returned on `b`, its code redeemed once through
/// `a` and refused afterwards on both.
fn released_once_and_redeemed_once(p: &Pool, code: &str) {
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    let sealed = start_flow(p, a);
    let r = return_flow(p, b, &sealed, code, "none");
    assert_eq!(raw_status(&r), 302, "{r}");
    assert!(r.contains(&format!("code={code}&state=st-1\r\n")), "{r}");
    for addr in [a, b] {
        let r = return_flow(p, addr, &sealed, &format!("{code}-again"), "none");
        assert_eq!(raw_status(&r), 403, "{r}");
        assert!(r.contains("Deze inlog is al gebruikt"), "{r}");
    }
    let before = token_requests_at_the_as(p);
    let r = token(a, code);
    assert_eq!(raw_status(&r), 200, "{r}");
    for addr in [a, b] {
        let r = token(addr, code);
        assert!(r.ends_with("{\"error\":\"invalid_grant\"}"), "{r}");
    }
    assert_eq!(token_requests_at_the_as(p), before + 1);
}

#[test]
fn sentinel_two_instances_release_a_flow_once_and_redeem_its_code_once() {
    let _one = ha::one_at_a_time();
    let s = ha::Sentinels::start(2);
    let p = pool(&ha_store(&s.store_config(), 1));
    released_once_and_redeemed_once(&p, "SENTINEL-1");
}

#[test]
fn cluster_two_instances_release_a_flow_once_and_redeem_its_code_once() {
    let _one = ha::one_at_a_time();
    let c = ha::Cluster::start();
    let p = pool(&ha_store(&c.store_config(), 1));
    // Flows until the records are on more than one master (30 all on one: 3 in 3^30).
    let holding = || c.keys().iter().filter(|(_, keys)| !keys.is_empty()).count();
    for i in 0..30 {
        released_once_and_redeemed_once(&p, &format!("CLUSTER-{i}"));
        if holding() >= 2 {
            break;
        }
    }
    assert!(holding() >= 2, "records on {} master(s)", holding());
}

#[test]
fn wrong_credentials_for_the_sentinels_fail_closed() {
    let _one = ha::one_at_a_time();
    let s = ha::Sentinels::start(1);
    let store = s.store_config().replace(ha::SENTINEL_PASSWORD, "wrong");
    let p = pool(&ha_store(&store, 0));
    let sealed = start_flow(&p, p.a.proxy_addr());
    let r = return_flow(&p, p.b.proxy_addr(), &sealed, "NO-SENTINEL", "none");
    assert_eq!(raw_status(&r), 502, "{r}");
    assert!(!r.contains("NO-SENTINEL"), "{r}");
    assert!(p.b.metric("medmij_vert_store_errors_total") >= 1);
}

/// What one flow's returns got: how many released a code.
fn releases(replies: &[&str]) -> usize {
    replies.iter().filter(|r| raw_status(r) == 302).count()
}

/// The `min_replicas` the failover tests run with: 1, unless `VERT_TEST_MIN_REPLICAS` says
/// otherwise (set it to 0 to watch them fail with a double release).
fn min_replicas() -> u32 {
    std::env::var("VERT_TEST_MIN_REPLICAS").map_or(1, |v| v.parse().unwrap())
}

/// A flow whose release reached only the master (its replicas' links cut), the master killed,
/// a replica promoted, the consent replayed: the flow may release one code in all.
fn sentinel_failover_with_cut_links(min_replicas: u32) -> usize {
    let _one = ha::one_at_a_time();
    let mut s = ha::Sentinels::start(2);
    let p = pool(&ha_store(&s.store_config(), min_replicas));
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    released_once_and_redeemed_once(&p, "BEFORE");

    let sealed = start_flow(&p, a);
    for replica in s.replicas() {
        replica.cut_master_link();
    }
    let first = return_flow(&p, b, &sealed, "FIRST", "none");
    if min_replicas > 0 {
        assert_eq!(raw_status(&first), 502, "not durable: withheld: {first}");
        assert!(
            first.contains("Er ging iets mis") && !first.contains("FIRST"),
            "{first}"
        );
    }
    let old = s.kill_master();
    let killed = std::time::Instant::now();
    for replica in s.replicas() {
        replica.heal_master_auth();
    }
    s.wait_for_promotion(old);
    count_releases_after_promotion(
        &p,
        &sealed,
        &first,
        (killed, killed.elapsed()),
        &format!("sentinel failover (min_replicas = {min_replicas})"),
    )
}

/// After the promotion: waits until releases resume, replays the consent of `sealed`, and
/// says how many codes the flow released in all (its `first` return and the replays). A
/// withheld first code is refused at the token endpoint and never reaches the AS.
fn count_releases_after_promotion(
    p: &Pool,
    sealed: &str,
    first: &str,
    (killed, promoted): (std::time::Instant, Duration),
    what: &str,
) -> usize {
    let (recovered, replays) = replay_after_recovery(p, sealed, killed);
    println!(
        "{what}: promoted after {:.1} s, releases again after {:.1} s",
        promoted.as_secs_f64(),
        recovered.as_secs_f64()
    );
    let mut all: Vec<&str> = vec![first];
    all.extend(replays.iter().map(String::as_str));
    if raw_status(first) != 302 {
        let r = token(p.b.proxy_addr(), "FIRST");
        assert!(r.ends_with("{\"error\":\"invalid_grant\"}"), "{r}");
        assert!(!code_reached_the_as(p, "FIRST"));
    }
    releases(&all)
}

/// Waits until fresh flows are released again (through both instances); then replays the
/// consent of `sealed` on each instance with a new code: every answer. A replay may be
/// released, refused as already used, or withheld with the fail-closed page (a replay whose
/// record reached the master but not `store.min_replicas` replicas: it then counts as used).
fn replay_after_recovery(
    p: &Pool,
    sealed: &str,
    killed: std::time::Instant,
) -> (Duration, Vec<String>) {
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    let mut tries = 0;
    wait_until("fresh flows are released again", || {
        tries += 1;
        let fresh = start_flow(p, a);
        raw_status(&return_flow(
            p,
            b,
            &fresh,
            &format!("FRESH-{tries}"),
            "none",
        )) == 302
    });
    let recovered = killed.elapsed();
    let replies = [a, b, a]
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let r = return_flow(p, *addr, sealed, &format!("REPLAY-{i}"), "none");
            let status = raw_status(&r);
            assert!(
                status == 302
                    || (status == 403 && r.contains("Deze inlog is al gebruikt"))
                    || (status == 502 && r.contains("Er ging iets mis")),
                "{r}"
            );
            r
        })
        .collect();
    (recovered, replies)
}

#[test]
fn sentinel_failover_with_cut_replica_links_never_releases_a_flow_twice() {
    let released = sentinel_failover_with_cut_links(min_replicas());
    assert!(released <= 1, "the flow released {released} codes");
}

/// The control: the same failover without `min_replicas` does release a flow twice, so the
/// test above tests something.
#[test]
fn without_min_replicas_the_same_failover_releases_a_flow_twice() {
    assert_eq!(sentinel_failover_with_cut_links(0), 2);
}

#[test]
fn cluster_failover_with_cut_replica_links_never_releases_a_flow_twice() {
    let min_replicas = min_replicas();
    let _one = ha::one_at_a_time();
    let mut c = ha::Cluster::start();
    let p = pool(&ha_store(&c.store_config(), min_replicas));
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    released_once_and_redeemed_once(&p, "BEFORE");

    let sealed = start_flow(&p, a);
    for replica in c.replicas() {
        replica.cut_master_link();
    }
    let keys_before = c.keys();
    let first = return_flow(&p, b, &sealed, "FIRST", "none");
    if min_replicas > 0 {
        assert_eq!(raw_status(&first), 502, "not durable: withheld: {first}");
    }
    // The master that took the flow's record: the new record that lives longest (a flow's
    // record lives for state.flow_ttl and the clock skew, a code's for token_guard.code_ttl).
    let holder = c
        .keys()
        .into_iter()
        .flat_map(|(port, keys)| keys.into_iter().map(move |(key, ttl)| (port, key, ttl)))
        .filter(|(port, key, _)| {
            !keys_before
                .iter()
                .any(|(p, keys)| p == port && keys.iter().any(|(k, _)| k == key))
        })
        .max_by_key(|(_, _, ttl)| *ttl)
        .map(|(port, _, _)| port)
        .expect("a master took the flow's record");
    c.node(holder).kill();
    let killed = std::time::Instant::now();
    for replica in c.replicas() {
        replica.heal_master_auth();
    }
    c.wait_for_promotion();
    let promoted = killed.elapsed();
    // The promoted replica has no replica of its own: the crashed node, restarted, becomes one.
    c.node(holder).restart();
    let released = count_releases_after_promotion(
        &p,
        &sealed,
        &first,
        (killed, promoted),
        &format!("cluster failover (min_replicas = {min_replicas})"),
    );
    assert!(released <= 1, "the flow released {released} codes");
}

/// The consent of the flow `sealed` answered by the AS with `code` (the script set once).
fn consent(addr: SocketAddr, sealed: &str, code: &str) -> String {
    get(addr, &format!("/oauth2/consent?code={code}&state={sealed}"))
}

/// One flow of the load: its code, and what its return and its replay got.
struct Loaded {
    code: String,
    returned: (std::time::Instant, String),
    replayed: String,
}

/// Flows on two instances while the sentinels' master is SIGKILLed (no links cut: what a crash
/// under load loses is whatever had not replicated yet): no flow releases two codes, no
/// withheld code reaches the AS, every withheld flow gets the fail-closed page, and every
/// released code is redeemed once. The window of withheld flows and the time to recover are
/// printed, never asserted.
#[test]
fn sentinel_failover_under_load_releases_no_flow_twice_and_no_withheld_code_reaches_the_as() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let _one = ha::one_at_a_time();
    let mut s = ha::Sentinels::start(2);
    let p = Arc::new(pool(&ha_store(&s.store_config(), min_replicas())));
    p.upstream.answer_path(
        "/oauth2/consent",
        &format!("{REDIRECT}?code={{code}}&state={{state}}"),
        &[("x-vert-representation", "none")],
    );
    let (stop, next) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let done = Arc::new(Mutex::new(Vec::<Loaded>::new()));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (p, stop, next, done) = (p.clone(), stop.clone(), next.clone(), done.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let (a, b) = match i % 2 {
                        0 => (p.a.proxy_addr(), p.b.proxy_addr()),
                        _ => (p.b.proxy_addr(), p.a.proxy_addr()),
                    };
                    let sealed = start_flow_marked(&p, a, &format!("load{i}"));
                    let code = format!("LOAD-{i}");
                    let returned = (Instant::now(), consent(b, &sealed, &code));
                    let replayed = consent(a, &sealed, &format!("{code}-R"));
                    done.lock().unwrap().push(Loaded {
                        code,
                        returned,
                        replayed,
                    });
                }
            })
        })
        .collect();
    let count = |after: Option<Instant>| {
        done.lock()
            .unwrap()
            .iter()
            .filter(|f| after.is_none_or(|t| f.returned.0 > t && raw_status(&f.returned.1) == 302))
            .count()
    };
    wait_until("flows before the crash", || count(None) >= 150);
    let old = s.kill_master();
    let killed = Instant::now();
    s.wait_for_promotion(old);
    let promoted = killed.elapsed();
    wait_until("flows released after the promotion", || {
        count(Some(killed + promoted)) >= 150
    });
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().unwrap();
    }

    let flows = std::mem::take(&mut *done.lock().unwrap());
    let (mut released, mut withheld, mut twice) = (Vec::new(), Vec::new(), 0);
    for flow in &flows {
        let (first, replay) = (&flow.returned.1, &flow.replayed);
        for (r, code) in [
            (first, flow.code.clone()),
            (replay, format!("{}-R", flow.code)),
        ] {
            match raw_status(r) {
                302 => released.push(code),
                502 => {
                    assert!(r.contains("Er ging iets mis") && !r.contains(&code), "{r}");
                    withheld.push((flow.returned.0, code));
                }
                403 => assert!(r.contains("Deze inlog is al gebruikt"), "{r}"),
                _ => panic!("{r}"),
            }
        }
        if raw_status(first) == 302 && raw_status(replay) == 302 {
            twice += 1;
        }
    }
    assert_eq!(twice, 0, "flows that released two codes");
    // Flows whose return was sent before the kill and answered after it count as in flight.
    let in_flight = withheld.iter().filter(|(t, _)| *t < killed).count();
    let last_withheld = withheld
        .iter()
        .map(|(t, _)| t.saturating_duration_since(killed))
        .max()
        .unwrap_or_default();
    let recovered = flows
        .iter()
        .filter(|f| f.returned.0 > killed && raw_status(&f.returned.1) == 302)
        .map(|f| f.returned.0 - killed)
        .min()
        .unwrap();
    println!(
        "failover under load (min_replicas = {}): {} flows, {} released, {} withheld (fail-closed page), \
         {in_flight} of them in flight at the kill, the last sent {:.1} s after it; promoted after {:.1} s; \
         first release after {:.1} s",
        min_replicas(),
        flows.len(),
        released.len(),
        withheld.len(),
        last_withheld.as_secs_f64(),
        promoted.as_secs_f64(),
        recovered.as_secs_f64(),
    );
    // Every released code is redeemed once; no withheld code reaches the AS (once each
    // instance has removed the records of withheld codes that landed in the crash).
    for instance in [&p.a, &p.b] {
        wait_until("the withheld codes' records are removed", || {
            instance.metric("medmij_vert_store_withheld_records") == 0
        });
    }
    let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
    for (i, code) in released.iter().enumerate() {
        // A 503 is the store failing closed for the moment (a busy machine): asked again.
        let mut r = String::new();
        wait_until("a token request the store answers", || {
            r = token(if i % 2 == 0 { a } else { b }, code);
            raw_status(&r) != 503
        });
        assert_eq!(raw_status(&r), 200, "{code}: {r}");
    }
    for (_, code) in &withheld {
        let r = token(a, code);
        assert!(r.ends_with("{\"error\":\"invalid_grant\"}"), "{code}: {r}");
        assert!(!code_reached_the_as(&p, code), "{code}");
    }
}

/// What `store.min_replicas` costs: the flow return that releases a code (two writes: the
/// flow's and the code's record) and the token request (three: the lock, the record, the
/// lock again), 300 of each, one at a time, against a master with two replicas on this
/// machine. A measurement for docs/operating.md, run by hand:
/// `cargo test --release --test it -- --ignored --nocapture measure_release`.
#[test]
#[ignore]
fn measure_release_and_token_latency_with_and_without_min_replicas() {
    let _one = ha::one_at_a_time();
    let s = ha::Sentinels::start(2);
    let percentiles = |mut took: Vec<Duration>| {
        took.sort_unstable();
        let at = |p: usize| took[(took.len() * p / 100).min(took.len() - 1)].as_secs_f64() * 1e3;
        format!("p50 {:.2} ms, p99 {:.2} ms", at(50), at(99))
    };
    for min_replicas in [0, 1, 2] {
        let p = pool(&ha_store(&s.store_config(), min_replicas));
        let (a, b) = (p.a.proxy_addr(), p.b.proxy_addr());
        let (mut releases, mut tokens) = (Vec::new(), Vec::new());
        for i in 0..300 {
            let sealed = start_flow(&p, a);
            let code = format!("M{min_replicas}-{i}");
            let started = std::time::Instant::now();
            let r = return_flow(&p, b, &sealed, &code, "none");
            releases.push(started.elapsed());
            assert_eq!(raw_status(&r), 302, "{r}");
            let started = std::time::Instant::now();
            let r = token(a, &code);
            tokens.push(started.elapsed());
            assert_eq!(raw_status(&r), 200, "{r}");
        }
        println!(
            "min_replicas = {min_replicas}: release {}; token {}",
            percentiles(releases),
            percentiles(tokens)
        );
    }
}

/// TLS and ACL credentials end to end: the proxy binary reaches the sentinels and the master
/// they name over TLS only (`rediss://`, a private CA given as `SSL_CERT_FILE`), with a
/// password for each; a flow is released once and its code redeemed once. Without the CA the
/// same configuration fails closed.
#[test]
fn sentinels_and_master_over_tls_with_acl_credentials() {
    let _one = ha::one_at_a_time();
    let tls = ha::TlsFiles::new();
    let s = ha::TlsSentinels::start(&tls);
    released_and_redeemed_over_tls_only_with_its_ca(&tls, &s.store_config());
    assert!(
        !s.master.keys().is_empty(),
        "the records are on the TLS master"
    );
}

/// The same for a three-master cluster whose nodes and bus speak TLS, found through TLS ports.
#[test]
fn cluster_nodes_over_tls_with_acl_credentials() {
    let _one = ha::one_at_a_time();
    let tls = ha::TlsFiles::new();
    let c = ha::Cluster::start_tls(&tls);
    released_and_redeemed_over_tls_only_with_its_ca(&tls, &c.store_config());
    assert!(c.keys().iter().any(|(_, keys)| !keys.is_empty()));
}

/// The proxy binary with `store` (TLS URLs): with the nodes' CA as `SSL_CERT_FILE` a flow is
/// released once and its code redeemed once; with another CA nothing connects and the release
/// is withheld.
fn released_and_redeemed_over_tls_only_with_its_ca(tls: &ha::TlsFiles, store: &str) {
    let upstream = Upstream::recorder();
    upstream.answer_path(
        "/oauth2/consent",
        &format!("{REDIRECT}?code={{code}}&state={{state}}"),
        &[("x-vert-representation", "none")],
    );
    let config = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[upstream]\nurl = \"{}\"\n\
         [clients]\nstatic = [{{ hostname = \"pgo.example.nl\" }}]\n{store}timeout = \"1s\"\n\
         [token_guard]\npath = \"/oauth2/token\"\n",
        upstream.url(),
    );
    let run = |ca: &std::path::Path, code: &str| {
        let ca = ca.to_str().unwrap();
        let (mut child, addr, _) = start_binary(&temp_dir(), &config, &[("SSL_CERT_FILE", ca)]);
        let r = get(addr, &format!("/oauth2/authorize?{SELF}&nonce={code}"));
        assert_eq!(raw_status(&r), 200, "{r}");
        let sealed = upstream
            .state_in_request_with(&format!("nonce={code}"))
            .unwrap();
        let released = consent(addr, &sealed, code);
        let tokens = [token(addr, code), token(addr, code)];
        let _ = child.kill();
        let _ = child.wait();
        (released, tokens)
    };
    let (released, [first, second]) = run(&tls.ca, "OVER-TLS");
    assert_eq!(raw_status(&released), 302, "{released}");
    assert_eq!(raw_status(&first), 200, "{first}");
    assert!(
        second.ends_with("{\"error\":\"invalid_grant\"}"),
        "{second}"
    );
    // A CA that did not sign the nodes' certificate: no connection, so nothing is released.
    let other = ha::TlsFiles::new();
    let (withheld, _) = run(&other.ca, "UNTRUSTED");
    assert_eq!(raw_status(&withheld), 502, "{withheld}");
    assert!(!withheld.contains("UNTRUSTED"), "{withheld}");
}
