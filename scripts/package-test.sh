#!/usr/bin/env bash
# Installs the Debian package that scripts/package.sh built, checks it, and removes it (root).
# Checks: the binaries run; the man pages and completions are where man and the shells look;
# `systemd-analyze verify` passes on both units; the user ikago exists and can read /etc/ikago,
# which others cannot; the example server config stops with one line and exit code 2 until it
# has a password; `dpkg -r` leaves no file of the package but its configs, and `dpkg -P` none.
# Needs systemd (systemd-analyze) and man-db. Prints "package: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "package-test.sh: needs root (dpkg -i)" >&2
    exit 2
fi
if dpkg -s ikago >/dev/null 2>&1; then
    echo "package-test.sh: the package ikago is installed already; remove it first (dpkg -r ikago)" >&2
    exit 2
fi
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
deb=$(ls -t "$target_dir"/debian/ikago_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
    echo "package-test.sh: no package in $target_dir/debian: run scripts/package.sh" >&2
    exit 2
fi

passed=0
failed=0
check() { # NAME COMMAND...: runs the command, counts and reports the outcome
    local name="$1"
    shift
    local out
    if out=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "ok: $name"
    else
        failed=$((failed + 1))
        echo "FAILED: $name"
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
}

installed=no
cleanup() {
    if [ "$installed" = yes ]; then
        dpkg -P ikago >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

echo "== dpkg -i $deb"
dpkg -i "$deb"
installed=yes
files=$(dpkg -L ikago)
conffiles=$(dpkg-query -W -f='${Conffiles}\n' ikago | awk 'NF { print $1 }')

version=$(dpkg-query -W -f='${Version}' ikago)
check "ikago-async --version" sh -c "ikago-async --version | grep -qx 'ikago-async ${version%-*}'"
check "ikago-sync --version" sh -c "ikago-sync --version | grep -qx 'ikago-sync ${version%-*}'"
check "ikago-replay --version" ikago-replay --version
check "man -w ikago-async" sh -c 'man -w ikago-async | grep -q /usr/share/man/man1/ikago-async.1.gz'
check "man -w ikago-async-client" man -w ikago-async-client
check "completions" test -s /usr/share/bash-completion/completions/ikago-async \
    -a -s /usr/share/zsh/vendor-completions/_ikago-async \
    -a -s /usr/share/fish/vendor_completions.d/ikago-async.fish
# verify exits 0 on an unknown key or a bad value, which it only reports: any report fails
verify() {
    local out
    out=$(systemd-analyze verify "$1" 2>&1) || { echo "$out"; return 1; }
    [ -z "$out" ] || { echo "$out"; return 1; }
}
check "systemd-analyze verify ikago-server.service" \
    verify /usr/lib/systemd/system/ikago-server.service
check "systemd-analyze verify ikago-client@client.service" verify ikago-client@client.service
check "user ikago" sh -c 'getent passwd ikago | grep -q ":/usr/sbin/nologin$"'
check "/etc/ikago: root:ikago 750" sh -c 'test "$(stat -c %U:%G:%a /etc/ikago)" = root:ikago:750'
# the example config, read as the user the unit runs as: one line, exit code 2, until it has a
# password (the error comes before anything touches the network)
example_stops() {
    local out code=0
    out=$(setpriv --reuid=ikago --regid=ikago --init-groups \
        ikago-async server -c /etc/ikago/server.json 2>&1) || code=$?
    echo "exit $code: $out"
    [ "$code" = 2 ] && [ "$out" = "error: method aes-256-gcm needs a password (--password, IKAGO_PASSWORD or the config file's \"password\")" ]
}
check "the example config wants a password" example_stops

echo "== dpkg -r ikago"
dpkg -r ikago
left_over() {
    local f bad=0
    while IFS= read -r f; do
        if [ -e "$f" ] && [ ! -d "$f" ] && ! printf '%s\n' "$conffiles" | grep -qxF "$f"; then
            echo "left behind: $f"
            bad=1
        fi
    done <<<"$files"
    [ ! -e /usr/share/doc/ikago ] || { echo "left behind: /usr/share/doc/ikago"; bad=1; }
    return "$bad"
}
check "dpkg -r leaves only the configs" left_over
check "the configs stay" test -f /etc/ikago/server.json -a -f /etc/ikago/client.json

echo "== dpkg -P ikago"
dpkg -P ikago
installed=no
check "dpkg -P leaves nothing" sh -c '! test -e /etc/ikago && ! dpkg-statoverride --list /etc/ikago'

echo "package: $passed passed, $failed failed"
[ "$failed" = 0 ]
