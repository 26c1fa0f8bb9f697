#!/usr/bin/env bash
# The instruction budget CI holds (issue 31): counts user-space instructions per request on both
# paths with bench/instructions.sh (callgrind; the proxy only) and fails when a path exceeds its
# budget in bench/budget.toml by more than the file's margin, which covers callgrind's
# run-to-run spread. A path well under its budget is reported, never failed: lower the budget
# in a commit of its own.
#
#   bench/budget.sh [seconds]     (default 3; BIN=path counts that build instead of a release
#                                  build of this tree, as bench/instructions.sh does)
#
# Raising a budget is a reviewed change to bench/budget.toml with its reason in the commit.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-3}
BUDGET_FILE=bench/budget.toml

value() { # key: the number after `key =` in the budget file (underscores allowed)
  awk -F= -v k="$1" '$1 ~ "^[ \t]*"k"[ \t]*$" { gsub(/[ \t_]/, "", $2); sub(/#.*/, "", $2); print $2; exit }' "$BUDGET_FILE"
}
margin=$(value margin_percent)
pass_budget=$(value pass_through)
rule_budget=$(value rule_path)
for v in "$margin" "$pass_budget" "$rule_budget"; do
  [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "budget: $BUDGET_FILE lacks margin_percent, pass_through or rule_path" >&2; exit 2; }
done

out=$(COUNT_NGINX=0 bench/instructions.sh "$SECONDS_RUN")
echo "$out"
measured() { echo "$out" | awk -v p="$1" 'index($0, p) == 1 { for (i = 1; i <= NF; i++) if ($i == "instructions") print $(i-1) }'; }
pass=$(measured "pass-through medmij-vert-proxy")
rule=$(measured "rule path medmij-vert-proxy")
[ -n "$pass" ] && [ -n "$rule" ] || { echo "budget: no count from bench/instructions.sh" >&2; exit 2; }

status=0
check() { # name measured budget
  local limit
  limit=$(awk -v b="$3" -v m="$margin" 'BEGIN { printf "%d", b * (1 + m / 100) }')
  if [ "$2" -gt "$limit" ]; then
    printf 'budget: %-12s %6d instructions per request: OVER its budget %d + %s%% (%d)\n' "$1" "$2" "$3" "$margin" "$limit"
    status=1
  else
    printf 'budget: %-12s %6d instructions per request: within its budget %d + %s%% (%d)\n' "$1" "$2" "$3" "$margin" "$limit"
    local floor
    floor=$(awk -v b="$3" -v m="$margin" 'BEGIN { printf "%d", b * (1 - 2 * m / 100) }')
    [ "$2" -ge "$floor" ] || echo "budget: $1 is well under its budget: lower it in $BUDGET_FILE (a commit of its own)"
  fi
}
check pass-through "$pass" "$pass_budget"
check "rule path" "$rule" "$rule_budget"
[ "$status" = 0 ] || echo "budget: a path costs more than bench/budget.toml allows; find the cost (KEEP=dir bench/instructions.sh, callgrind_annotate) or raise the budget in a reviewed commit that says why" >&2
exit "$status"
