//! Correct under load: thousands of interleaved flows of every kind, 64 at a time, through two
//! proxy workers against the demo AS; every single decision is checked. A released code must
//! go to exactly its flow, with exactly that flow's state; a withheld code must appear nowhere.

use std::sync::Arc;
use std::time::Instant;

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::sync::Semaphore;

const FLOWS: usize = 5000;
const CONCURRENCY: usize = 64;

#[derive(Debug, Clone, Copy)]
enum Outcome {
    SelfReleased,
    OnBehalfReleased,
    ChildReleased,
    Vert1,
    Vert1OtherRepresentation,
    Vert2,
    Vert3Missing,
    Vert3Malformed,
    Vert4,
    NoSignal,
    Denied,
    UnknownClient,
}

const KINDS: [Outcome; 12] = [
    Outcome::SelfReleased,
    Outcome::OnBehalfReleased,
    Outcome::ChildReleased,
    Outcome::Vert1,
    Outcome::Vert1OtherRepresentation,
    Outcome::Vert2,
    Outcome::Vert3Missing,
    Outcome::Vert3Malformed,
    Outcome::Vert4,
    Outcome::NoSignal,
    Outcome::Denied,
    Outcome::UnknownClient,
];

impl Outcome {
    /// The extra authorize parameters and the login form.
    fn plan(self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        const OB: &str = "&scope=48%20onbehalfof&MedMij_geboortedatum=19700901";
        const CH: &str = "&scope=48%20onbehalfofchild&MedMij_geboortedatum=20200315";
        match self {
            Outcome::SelfReleased => ("&scope=48", &[("as", "self")]),
            Outcome::OnBehalfReleased => (OB, &[("as", "piet")]),
            Outcome::ChildReleased => (CH, &[("as", "sanne")]),
            Outcome::Vert1 => (OB, &[("as", "self")]),
            Outcome::Vert1OtherRepresentation => (OB, &[("as", "sanne")]),
            Outcome::Vert2 => ("&scope=48", &[("as", "piet")]),
            Outcome::Vert3Missing => ("&scope=onbehalfof", &[]),
            Outcome::Vert3Malformed => ("&scope=onbehalfof&MedMij_geboortedatum=19700231", &[]),
            Outcome::Vert4 => (
                "&scope=onbehalfof&MedMij_geboortedatum=19700902",
                &[("as", "piet")],
            ),
            Outcome::NoSignal => (OB, &[("as", "piet"), ("signal", "omit")]),
            Outcome::Denied => (OB, &[("as", "deny")]),
            Outcome::UnknownClient => ("", &[]),
        }
    }
}

/// Runs one flow and checks its outcome; returns a description of any mismatch.
async fn run_flow(h: &Harness, client: &TestClient, i: usize, kind: Outcome) -> Result<(), String> {
    // Every flow has its own state; some need percent-encoding to stay exact.
    let state = format!("flow-{i}-%2B{}", i * 7919 % 10007);
    let (extra, login) = kind.plan();
    let client_id = if matches!(kind, Outcome::UnknownClient) {
        "unknown.example.nl"
    } else {
        PGO
    };
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT_ENC}&state={state}{extra}",
        h.base
    );
    let get = |url: String| {
        send_with(
            client,
            Request::get(url).body(Full::new(Bytes::new())).unwrap(),
        )
    };
    let page = get(url).await;
    let fail = |what: &str, r: &Reply| Err(format!("flow {i} {kind:?}: {what}: {r:?}"));
    match kind {
        Outcome::UnknownClient => {
            return if page.status == 400 && page.header("location").is_none() {
                Ok(())
            } else {
                fail("expected the 1a page", &page)
            };
        }
        Outcome::Vert3Missing | Outcome::Vert3Malformed => {
            let ok = page.status == 302
                && page.location().starts_with(&format!(
                    "{REDIRECT}?error=invalid_request&error_description="
                ))
                && page.location().ends_with(&format!("&state={state}"));
            return if ok {
                Ok(())
            } else {
                fail("expected Vert 3", &page)
            };
        }
        _ => {}
    }
    if page.status != 200 {
        return fail("expected the login page", &page);
    }
    let path = login_path(&page.body);
    let login_id = path.rsplit('/').next().unwrap().to_string();
    let body = serde_urlencoded::to_string(login).unwrap();
    let r = send_with(
        client,
        Request::post(format!("{}{path}", h.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
    .await;
    let code = h.demo().code_for_login(&login_id);
    match (kind, code) {
        (Outcome::Denied, None) => {
            let want = format!("{REDIRECT}?error=access_denied&state={state}");
            if r.status == 302 && r.location() == want {
                Ok(())
            } else {
                fail(
                    "expected the AS's error redirect with the original state",
                    &r,
                )
            }
        }
        (
            Outcome::SelfReleased | Outcome::OnBehalfReleased | Outcome::ChildReleased,
            Some(code),
        ) => {
            let want = format!("{REDIRECT}?code={code}&state={state}");
            if r.status == 302 && r.location() == want {
                Ok(())
            } else {
                fail(&format!("expected exactly {want}"), &r)
            }
        }
        (_, Some(code)) => {
            let status = match kind {
                Outcome::NoSignal => 502,
                _ => 403,
            };
            if r.status != status || r.header("location").is_some() {
                return fail(&format!("expected a {status} page"), &r);
            }
            if r.everything().contains(&code) {
                return fail("the withheld code leaked", &r);
            }
            Ok(())
        }
        (_, None) => fail("the AS issued no code", &r),
    }
}

/// Runs every flow through `h`; the mismatches, and each flow's time from the authorization
/// request to the browser's answer.
async fn load(h: Arc<Harness>) -> (Vec<String>, Vec<std::time::Duration>) {
    let client = client();
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..FLOWS {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let h = h.clone();
        let client = client.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let result = run_flow(&h, &client, i, KINDS[i % KINDS.len()]).await;
            drop(permit);
            (result, started.elapsed())
        });
    }
    let (mut mismatches, mut took) = (Vec::new(), Vec::with_capacity(FLOWS));
    while let Some(joined) = tasks.join_next().await {
        let (result, elapsed) = joined.unwrap();
        took.push(elapsed);
        if let Err(e) = result {
            mismatches.push(e);
        }
    }
    took.sort_unstable();
    (mismatches, took)
}

/// The same flows with the in-process store and with Redis (two workers each): not one
/// decision may differ. The latencies are printed, never asserted.
#[tokio::test]
async fn every_decision_holds_under_load() {
    let redis = Redis::start();
    let stores = [
        ("in-process store", String::new()),
        (
            "Redis store",
            format!("[store]\nurl = \"{}\"\n", redis.url()),
        ),
    ];
    for (name, store) in stores {
        let h = Arc::new(Harness::start(&format!(
            "[listen]\nworkers = 2\n{store}[token_guard]\npath = \"/oauth2/token\"\n"
        )));
        let started = Instant::now();
        let (mismatches, took) = load(h.clone()).await;
        let percentile = |p: usize| took[(took.len() * p / 100).min(took.len() - 1)];
        println!(
            "{name}: {FLOWS} flows, {} kinds, {CONCURRENCY} concurrent, {:.1}s, {} mismatches; per flow p50 {:.2} ms, p99 {:.2} ms",
            KINDS.len(),
            started.elapsed().as_secs_f64(),
            mismatches.len(),
            percentile(50).as_secs_f64() * 1000.0,
            percentile(99).as_secs_f64() * 1000.0,
        );
        assert!(
            mismatches.is_empty(),
            "{name}: {} mismatches, first: {:?}",
            mismatches.len(),
            mismatches.first()
        );
        let issued = h.demo().codes_issued();
        let expected = FLOWS / KINDS.len() * 8; // kinds that reach the login step with a code
        assert!(
            issued >= expected,
            "{name}: {issued} codes issued, expected at least {expected}"
        );
    }
}
