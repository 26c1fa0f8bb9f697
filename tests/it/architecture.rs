//! docs/architecture.md's claims about the code's shape, checked on the source: each folder (room)
//! uses exactly the rooms its row of [`ALLOWED`] names, so that a new arrow between rooms is a
//! deliberate change; the rooms, and the files, depend on each other without a cycle; `vert`
//! and `vocab` import nothing of the crate (`vert`: no HTTP, no I/O either), `pages` knows no
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

/// Panics naming the cycle, if `graph` (a thing → the things it uses) has one: depth-first, a
/// node met again while on the path closes a cycle.
fn assert_acyclic(graph: &BTreeMap<String, BTreeSet<String>>, what: &str) {
    fn visit(
        at: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        what: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(at) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == at) {
            panic!(
                "a cycle of {what}: {}",
                [&path[i..], &[at.to_owned()]].concat().join(" → ")
            );
        }
        path.push(at.to_owned());
        for next in graph.get(at).into_iter().flatten() {
            visit(next, graph, what, path, done);
        }
        path.pop();
        done.insert(at.to_owned());
    }
    let mut done = BTreeSet::new();
    for name in graph.keys() {
        visit(name, graph, what, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_folders_depend_on_each_other_without_a_cycle() {
    let modules = modules();
    assert!(modules.contains_key("server") && modules["server"].0.contains("guard"));
    let graph = modules
        .into_iter()
        .map(|(name, (uses, _))| (name, uses))
        .collect();
    assert_acyclic(&graph, "folders");
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

/// Room → the rooms its code may name (`crate::…`): every arrow of the crate's shape, and no
/// more. A new `use crate::…` across rooms fails
/// [`each_room_uses_exactly_the_rooms_its_row_allows`] until its arrow is written here (and
/// docs/architecture.md's layout says why); an arrow no longer used fails it too, so the table
/// stays the tree's.
const ALLOWED: &[(&str, &[&str])] = &[
    // The leaves: the HTTP vocabulary, the hop-by-hop names, the timed sockets, the threads,
    // and the rules.
    ("vocab", &[]),
    ("hop_by_hop", &[]),
    ("timed_io", &[]),
    ("runtime", &[]),
    ("vert", &[]),
    // Beside the stack.
    ("config", &["hop_by_hop", "vert"]),
    ("pages", &["config", "vert", "vocab"]),
    ("ops", &["config", "runtime", "vocab"]),
    ("state", &["config", "ops", "vert"]),
    // The stack, outside in.
    ("seam", &["config", "hop_by_hop", "pages", "vert", "vocab"]),
    (
        "guard",
        &["config", "ops", "pages", "seam", "state", "vert", "vocab"],
    ),
    (
        "upstream",
        &["config", "ops", "pages", "seam", "timed_io", "vocab"],
    ),
    (
        "server",
        &[
            "config", "guard", "ops", "pages", "runtime", "seam", "state", "timed_io", "upstream",
            "vert", "vocab",
        ],
    ),
];

#[test]
fn each_room_uses_exactly_the_rooms_its_row_allows() {
    let modules = modules();
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(room, uses)| (*room, uses.iter().copied().collect()))
        .collect();
    assert_eq!(allowed.len(), ALLOWED.len(), "a room with two rows");
    let mut problems = Vec::new();
    for (room, (uses, _)) in &modules {
        let Some(row) = allowed.get(room.as_str()) else {
            problems.push(format!(
                "a new room `{room}` (using {uses:?}): give it a row in ALLOWED"
            ));
            continue;
        };
        for used in uses.iter().filter(|used| !row.contains(used.as_str())) {
            problems.push(format!(
                "a new arrow `{room}` → `{used}`: not in ALLOWED; add it there if it is meant"
            ));
        }
        for listed in row.iter().filter(|listed| !uses.contains(**listed)) {
            problems.push(format!(
                "`{room}` → `{listed}` is in ALLOWED but no longer used: remove it there"
            ));
        }
    }
    for room in allowed.keys().filter(|room| !modules.contains_key(**room)) {
        problems.push(format!("ALLOWED has a row for `{room}`, which is gone"));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_vocabulary_is_a_leaf() {
    let modules = modules();
    let (uses, _) = &modules["vocab"];
    assert!(uses.is_empty(), "vocab names {uses:?}");
}

/// Each library file as a module path (`upstream::pool`; `guard` for `src/guard/mod.rs`) → the
/// modules its code names through `crate::…` or `super::…` (a `{…}` group read item by item),
/// each taken as the longest module path it begins with. A file's own ancestors and
/// descendants are left out: a folder's `mod.rs` and its files are one unit.
fn files() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut texts = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(path) = dirs.pop() {
        if path.is_dir() {
            dirs.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if matches!(parts[0].as_str(), "main" | "lib" | "demo")
            || parts.last().is_some_and(|p| p == "tests")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap()
            .to_owned();
        texts.insert(parts.join("::"), code);
    }
    let resolve = |path: &[&str]| -> Option<String> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].join("::"))
            .find(|candidate| texts.contains_key(candidate))
    };
    let mut out = BTreeMap::new();
    for (module, code) in &texts {
        let parent: Vec<&str> = module.split("::").collect();
        let parent = &parent[..parent.len() - 1];
        let mut uses = BTreeSet::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (root, base) in [("crate::", &[][..]), ("super::", parent)] {
                for (at, _) in line.match_indices(root) {
                    if line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let rest = &line[at + root.len()..];
                    let path_text: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                        .collect();
                    let mut path: Vec<&str> = base.to_vec();
                    path.extend(path_text.split("::").filter(|p| !p.is_empty()));
                    let group = rest[path_text.len()..]
                        .strip_prefix('{')
                        .and_then(|g| g.split('}').next());
                    let items: Vec<&str> = match group {
                        Some(group) => group
                            .split(',')
                            .map(|item| item.trim().split("::").next().unwrap_or(""))
                            .collect(),
                        None => vec![""],
                    };
                    for item in items {
                        let mut full = path.clone();
                        if !item.is_empty() && item != "self" {
                            full.push(item);
                        }
                        if let Some(used) = resolve(&full) {
                            uses.insert(used);
                        }
                    }
                }
            }
        }
        let family = |other: &String| {
            other == module
                || other.starts_with(&format!("{module}::"))
                || module.starts_with(&format!("{other}::"))
        };
        uses.retain(|used| !family(used));
        out.insert(module.clone(), uses);
    }
    out
}

/// Issue 28: `upstream::connector` and `upstream::pool` named each other (through
/// `PoolError`); no two files may, by any path.
#[test]
fn the_files_depend_on_each_other_without_a_cycle() {
    let files = files();
    assert!(
        files["upstream::connector"].contains("upstream::error")
            && files["upstream::pool"].contains("upstream::connector"),
        "the file graph is read: {files:?}"
    );
    assert_acyclic(&files, "files");
}

#[test]
#[should_panic(expected = "a cycle of files: a → b → a")]
fn the_cycle_check_names_a_cycle() {
    let graph = [("a", "b"), ("b", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    assert_acyclic(&graph, "files");
}
