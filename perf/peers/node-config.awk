# Turns one of meshplane's embedded node configurations into the one the
# peer benchmark runs: the node on one core, no management socket, its
# receiving port on the capture (net_pcap) and its transmitting port on a
# sink (net_null), over DPDK. Nothing else changes: SAs, FEC, LFIB and
# delivery entries are the embedded file's.
#
#   awk -v core=1 -v rx=lan0 -v rxdev=net_pcap0,rx_pcap=IN,infinite_rx=1 \
#       -v tx=up0 -v txdev=net_null0,no-rx=1 -v buffers=16383 \
#       -v prefix=peers-gw-a -f node-config.awk gw-a.toml > run.toml
/^[[:space:]]*\[/ { sect = $0; gsub(/[[:space:]]/, "", sect) }
sect == "[node]" && /^[[:space:]]*(cores|socket)[[:space:]]*=/ { next }
sect == "[[ports]]" && /^[[:space:]]*dpdk[[:space:]]*=/ { next }
sect == "[io]" { print "peer benchmark: the node already has an [io] section" > "/dev/stderr"; exit 1 }
{ print }
sect == "[node]" && /^[[:space:]]*\[node\]/ {
    print "cores = [" core "]"
    print "socket = \"\""
}
sect == "[[ports]]" && /^[[:space:]]*name[[:space:]]*=/ {
    n = $0; sub(/^[^=]*=[[:space:]]*"/, "", n); sub(/".*/, "", n)
    if (n == rx) { print "dpdk = \"" rxdev "\""; seen_rx = 1 }
    else if (n == tx) { print "dpdk = \"" txdev "\""; seen_tx = 1 }
}
END {
    if (!seen_rx || !seen_tx) { print "peer benchmark: no port " (seen_rx ? tx : rx) > "/dev/stderr"; exit 1 }
    print ""
    print "[io]"
    print "backend = \"dpdk\""
    print "buffers = " buffers
    # After meshplane's own --file-prefix, so this one counts: a prefix of
    # the benchmark's own, apart from any node running on the host.
    print "eal_args = [\"--file-prefix=" prefix "\"]"
}
