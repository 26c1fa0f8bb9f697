//! The monitoring kit in `deploy/monitoring/` names what the proxy exports: after a demo flow
//! through the proxy (releases, withholds, a fail-closed return, token requests, a reload), the
//! admin listener's `/metrics` holds every metric that a query of `dashboard.json` or an
//! expression of `alerts.yml` names, with every label value they compare with `=`. (When the
//! rules fire is promtool's to test: `deploy/monitoring/check.sh`, run by `./test.sh`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::*;

/// Names a query may use that the proxy does not export: Prometheus' own.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// PromQL's functions, aggregations and keywords: everything in an expression that is a word
/// and not a metric.
const PROMQL_WORDS: &[&str] = &[
    "abs",
    "absent",
    "and",
    "avg",
    "bool",
    "by",
    "ceil",
    "clamp_max",
    "clamp_min",
    "count",
    "delta",
    "deriv",
    "group_left",
    "group_right",
    "histogram_quantile",
    "ignoring",
    "increase",
    "irate",
    "label_replace",
    "max",
    "max_over_time",
    "min",
    "min_over_time",
    "offset",
    "on",
    "or",
    "rate",
    "round",
    "sum",
    "time",
    "topk",
    "unless",
    "vector",
    "without",
];

/// A metric an expression names, with the label values it compares with `=`.
#[derive(Debug, PartialEq, Eq)]
struct Named {
    metric: String,
    equal: Vec<(String, String)>,
}

/// The metrics a PromQL expression names (Grafana's `$variables` and `$__interval`s are
/// skipped). Written for the expressions of this kit, not for all of PromQL: a word it does
/// not know is taken for a metric, so that a new function fails loudly here, not silently.
fn metrics_named(expr: &str) -> Vec<Named> {
    let chars: Vec<char> = expr.chars().collect();
    let mut named: Vec<Named> = Vec::new();
    let mut i = 0;
    // The metric a `{…}` that follows belongs to.
    let mut last_metric: Option<usize> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            let end = (i..chars.len())
                .find(|&j| chars[j] == '}')
                .expect("a closed {");
            let matchers: String = chars[i + 1..end].iter().collect();
            if let Some(m) = last_metric {
                named[m].equal = equal_matchers(&matchers);
            }
            last_metric = None;
            i = end + 1;
        } else if c == '$' {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if PROMQL_WORDS.contains(&word.as_str()) {
                // `by (le)`, `on (job)`: a list of labels, not of metrics.
                if call
                    && matches!(
                        word.as_str(),
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    )
                {
                    i = (next..chars.len())
                        .find(|&j| chars[j] == ')')
                        .expect("a closed (")
                        + 1;
                }
                last_metric = None;
            } else {
                named.push(Named {
                    metric: word,
                    equal: Vec::new(),
                });
                last_metric = Some(named.len() - 1);
            }
        } else {
            if !c.is_whitespace() {
                last_metric = None;
            }
            i += 1;
        }
    }
    named
}

fn skip_string(chars: &[char], open: usize) -> usize {
    let quote = chars[open];
    let mut i = open + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// `outcome="withheld",exception=~"x|y"` → the `=` pairs (not `=~`, `!=`, `!~`).
fn equal_matchers(matchers: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = matchers.trim();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_owned();
        let after = rest[name_end..].trim_start();
        let op_len =
            if after.starts_with("=~") || after.starts_with("!=") || after.starts_with("!~") {
                2
            } else {
                1
            };
        let op = &after[..op_len];
        let value_part = after[op_len..].trim_start();
        let chars: Vec<char> = value_part.chars().collect();
        let end = skip_string(&chars, 0);
        let value: String = chars[1..end - 1].iter().collect();
        if op == "=" {
            pairs.push((name, value));
        }
        let consumed: usize = chars[..end].iter().map(|c| c.len_utf8()).sum();
        rest = value_part[consumed..]
            .trim_start()
            .trim_start_matches(',')
            .trim();
    }
    pairs
}

/// The exposition: each name (sample lines, and the names a `# TYPE` line declares) with the
/// label sets of its samples. (prometheus-client leaves out a family without samples, TYPE
/// and all.)
fn exposition(text: &str) -> BTreeMap<String, Vec<Vec<(String, String)>>> {
    let mut names: BTreeMap<String, Vec<Vec<(String, String)>>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (family, kind) = declared.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                names.entry(format!("{family}{suffix}")).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = equal_matchers(labels);
            names.entry(name.to_owned()).or_default().push(labels);
        }
    }
    names
}

/// What an expression names that the exposition lacks: a metric, or a label value no sample
/// of that metric has (`job` and `instance` are Prometheus' target labels).
fn missing(expr: &str, exported: &BTreeMap<String, Vec<Vec<(String, String)>>>) -> Vec<String> {
    let mut missing = Vec::new();
    for named in metrics_named(expr) {
        if PROMETHEUS_OWN.contains(&named.metric.as_str()) {
            continue;
        }
        let Some(samples) = exported.get(&named.metric) else {
            missing.push(named.metric);
            continue;
        };
        for (label, value) in &named.equal {
            if matches!(label.as_str(), "job" | "instance") {
                continue;
            }
            let seen = samples.iter().any(|labels| {
                labels.iter().any(|(l, v)| l == label && v == value)
                    || (value.is_empty() && !labels.iter().any(|(l, _)| l == label))
            });
            if !seen {
                missing.push(format!("{}{{{label}=\"{value}\"}}", named.metric));
            }
        }
    }
    missing
}

fn monitoring(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/monitoring")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `expr` of alerts.yml (a block scalar, or inline).
fn alert_expressions(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut found = Vec::new();
    let mut alert = String::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert: ") {
            alert = name.trim().to_owned();
        }
        let Some(value) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value != "|" && value != ">" {
            found.push((alert.clone(), value.to_owned()));
            continue;
        }
        let indent = line.len() - trimmed.len();
        let body: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .copied()
            .collect();
        found.push((alert.clone(), body.join("\n")));
    }
    found
}

/// Every query of the dashboard: the panels' targets and the variables' `label_values(…)`.
fn dashboard_queries(json: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(value: &serde_json::Value, title: &str, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::Object(map) => {
                let title = map
                    .get("title")
                    .and_then(|t| t.as_str())
                    .unwrap_or(title)
                    .to_owned();
                if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                    out.push((title.clone(), expr.to_owned()));
                }
                if let Some(query) = map.get("query").and_then(|q| q.as_str())
                    && let Some(inner) = query.strip_prefix("label_values(")
                {
                    let metric = inner.rsplit_once(',').expect("label_values(m, label)").0;
                    out.push((format!("variable {title}"), metric.to_owned()));
                }
                for v in map.values() {
                    walk(v, &title, out);
                }
            }
            serde_json::Value::Array(items) => {
                for v in items {
                    walk(v, title, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(json, "", &mut out);
    out
}

/// The scrape after a demo flow: each kind of decision the dashboard shows, token requests
/// that are forwarded and refused, a reload.
async fn scrape_after_a_demo_flow() -> String {
    let h = Harness::start(
        "[admin]\naddr = \"127.0.0.1:0\"\n[token_guard]\npath = \"/oauth2/token\"\n",
    );
    let on_behalf = "&scope=48%20onbehalfof&MedMij_geboortedatum=19700901";
    let released = h.flow("&scope=48", &[("as", "self")]).await;
    assert_eq!(released.status, 302);
    let code = released
        .location()
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .expect("a released code")
        .to_owned();
    for _ in 0..2 {
        post_form(
            &format!("{}/oauth2/token", h.base),
            &[("grant_type", "authorization_code"), ("code", &code)],
        )
        .await;
    }
    assert_eq!(h.flow(on_behalf, &[("as", "self")]).await.status, 403);
    let fail_closed = h
        .flow(on_behalf, &[("as", "piet"), ("signal", "omit")])
        .await;
    assert_eq!(fail_closed.status, 502);
    assert_eq!(
        get(&h.authorize_url("&scope=48%20onbehalfof")).await.status,
        302
    );
    h.running().reload();
    let (status, text) = h.admin_get("/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(
            &text,
            "medmij_vert_decisions_total{outcome=\"refused\",rule=\"proxy.token.once\",exception=\"\"}"
        ),
        1,
        "{text}"
    );
    text
}

/// The scrape of a proxy whose public listener speaks TLS: the certificate's expiry exists
/// only there.
fn scrape_with_tls() -> String {
    let dir = temp_dir();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("c.crt"), generated.cert.pem()).unwrap();
    std::fs::write(dir.join("c.key"), generated.signing_key.serialize_pem()).unwrap();
    let h = Harness::start_with_upstream(
        "http://127.0.0.1:9",
        &format!(
            "[admin]\naddr = \"127.0.0.1:0\"\n[listen.tls]\ncert_file = \"{0}/c.crt\"\nkey_file = \"{0}/c.key\"\n",
            dir.display()
        ),
    );
    let (_, text) = h.admin_get("/metrics");
    let _ = std::fs::remove_dir_all(dir);
    text
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_name_only_metrics_the_proxy_exports() {
    let mut exported = exposition(&scrape_after_a_demo_flow().await);
    for (name, samples) in exposition(&scrape_with_tls()) {
        exported.entry(name).or_default().extend(samples);
    }
    let dashboard: serde_json::Value = serde_json::from_str(&monitoring("dashboard.json")).unwrap();
    let queries = dashboard_queries(&dashboard);
    let alerts = monitoring("alerts.yml");
    let expressions = alert_expressions(&alerts);
    assert!(queries.len() >= 20, "{queries:?}");
    assert_eq!(
        expressions.len(),
        alerts.matches("- alert: ").count(),
        "one expression per alert"
    );
    let mut wrong = BTreeSet::new();
    for (source, (what, expr)) in queries
        .iter()
        .map(|q| ("dashboard.json", q))
        .chain(expressions.iter().map(|e| ("alerts.yml", e)))
    {
        for name in missing(expr, &exported) {
            wrong.insert(format!("{source}: {what}: {name}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "named but not exported by the proxy:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The check itself: a misspelt metric, a label value no sample has, are found; PromQL's own
/// words, label lists, strings, durations and Grafana's variables are not metrics.
#[test]
fn the_name_check_finds_a_metric_or_label_value_the_proxy_does_not_export() {
    let exported = exposition(
        "# TYPE medmij_vert_decisions counter\n\
         medmij_vert_decisions_total{outcome=\"released\",rule=\"r\",exception=\"\"} 1\n\
         # TYPE medmij_vert_upstream_response_seconds histogram\n\
         # TYPE medmij_vert_ready gauge\n\
         medmij_vert_ready 1\n",
    );
    let good = "histogram_quantile(0.99, sum by (le) (rate(medmij_vert_upstream_response_seconds_bucket{job=~\"$job\"}[$__rate_interval]))) \
                / on (job) group_left sum(rate(medmij_vert_decisions_total{outcome=\"released\",exception=\"\"}[5m])) \
                and medmij_vert_ready == 0 or up{job=\"x\"} == 0 and time() - 2 * 86400 > vector(0)";
    assert_eq!(missing(good, &exported), Vec::<String>::new());
    assert_eq!(
        missing("rate(medmij_vert_decisions_totl[5m])", &exported),
        ["medmij_vert_decisions_totl"]
    );
    assert_eq!(
        missing(
            "sum(rate(medmij_vert_decisions_total{outcome=\"relased\"}[5m]))",
            &exported
        ),
        ["medmij_vert_decisions_total{outcome=\"relased\"}"]
    );
    assert_eq!(
        missing("process_cpu_seconds_total", &exported),
        ["process_cpu_seconds_total"]
    );
}

/// Each alert says how bad it is and where its runbook is: a `severity` label, the annotations
/// `summary`, `description` and `runbook_url`, and the URL a section of `docs/operating.md`.
#[test]
fn every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section() {
    let alerts = monitoring("alerts.yml");
    let operating =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operating.md"))
            .unwrap();
    let sections = crate::docs::anchors(&operating);
    let rules: Vec<&str> = alerts.split("- alert: ").skip(1).collect();
    assert!(rules.len() >= 10);
    for rule in rules {
        let name = rule.lines().next().unwrap().trim();
        let lines: Vec<&str> = rule.lines().collect();
        // A value, or the first line of a block scalar (`>-`, `|`).
        let field = |key: &str| {
            let at = lines.iter().position(|l| l.trim_start().starts_with(key))?;
            let value = lines[at].trim_start()[key.len()..].trim();
            let value = match value {
                ">-" | ">" | "|" | "|-" => lines.get(at + 1)?.trim(),
                value => value,
            };
            Some(value.trim_matches('"').to_owned())
        };
        assert!(
            matches!(field("severity:").as_deref(), Some("warning" | "critical")),
            "{name}: severity"
        );
        for key in ["summary:", "description:"] {
            assert!(field(key).is_some_and(|v| !v.is_empty()), "{name}: {key}");
        }
        let url = field("runbook_url:").unwrap_or_else(|| panic!("{name}: runbook_url"));
        let anchor = url
            .strip_prefix("docs/operating.md#")
            .unwrap_or_else(|| panic!("{name}: {url} is not a section of docs/operating.md"));
        assert!(sections.contains(anchor), "{name}: no section #{anchor}");
    }
}
