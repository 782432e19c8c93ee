#!/usr/bin/env python3
"""strip_mpls.py IN.pcap OUT.pcap

Removes the MPLS label stack from every Ethernet frame of a pcap and makes
the frame IPv4 again (EtherType 0x0800), keeping everything else (MACs,
timestamps, the pcap header). meshplane's gateway sends its ESP tunnel
packets under an MPLS label; DPDK's ipsec-secgw takes plain IPv4/ESP, so this
turns gateway A's output into what ipsec-secgw's inbound side receives: the
same ESP packets, 4 bytes shorter per label.
"""

import sys

from pcapio import record_struct, records


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: strip_mpls.py IN.pcap OUT.pcap")
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb", buffering=1 << 20) as f, open(dst, "wb", buffering=1 << 20) as o:
        head = f.read(24)
        rec = record_struct(head, src, "strip_mpls.py")
        o.write(head)
        n = 0
        for ts, tf, incl, orig, frame in records(f, rec):
            n += 1
            if len(frame) < 18 or frame[12:14] != b"\x88\x47":
                sys.exit(f"strip_mpls.py: {src}: frame {n} carries no MPLS label")
            p = 14
            while p + 4 <= len(frame):
                p += 4
                if frame[p - 2] & 1:  # bottom of stack
                    break
            cut = p - 14
            o.write(rec.pack(ts, tf, incl - cut, orig - cut))
            o.write(frame[:12])
            o.write(b"\x08\x00")
            o.write(frame[p:])
    if n == 0:
        sys.exit(f"strip_mpls.py: {src}: no frames")


if __name__ == "__main__":
    main()
