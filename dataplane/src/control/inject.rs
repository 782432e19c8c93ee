//! The node's own packets toward other nodes: an IPv4 packet for a remote
//! node address gets the labels and Ethernet header data to that node
//! would get, without ESP (control protocols protect themselves).

use crate::frame::PortId;
use crate::packet::ethernet::{self, ethertype};
use crate::packet::mpls::MplsEntry;
use crate::tables::lfib::LfibOp;
use crate::tables::{NodeRoute, Tables};
use std::net::{IpAddr, Ipv4Addr};

/// TTL of the label on the node's own packets (as on pushed data).
pub const CONTROL_MPLS_TTL: u8 = crate::stage::mpls::PUSH_TTL;

/// Why a packet for a remote node cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoPath {
    /// The tables hold no route to the address.
    #[error("no label route to {0}")]
    Unknown(Ipv4Addr),
    /// The route's label leads nowhere here (no LFIB entry, or it ends
    /// at this node).
    #[error("the label toward {0} does not leave this node")]
    Dead(Ipv4Addr),
}

/// The frame carrying `packet` (an IPv4 packet) to the node at `dst`, and
/// the port it leaves by: Ethernet and the label toward `dst` (with TTL
/// `mpls_ttl`) as the tables forward data there.
pub fn frame_to_node(
    t: &Tables,
    dst: Ipv4Addr,
    mpls_ttl: u8,
    packet: &[u8],
) -> Result<(PortId, Vec<u8>), NoPath> {
    let route = t.node_routes.get(&dst).ok_or(NoPath::Unknown(dst))?;
    // The label stack, outermost first (empty: the penultimate hop pops).
    let (port, dst_mac, src_mac, labels) = match *route {
        NodeRoute::Fec(i) => {
            let f = t.fecs.get(i as usize).ok_or(NoPath::Dead(dst))?;
            (f.port, f.dst_mac, f.src_mac, f.label.into_iter().collect())
        }
        NodeRoute::Label(l) => {
            let e = t.lfib.get(l).ok_or(NoPath::Dead(dst))?;
            match e.op {
                LfibOp::Swap(out) => (e.port, e.dst_mac(), e.src_mac(), vec![out]),
                // A local repair: its labels above the swapped one.
                LfibOp::SwapPush(out, i) => {
                    let mut v = t.lfib.stack(i).to_vec();
                    v.push(out);
                    (e.port, e.dst_mac(), e.src_mac(), v)
                }
                // The penultimate hop: the label is popped here.
                LfibOp::Pop => (e.port, e.dst_mac(), e.src_mac(), Vec::new()),
                LfibOp::PopLocal => return Err(NoPath::Dead(dst)),
            }
        }
    };
    let mut f = Vec::with_capacity(ethernet::HEADER_LEN + 4 * labels.len() + packet.len());
    f.extend(dst_mac);
    f.extend(src_mac);
    if labels.is_empty() {
        f.extend(ethertype::IPV4.to_be_bytes());
    } else {
        f.extend(ethertype::MPLS.to_be_bytes());
        for (k, &l) in labels.iter().enumerate() {
            let bottom = k + 1 == labels.len();
            f.extend(MplsEntry::new(l, 0, bottom, mpls_ttl).0.to_be_bytes());
        }
    }
    f.extend_from_slice(packet);
    Ok((port, f))
}

/// The frame carrying `packet` (an IPv4 or IPv6 packet, as `dst` is) to
/// `dst` behind one of the node's delivery prefixes (a LAN host), as
/// decrypted traffic to it leaves: the delivery entry's port and next hop.
pub fn frame_to_lan(t: &Tables, dst: IpAddr, packet: &[u8]) -> Option<(PortId, Vec<u8>)> {
    let (i, kind) = match dst {
        IpAddr::V4(a) => (t.deliver4.lookup_v4(a.octets())?, ethertype::IPV4),
        IpAddr::V6(a) => (t.deliver6.lookup_v6(a.octets())?, ethertype::IPV6),
    };
    let d = t.delivers.get(i as usize)?;
    let mut f = Vec::with_capacity(ethernet::HEADER_LEN + packet.len());
    f.extend(d.dst_mac);
    f.extend(d.src_mac);
    f.extend(kind.to_be_bytes());
    f.extend_from_slice(packet);
    Some((d.port, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::default_chain;
    use crate::config::NodeRouteConfig;

    #[test]
    fn a_gateway_reaches_its_peer_as_its_fec_does_a_satellite_as_its_lfib_does() {
        let hops = default_chain().expect("embedded configs");
        let gw_a = Tables::from_config(&hops[0].node, 1).expect("tables");
        let ip = [0x45u8; 20];
        // gw-a's FEC toward gw-b (192.0.2.2): label 1002 out of up0.
        let (port, f) = frame_to_node(&gw_a, Ipv4Addr::new(192, 0, 2, 2), 5, &ip).expect("path");
        assert_eq!(port, 1);
        assert_eq!(&f[..6], &[2, 0, 0, 0, 1, 1]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0x0a, 2]);
        assert_eq!(&f[12..14], &[0x88, 0x47]);
        assert_eq!(
            MplsEntry::from_bytes([f[14], f[15], f[16], f[17]]).label(),
            1002
        );
        assert_eq!(f[17], 5, "the TTL asked for");
        assert_eq!(&f[18..], &ip);
        assert_eq!(
            frame_to_node(&gw_a, Ipv4Addr::new(192, 0, 2, 77), 5, &ip),
            Err(NoPath::Unknown(Ipv4Addr::new(192, 0, 2, 77)))
        );

        // sat-1 toward gw-b: as a frame with label 1002 would go (swap to
        // 1003 out of gsl-b).
        let mut sat = hops[1].node.clone();
        sat.node_routes = vec![NodeRouteConfig {
            address: Ipv4Addr::new(192, 0, 2, 2),
            label: 1002,
        }];
        let t = Tables::from_config(&sat, 1).expect("tables");
        let (port, f) = frame_to_node(&t, Ipv4Addr::new(192, 0, 2, 2), 64, &ip).expect("path");
        assert_eq!(port, 1);
        assert_eq!(
            MplsEntry::from_bytes([f[14], f[15], f[16], f[17]]).label(),
            1003
        );
    }
}
