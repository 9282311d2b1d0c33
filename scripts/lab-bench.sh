#!/usr/bin/env bash
# The lab benchmark (root): the direct path with the firewall open against the tunnel of each
# runner, plain and aes-256-gcm, side by side: iperf3 UDP (1200-byte datagrams) received rate and
# loss at 100, 200, 400 and 800 Mbit/s offered (median of 3 runs), UDP echo and ping round trips
# p50/p99, and the tunnel's CPU (client + server process time from /proc) in seconds per GB
# carried.
# Each --busy-poll MICROS and --qdisc-bypass[=BOOL] adds a row: the first runner, plain, with that
# option (the default bypasses the qdisc of the lab's veth devices, which queue nothing:
# --qdisc-bypass=false shows what the qdisc layer costs);
# each --threads N adds one with the server running N engines (the others run the default, one
# per core).
# A benchmark, not a test: it prints figures and the targets met or missed, and exits 0 when it
# could measure. It takes about a minute per row; other work on the machine skews every figure,
# CPU seconds per GB least.
#
# --latency-only measures the round trips alone (a few seconds per row), e.g. to repeat them:
# where the scheduler wakes each process moves them by a third from one run to the next.
#
# Usage: sudo scripts/lab-bench.sh [--runner sync|async]... [--busy-poll MICROS]...
#        [--qdisc-bypass[=BOOL]]... [--threads N]... [--latency-only]
#        (default: both runners, no extra rows)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "lab-bench.sh: run it as root: the lab creates network namespaces and firewall rules" >&2
    exit 2
fi
scripts/demo.sh --deps-only
cargo build --release --quiet -p ikago-lab -p ikago-runner-sync -p ikago-runner-async
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/release"
IKAGO_LAB_BIN_DIR="$bin" "$bin/ikago-lab" bench "$@"
