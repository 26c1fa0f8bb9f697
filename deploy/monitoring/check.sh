#!/usr/bin/env bash
# The alerting rules, checked with promtool (Debian's `prometheus` package; ./test.sh installs
# it): the file is valid (`check rules`), every rule's unit tests pass (`test rules`), and each
# rule's tests notice when its expression is broken: a copy of the rules per alert, with that
# alert's expression replaced by one that never fires, must fail its tests (so no alert is left
# without a test that it fires). About 7 s on two cores.
set -euo pipefail
cd "$(dirname "$0")"

promtool check rules alerts.yml
promtool test rules alerts_test.yml

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
alerts=$(sed -n 's/^ *- alert: *//p' alerts.yml)
for alert in $alerts; do
  mkdir "$work/$alert"
  cp alerts_test.yml "$work/$alert/"
  # The alert's `expr:` (and the block indented under it) becomes one that never fires.
  awk -v alert="$alert" '
    /^ *- alert: / { mine = ($3 == alert) }
    skipping && (match($0, /^ */) && RLENGTH > indent || /^ *$/) { next }
    { skipping = 0 }
    mine && /^ *expr:/ {
      match($0, /^ */); indent = RLENGTH
      printf "%*sexpr: vector(0) > 1\n", indent, ""
      skipping = 1; next
    }
    { print }
  ' alerts.yml > "$work/$alert/alerts.yml"
  if ! grep -q 'expr: vector(0) > 1' "$work/$alert/alerts.yml"; then
    echo "check.sh: could not break $alert's expression" >&2
    exit 1
  fi
done
# Two promtool runs side by side (CI has two cores), each over half the copies; promtool prints
# each file's name, then SUCCESS or FAILED.
(cd "$work" && printf '%s\n' */alerts_test.yml | xargs -P 2 -n $(( ($(echo "$alerts" | wc -l) + 1) / 2 )) \
  sh -c 'promtool test rules "$@" > "out.$$" 2>&1; true' sh)
results=$(cat "$work"/out.*)
for alert in $alerts; do
  verdict=$(printf '%s\n' "$results" | grep -A1 "Unit Testing:  $alert/alerts_test.yml" | tail -n1 | tr -d ' ')
  if [ "$verdict" != "FAILED:" ]; then
    echo "check.sh: the tests of $alert pass with an expression that never fires ($verdict)" >&2
    exit 1
  fi
done
echo "check.sh: $(echo "$alerts" | wc -l) alerts; each one's tests fail when its expression is broken"
