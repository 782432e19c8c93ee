#!/usr/bin/env python3
"""secgw_conf.py out|in NODE.toml PREFIX OUT.cfg

Writes a DPDK ipsec-secgw configuration (-f) doing what a meshplane gateway
does for IPv4 traffic to PREFIX, from the gateway's own TOML file:

  out  (gateway ingress, e.g. gw-a.toml): the FEC entry for PREFIX names the
       outbound SA; LAN traffic to PREFIX is encrypted with it in IPv4 tunnel
       mode (its SPI, AEAD, key + salt, tunnel_src -> tunnel_dst) and routed
       to port 1 towards the FEC's next-hop MAC.
  in   (gateway egress, e.g. gw-b.toml): the inbound SA whose tunnel ends at
       this gateway is decrypted (port 0 is the unprotected side), the inner
       packets to PREFIX must match an inbound policy for that SA and are
       routed to port 1 towards the delivery entry's next-hop MAC.

Every SA is `type cpu-crypto`: the AEAD runs synchronously on the polling
core through a crypto device's CPU-crypto API (crypto_aesni_gcm,
intel-ipsec-mb), as meshplane's own AEAD runs on its worker. Prints the
extra ipsec-secgw flags the SA needs (-e for ESN) on stdout.
"""

import ipaddress
import sys
import tomllib

AEAD = {"aes-128-gcm": "aes-128-gcm", "aes-256-gcm": "aes-256-gcm"}


def die(msg):
    sys.exit(f"secgw_conf.py: {msg}")


def sa_lines(sa, direction):
    alg = sa.get("aead", "aes-128-gcm")
    if alg not in AEAD:
        die(f"SA {sa['spi']}: AEAD {alg} has no ipsec-secgw equivalent here")
    key = bytes.fromhex(sa["key"].replace(" ", ""))
    want = {"aes-128-gcm": 20, "aes-256-gcm": 36}[alg]
    if len(key) != want:
        die(f"SA {sa['spi']}: key + salt is {len(key)} bytes, {alg} wants {want}")
    return (
        f"sa {direction} {sa['spi']} aead_algo {AEAD[alg]} "
        f"aead_key {':'.join(f'{b:02x}' for b in key)} "
        f"mode ipv4-tunnel src {sa['tunnel_src']} dst {sa['tunnel_dst']} type cpu-crypto"
    )


def within(prefix, entry_prefix):
    try:
        return ipaddress.ip_network(prefix).subnet_of(ipaddress.ip_network(entry_prefix))
    except (TypeError, ValueError):
        return False


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("out", "in"):
        die("usage: secgw_conf.py out|in NODE.toml PREFIX OUT.cfg")
    direction, path, prefix, out = sys.argv[1:]
    with open(path, "rb") as f:
        node = tomllib.load(f)
    sas = {sa["spi"]: sa for sa in node.get("sa", [])}
    lines = [f"# ipsec-secgw {direction}bound, from {path}, traffic to {prefix}"]
    if direction == "out":
        fec = next((e for e in node.get("fec", []) if within(prefix, e["prefix"])), None)
        if fec is None:
            die(f"{path}: no [[fec]] entry covers {prefix}")
        sa = sas.get(fec["sa"])
        if sa is None or sa.get("dir") != "out":
            die(f"{path}: FEC {fec['prefix']} names no outbound SA")
        lines += [
            f"sp ipv4 out esp protect {sa['spi']} pri 1 dst {prefix} sport 0:65535 dport 0:65535",
            sa_lines(sa, "out"),
            f"rt ipv4 dst {sa['tunnel_dst']}/32 port 1",
            f"neigh port 1 {fec['next_hop_mac']}",
        ]
    else:
        deliver = next((e for e in node.get("deliver", []) if within(prefix, e["prefix"])), None)
        if deliver is None:
            die(f"{path}: no [[deliver]] entry covers {prefix}")
        inbound = [s for s in sas.values() if s.get("dir") == "in"]
        v4 = [s for s in inbound if ipaddress.ip_address(s["tunnel_dst"]).version == 4]
        if not v4:
            die(f"{path}: no inbound IPv4 tunnel SA")
        sa = v4[0]
        lines += [
            f"sp ipv4 in esp protect {sa['spi']} pri 1 dst {prefix} sport 0:65535 dport 0:65535",
            sa_lines(sa, "in"),
            f"rt ipv4 dst {prefix} port 1",
            f"neigh port 1 {deliver['next_hop_mac']}",
        ]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("-e" if sa.get("esn") else "")


if __name__ == "__main__":
    main()
