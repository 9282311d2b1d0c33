#!/usr/bin/env bash
# Records the replay regression captures of our own machines from the simulation (ikago-sim) into
# ikago-replay/tests/data/sim-*/{client,server}/ (capture.pcapng, expected.pcapng, scenario.json).
# Run it again after a deliberate change of the machines' behaviour, review the differences
# (`ikago-replay <role> capture.pcapng --expect expected.pcapng` shows them before), and commit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/ikago-replay/tests/data}"
rm -rf "$out"/sim-*
cargo run --manifest-path "$root/Cargo.toml" -p ikago-replay --example record_sim_captures -- "$out"
