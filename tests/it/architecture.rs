//! docs/architecture.md's claims about the code's shape, checked on the source: the folders depend on
//! each other without a cycle, `vert` imports nothing (no HTTP, no I/O), `pages` knows no
//! upstream, `config` no logging.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of the library → the top-level modules its code (not its tests, not
/// its comments) names as `crate::…`, and the text of that code.
fn modules() -> BTreeMap<String, (BTreeSet<String>, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, (BTreeSet<String>, String)> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        // The binary's files, and unit-test files, are not the library's shape.
        if matches!(top.as_str(), "main" | "lib" | "demo") || rel.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let entry = out.entry(top.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            entry.1.push_str(line);
            entry.1.push('\n');
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name != top {
                    entry.0.insert(name);
                }
            }
        }
    }
    out
}

#[test]
fn the_folders_depend_on_each_other_without_a_cycle() {
    let modules = modules();
    // Depth-first: a module met again while on the path is a cycle.
    fn visit(
        at: &str,
        modules: &BTreeMap<String, (BTreeSet<String>, String)>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(at) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == at) {
            panic!(
                "a cycle: {}",
                [&path[i..], &[at.to_owned()]].concat().join(" → ")
            );
        }
        path.push(at.to_owned());
        for next in modules.get(at).map(|m| &m.0).into_iter().flatten() {
            visit(next, modules, path, done);
        }
        path.pop();
        done.insert(at.to_owned());
    }
    let mut done = BTreeSet::new();
    for name in modules.keys() {
        visit(name, &modules, &mut Vec::new(), &mut done);
    }
    assert!(modules.contains_key("server") && modules["server"].0.contains("guard"));
}

#[test]
fn vert_imports_nothing_pages_know_no_upstream_config_no_logging() {
    let modules = modules();
    let (vert_deps, vert) = &modules["vert"];
    assert!(vert_deps.is_empty(), "vert names {vert_deps:?}");
    for io in ["http::", "hyper", "tokio", "std::fs", "std::net", "tracing"] {
        assert!(!vert.contains(io), "vert uses {io}");
    }
    assert!(
        !modules["pages"].0.contains("upstream"),
        "pages names upstream"
    );
    // It may check a log filter (tracing_subscriber) but writes no log line.
    assert!(!modules["config"].1.contains("tracing::"), "config logs");
}
