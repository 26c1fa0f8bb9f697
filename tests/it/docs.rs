//! The documents hold together and say what the code does: every relative link of the README
//! and of `docs/` resolves (its file, and its `#anchor` in a Markdown target); every document in
//! `docs/` is reachable from the README; `docs/rules.md` names modules that cite each rule and
//! tests that exist, and its exception table is `vert::exceptions::TABLE`; every fail-closed
//! detail the code can log has a runbook row in `docs/operating.md`. (The configuration
//! reference is kept by `config::tests`, the folder list by `cli::`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use medmij_vert_proxy::vert::exceptions::{Answer, TABLE};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The README and every Markdown file of `docs/`.
fn documents() -> Vec<PathBuf> {
    let mut documents = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    documents.extend(docs);
    documents
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The anchors GitHub gives a Markdown text's headings: lower case, punctuation dropped,
/// spaces as `-`, a repeated one numbered.
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_default();
        anchors.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    anchors
}

/// The link targets of a Markdown text: `[text](target)` and `<img src="target">`, outside
/// code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose(text) {
        // Code spans hold example syntax, not links.
        let line: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            if let Some(end) = rest.find(')') {
                targets.push(rest[..end].to_owned());
            }
        }
        for (at, _) in line.match_indices("src=\"") {
            let rest = &line[at + 5..];
            if let Some(end) = rest.find('"') {
                targets.push(rest[..end].to_owned());
            }
        }
    }
    targets
}

/// Where a relative link of `document` leads: the file, and the anchor if any. `None` for
/// links that leave the repository's files (a URL, a mail address).
fn resolve(document: &Path, target: &str) -> Option<(PathBuf, Option<String>)> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor.to_owned())),
        None => (target, None),
    };
    let path = if file.is_empty() {
        document.to_path_buf()
    } else {
        document.parent().unwrap().join(file)
    };
    Some((path, anchor))
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents() {
        for target in links(&read(&document)) {
            let Some((path, anchor)) = resolve(&document, &target) else {
                continue;
            };
            checked += 1;
            let name = document.strip_prefix(root()).unwrap().display().to_string();
            if !path.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor
                && path.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&path)).contains(&anchor)
            {
                broken.push(format!("{name}: {target}: no such heading"));
            }
        }
    }
    assert!(checked > 50, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_document_in_docs_is_reachable_from_the_readme() {
    let readme = root().join("README.md").canonicalize().unwrap();
    let mut reached = BTreeSet::from([readme.clone()]);
    let mut next = vec![readme];
    while let Some(document) = next.pop() {
        for target in links(&read(&document)) {
            let Some((path, _)) = resolve(&document, &target) else {
                continue;
            };
            let Ok(path) = path.canonicalize() else {
                continue; // the link test names it
            };
            if path.extension().is_some_and(|e| e == "md") && reached.insert(path.clone()) {
                next.push(path);
            }
        }
    }
    let unreached: Vec<String> = documents()
        .into_iter()
        .filter(|d| !reached.contains(&d.canonicalize().unwrap()))
        .map(|d| d.display().to_string())
        .collect();
    assert!(
        unreached.is_empty(),
        "not reachable from README.md: {unreached:?}"
    );
}

/// The rows of the Markdown table in the section `heading` of `text`, as cells.
fn table(text: &str, heading: &str) -> Vec<Vec<String>> {
    let section = &text[text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading}"))
        + 1..];
    let section = &section[..section[heading.len()..]
        .find("\n## ")
        .map_or(section.len(), |end| end + heading.len())];
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the head and its rule
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// `a`, `b::c`, … in backticks.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// The MedMij rule ids a text cites, with the short forms of the tables expanded:
/// `core.authint.200/202` is also `core.authint.202`, `core.logging.100/.203` also
/// `core.logging.203`.
fn rule_ids(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for prefix in ["ext.vert.authint.", "core.authint.", "core.logging."] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if number.is_empty() {
                continue;
            }
            ids.insert(format!("{prefix}{number}"));
            let after = rest[number.len()..].strip_prefix('/');
            if let Some(after) = after {
                let other: String = after
                    .trim_start_matches('.')
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if !other.is_empty() {
                    ids.insert(format!("{prefix}{other}"));
                }
            }
        }
    }
    ids
}

/// The source of a module as a row names it: `vert::authorize` is `src/vert/authorize.rs`,
/// `guard` every file of `src/guard/`.
fn module_source(module: &str) -> String {
    let path = root().join("src").join(module.replace("::", "/"));
    let file = path.with_extension("rs");
    if file.exists() {
        return read(&file);
    }
    assert!(path.is_dir(), "no module {module}");
    std::fs::read_dir(&path)
        .unwrap()
        .map(|e| read(&e.unwrap().path()))
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names of every function in `src/` and `tests/`.
fn function_names() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    let mut names = BTreeSet::new();
    for file in files {
        let text = read(&file);
        for (at, _) in text.match_indices("fn ") {
            let name: String = text[at + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

#[test]
fn the_rules_table_names_code_that_cites_each_rule_and_tests_that_exist() {
    let rules = read(&root().join("docs/rules.md"));
    let rows = table(&rules, "## Every rule");
    assert!(rows.len() >= 8, "{rows:?}");
    let functions = function_names();
    let mut wrong = Vec::new();
    let mut documented = BTreeSet::new();
    for row in &rows {
        let [rule, _does, code, tests] = &row[..] else {
            panic!("a row of four cells: {row:?}");
        };
        documented.extend(rule_ids(rule));
        let sources: String = code_spans(code).into_iter().map(module_source).collect();
        // The ids the row writes in full must be cited in the code it names.
        for id in rule_ids(rule.split('/').next().unwrap()) {
            if !sources.contains(&id) {
                wrong.push(format!("{id}: not cited in {code}"));
            }
        }
        for test in code_spans(tests) {
            let found = match test.strip_suffix('*') {
                Some(prefix) => functions.iter().any(|f| f.starts_with(prefix)),
                None => functions.contains(test),
            };
            if !found {
                wrong.push(format!("{rule}: no test {test}"));
            }
        }
    }
    // And every rule the code cites has its row.
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for file in files {
        for id in rule_ids(&read(&file)) {
            if !documented.contains(&id) {
                wrong.push(format!("{} cites {id}, which has no row", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "docs/rules.md:\n{}", wrong.join("\n"));
}

#[test]
fn the_exception_table_is_vert_exceptions_table() {
    let rules = read(&root().join("docs/rules.md"));
    let rows = table(&rules, "## The exception table");
    assert_eq!(
        rows.len(),
        TABLE.len(),
        "one row per exception of src/vert/exceptions.rs"
    );
    for exception in TABLE {
        let row = rows
            .iter()
            .find(|r| r[1] == format!("`{}`", exception.id))
            .unwrap_or_else(|| panic!("no row for `{}`", exception.id));
        assert_eq!(row[2], format!("`{}`", exception.rule), "{row:?}");
        let answer = &row[4];
        match exception.answer {
            Answer::Page {
                status,
                link_back: None,
            } => assert!(
                answer.starts_with(&format!("{status} page"))
                    && !answer.contains("with a link back"),
                "{}: {answer}",
                exception.id
            ),
            Answer::Page {
                status,
                link_back: Some(link_back),
            } => assert!(
                answer.starts_with(&format!("{status} page with a link back"))
                    && answer.contains(&format!("`error={}`", link_back.error)),
                "{}: {answer}",
                exception.id
            ),
            Answer::ErrorRedirect => assert!(
                answer.starts_with("302 to the client"),
                "{}: {answer}",
                exception.id
            ),
        }
    }
}

/// The string literals of `line`.
fn literals(line: &str) -> Vec<String> {
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The `detail`s a fail-closed withhold can log, read from the code that withholds: the
/// literals beside `Exception::FailClosed`, of `fail_closed(…)`, of the state opener's
/// `Opened::Invalid(…)` and of a return's disagreements (`resume.rs`), outside the tests.
fn fail_closed_details() -> BTreeSet<String> {
    let mut files = vec![
        root().join("src/vert/flow_return.rs"),
        root().join("src/vert/resume.rs"),
        root().join("src/state/seal.rs"),
    ];
    rust_files(&root().join("src/guard"), &mut files);
    let mut details = BTreeSet::new();
    for file in files {
        let text = read(&file);
        let code = text.split("#[cfg(test)]").next().unwrap();
        let lines: Vec<&str> = code.lines().collect();
        let resume = file.ends_with("resume.rs");
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            if line.contains("Exception::FailClosed") {
                for near in &lines[i..(i + 3).min(lines.len())] {
                    details.extend(literals(near));
                }
            }
            for call in ["fail_closed(\"", "Opened::Invalid(\""] {
                if line.contains(call) {
                    details.extend(literals(line));
                }
            }
            if resume && line.contains("Err(\"") {
                details.extend(literals(line));
            }
        }
    }
    details
}

#[test]
fn every_fail_closed_detail_has_a_runbook_row() {
    let details = fail_closed_details();
    assert!(details.len() >= 20, "{details:?}");
    let operating = read(&root().join("docs/operating.md"));
    let rows = table(&operating, "### Fail-closed details");
    let documented: BTreeSet<&str> = rows.iter().map(|r| r[0].trim_matches('`')).collect();
    let missing: Vec<&String> = details
        .iter()
        .filter(|d| !documented.contains(d.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "fail-closed details without a row in docs/operating.md's runbook: {missing:?}"
    );
    for row in &rows {
        assert_eq!(row.len(), 4, "detail, means, check, fix: {row:?}");
    }
}
