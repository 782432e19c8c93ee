#!/usr/bin/env bash
# meshplane against DPDK's own reference applications: the same virtual
# devices, the same frames, the same single core.
#
#   perf/peers/run.sh [--rounds 7] [--sizes 64,1420,imix] [--warmup 1]
#                     [--window 2] [--core N] [--egress-frames N]
#                     [--apps LIST] [--json FILE] [--no-build] [--keep]
#
# For every frame size, interleaved over the rounds, each application runs
# alone on core N, receiving from `net_pcap0,rx_pcap=IN,infinite_rx=1` and
# sending into `net_null0,no-rx=1`:
#
#   ingress  DPDK ipsec-secgw, outbound (built here from the dpdk-doc
#            examples), against `meshplane run` of gateway A; IN = the LAN
#            frames of `meshplane gen` (4096 frames, 16 flows, to 10.2/16)
#   transit  dpdk-testpmd in io and mac mode against `meshplane run` of
#            satellite sat-1; IN = gateway A's output for the same frames
#            (MPLS + ESP, 122 B for a 64 B LAN frame)
#   egress   ipsec-secgw, inbound, against `meshplane run` of gateway B,
#            on a long capture read once (see "egress" below)
#   I/O      meshplane-bench --backend dpdk-pcap (transit frames): the
#            harness's own RX->TX ceiling beside testpmd io
#
# The rate is frames sent (the sink's `opackets`, from the application's
# DPDK telemetry socket) per on-CPU second of the polling thread
# (/proc/PID/task/TID/schedstat), over --window seconds after --warmup
# seconds of traffic; perf/peers/sample.py takes it. Ratios are taken
# within a round; the tables give medians and ranges.
#
# --apps runs a subset of the applications (names as the rounds print them,
# e.g. --apps ipsec-secgw-out,meshplane-gw-a for the ingress pair alone).
#
# Egress: meshplane's inbound SA keeps an RFC 4303 anti-replay window, which
# drops every frame of net_pcap's endless replay from the second pass on,
# and meshplane has no switch to turn it off. So the egress pair reads a
# capture once (net_pcap without infinite_rx) of --egress-frames frames with
# fresh sequence numbers, made by gateway A (and sat-1 for meshplane), and is
# measured between the frames 10 % and 90 % of the way through it;
# ipsec-secgw runs with the same 2048-packet window (-w 2048). Reading a
# capture from a file costs more per frame than infinite_rx's copy from
# memory, so testpmd io on the same capture is measured too (its ceiling).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/perf/peers
PROG=perf/peers/run.sh

ROUNDS=7
SIZES=64,1420,imix
WARMUP=1
WINDOW=2
CORE=
EGRESS_FRAMES=
JSON=
APPS_WANTED=
BUILD=1
KEEP=0

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
say() { printf '%s\n' "$*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=${2:?}; shift 2 ;;
        --sizes) SIZES=${2:?}; shift 2 ;;
        --warmup) WARMUP=${2:?}; shift 2 ;;
        --window) WINDOW=${2:?}; shift 2 ;;
        --core) CORE=${2:?}; shift 2 ;;
        --egress-frames) EGRESS_FRAMES=${2:?}; shift 2 ;;
        --json) JSON=${2:?}; shift 2 ;;
        --apps) APPS_WANTED=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) say "$PROG: unknown argument $1"; usage 1 ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive integer, not $ROUNDS"
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--warmup wants seconds, not $WARMUP"
[[ $WINDOW =~ ^[0-9]*\.?[0-9]+$ ]] || die "--window wants seconds, not $WINDOW"
[ -z "$EGRESS_FRAMES" ] || [[ $EGRESS_FRAMES =~ ^[1-9][0-9]{4,}$ ]] \
    || die "--egress-frames wants at least 10000, not $EGRESS_FRAMES"
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
for s in "${SIZE_LIST[@]}"; do
    [[ $s =~ ^([0-9]+|imix)$ ]] || die "--sizes: $s is not a frame size (64, 1420, imix, ...)"
done

# The applications a round runs, in this order (--apps: a subset).
APPS=(ipsec-secgw-out meshplane-gw-a ipsec-secgw-in meshplane-gw-b testpmd-io-egress
      testpmd-io testpmd-mac meshplane-sat-1 bench)
if [ -n "$APPS_WANTED" ]; then # --apps: a subset, in the order above
    IFS=, read -r -a wanted <<<"$APPS_WANTED"
    for w in "${wanted[@]}"; do
        printf '%s\n' "${APPS[@]}" | grep -qx -- "$w" || die "--apps: no application $w (${APPS[*]})"
    done
    kept=()
    for a in "${APPS[@]}"; do
        printf '%s\n' "${wanted[@]}" | grep -qx -- "$a" && kept+=("$a")
    done
    APPS=("${kept[@]}")
fi

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" -eq 0 ] || die "run as root (DPDK needs hugepages and /var/run/dpdk)"
for c in python3 pkg-config make cc patch taskset dpdk-testpmd; do
    command -v "$c" >/dev/null 2>&1 || die "$c not found (scripts/setup installs it)"
done
pkg-config --exists libdpdk || die "no DPDK for pkg-config (libdpdk-dev; scripts/setup installs it)"
EXAMPLES=/usr/share/dpdk/examples
[ -f $EXAMPLES/ipsec-secgw/Makefile ] \
    || die "no $EXAMPLES/ipsec-secgw (package dpdk-doc; scripts/setup installs it)"
python3 -c 'import tomllib' 2>/dev/null || die "python3 >= 3.11 needed (tomllib)"
DPDK_LIBDIR=$(pkg-config --variable=libdir libdpdk)
ls "$DPDK_LIBDIR"/librte_crypto_ipsec_mb.so* >/dev/null 2>&1 \
    || die "DPDK has no crypto_ipsec_mb driver (librte-crypto-ipsec-mb23, intel-ipsec-mb)"
free_hp=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
[ "${free_hp:-0}" -ge 128 ] \
    || die "only ${free_hp:-0} free 2 MiB hugepages, 128 needed (scripts/setup reserves 512)"

mapfile -t CPUS < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)), sep="\n")')
[ ${#CPUS[@]} -ge 2 ] || die "needs two CPUs: one for the application, one for the rest"
[ -n "$CORE" ] || CORE=${CPUS[-1]}
printf '%s\n' "${CPUS[@]}" | grep -qx "$CORE" || die "--core $CORE is not among this process's CPUs (${CPUS[*]})"
for c in "${CPUS[@]}"; do [ "$c" = "$CORE" ] || { OTHER=$c; break; }; done

[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
PEERS=$TARGET/peers
MESHPLANE=$TARGET/release/meshplane
BENCH=$TARGET/release/meshplane-bench
CONFIGS=$ROOT/dataplane/configs
DST=10.2.0.0/16
OUT=$PEERS/run
mkdir -p "$PEERS" "$OUT"
rm -rf "${OUT:?}"/*
mkdir -p "$OUT/logs" "$OUT/cfg"
RAW=$OUT/raw.jsonl
: >"$RAW"

# ---------------------------------------------------------------- clean-up
TAG=peers$$
APP_PID=
APP_PREFIX=
stop_app() {
    [ -n "$APP_PID" ] || return 0
    kill -TERM "$APP_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$APP_PID" 2>/dev/null || true
    wait "$APP_PID" 2>/dev/null || true
    APP_PID=
    if [ -n "$APP_PREFIX" ]; then
        rm -rf "/var/run/dpdk/$APP_PREFIX"
        rm -f /dev/hugepages/"$APP_PREFIX"map_* 2>/dev/null || true
        APP_PREFIX=
    fi
}
cleanup() {
    stop_app
    rm -rf /var/run/dpdk/"$TAG"-*
    rm -f /dev/hugepages/"$TAG"-* 2>/dev/null || true
    [ "$KEEP" = 1 ] || rm -f "$PEERS"/frames/*/long-*.pcap
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- builds
if [ "$BUILD" = 1 ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"
    say "building meshplane and meshplane-bench (cargo build --release) ..."
    (cd "$ROOT" && cargo build --release -q -p meshplane -p meshplane-perf) >"$OUT/logs/cargo.log" 2>&1 \
        || { tail -20 "$OUT/logs/cargo.log" >&2; die "cargo build failed (log: $OUT/logs/cargo.log)"; }
fi
[ -x "$MESHPLANE" ] || die "no $MESHPLANE (run without --no-build)"
[ -x "$BENCH" ] || die "no $BENCH (run without --no-build)"

# ipsec-secgw from the dpdk-doc example sources, patched, built with the
# system DPDK's pkg-config flags, for this CPU as meshplane is
# (.cargo/config.toml: target-cpu=native).
SECGW_SRC=$PEERS/ipsec-secgw-src
SECGW=$SECGW_SRC/ipsec-secgw/build/ipsec-secgw
SECGW_CFLAGS="-O3 -g $(pkg-config --cflags libdpdk | sed 's/-march=[^ ]*//g') -march=native \
-DALLOW_EXPERIMENTAL_API -Wno-address-of-packed-member -I../common"
stamp="$(dpkg-query -W -f='${Version}' dpdk-doc 2>/dev/null || echo unknown) \
$(sha256sum "$HERE/ipsec-secgw-rx-offload.patch" | cut -c1-16) $SECGW_CFLAGS"
if [ ! -x "$SECGW" ] || [ "$(cat "$SECGW_SRC/stamp" 2>/dev/null)" != "$stamp" ]; then
    say "building ipsec-secgw from $EXAMPLES/ipsec-secgw into $SECGW_SRC ..."
    rm -rf "$SECGW_SRC"
    mkdir -p "$SECGW_SRC"
    cp -r $EXAMPLES/ipsec-secgw $EXAMPLES/common "$SECGW_SRC/"
    patch -s -p1 -d "$SECGW_SRC/ipsec-secgw" <"$HERE/ipsec-secgw-rx-offload.patch" \
        || die "the RX offload patch does not apply to this DPDK's ipsec-secgw"
    make -s -C "$SECGW_SRC/ipsec-secgw" CFLAGS="$SECGW_CFLAGS" >"$OUT/logs/ipsec-secgw-build.log" 2>&1 \
        || { tail -20 "$OUT/logs/ipsec-secgw-build.log" >&2; die "ipsec-secgw did not build"; }
    printf '%s' "$stamp" >"$SECGW_SRC/stamp"
fi

# ---------------------------------------------------------------- frames
egress_frames() {
    if [ -n "$EGRESS_FRAMES" ]; then echo "$EGRESS_FRAMES"; return; fi
    case $1 in
        64) echo 2000000 ;;
        1420) echo 600000 ;;
        *) echo 1000000 ;;
    esac
}
replay() { # NODE IN OUT
    "$MESHPLANE" replay --config "$CONFIGS/$1.toml" --pcap "$2" --out "$3" --io pcap \
        >>"$OUT/logs/frames.log" 2>&1 || { tail -5 "$OUT/logs/frames.log" >&2; die "meshplane replay through $1 failed"; }
}
for s in "${SIZE_LIST[@]}"; do
    d=$PEERS/frames/$s
    mkdir -p "$d"
    n=$(egress_frames "$s")
    say "frames, $s B: 4096 through gw-a, sat-1, gw-b; $n through gw-a and sat-1 for egress ..."
    "$MESHPLANE" gen --out "$d/lan.pcap" --count 4096 --size "$s" --flows 16 --dst $DST >/dev/null
    replay gw-a "$d/lan.pcap" "$d/gwa.pcap"     # transit input (sat-1 receives it)
    replay sat-1 "$d/gwa.pcap" "$d/sat.pcap"
    replay gw-b "$d/sat.pcap" "$d/gwb.pcap"     # gw-b's output: the inbound check's reference
    python3 "$HERE/strip_mpls.py" "$d/gwa.pcap" "$d/esp.pcap"
    "$MESHPLANE" gen --out "$d/long-lan.pcap" --count "$n" --size "$s" --flows 16 --dst $DST >/dev/null
    replay gw-a "$d/long-lan.pcap" "$d/long-gwa.pcap"
    rm -f "$d/long-lan.pcap"
    replay sat-1 "$d/long-gwa.pcap" "$d/long-sat.pcap"  # meshplane gw-b's egress input
    python3 "$HERE/strip_mpls.py" "$d/long-gwa.pcap" "$d/long-esp.pcap"  # ipsec-secgw's
    rm -f "$d/long-gwa.pcap"
done
python3 - "$PEERS/frames" "${SIZE_LIST[@]}" >"$OUT/frames.json" <<'EOF'
import json, struct, sys
def mean_wire(path):
    with open(path, "rb") as f:
        d = f.read()
    e = "<" if d[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, n, tot = 24, 0, 0
    while off + 16 <= len(d):
        incl, orig = struct.unpack_from(e + "II", d, off + 8)
        n, tot, off = n + 1, tot + orig + 4, off + 16 + incl
    return tot / n
base = sys.argv[1]
print(json.dumps({s: {"lan": mean_wire(f"{base}/{s}/lan.pcap"),
                      "transit": mean_wire(f"{base}/{s}/gwa.pcap"),
                      "esp": mean_wire(f"{base}/{s}/esp.pcap")} for s in sys.argv[2:]}))
EOF

# ---------------------------------------------------------------- applications
# Each launcher starts one application in the background on $CORE with the
# given input and leaves APP_PID, APP_PREFIX, APP_THREAD and APP_LOG set.
EAL_COMMON="-n 1 --in-memory --no-pci"
launch() { # LOG PREFIX THREAD CMD...
    APP_LOG=$1 APP_PREFIX=$2 APP_THREAD=$3
    shift 3
    "$@" </dev/null >"$APP_LOG" 2>&1 &
    APP_PID=$!
}
secgw() { # NAME DIR(out|in) RXDEV [TXDEV] [SECGW ARGS...]
    local name=$1 dir=$2 rxdev=$3 txdev=${4:-net_null0,no-rx=1}
    shift 4 || shift $#
    local flags=(-p 0x3 -l --config "(0,0,$CORE)" -f "$OUT/cfg/secgw-$dir.cfg" --mtu 1600 -s 16384)
    [ "$dir" = in ] && flags+=(-u 0x1 -w 2048)
    [ -n "${SECGW_EXTRA[$dir]}" ] && flags+=(${SECGW_EXTRA[$dir]})
    launch "$OUT/logs/$name.log" "$TAG-secgw" main \
        "$SECGW" -l "$CORE" $EAL_COMMON --file-prefix "$TAG-secgw" \
        --vdev "$rxdev" --vdev "$txdev" --vdev crypto_aesni_gcm0 -- "${flags[@]}" "$@"
}
# --no-flush-rx: testpmd otherwise reads and drops whatever its RX queues
# give for up to a second before it forwards, which for a capture read once
# is a good part of the capture. --stats-period: no prompt on stdin.
testpmd() { # NAME MODE RXDEV
    launch "$OUT/logs/$1.log" "$TAG-testpmd" rte-worker-1 \
        dpdk-testpmd -l "$OTHER,$CORE" $EAL_COMMON --file-prefix "$TAG-testpmd" \
        --vdev "$3" --vdev net_null0,no-rx=1 -- \
        --forward-mode="$2" --nb-cores=1 --rxq=1 --txq=1 --burst=32 \
        --total-num-mbufs=16384 --no-flush-rx --stats-period 3600
}
meshplane_node() { # NAME NODE RXPORT TXPORT RXDEV
    local cfg=$OUT/cfg/$1.toml
    awk -v core="$CORE" -v rx="$3" -v rxdev="$5" -v tx="$4" -v txdev=net_null0,no-rx=1 \
        -v buffers=16383 -v prefix="$TAG-$2" -f "$HERE/node-config.awk" "$CONFIGS/$2.toml" >"$cfg" \
        || die "could not derive a run configuration from $CONFIGS/$2.toml"
    launch "$OUT/logs/$1.log" "$TAG-$2" worker0 \
        "$MESHPLANE" run --config "$cfg" --quiet --no-socket
}
telemetry() { echo "/var/run/dpdk/$APP_PREFIX/dpdk_telemetry.v2"; }
sample() { # [--tx-dev DEV] sample.py arguments...
    local tx=net_null0
    [ "$1" != --tx-dev ] || { tx=$2; shift 2; }
    taskset -c "$OTHER" python3 "$HERE/sample.py" --pid "$APP_PID" --thread "$APP_THREAD" \
        --telemetry "$(telemetry)" --tx-dev "$tx" --timeout 30 "$@" 2>"$APP_LOG.sample" \
        || { kill -0 "$APP_PID" 2>/dev/null || say "(the application exited)"
             tail -15 "$APP_LOG" >&2; cat "$APP_LOG.sample" >&2
             die "measuring failed (log: $APP_LOG)"; }
}
meshplane_drops() { # after stop_app: the final report's drops, 0 expected
    local line
    line=$(grep -m1 -E '^node [^:]+: [0-9]+ packets in' "$APP_LOG" || true)
    [ -n "$line" ] || { tail -15 "$APP_LOG" >&2; die "meshplane printed no final report (log: $APP_LOG)"; }
    grep -q 'without hugepages' "$APP_LOG" \
        && die "meshplane ran without hugepages (another process took them): rates not comparable"
    local dropped
    dropped=$(sed -E 's/.* ([0-9]+) dropped.*/\1/' <<<"$line")
    [ "$dropped" = 0 ] || { grep -E '^  drop ' "$APP_LOG" >&2 || true; die "meshplane dropped $dropped frames: $line"; }
}

# ipsec-secgw configurations, from the gateways' own TOML files.
declare -A SECGW_EXTRA
SECGW_EXTRA[out]=$(python3 "$HERE/secgw_conf.py" out "$CONFIGS/gw-a.toml" $DST "$OUT/cfg/secgw-out.cfg")
SECGW_EXTRA[in]=$(python3 "$HERE/secgw_conf.py" in "$CONFIGS/gw-b.toml" $DST "$OUT/cfg/secgw-in.cfg")

# ---------------------------------------------------------------- checks
# ipsec-secgw does the same work on the same input: its output, written by
# net_pcap, checked frame by frame against meshplane's (perf/peers/check.py).
for s in "${SIZE_LIST[@]}"; do
    d=$PEERS/frames/$s
    say "checking ipsec-secgw against meshplane, $s B ..."
    secgw "check-out-$s" out "net_pcap0,rx_pcap=$d/lan.pcap" "net_pcap1,tx_pcap=$OUT/check-out-$s.pcap"
    sample --tx-dev net_pcap1 --until 4096 >/dev/null
    stop_app
    msg=$(python3 "$HERE/check.py" out "$OUT/check-out-$s.pcap" "$d/esp.pcap") \
        || die "ipsec-secgw's outbound output differs from meshplane gw-a's ($s B)"
    say "  outbound: $msg"
    secgw "check-in-$s" in "net_pcap0,rx_pcap=$d/esp.pcap" "net_pcap1,tx_pcap=$OUT/check-in-$s.pcap"
    sample --tx-dev net_pcap1 --until 4096 >/dev/null
    stop_app
    msg=$(python3 "$HERE/check.py" in "$OUT/check-in-$s.pcap" "$d/gwb.pcap") \
        || die "ipsec-secgw's inbound output differs from meshplane gw-b's ($s B)"
    say "  inbound:  $msg"
done

# ---------------------------------------------------------------- rounds
record() { # ROUND SIZE APP JSON
    python3 -c 'import json,sys; d=json.loads(sys.argv[4]); d.update(round=int(sys.argv[1]), size=sys.argv[2], app=sys.argv[3]); print(json.dumps(d))' \
        "$@" >>"$RAW"
}
show() { # APP JSON
    python3 - "$@" >&2 <<'EOF'
import json, sys
d = json.loads(sys.argv[2])
print("  %-22s %8.3f Mpps/core  (%d frames in %.3f CPU s, %.0f %% of the wall time)"
      % (sys.argv[1], d["mpps_per_cpu"], d["frames"], d["cpu_s"], 100 * d["cpu_share"]))
EOF
}
INF=infinite_rx=1
runs_total=$((ROUNDS * ${#SIZE_LIST[@]} * ${#APPS[@]}))
run_no=0
started=$(date +%s)
for round in $(seq "$ROUNDS"); do
    order=("${APPS[@]}")
    if [ $((round % 2)) = 0 ]; then # every other round backwards: no app always first
        order=()
        for ((i = ${#APPS[@]} - 1; i >= 0; i--)); do order+=("${APPS[$i]}"); done
    fi
    for s in "${SIZE_LIST[@]}"; do
        d=$PEERS/frames/$s
        n=$(egress_frames "$s")
        say "round $round/$ROUNDS, $s B ($(( $(date +%s) - started )) s, $run_no/$runs_total runs done)"
        # The captures read once come from the page cache, not the disk.
        cat "$d/long-esp.pcap" "$d/long-sat.pcap" >/dev/null
        for app in "${order[@]}"; do
            run_no=$((run_no + 1))
            case $app in
                ipsec-secgw-out)
                    secgw "$app-$s" out "net_pcap0,rx_pcap=$d/lan.pcap,$INF"
                    r=$(sample --warmup "$WARMUP" --window "$WINDOW"); stop_app ;;
                ipsec-secgw-in)
                    secgw "$app-$s" in "net_pcap0,rx_pcap=$d/long-esp.pcap"
                    r=$(sample --frames "$n"); stop_app ;;
                meshplane-gw-a)
                    meshplane_node "$app-$s" gw-a lan0 up0 "net_pcap0,rx_pcap=$d/lan.pcap,$INF"
                    r=$(sample --warmup "$WARMUP" --window "$WINDOW"); stop_app; meshplane_drops ;;
                meshplane-gw-b)
                    meshplane_node "$app-$s" gw-b up0 lan0 "net_pcap0,rx_pcap=$d/long-sat.pcap"
                    r=$(sample --frames "$n"); stop_app; meshplane_drops ;;
                meshplane-sat-1)
                    meshplane_node "$app-$s" sat-1 gsl-a gsl-b "net_pcap0,rx_pcap=$d/gwa.pcap,$INF"
                    r=$(sample --warmup "$WARMUP" --window "$WINDOW"); stop_app; meshplane_drops ;;
                testpmd-io-egress)
                    testpmd "$app-$s" io "net_pcap0,rx_pcap=$d/long-sat.pcap"
                    r=$(sample --frames "$n"); stop_app ;;
                testpmd-io|testpmd-mac)
                    testpmd "$app-$s" "${app#testpmd-}" "net_pcap0,rx_pcap=$d/gwa.pcap,$INF"
                    r=$(sample --warmup "$WARMUP" --window "$WINDOW"); stop_app ;;
                bench)
                    # The harness's own loop: its I/O ceiling (RX burst -> TX
                    # burst, nothing else) and its transit figure, same frames.
                    "$BENCH" --backend dpdk-pcap --scenario transit \
                        --pcap "$d/lan.pcap" --rounds 1 --warmup "$WARMUP" --duration "$WINDOW" \
                        --core "$CORE" --quiet --json "$OUT/bench-$s-$round.json" \
                        >"$OUT/logs/bench-$s.log" 2>&1 \
                        || { tail -15 "$OUT/logs/bench-$s.log" >&2; die "meshplane-bench failed"; }
                    for part in io_ceiling:bench-io pipeline:bench-transit; do
                        r=$(python3 -c 'import json,sys; x=json.load(open(sys.argv[1]))["results"][0][sys.argv[2]]; print(json.dumps({"frames": x["tx"], "cpu_s": x["cpu_secs"], "wall_s": x["secs"], "mpps_per_cpu": x["mpps_on_cpu"], "cpu_share": x["cpu_secs"] / x["secs"]}))' \
                            "$OUT/bench-$s-$round.json" "${part%%:*}")
                        record "$round" "$s" "${part#*:}" "$r"
                        show "${part#*:}" "$r"
                    done
                    continue ;;
            esac
            record "$round" "$s" "$app" "$r"
            show "$app" "$r"
        done
    done
done

# ---------------------------------------------------------------- report
python3 - "$OUT/meta.json" "$OUT/frames.json" <<EOF
import json, os, platform, sys, time
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "host": {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
             "load_avg": os.getloadavg()},
    "core": $CORE, "rounds": $ROUNDS, "warmup_s": $WARMUP, "window_s": $WINDOW,
    "egress_frames": {s: int(n) for s, n in [$(for s in "${SIZE_LIST[@]}"; do printf '("%s", %s),' "$s" "$(egress_frames "$s")"; done)]},
    "frames": json.load(open(sys.argv[2])),
    "dpdk": "$(pkg-config --modversion libdpdk)",
    "meshplane": "$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)",
}, open(sys.argv[1], "w"), indent=1)
EOF
say ""
python3 "$HERE/report.py" "$RAW" "$OUT/meta.json" ${JSON:+--json "$JSON"}
[ -z "$JSON" ] || say "JSON: $JSON"
say "logs, configurations and raw measurements: $OUT"
