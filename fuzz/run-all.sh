#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 10 million) outside CI
# and prints, per target, the executions, the time, the rate and whether it
# found anything. Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable
# toolchain builds the sanitizer flags with RUSTC_BOOTSTRAP=1.
#
#   fuzz/run-all.sh                 # every target, 10 M executions each
#   RUNS=100000 fuzz/run-all.sh differential stages
#   SANITIZER=address fuzz/run-all.sh parse_headers
#
# SANITIZER (default none) is cargo-fuzz's -s: the code fuzzed is safe
# Rust above the bindings, so AddressSanitizer finds little the panics and
# assertions do not, and it costs 2 to 10 times the executions.
set -euo pipefail
cd "$(dirname "$0")"
runs=${RUNS:-10000000}
san=${SANITIZER:-none}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(parse_headers stages differential parse_config read_capture control_packets link_protocols ike_messages)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O -s "$san" >/dev/null
echo "build of $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- .. || echo ' with local changes'), sanitizer $san"
mkdir -p corpus/parse_config corpus/read_capture
cp ../dataplane/configs/*.toml corpus/parse_config/
printf '%-16s %12s %9s %10s %s\n' target executions seconds "exec/s" result
for t in "${targets[@]}"; do
    log=$(mktemp)
    start=$(date +%s.%N)
    # The binary built above, run directly (as cargo fuzz run does), so
    # that every target runs the same build even if the sources change.
    mkdir -p "corpus/$t" "artifacts/$t"
    if "target/x86_64-unknown-linux-gnu/release/$t" -artifact_prefix="artifacts/$t/" \
        -runs="$runs" -print_final_stats=1 "corpus/$t" >"$log" 2>&1; then
        result="no finding"
    else
        result="FINDING: see fuzz/artifacts/$t/ and $log"
    fi
    end=$(date +%s.%N)
    done_runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    rate=$(awk -v n="$done_runs" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? n / s : 0) }')
    printf '%-16s %12s %9.0f %10s %s\n' "$t" "$done_runs" "$secs" "$rate" "$result"
    [[ $result == "no finding" ]] && rm -f "$log"
done
