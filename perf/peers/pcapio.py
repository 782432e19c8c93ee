"""The classic pcap format as perf/peers' scripts read it: the file header
and the record header's byte order, and the records one by one."""

import struct
import sys


def record_struct(head, path, tool):
    """The record header layout (ts_sec, ts_frac, incl_len, orig_len) for a
    pcap whose 24-byte file header is `head`; exits naming `tool` and `path`
    when it is not a pcap (microsecond or nanosecond, either byte order)."""
    magic = head[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return struct.Struct("<IIII")
    if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return struct.Struct(">IIII")
    sys.exit(f"{tool}: {path}: not a pcap file")


def records(f, rec):
    """(ts_sec, ts_frac, incl_len, orig_len, frame) for every whole record
    read from `f`, positioned after the file header."""
    while True:
        h = f.read(rec.size)
        if len(h) < rec.size:
            return
        ts, tf, incl, orig = rec.unpack(h)
        frame = f.read(incl)
        if len(frame) < incl:
            return
        yield ts, tf, incl, orig, frame
