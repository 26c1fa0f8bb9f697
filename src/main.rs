//! The command line: run the proxy, check a config, run the demo, make a state key.
#![forbid(unsafe_code)]

mod demo;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use demo::SignalHeaders;
use medmij_vert_proxy::config::Config;
use medmij_vert_proxy::ops::{admin, telemetry};
use medmij_vert_proxy::server;
use medmij_vert_proxy::server::resources::Resources;
use medmij_vert_proxy::state::seal;

#[derive(Parser)]
#[command(
    name = "medmij-vert-proxy",
    version,
    about = "Reverse proxy that adds MedMij Vertegenwoordiging to a legacy OAuth Authorization Server"
)]
struct Cli {
    /// The configuration file. Default: $MEDMIJ_VERT_CONFIG, else proxy.toml (for `demo`:
    /// $MEDMIJ_VERT_DEMO_CONFIG first).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Validate the configuration (and the files it names), print every error, and exit:
    /// 0 when valid, 2 when not.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the demo legacy AS on upstream.url and the proxy in front of it, and print curl
    /// lines that walk through every outcome.
    Demo,
    /// Print a new random state key: a line for state.key_file.
    Genkey,
    /// Ask the admin listener of the proxy this config describes whether it is ready: exit 0
    /// when `/ready` answers 200, else 1. With `--live`, whether it is alive (`/live`): the
    /// container's HEALTHCHECK (distroless has no curl).
    Health {
        /// Liveness (`/live`, the proxy answers) instead of readiness (`/ready`, the AS too).
        #[arg(long)]
        live: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = |env: &[&str]| {
        cli.config.clone().unwrap_or_else(|| {
            env.iter()
                .find_map(std::env::var_os)
                .map_or_else(|| PathBuf::from("proxy.toml"), PathBuf::from)
        })
    };
    match cli.command {
        Some(Command::Genkey) => {
            println!("{}", seal::generate_key_line());
            ExitCode::SUCCESS
        }
        Some(Command::Demo) => run(
            &config(&["MEDMIJ_VERT_DEMO_CONFIG", "MEDMIJ_VERT_CONFIG"]),
            true,
        ),
        Some(Command::Health { live }) => health(
            &config(&["MEDMIJ_VERT_CONFIG"]),
            if live {
                admin::Probe::Live
            } else {
                admin::Probe::Ready
            },
        ),
        None if cli.check => check(&config(&["MEDMIJ_VERT_CONFIG"])),
        None => run(&config(&["MEDMIJ_VERT_CONFIG"]), false),
    }
}

/// `health`: exit 0 when the admin listener answers `/ready` (or `/live`) with 200.
fn health(path: &Path, probe: admin::Probe) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let config = match Config::from_toml(&text, base) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{}: invalid configuration: {errors}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let Some(addr) = config.admin.addr else {
        eprintln!(
            "{}: admin.addr is not set: no /live or /ready to ask",
            path.display()
        );
        return ExitCode::FAILURE;
    };
    let what = match probe {
        admin::Probe::Live => "live",
        admin::Probe::Ready => "ready",
    };
    match admin::check(addr, probe, std::time::Duration::from_secs(3)) {
        Ok(()) => {
            println!("{what}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("not {what}: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Reads and validates the config and the files it names; every error goes to stderr.
fn load(path: &Path) -> Result<(Config, Resources), ExitCode> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return Err(ExitCode::from(2));
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let result = Config::from_toml(&text, base)
        .and_then(|config| Resources::load(&config).map(|resources| (config, resources)));
    result.map_err(|errors| {
        eprintln!("{}: invalid configuration:", path.display());
        for e in &errors.0 {
            eprintln!("  {e}");
        }
        ExitCode::from(2)
    })
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok((config, resources)) => {
            println!(
                "{}: valid ({} clients; state keys {}; authorize path {}; upstream {})",
                path.display(),
                resources.clients.len(),
                if resources.keys_from_file {
                    "from state.key_file"
                } else {
                    "random per process"
                },
                config.oauth.authorize_path,
                config.upstream.authority,
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run(path: &Path, with_demo: bool) -> ExitCode {
    let (config, resources) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    telemetry::init(&config.log);
    if !resources.keys_from_file {
        tracing::warn!(
            "no state.key_file: sealing with a random key for this process only; flows do not survive a restart and cannot be shared between instances"
        );
    }
    let demo_as = if with_demo {
        let addr: SocketAddr = match config.upstream.authority.as_str().parse() {
            Ok(addr) => addr,
            Err(_) => {
                eprintln!(
                    "demo: upstream.url must be an IP address and port to start the demo AS on"
                );
                return ExitCode::from(2);
            }
        };
        let headers = SignalHeaders {
            request: config.representation.request_header.clone(),
            used: config.representation.used_header.clone(),
            birthdate: config.representation.birthdate_header.clone(),
        };
        match demo::start(addr, headers) {
            Ok(demo_as) => Some(demo_as),
            Err(e) => {
                eprintln!("demo: cannot start the demo AS on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let proxy_addr = config.listen.addr;
    let running = match server::start(config, resources) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("cannot listen on {proxy_addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %running.addr(), "medmij-vert-proxy listening");
    if let Some(admin) = running.admin_addr() {
        tracing::info!(addr = %admin, "admin listener: /live /ready /metrics");
    }
    if let Some(demo_as) = &demo_as {
        print_demo(running.addr(), demo_as.addr(), running.admin_addr());
    }
    wait_for_signal(|| {
        tracing::info!("SIGHUP: reloading the client list, state keys and TLS certificate");
        running.reload();
    });
    tracing::info!("shutting down: finishing requests in flight");
    running.shutdown();
    if let Some(demo_as) = demo_as {
        demo_as.shutdown();
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Blocks until SIGINT or SIGTERM; calls `reload` on every SIGHUP.
fn wait_for_signal(reload: impl Fn()) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for signal handling");
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = term.recv() => break,
                    _ = hup.recv() => reload(),
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &reload;
            let _ = tokio::signal::ctrl_c().await;
        }
    });
}

fn print_demo(proxy: SocketAddr, upstream: SocketAddr, admin: Option<SocketAddr>) {
    let metrics = match admin {
        Some(admin) => {
            format!("curl -s http://{admin}/metrics | grep '^medmij_vert_decisions_total'")
        }
        None => "# (set admin.addr in the config to see them)".to_owned(),
    };
    println!(
        r#"
medmij-vert-proxy demo
  proxy    http://{proxy}   (this is where the PGO sends the browser)
  demo AS  http://{upstream}   (a legacy AS that knows nothing of representation)

Paste these lines into another shell. Each flow asks the proxy to authorize, logs in at the
demo AS (through the proxy) and prints the status and Location the browser would get:
302 with code and your own state = released; 403 or 302 with error = not released.

P=http://{proxy}
A="$P/oauth2/authorize?response_type=code&client_id=pgo.example.nl&redirect_uri=https%3A%2F%2Fpgo.example.nl%2Fcallback&state=abc123"
login() {{ curl -s "$1" | grep -o '/oauth2/login/[A-Za-z0-9_-]*' | head -n1; }}
show() {{ curl -s -w '\n%{{http_code}} %{{redirect_url}}\n' "$@" | awk '/<h1>/{{t=$0; gsub(/.*<h1>|<\/h1>.*/,"",t)}} END{{print $0 (t ? "  (page: " t ")" : "")}}'; }}

# 1. For yourself: released
show -d as=self "$P$(login "$A&scope=48")"
# 2. On behalf of Piet, born 1 Sept 1970: released (ext.vert.authint.202)
show -d as=piet "$P$(login "$A&scope=48%20onbehalfof&MedMij_geboortedatum=19700901")"
# 3. On behalf of child Sanne (onbehalfofchild): released
show -d as=sanne "$P$(login "$A&scope=48%20onbehalfofchild&MedMij_geboortedatum=20200315")"
# 4. Vert 1: representation asked, logged in as yourself: 403 page, code withheld
show -d as=self "$P$(login "$A&scope=48%20onbehalfof&MedMij_geboortedatum=19700901")"
# 5. Vert 2: not asked, logged in on behalf of Piet: 403 page, code withheld
show -d as=piet "$P$(login "$A&scope=48")"
# 6. Vert 3: birth date missing: error redirect, nothing sent upstream
show "$A&scope=48%20onbehalfof"
# 7. Vert 4: birth date differs from Piet's: 403 page linking back with access_denied
show -d as=piet "$P$(login "$A&scope=48%20onbehalfof&MedMij_geboortedatum=19700902")"
# 8. 1a: unknown client: 400 page, no redirect
show "$P/oauth2/authorize?response_type=code&client_id=evil.example&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=abc123"
# 9. The AS forgets the signal: fail closed, 502 page, code withheld
show -d as=piet -d signal=omit "$P$(login "$A&scope=48%20onbehalfof&MedMij_geboortedatum=19700901")"
# 10. The Persoon cancels: the AS's error redirect passes, with your own state
show -d as=deny "$P$(login "$A&scope=48")"
# 11. The AS respells the redirect_uri (PGO.EXAMPLE.NL/./%63allback): released at your spelling
show -d as=self -d respell=1 "$P$(login "$A&scope=48")"
# 12. What the operations team sees: every decision above, counted (admin listener)
{metrics}

Stop with Ctrl-C.
"#
    );
}

// The proxy allocates a few small buffers per request (hyper's header maps and read buffers);
// mimalloc's thread-local free lists serve a thread-per-worker server with about 5 % fewer
// instructions per request than glibc's malloc (callgrind, bench/instructions.sh); its 2.x line
// (feature `v2`) 1.3 % fewer again than 3.x, whose aligned path the Rust binding always takes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
