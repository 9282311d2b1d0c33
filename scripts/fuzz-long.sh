#!/usr/bin/env bash
# Long fuzzing campaign: runs every cargo-fuzz target (`cargo fuzz list`) for SECONDS each with
# nightly, merges the new inputs that add coverage into the checked-in corpus (fuzz/corpus/<target>,
# libFuzzer -merge=1: the files there stay, only inputs with new features are added), and prints a
# table per target: executions, coverage (cov and ft of libFuzzer's last status line), corpus size
# before and after, crashes.
#
# Usage: scripts/fuzz-long.sh [SECONDS] [TARGET...]
#   SECONDS per target: the argument, else $FUZZ_LONG_SECONDS, else 600 (10 minutes)
#   TARGET: only these targets (default: all)
#
# A crash (or leak, timeout, out-of-memory) writes its input to fuzz/artifacts/<target>/, which
# the stable test replays (`cargo test -p ikago-replay --test fuzz_corpus`): commit it with the fix
# so that it stays a regression input. The target then goes on fuzzing for the rest of its time
# (at most MAX_CRASHES crashes per target). The script exits 1 when anything crashed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-${FUZZ_LONG_SECONDS:-600}}"
[ $# -gt 0 ] && shift
max_crashes=3

if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz-long: SECONDS must be a positive whole number, not '$seconds'" >&2
    exit 2
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz-long: needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz-long: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
mapfile -t all < <(cargo +nightly fuzz list)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi
for t in "${targets[@]}"; do
    if ! printf '%s\n' "${all[@]}" | grep -qx -- "$t"; then
        echo "fuzz-long: no target '$t' (targets: ${all[*]})" >&2
        exit 2
    fi
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# Number of files in a directory (0 when missing)
count() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }
# The file names of a directory, sorted
listing() { find "$1" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null | sort; }

echo "fuzz-long: ${#targets[@]} target(s), ${seconds}s each; building"
for t in "${targets[@]}"; do
    cargo +nightly fuzz build "$t" >"$scratch/build.log" 2>&1 || {
        tail -n 40 "$scratch/build.log"
        exit 1
    }
done

rows=()
findings=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "$scratch/$t"
    before=$(count "corpus/$t")
    listing "artifacts/$t" >"$scratch/$t.artifacts-before"
    log="$scratch/$t.log"
    : >"$log"
    start=$(date +%s)
    execs=0
    crashes=0
    runs=0
    while :; do
        left=$((seconds - ($(date +%s) - start)))
        [ "$left" -gt 0 ] || break
        runs=$((runs + 1))
        echo "fuzz-long: $t for ${left}s (run $runs)"
        status=0
        cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
            -max_total_time="$left" -print_final_stats=1 >"$log.run" 2>&1 || status=$?
        cat "$log.run" >>"$log"
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log.run" | tail -n 1)
        execs=$((execs + ${n:-0}))
        [ "$status" -eq 0 ] && break
        new=$(comm -13 "$scratch/$t.artifacts-before" <(listing "artifacts/$t") | wc -l)
        if [ "$new" -eq "$crashes" ]; then
            tail -n 40 "$log.run"
            echo "fuzz-long: $t failed without a crash input (exit $status)" >&2
            exit 1
        fi
        crashes=$new
        grep -E '^(==[0-9]+==|SUMMARY|thread .* panicked)' "$log.run" | head -n 5 || true
        if [ "$crashes" -ge "$max_crashes" ]; then
            echo "fuzz-long: $t crashed $crashes times; moving on"
            break
        fi
    done
    # cov and ft of the last status line
    status_line=$(grep -E '^#[0-9]+.* cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status_line")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status_line")
    echo "fuzz-long: $t: merging $(count "$scratch/$t") new input(s) into corpus/$t"
    cargo +nightly fuzz run "$t" "corpus/$t" "$scratch/$t" -- -merge=1 >"$scratch/$t.merge" 2>&1 || {
        tail -n 40 "$scratch/$t.merge"
        echo "fuzz-long: merging $t failed" >&2
        exit 1
    }
    after=$(count "corpus/$t")
    rows+=("$(printf '%-14s %6s %12s %6s %7s %8s %8s %8s' "$t" "$(($(date +%s) - start))" "$execs" \
        "${cov:-?}" "${ft:-?}" "$before" "$after" "$crashes")")
    while read -r f; do
        findings+=("fuzz/artifacts/$t/$f")
    done < <(comm -13 "$scratch/$t.artifacts-before" <(listing "artifacts/$t"))
done

echo
printf '%-14s %6s %12s %6s %7s %8s %8s %8s\n' target secs executions cov ft corpus corpus crashes
printf '%-14s %6s %12s %6s %7s %8s %8s %8s\n' "" "" "" "" "" before after ""
printf '%s\n' "${rows[@]}"
if [ ${#findings[@]} -gt 0 ]; then
    echo
    echo "fuzz-long: new inputs in fuzz/artifacts (replayed by cargo test -p ikago-replay --test"
    echo "fuzz_corpus; commit them with the fix):"
    printf '  %s\n' "${findings[@]}"
    exit 1
fi
echo "fuzz-long: no crashes"
