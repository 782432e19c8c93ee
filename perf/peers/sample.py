#!/usr/bin/env python3
"""Measures a running DPDK application's forwarding rate per on-CPU second.

Frames: the transmit counter (`opackets`) of one ethdev port, read from the
application's own DPDK telemetry socket (`/ethdev/stats,PORT`, the same
counter `dpdk-telemetry.py` shows). The port is found by its device name
(`/ethdev/info,N` -> `name`), so the application's port numbering does not
matter.

CPU: the polling thread's time on a CPU, in nanoseconds, from
/proc/PID/task/TID/schedstat (first field, the scheduler's
`sum_exec_runtime`), which keeps counting only while the thread runs: a
thread that is preempted by a neighbour is not charged for it. The process
total (every thread) is recorded beside it.

Two ways to choose the window:

  --warmup S --window S   steady state: once frames flow, wait S seconds,
                          then count over the next S wall seconds;
  --frames N              a finite capture of N frames: count from the
                          sample where 10 % of them were sent to the one
                          where 90 % were (--from/--to change the shares).

--until N only waits until N frames were sent (the harness's output checks).

Prints one JSON object on stdout.
"""

import argparse
import glob
import json
import os
import socket
import sys
import time


def die(msg):
    print(f"sample.py: {msg}", file=sys.stderr)
    sys.exit(1)


class Telemetry:
    def __init__(self, path, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.connect(path)
                break
            except OSError as e:
                last = e
                s.close()
                if time.monotonic() > deadline:
                    die(f"no DPDK telemetry at {path} after {timeout:.0f} s ({last})")
                time.sleep(0.05)
        self.s = s
        hello = json.loads(s.recv(16384).decode())
        self.max_len = int(hello.get("max_output_len", 16384))

    def query(self, cmd):
        self.s.send(cmd.encode())
        reply = self.s.recv(self.max_len)
        if not reply:
            raise EOFError("telemetry socket closed")
        return json.loads(reply.decode())[cmd.split(",")[0]]

    def port_by_name(self, name):
        for p in self.query("/ethdev/list"):
            info = self.query(f"/ethdev/info,{p}")
            if info and info.get("name") == name:
                return p
        die(f"no ethdev named {name} in {self.query('/ethdev/list')}")


def thread_cpu_ns(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        return int(f.read().split()[0])


def process_cpu_ns(pid):
    total = 0
    for d in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(d) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return total


def find_thread(pid, name, timeout):
    """TID of the thread whose comm is `name`; `main` is the process itself."""
    if name == "main":
        return pid
    deadline = time.monotonic() + timeout
    while True:
        for d in glob.glob(f"/proc/{pid}/task/*"):
            try:
                with open(f"{d}/comm") as f:
                    if f.read().strip() == name:
                        return int(os.path.basename(d))
            except OSError:
                pass
        if time.monotonic() > deadline:
            names = []
            for d in glob.glob(f"/proc/{pid}/task/*/comm"):
                try:
                    names.append(open(d).read().strip())
                except OSError:
                    pass
            die(f"pid {pid} has no thread named {name} (threads: {', '.join(names)})")
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--thread", required=True, help="comm of the polling thread, or 'main'")
    ap.add_argument("--telemetry", required=True, help="path of dpdk_telemetry.v2")
    ap.add_argument("--tx-dev", required=True, help="device name of the transmit port (net_null0)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--window", type=float, default=2.0)
    ap.add_argument("--frames", type=int, help="finite capture: count between --from and --to of it")
    ap.add_argument("--from", dest="lo", type=float, default=0.10)
    ap.add_argument("--to", dest="hi", type=float, default=0.90)
    ap.add_argument("--interval", type=float, default=0.005, help="sampling period in --frames mode (s)")
    ap.add_argument("--timeout", type=float, default=60.0, help="start-up and stall limit (s)")
    ap.add_argument("--until", type=int, help="only wait until this many frames were sent")
    a = ap.parse_args()

    tel = Telemetry(a.telemetry, a.timeout)
    port = tel.port_by_name(a.tx_dev)
    tid = find_thread(a.pid, a.thread, a.timeout)

    def sample():
        tx = tel.query(f"/ethdev/stats,{port}")["opackets"]
        return {
            "t": time.monotonic(),
            "cpu": thread_cpu_ns(a.pid, tid),
            "proc": process_cpu_ns(a.pid),
            "tx": tx,
        }

    # Wait for the first frames.
    deadline = time.monotonic() + a.timeout
    while sample()["tx"] == 0:
        if time.monotonic() > deadline:
            die(f"{a.tx_dev} sent nothing within {a.timeout:.0f} s")
        time.sleep(0.01)

    if a.until is not None:
        last, since = -1, time.monotonic()
        while True:
            tx = sample()["tx"]
            if tx >= a.until:
                print(json.dumps({"tx": tx}))
                return
            if tx != last:
                last, since = tx, time.monotonic()
            elif time.monotonic() - since > 2.0:
                die(f"{a.tx_dev} stopped at {tx} of {a.until} frames")
            time.sleep(0.02)

    if a.frames is None:
        time.sleep(a.warmup)
        s0 = sample()
        time.sleep(a.window)
        s1 = sample()
    else:
        lo, hi = a.lo * a.frames, a.hi * a.frames
        s0 = None
        last = sample()
        stalled_since = last["t"]
        while True:
            s = sample()
            if s0 is None and s["tx"] >= lo:
                s0 = s
            if s["tx"] >= hi:
                s1 = s
                break
            if s["tx"] != last["tx"]:
                stalled_since = s["t"]
            elif s["t"] - stalled_since > 2.0:
                die(
                    f"{a.tx_dev} stopped at {s['tx']} of {a.frames} frames "
                    f"(wanted {hi:.0f}): the application dropped or lost the rest"
                )
            if s["t"] > deadline + a.timeout * 10:
                die("the capture took too long")
            last = s
            time.sleep(a.interval)

    frames = s1["tx"] - s0["tx"]
    cpu = (s1["cpu"] - s0["cpu"]) / 1e9
    proc = (s1["proc"] - s0["proc"]) / 1e9
    wall = s1["t"] - s0["t"]
    if frames <= 0 or cpu <= 0:
        die(f"nothing measured: {frames} frames in {cpu:.3f} CPU s")
    print(
        json.dumps(
            {
                "frames": frames,
                "cpu_s": round(cpu, 6),
                "process_cpu_s": round(proc, 6),
                "wall_s": round(wall, 6),
                "mpps_per_cpu": frames / cpu / 1e6,
                "mpps_wall": frames / wall / 1e6,
                "cpu_share": cpu / wall,
                "tx_dev": a.tx_dev,
                "thread": a.thread,
            }
        )
    )


if __name__ == "__main__":
    main()
