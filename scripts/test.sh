#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, API docs, doctests, the conformance
# files on the must-pass list, and unit, integration and property tests. The S3 tests run against a real S3-compatible server (moto)
# that this script starts on 127.0.0.1 and stops on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import moto.server' 2>/dev/null; then
  echo "moto is missing: pip install 'moto[server]' (or run .ci/run, which installs it)" >&2
  exit 1
fi

mkdir -p target
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.2
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "moto did not start" >&2; cat target/moto.log >&2; exit 1; }

export LSM_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export AWS_ENDPOINT_URL="$LSM_TEST_S3_ENDPOINT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo test --workspace --doc
# The conformance files on the must-pass list, each against a freshly started node.
cargo build -p node-bin
scripts/conformance.sh
cargo nextest run --workspace --no-fail-fast
