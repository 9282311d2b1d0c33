#!/usr/bin/env bash
# The demo: on a Debian/Ubuntu machine, as root, installs what is missing, builds, starts the lab
# (network namespaces on 198.18.0.0/15 only), runs an IkaGo server and client, and shows a LAN
# host's DNS, UDP and ping crossing a firewall that blocks them directly. Prints the figures,
# then tears everything down.
#
# Usage: sudo scripts/demo.sh [--runner sync|async]   (default: async)
#        sudo scripts/demo.sh --deps-only              (install the lab's packages and stop)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: run it as root: the lab creates network namespaces and firewall rules" >&2
    exit 2
fi

# command -> Debian package
packages=(ip:iproute2 iptables:iptables nft:nftables ethtool:ethtool iperf3:iperf3 socat:socat
    dnsmasq:dnsmasq-base ping:iputils-ping sysctl:procps cc:gcc pkg-config:pkg-config)
missing=()
for pair in "${packages[@]}"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
dpkg -s libpcap-dev >/dev/null 2>&1 || missing+=(libpcap-dev)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ "${1:-}" = "--deps-only" ] && exit 0

if ! command -v cargo >/dev/null 2>&1; then
    echo "demo.sh: needs a Rust toolchain (1.93 or newer) with cargo on PATH" >&2
    exit 2
fi
echo "== building (release)"
cargo build --release --quiet -p ikago-lab -p ikago-runner-sync -p ikago-runner-async
# where cargo put them: CARGO_TARGET_DIR or a cargo config may move the target directory
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$target_dir" ]; then
    echo "demo.sh: cargo metadata did not name the target directory" >&2
    exit 2
fi
bin_dir="$target_dir/release"
runner=(--runner async)
[ "$#" -gt 0 ] && runner=("$@")
IKAGO_LAB_BIN_DIR="$bin_dir" "$bin_dir/ikago-lab" demo "${runner[@]}"
