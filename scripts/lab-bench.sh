#!/usr/bin/env bash
# The lab benchmark (root): the direct path with the firewall open against the tunnel of each
# runner, plain and aes-256-gcm, side by side: median ping and the latency the tunnel adds, and
# iperf3 UDP (1200-byte datagrams) received rate and loss at 200 and 400 Mbit/s offered.
# A benchmark, not a test: it prints figures and the targets met or missed, and exits 0 when it
# could measure.
#
# Usage: sudo scripts/lab-bench.sh [--runner sync|async]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "lab-bench.sh: run it as root: the lab creates network namespaces and firewall rules" >&2
    exit 2
fi
scripts/demo.sh --deps-only
cargo build --release --quiet -p ikago-lab -p ikago-runner-sync -p ikago-runner-async
IKAGO_LAB_BIN_DIR="$PWD/target/release" target/release/ikago-lab bench "$@"
