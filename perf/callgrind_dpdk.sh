#!/usr/bin/env bash
# Instructions per frame of dpdk_transit's loops, from callgrind.
#
# Runs each loop (`dpdk_transit --only LOOP`) under valgrind for 1 s and
# for 3 s and divides the difference in instructions by the difference in
# frames, so EAL start-up and tear-down cancel out. Built for x86-64-v3
# (valgrind 3.19 cannot execute AVX-512), without hugepages.
#
#   perf/callgrind_dpdk.sh null bare transit worker
#   perf/callgrind_dpdk.sh ring bare touch min-swap transit worker
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:?usage: $0 ring|null LOOP...}
shift
[ $# -gt 0 ] || set -- bare transit worker
export CARGO_TARGET_DIR=target/callgrind
RUSTFLAGS="-C target-cpu=x86-64-v3 -C target-feature=+aes,+pclmulqdq" \
    cargo build --release -q -p meshplane-perf --bin dpdk_transit
bin=$CARGO_TARGET_DIR/release/dpdk_transit
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for loop in "$@"; do
    for s in 1 3; do
        valgrind --tool=callgrind --callgrind-out-file="$out/$s.cg" \
            "$bin" --backend "$backend" --only "$loop" --seconds "$s" --no-huge \
            >"$out/$s.txt" 2>"$out/$s.log" || { cat "$out/$s.log" >&2; exit 1; }
    done
    ir() { awk '/^(summary|totals):/ {print $2; exit}' "$out/$1.cg"; }
    frames() { grep -oE '\(([0-9]+) frames\)' "$out/$1.txt" | tr -dc 0-9; }
    awk -v b="$backend" -v l="$loop" -v i1="$(ir 1)" -v i3="$(ir 3)" \
        -v f1="$(frames 1)" -v f3="$(frames 3)" \
        'BEGIN { printf "%s %s: %.1f instructions/frame\n", b, l, (i3 - i1) / (f3 - f1) }'
done
