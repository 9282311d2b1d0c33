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

# the lab's runners, built before the lab's watchdogs start counting, in one cargo invocation
# with the rest of what scripts/package.sh packs (ikago-replay, ikago-dist), so that each shared
# crate is built once with one set of features, and a package built from target/lab builds
# nothing again; the lab runs these binaries (IKAGO_LAB_BIN_DIR) instead of building each runner
# on its own
echo "== release binaries for the lab and the package"
cargo build --release --locked --target-dir target/lab \
    -p ikago-runner-sync -p ikago-runner-async -p ikago-replay -p ikago-dist
export IKAGO_LAB_BIN_DIR="$PWD/target/lab/release"

# two labs at once in each lab test binary: most lab tests wait (on timeouts, connections,
# services); those with throughput bounds build their lab alone (Lab::build_alone)
echo "== cargo test"
IKAGO_LAB_JOBS="${IKAGO_LAB_JOBS:-2}" cargo test --workspace --locked

if [ "${FUZZ_SECONDS:-15}" != "0" ]; then
    echo "== fuzz smoke"
    FUZZ_SECONDS="${FUZZ_SECONDS:-15}" scripts/fuzz-smoke.sh
fi
