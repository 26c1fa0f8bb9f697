#!/usr/bin/env bash
# Every test, on a fresh machine: installs what the tests need (Debian's redis-server, which the
# Redis tests start on free ports of 127.0.0.1; chromium and chromium-driver, which the browser
# test drives; prometheus for promtool, which checks the alerting rules; the reference ASs'
# packages from PyPI and npm; podman and runc for the container check), then runs the checks CI
# runs.
# `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The real readers of the differential harness (issue 27): PHP, Tomcat, Django, Werkzeug,
# Starlette, Express, Koa, Rack and Go, from Debian, PyPI and npm; the smoke test shows each
# reads as its framework does, then `cargo test` runs the harness against them
# (tests/it/differential.rs: 28,000 generated requests, about a minute).
tests/differential/install.sh
python3 tests/differential/smoke.py

# The alerting rules (deploy/monitoring/): valid, their unit tests pass, and each alert's tests
# fail when its expression is broken (promtool; about 10 s).
deploy/monitoring/check.sh

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
# The fuzz targets call the rules' own API: checked so that they keep compiling with it.
cargo check --locked --quiet --manifest-path fuzz/Cargo.toml
# The benchmark's ablations (bench/ablation.sh) must apply to this tree.
for patch in bench/ablations/*.patch; do git apply --check "$patch"; done
# The instruction budget (issue 31): user-space instructions per request on both paths, under
# callgrind, held to bench/budget.toml (a release build: about 4 minutes from cold on 2 cores,
# seconds when target/release is warm; then about 25 s of counting).
bench/budget.sh 3

# The reference integrations (issue 18), with the real packages: a stock Django OAuth Toolkit
# (PyPI; driven by authlib) and a stock oidc-provider (npm; driven by openid-client), each
# behind the proxy binary just built, on ports of 127.0.0.1 the kernel picks.
cargo build --locked
[ -x target/venv-django/bin/python ] || python3 -m venv target/venv-django
target/venv-django/bin/pip install -q --disable-pip-version-check -r examples/as/django/requirements.txt
target/venv-django/bin/python examples/as/django/test_flows.py target/debug/medmij-vert-proxy
(cd examples/as/oidc-provider && npm ci --no-audit --no-fund --loglevel=error)
node examples/as/oidc-provider/test.js target/debug/medmij-vert-proxy

# The image's runtime stage in a real container engine (podman and runc, installed when
# missing), around the binary just built (issue 22).
deploy/container-test.sh target/debug/medmij-vert-proxy
