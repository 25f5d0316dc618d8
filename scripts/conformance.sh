#!/usr/bin/env bash
# Runs sqllogictest files of the shared conformance suite against freshly started nodes, one
# node per file, and prints "N passed, M failed". Fails when a file on the must-pass list
# (conformance/must-pass.txt) fails.
#
#   scripts/conformance.sh              # the must-pass list
#   scripts/conformance.sh --all        # every .slt file of the suite (report only)
#   scripts/conformance.sh FILE...      # given files, relative to the suite
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
suite="${CONFORMANCE_DIR:-$root/../shared/conformance}"
must_pass="$root/conformance/must-pass.txt"
node="${NODE_BIN:-$root/target/debug/node-bin}"

command -v sqllogictest >/dev/null || { echo "sqllogictest is missing: cargo install sqllogictest-bin --locked" >&2; exit 1; }
[ -d "$suite" ] || { echo "conformance suite not found at $suite" >&2; exit 1; }
[ -x "$node" ] || cargo build -p node-bin --quiet

if [ "${1:-}" = "--all" ]; then
  mapfile -t files < <(cd "$suite" && find e2e_test -name '*.slt' -o -name '*.slt.part' | sort)
elif [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(grep -v '^\s*\(#\|$\)' "$must_pass")
fi

work="$(mktemp -d)"
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0; failed=0; failed_required=()
for file in "${files[@]}"; do
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  rm -rf "$work/data"
  "$node" --data-dir "$work/data" --listen "127.0.0.1:$port" --barrier-interval-ms 100 > "$work/node.log" 2>&1 &
  node_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  # sqllogictest takes a missing file as an empty pattern and succeeds.
  if [ -f "$suite/$file" ] && (cd "$suite" && timeout 300 sqllogictest -h 127.0.0.1 -p "$port" -d dev -u root "$file" > "$work/out.log" 2>&1); then
    passed=$((passed + 1))
    echo "PASS $file"
  else
    failed=$((failed + 1))
    echo "FAIL $file"
    if grep -qxF "$file" "$must_pass"; then
      failed_required+=("$file")
      sed -n '1,40p' "$work/out.log" | sed 's/^/    /'
    fi
  fi
  kill "$node_pid" 2>/dev/null || true
  wait "$node_pid" 2>/dev/null || true
  node_pid=""
done

echo "conformance: $passed passed, $failed failed"
if [ ${#failed_required[@]} -gt 0 ]; then
  echo "must-pass files that failed: ${failed_required[*]}" >&2
  exit 1
fi
