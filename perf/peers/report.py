#!/usr/bin/env python3
"""report.py RAW.jsonl META.json [--json OUT.json]

Turns the peer benchmark's measurements (one JSON object per application
run: round, size, app, frames, cpu_s, ...) into two Markdown tables: the
rate of every application per size (median over the rounds) and the
ratios, each taken within a round and then the median kept, with their
range over the rounds.
"""

import json
import statistics
import sys

APPS = [
    # key, role, application
    ("ipsec-secgw-out", "ingress", "ipsec-secgw, outbound"),
    ("meshplane-gw-a", "ingress", "meshplane run gw-a"),
    ("ipsec-secgw-in", "egress (capture read once)", "ipsec-secgw, inbound"),
    ("meshplane-gw-b", "egress (capture read once)", "meshplane run gw-b"),
    ("testpmd-io-egress", "egress (capture read once)", "testpmd io (the capture's I/O)"),
    ("testpmd-io", "transit", "testpmd io"),
    ("testpmd-mac", "transit", "testpmd mac"),
    ("meshplane-sat-1", "transit", "meshplane run sat-1"),
    ("bench-io", "transit", "meshplane-bench I/O ceiling"),
    ("bench-transit", "transit", "meshplane-bench satellite-transit"),
]

RATIOS = [
    # key, heading, numerator, denominator[, I/O reference]
    ("ingress", "ingress: gw-a / ipsec-secgw", "meshplane-gw-a", "ipsec-secgw-out"),
    ("egress", "egress: gw-b / ipsec-secgw", "meshplane-gw-b", "ipsec-secgw-in"),
    # The egress pair reads its capture from a file, which costs both the
    # same time per frame (testpmd io on that capture): the ratio of the
    # time per frame each spends beyond it.
    ("egress-net", "egress, beyond the capture's I/O", "meshplane-gw-b", "ipsec-secgw-in", "testpmd-io-egress"),
    ("transit-mac", "transit: sat-1 / testpmd mac", "meshplane-sat-1", "testpmd-mac"),
    ("transit-io", "transit: sat-1 / testpmd io", "meshplane-sat-1", "testpmd-io"),
    ("harness-io", "I/O: meshplane-bench / testpmd io", "bench-io", "testpmd-io"),
]


def size_key(s):
    return (0, int(s)) if s.isdigit() else (1, s)


def main():
    args = sys.argv[1:]
    out_json = None
    if "--json" in args:
        i = args.index("--json")
        out_json = args[i + 1]
        del args[i : i + 2]
    if len(args) != 2:
        sys.exit("usage: report.py RAW.jsonl META.json [--json OUT.json]")
    with open(args[0]) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    with open(args[1]) as f:
        meta = json.load(f)

    by = {}  # size -> app -> round -> record
    for r in runs:
        by.setdefault(r["size"], {}).setdefault(r["app"], {})[r["round"]] = r
    sizes = sorted(by, key=size_key)
    result = {"meta": meta, "sizes": {}}

    for size in sizes:
        apps = by[size]
        entry = {"frames": meta["frames"].get(size, {}), "apps": {}, "ratios": {}}
        for key, *_ in APPS:
            rounds = apps.get(key)
            if not rounds:
                continue
            rates = [rounds[k]["mpps_per_cpu"] for k in sorted(rounds)]
            entry["apps"][key] = {
                "mpps_per_cpu_median": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "rounds": [rounds[k] for k in sorted(rounds)],
            }
        for key, _, num, den, *io in RATIOS:
            a, b = apps.get(num, {}), apps.get(den, {})
            c = apps.get(io[0], {}) if io else None
            common = sorted(set(a) & set(b) & (set(c) if io else set(a)))
            if not common:
                continue
            if io:
                # (ns per frame of den - I/O's) / (ns per frame of num - I/O's)
                vals = [
                    (1 / b[k]["mpps_per_cpu"] - 1 / c[k]["mpps_per_cpu"])
                    / (1 / a[k]["mpps_per_cpu"] - 1 / c[k]["mpps_per_cpu"])
                    for k in common
                ]
            else:
                vals = [a[k]["mpps_per_cpu"] / b[k]["mpps_per_cpu"] for k in common]
            entry["ratios"][key] = {
                "median": statistics.median(vals),
                "min": min(vals),
                "max": max(vals),
                "per_round": vals,
            }
        result["sizes"][size] = entry

    def label(size):
        fr = meta["frames"].get(size, {})
        return f"{size}" if not fr else f"{size} ({fr['lan']:.0f}/{fr['transit']:.0f} B)"

    n = meta["rounds"]
    print(
        f"Mpps per core: frames sent per on-CPU second of the polling thread, median of "
        f"{n} round{'s' if n != 1 else ''}. Columns: LAN frame size (mean bytes on the wire "
        f"with FCS: LAN / backbone)."
    )
    print()
    print("| role | application | " + " | ".join(label(s) for s in sizes) + " |")
    print("|---|---|" + "---:|" * len(sizes))
    for key, role, head in APPS:
        cells = [result["sizes"][s]["apps"].get(key) for s in sizes]
        if all(c is None for c in cells):
            continue
        cells = ["-" if c is None else f"{c['mpps_per_cpu_median']:.2f}" for c in cells]
        print(f"| {role} | {head} | " + " | ".join(cells) + " |")
    print()
    print("Ratios, each taken within a round: median (range over the rounds).")
    print()
    print("| ratio | " + " | ".join(label(s) for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for key, head, *_ in RATIOS:
        cells = [result["sizes"][s]["ratios"].get(key) for s in sizes]
        if all(c is None for c in cells):
            continue
        cells = [
            "-" if r is None else f"**{r['median']:.2f}** ({r['min']:.2f}-{r['max']:.2f})"
            for r in cells
        ]
        print(f"| {head} | " + " | ".join(cells) + " |")

    if out_json:
        with open(out_json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
