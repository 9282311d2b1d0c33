#!/usr/bin/env bash
# Fuzz smoke test, called by CI: builds every cargo-fuzz target (`cargo fuzz list`) and runs each
# for a bounded time with nightly (FUZZ_SECONDS, default 20), as many at once as there are CPUs
# (FUZZ_JOBS), each fuzzer a single process on one CPU. Where nightly is missing it replays
# the checked-in corpus and crash artifacts with stable and `--sanitizer none`; where cargo-fuzz
# cannot be had either, it runs the plain test that replays them
# (`cargo test -p ikago-replay --test fuzz_corpus`). New inputs found go to a scratch folder, not
# into fuzz/corpus (scripts/fuzz-long.sh merges them); a crash writes its input to
# fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${FUZZ_SECONDS:-20}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked || true
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz-smoke: no cargo-fuzz; replaying the corpora with the plain test"
    cd "$root" && exec cargo test -p ikago-replay --test fuzz_corpus
fi

cd "$root/fuzz"
mapfile -t targets < <(cargo fuzz list)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

if rustup run nightly rustc --version >/dev/null 2>&1; then
    cargo +nightly fuzz build
    jobs="${FUZZ_JOBS:-$(nproc)}"
    for t in "${targets[@]}"; do
        # a free CPU first
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
            wait -n || true
        done
        mkdir -p "$scratch/$t" "artifacts/$t"
        echo "fuzz-smoke: $t for ${seconds}s"
        (
            code=0
            cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- -max_total_time="$seconds" \
                -print_final_stats=1 >"$scratch/$t.log" 2>&1 || code=$?
            echo "$code" >"$scratch/$t.code"
        ) &
    done
    wait
    failed=0
    for t in "${targets[@]}"; do
        if [ "$(cat "$scratch/$t.code" 2>/dev/null)" != 0 ]; then
            tail -n 60 "$scratch/$t.log"
            echo "fuzz-smoke: $t failed; the input is in fuzz/artifacts/$t/"
            failed=1
            continue
        fi
        echo "fuzz-smoke: $t"
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$scratch/$t.log" || true
    done
    [ "$failed" = 0 ] || exit 1
else
    echo "fuzz-smoke: no nightly; replaying the corpora with stable --sanitizer none"
    for t in "${targets[@]}"; do
        dirs=("corpus/$t")
        [ -d "artifacts/$t" ] && [ -n "$(ls -A "artifacts/$t")" ] && dirs+=("artifacts/$t")
        cargo fuzz run --sanitizer none "$t" "${dirs[@]}" -- -runs=0
    done
fi
echo "fuzz-smoke: all targets passed"
