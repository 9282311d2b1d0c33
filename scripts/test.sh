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

echo "== cargo test"
cargo test --workspace --locked

if [ "${FUZZ_SECONDS:-15}" != "0" ]; then
    echo "== fuzz smoke"
    FUZZ_SECONDS="${FUZZ_SECONDS:-15}" scripts/fuzz-smoke.sh
fi
