//! ICMP echo responder: an echo request to any node address or port
//! address is answered with an echo reply (same identifier, sequence
//! number and data, fresh checksum), from the address it was sent to,
//! with IP TTL 64. An echo reply to a node address goes to the node's
//! own pings ([`IcmpProbes`]).
//!
//! A request that arrived unlabelled came from a neighbour on the link:
//! the reply is a frame back to its source MAC on the receiving port.
//! One that arrived behind a label stack came across the mesh: the reply
//! is an IPv4 packet to its source, which the caller labels toward it.
//!
//! Not answered: fragments (`Fragment`, checked by the caller), IP
//! options (`IpOptions`: Linux would echo some of them back; a router
//! data plane has no use for them), bad IP or ICMP checksums,
//! broadcast / multicast / subnet-broadcast destinations (`Broadcast`:
//! Linux's `icmp_echo_ignore_broadcasts=1`), martian sources, other ICMP
//! types and echo replies to a port address (`Unsupported`: the node
//! pings from its node address only), echo replies no ping of the node
//! matches (`StrayReply`).

use super::{
    is_bad_source, link_reply, IcmpProbes, Ignored, Ipv4Spec, NodeInfo, Outgoing, PortId, PortInfo,
};
use crate::packet::ethernet::ethertype;
use crate::packet::icmp::{self, msg_type, IcmpPacket};
use crate::packet::ipv4::protocol;
use crate::packet::punted::PuntedFrame;

/// IP TTL of the replies.
pub const REPLY_TTL: u8 = 64;

/// Answers the ICMP packet in `p` (an unfragmented IPv4 packet with a
/// checked header), received on `rx_port` (`port`) at `now_ns`, or hands
/// an echo reply to `pings`.
pub(super) fn on_icmp(
    p: &PuntedFrame<'_>,
    rx_port: PortId,
    port: &PortInfo,
    node: &NodeInfo,
    now_ns: u64,
    pings: &mut IcmpProbes,
) -> Result<Option<Outgoing>, Ignored> {
    let ip = p.ipv4().ok_or(Ignored::Malformed)?;
    if !ip.options().is_empty() {
        return Err(Ignored::IpOptions);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if dst.is_broadcast() || dst.is_multicast() || node.is_subnet_broadcast(dst) {
        return Err(Ignored::Broadcast);
    }
    if !node.owns(dst) {
        return Err(Ignored::NotForUs);
    }
    if is_bad_source(src) {
        return Err(Ignored::BadSource);
    }
    let req = IcmpPacket::new_checked(ip.payload())?;
    if !req.verify_checksum() {
        return Err(Ignored::BadChecksum);
    }
    match req.msg_type() {
        msg_type::ECHO_REQUEST => {}
        msg_type::ECHO_REPLY if node.addresses.contains(&dst) => {
            return match pings.on_reply(now_ns, p.l3()) {
                Ok(_) => Ok(None),
                Err(_) => Err(Ignored::StrayReply),
            };
        }
        _ => return Err(Ignored::Unsupported),
    }
    let reply = icmp::echo_reply(&req)?;
    let packet = super::ipv4_packet(
        Ipv4Spec {
            src: dst,
            dst: src,
            protocol: protocol::ICMP,
            ttl: REPLY_TTL,
            ident: ip.ident(),
            dscp_ecn: ip.dscp_ecn(),
            router_alert: false,
        },
        &reply,
    )
    .ok_or(Ignored::Malformed)?;
    if p.is_labelled() {
        Ok(Some(Outgoing::Remote { dst: src, packet }))
    } else {
        Ok(Some(Outgoing::Frame {
            port: rx_port,
            frame: link_reply(p, port.mac, ethertype::IPV4, &packet),
        }))
    }
}
