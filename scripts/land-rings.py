#!/usr/bin/env python3
"""Converts Natural Earth land polygons from TopoJSON (world-atlas's
land-110m.json: `npm pack world-atlas@2.0.2`) into the compact ring file the
route map embeds (dataplane/data/land-110m.rings).

Each output line is one ring: its first point as lon,lat in tenths of a
degree, then each further point as the difference from the one before.
Consecutive points that round to the same tenth are merged.

    scripts/land-rings.py land-110m.json > dataplane/data/land-110m.rings
"""
import json
import sys


def arcs_abs(topo):
    sx, sy = topo["transform"]["scale"]
    tx, ty = topo["transform"]["translate"]
    out = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x += dx
            y += dy
            pts.append((x * sx + tx, y * sy + ty))
        out.append(pts)
    return out


def ring(arcs, idx):
    pts = []
    for i in idx:
        a = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
        pts.extend(a if not pts else a[1:])
    return pts


def main():
    topo = json.load(open(sys.argv[1]))
    arcs = arcs_abs(topo)
    print("# Land of Natural Earth 1:110m (public domain, naturalearthdata.com), from the")
    print("# TopoJSON of world-atlas 2.0.2 (Copyright 2013-2019 Michael Bostock, ISC licence).")
    print("# One ring a line: lon,lat of its first point in tenths of a degree, then deltas.")
    for geom in topo["objects"]["land"]["geometries"]:
        polys = geom["arcs"] if geom["type"] == "MultiPolygon" else [geom["arcs"]]
        for poly in polys:
            for r in poly:
                q = []
                for lon, lat in ring(arcs, r):
                    p = (round(lon * 10), round(lat * 10))
                    if not q or q[-1] != p:
                        q.append(p)
                if len(q) < 4:
                    continue
                parts = [f"{q[0][0]},{q[0][1]}"]
                for (a, b), (c, d) in zip(q, q[1:]):
                    parts.append(f"{c - a},{d - b}")
                print(" ".join(parts))


if __name__ == "__main__":
    main()
