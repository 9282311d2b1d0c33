#!/usr/bin/env bash
# Builds the Debian package: target/debian/ikago_VERSION-1_ARCH.deb with ikago-async, ikago-sync
# and ikago-replay in /usr/bin, their man pages and bash, zsh and fish completions, the systemd
# units ikago-server.service and ikago-client@.service, and example configs in /etc/ikago.
#
# Usage: scripts/package.sh            the binaries of the `dist` profile (fat LTO, one codegen
#                                      unit): for releases
#        PROFILE=release scripts/package.sh   the plain release profile, which builds faster
#
# Needs cargo-deb (`cargo install cargo-deb --locked`) and libpcap-dev. ikago-dist, built in the
# same cargo invocation as the binaries, generates the man pages and completions from the
# binaries' own command-line definitions. Built artifacts are reused, also from another target
# directory (CARGO_TARGET_DIR): a second run only repacks. The binaries are stripped of debug
# information.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${PROFILE:-dist}"
if ! command -v cargo-deb >/dev/null; then
    echo "package.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
    exit 2
fi
# where cargo puts its output: CARGO_TARGET_DIR or a cargo config may move the target directory
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$target_dir" ]; then
    echo "package.sh: cargo metadata did not name the target directory" >&2
    exit 2
fi

echo "== build the binaries and the generator (profile $profile)"
cargo build --locked --profile "$profile" \
    -p ikago-runner-async -p ikago-runner-sync -p ikago-replay -p ikago-dist

echo "== man pages and completions"
generated="$target_dir/$profile/generated"
rm -rf "$generated"
"$target_dir/$profile/ikago-dist" "$generated" >/dev/null
gzip -9n "$generated"/man/*.1

echo "== cargo deb"
cargo deb --locked --no-build --strip --profile "$profile" -p ikago-dist
