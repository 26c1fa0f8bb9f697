#!/usr/bin/env bash
# Usage: tests/differential/start.sh NAME
#   NAME: php tomcat django werkzeug starlette express koa rack go
# Starts reader NAME on 127.0.0.1 (kernel-chosen port); it prints exactly one line
# `LISTENING <port>` on stdout when it accepts connections and runs until SIGTERM.
# Logs go to stderr. Run install.sh first. READER_AUTHORIZE_PATH / READER_TOKEN_PATH
# override the two routes (defaults /oauth2/authorize, /oauth2/token).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TARGET=$(cd "$HERE/../.." && pwd)/target
TOMCAT_CP=$(printf '/usr/share/java/tomcat10-%s.jar:' catalina coyote util util-scan juli api servlet-api jaspic-api annotations-api jni)

case "${1:-}" in
  php) exec python3 "$HERE/php/launch.py" ;;
  tomcat) exec java -cp "$TARGET/differential-java:$TOMCAT_CP" Reader ;;
  django|werkzeug|starlette) exec "$TARGET/venv-differential/bin/python" "$HERE/python/readers.py" "$1" ;;
  express|koa) exec node "$HERE/node/$1.js" ;;
  rack) exec ruby "$HERE/ruby/reader.rb" ;;
  go) exec "$TARGET/differential-go/reader" ;;
  *) echo "usage: $0 php|tomcat|django|werkzeug|starlette|express|koa|rack|go" >&2; exit 2 ;;
esac
