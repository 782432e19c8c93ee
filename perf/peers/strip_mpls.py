#!/usr/bin/env python3
"""strip_mpls.py IN.pcap OUT.pcap

Removes the MPLS label stack from every Ethernet frame of a pcap and makes
the frame IPv4 again (EtherType 0x0800), keeping everything else (MACs,
timestamps, the pcap header). meshplane's gateway sends its ESP tunnel
packets under an MPLS label; DPDK's ipsec-secgw takes plain IPv4/ESP, so this
turns gateway A's output into what ipsec-secgw's inbound side receives: the
same ESP packets, 4 bytes shorter per label.
"""

import struct
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: strip_mpls.py IN.pcap OUT.pcap")
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb", buffering=1 << 20) as f, open(dst, "wb", buffering=1 << 20) as o:
        head = f.read(24)
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            rec = struct.Struct("<IIII")
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            rec = struct.Struct(">IIII")
        else:
            sys.exit(f"strip_mpls.py: {src}: not a pcap file")
        o.write(head)
        n = 0
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            ts, tf, incl, orig = rec.unpack(h)
            frame = f.read(incl)
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
