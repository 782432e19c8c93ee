#!/usr/bin/env bash
# Instructions per packet per stage and role, from callgrind.
#
# Builds `stage-count` for x86-64-v3 + AES-NI + PCLMULQDQ (valgrind 3.19
# cannot execute the AVX-512/VAES code a target-cpu=native build contains),
# runs PACKETS frames of each size through every stage of each role under
# `valgrind --tool=callgrind`, and divides each stage function's inclusive
# instruction count by the packet count.
#
#   PACKETS=3840 SIZES="64 1420 imix" perf/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${PACKETS:-3840} # a multiple of 32 (bursts) and 12 (one IMIX cycle)
sizes=${SIZES:-"64 1420"}
export CARGO_TARGET_DIR=target/callgrind
RUSTFLAGS="-C target-cpu=x86-64-v3 -C target-feature=+aes,+pclmulqdq" \
    cargo build --release -q -p meshplane-perf --no-default-features --bin stage-count
bin=$CARGO_TARGET_DIR/release/stage-count
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for size in $sizes; do
    echo "== $size B frames: instructions per packet (callgrind, $packets packets per role)"
    printf "%-18s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n" role dispatch lfib classify \
        encrypt decrypt deliver stages poll refill
    for role in gateway-ingress satellite-transit gateway-egress; do
        cg="$out/cg.$size.$role"
        valgrind --tool=callgrind --callgrind-out-file="$cg" \
            "$bin" --packets "$packets" --size "$size" --role "$role" >/dev/null 2>"$cg.log" ||
            { cat "$cg.log" >&2; exit 1; }
        callgrind_annotate --inclusive=yes "$cg" |
            awk -v n="$packets" -v role="$role" '
                match($0, /stage_count::[a-z_]+/) {
                    name = substr($0, RSTART + 13, RLENGTH - 13)
                    ir = $1; gsub(",", "", ir)
                    if (!(name in cost)) cost[name] = ir
                }
                END {
                    split("dispatch lfib classify encrypt decrypt deliver", st, " ")
                    printf "%-18s", role; sum = 0
                    for (i = 1; i <= 6; i++) { v = cost[st[i]] / n; sum += v; printf " %9.1f", v }
                    # refill runs twice per frame: before the stages, before the poll.
                    printf " %9.1f %9.1f %9.1f\n", sum, cost["poll"] / n, cost["refill"] / (2 * n)
                }'
    done
done
