//! The command line: `--check`, configuration errors named by key, `genkey`.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medmij-vert-proxy"))
}

/// `--check --config path`: the exit code, and what went to stdout and to stderr.
fn check(path: &std::path::Path) -> (Option<i32>, String, String) {
    let out = bin()
        .arg("--check")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(text: &str) -> std::path::PathBuf {
    let dir = crate::support::temp_dir();
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_accepts_the_shipped_config() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml");
    let (code, stdout, stderr) = check(std::path::Path::new(shipped));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("valid (3 clients"), "{stdout}");
}

#[test]
fn check_lists_every_error_by_key() {
    let path = write_config(
        r#"
        [listen]
        addr = "localhost"
        trusted_proxies = ["nope"]
        [upstream]
        url = "https://as"
        response_timeout = "forever"
        [clients]
        ocl_file = "missing-ocl.xml"
        [state]
        key_file = "missing.key"
        flow_ttl = "10s"
        [typo]
        "#,
    );
    let (code, _, stderr) = check(&path);
    assert_eq!(code, Some(2));
    for key in [
        "typo: unknown section",
        "listen.addr: \"localhost\" is not an address",
        "listen.trusted_proxies[0]:",
        "upstream.url: must start with http://",
        "upstream.response_timeout: \"forever\" is not a duration",
        "state.flow_ttl: must be at least 1m",
    ] {
        assert!(stderr.contains(key), "missing {key:?} in:\n{stderr}");
    }
}

#[test]
fn check_reports_unreadable_files_by_key() {
    let path = write_config(
        "[upstream]\nurl = \"http://127.0.0.1:9\"\n[clients]\nocl_file = \"missing-ocl.xml\"\n[state]\nkey_file = \"missing.key\"\n",
    );
    let (code, _, stderr) = check(&path);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("clients.ocl_file: cannot read"), "{stderr}");
    assert!(stderr.contains("state.key_file: cannot read"), "{stderr}");
}

#[test]
fn running_with_a_bad_config_exits_2_before_listening() {
    let path = write_config("[upstream]\nurl = \"http://127.0.0.1:9\"\nbogus = true\n");
    let out = bin().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream.bogus: unknown key"));
}

#[test]
fn missing_config_file_is_named() {
    let out = bin()
        .args(["--check", "--config", "/nonexistent/proxy.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/proxy.toml: cannot read"));
}

#[test]
fn genkey_makes_a_usable_key_file() {
    let out = bin().arg("genkey").output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let dir = crate::support::temp_dir();
    std::fs::write(dir.join("state.key"), &line).unwrap();
    std::fs::write(
        dir.join("proxy.toml"),
        "[upstream]\nurl = \"http://127.0.0.1:9\"\n[clients]\nstatic = [{ hostname = \"a.nl\" }]\n[state]\nkey_file = \"state.key\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = check(&dir.join("proxy.toml"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("state keys from state.key_file"),
        "{stdout}"
    );
}

/// `--check` with the config named by `MEDMIJ_VERT_CONFIG`, as the container image runs it.
fn check_env(path: &str) -> (Option<i32>, String) {
    let out = bin()
        .arg("--check")
        .env("MEDMIJ_VERT_CONFIG", path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_container_config_refuses_to_start_without_its_key_file() {
    let (code, out) = check_env(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/container.toml"
    ));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("state.key_file: cannot read /secrets/state.key"),
        "{out}"
    );
    assert!(
        out.contains("clients.ocl_file: cannot read /config/ocl.xml"),
        "{out}"
    );
}

#[test]
fn the_container_demo_config_is_valid() {
    let (code, out) = check_env(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/demo.toml"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("random per process"), "{out}");
}

/// `--check` validates every form of `[store]` and refuses two Redis at once, naming the key
/// and never the password.
#[test]
fn check_refuses_two_redis_forms_and_keeps_the_password_out() {
    let path = write_config(
        r#"
        [upstream]
        url = "http://127.0.0.1:9000"
        [store]
        url = "rediss://vert:s3cret@redis.internal:6380/0"
        sentinels = ["10.0.0.1:26379"]
        sentinel_master = "vert"
        "#,
    );
    let (code, _, stderr) = check(&path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("store.sentinels: store.url is set too: name one Redis, not both"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    for store in [
        "sentinels = [\"rediss://s:pw@10.0.0.1:26379\", \"rediss://10.0.0.2:26379\"]\nsentinel_master = \"rediss://vert:pw@vert/1\"\nmin_replicas = 1",
        "cluster = [\"redis://vert:pw@10.0.0.1:7000\", \"redis://vert:pw@10.0.0.2:7000\"]\nmin_replicas = 1",
    ] {
        let path = write_config(&format!(
            "[upstream]\nurl = \"http://127.0.0.1:9000\"\n[clients]\nstatic = [{{ hostname = \"pgo.example.nl\", name = \"P\" }}]\n[store]\n{store}\n"
        ));
        let (code, _, stderr) = check(&path);
        assert_eq!(code, Some(0), "{store}: {stderr}");
    }
}

/// The documents name the tree as it is: every `src/…` and `tests/…` path that the README or a
/// document in `docs/` names exists, and every folder and top-level file of `src/` is in
/// `docs/architecture.md`'s folder list.
#[test]
fn the_architecture_layout_matches_the_tree() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        // Every `src/…` and `tests/…` path it names.
        let named = |prefix: &str| -> Vec<String> {
            text.match_indices(prefix)
                // Not the tail of another path (`../src/…`, `examples/…/tests/…`).
                .filter(|(at, _)| {
                    !text[..*at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.'))
                })
                .map(|(at, _)| {
                    let path: String = text[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.'))
                        .collect();
                    path.trim_end_matches('.').to_owned()
                })
                .collect()
        };
        for path in named("src/").into_iter().chain(named("tests/")) {
            assert!(
                root.join(&path).exists(),
                "{} names {path}, which is not there",
                document.display()
            );
        }
    }
    let architecture = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let layout = &architecture[architecture.find("## The folders").unwrap()..];
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let path = if root.join("src").join(&name).is_dir() {
            format!("src/{name}/")
        } else {
            format!("src/{name}")
        };
        assert!(
            layout.contains(&path),
            "docs/architecture.md's folder list does not name {path}"
        );
    }
}
