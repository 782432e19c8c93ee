#!/usr/bin/env python3
"""check.py out|in PEER.pcap MESHPLANE.pcap

Checks that DPDK's ipsec-secgw did the same work as meshplane on the same
input, frame by frame, before anything is timed:

  out  PEER = ipsec-secgw's outbound output, MESHPLANE = gateway A's output
       without its MPLS label: every frame has the same length, outer
       addresses and protocol, ESP SPI, sequence number and IV (the
       ciphertexts differ only where the inner header does: meshplane
       decrements the TTL before encrypting, ipsec-secgw does not).
  in   PEER = ipsec-secgw's inbound output, MESHPLANE = gateway B's output:
       every inner packet has the same length, addresses, protocol and the
       same bytes from the transport header on (the TTL differs, as above).

Prints one line saying what matched; exits 1 at the first mismatch.
"""

import struct
import sys

from pcapio import record_struct, records


def frames(path):
    with open(path, "rb", buffering=1 << 20) as f:
        rec = record_struct(f.read(24), path, "check.py")
        return [frame for *_, frame in records(f, rec)]


def fail(i, what, a, b):
    sys.exit(f"check.py: frame {i + 1}: {what} differs: ipsec-secgw {a.hex()} meshplane {b.hex()}")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("out", "in"):
        sys.exit("usage: check.py out|in PEER.pcap MESHPLANE.pcap")
    mode, peer_path, ref_path = sys.argv[1:]
    peer, ref = frames(peer_path), frames(ref_path)
    if len(peer) != len(ref):
        sys.exit(f"check.py: ipsec-secgw sent {len(peer)} frames, meshplane {len(ref)}")
    for i, (p, r) in enumerate(zip(peer, ref)):
        if len(p) != len(r):
            sys.exit(f"check.py: frame {i + 1}: ipsec-secgw {len(p)} B, meshplane {len(r)} B")
        if p[12:14] != b"\x08\x00" or r[12:14] != b"\x08\x00":
            sys.exit(f"check.py: frame {i + 1}: not IPv4")
        ip = 14
        for what, lo, hi in (("IP protocol", 9, 10), ("IP addresses", 12, 20)):
            if p[ip + lo : ip + hi] != r[ip + lo : ip + hi]:
                fail(i, what, p[ip + lo : ip + hi], r[ip + lo : ip + hi])
        ihl = (r[ip] & 0x0F) * 4
        l4 = ip + ihl
        if mode == "out":
            if r[ip + 9] != 50:
                sys.exit(f"check.py: frame {i + 1}: meshplane's frame is not ESP")
            for what, lo, hi in (("ESP SPI", 0, 4), ("ESP sequence number", 4, 8), ("ESP IV", 8, 16)):
                if p[l4 + lo : l4 + hi] != r[l4 + lo : l4 + hi]:
                    fail(i, what, p[l4 + lo : l4 + hi], r[l4 + lo : l4 + hi])
        else:
            if p[l4:] != r[l4:]:
                fail(i, "inner packet after the IP header", p[l4 : l4 + 16], r[l4 : l4 + 16])
    if mode == "out":
        spi = struct.unpack("!I", ref[0][34:38])[0]
        print(
            f"{len(peer)} frames alike: length, outer addresses, ESP SPI {spi}, "
            f"sequence numbers and IVs"
        )
    else:
        print(f"{len(peer)} inner packets alike: length, addresses, transport header and payload")


if __name__ == "__main__":
    main()
