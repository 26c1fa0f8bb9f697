#!/usr/bin/env bash
# Installs everything the differential readers need; idempotent and quick when
# nothing changed. Debian packages only when missing; the Python venv
# (target/venv-differential) and node_modules only when missing or their pin files
# changed; Go and Java builds go to target/ and are redone only when stale.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TARGET=$(cd "$HERE/../.." && pwd)/target
mkdir -p "$TARGET"

# --- Debian packages --------------------------------------------------------------
need=()
for pkg in php-cli ruby ruby-rack ruby-webrick golang-go libtomcat10-java; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
command -v javac >/dev/null || need+=(default-jdk-headless)
command -v npm >/dev/null || need+=(nodejs npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  echo "install.sh: apt-get install ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# --- Python (Django, Werkzeug, Starlette + uvicorn/h11) -----------------------------
VENV=$TARGET/venv-differential
if ! cmp -s "$HERE/python/requirements.txt" "$VENV/.installed-requirements.txt" 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/python/requirements.txt" >&2
  cp "$HERE/python/requirements.txt" "$VENV/.installed-requirements.txt"
fi

# --- Node (Express 5, Koa) ----------------------------------------------------------
NODE=$HERE/node
if ! cmp -s "$NODE/package-lock.json" "$NODE/node_modules/.installed-package-lock.json" 2>/dev/null; then
  (cd "$NODE" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$NODE/package-lock.json" "$NODE/node_modules/.installed-package-lock.json"
fi

# --- Go (stdlib only; GOPATH/GOCACHE kept under target/) ---------------------------
GOBIN_OUT=$TARGET/differential-go/reader
if [[ ! -x $GOBIN_OUT || $HERE/go/main.go -nt $GOBIN_OUT ]]; then
  (cd "$HERE/go" && GOPATH=$TARGET/go-path GOCACHE=$TARGET/go-cache GO111MODULE=off GOFLAGS= \
    go build -o "$GOBIN_OUT" main.go)
fi

# --- Java (embedded Tomcat from /usr/share/java) ------------------------------------
CLASSES=$TARGET/differential-java
TOMCAT_CP=$(printf '/usr/share/java/tomcat10-%s.jar:' catalina coyote util util-scan juli api servlet-api jaspic-api annotations-api jni)
if [[ ! -f $CLASSES/Reader.class || $HERE/java/Reader.java -nt $CLASSES/Reader.class ]]; then
  mkdir -p "$CLASSES"
  javac -nowarn -d "$CLASSES" -cp "$TOMCAT_CP" "$HERE/java/Reader.java" 2>&1 | grep -v '^Note:' >&2 || true
  [[ -f $CLASSES/Reader.class ]]
fi
echo "install.sh: differential readers ready" >&2
