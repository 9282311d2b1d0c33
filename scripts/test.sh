#!/usr/bin/env bash
# The test command: formatting, lints, every test of the workspace (unit, property, simulation,
# replay, and, as root, the network-namespace lab), then a bounded fuzzing smoke run.
# Usage: scripts/test.sh            (FUZZ_SECONDS=N sets the fuzzing time per target; 0 skips it)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# the lab's runners, built before the lab's watchdogs start counting (the lab builds them the
# same way when they are missing, into a target directory of its own)
echo "== release runners for the lab"
for p in ikago-runner-sync ikago-runner-async; do
    cargo build --release --locked -p "$p" --target-dir target/lab
done

echo "== cargo test"
cargo test --workspace --locked

if [ "${FUZZ_SECONDS:-15}" != "0" ]; then
    echo "== fuzz smoke"
    FUZZ_SECONDS="${FUZZ_SECONDS:-15}" scripts/fuzz-smoke.sh
fi
