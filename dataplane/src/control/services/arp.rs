//! ARP responder (RFC 826): a request for the receiving port's own
//! address is answered with a reply from that port's MAC.
//!
//! What it answers, and why:
//!
//! - Only the address of the port the request arrived on (Linux's
//!   `arp_ignore=1`): a LAN neighbour never learns another port's address
//!   through this link.
//! - ARP probes (RFC 5227 §2.1.1: sender address 0.0.0.0) are answered,
//!   as Linux answers them (`arp_process`, "special case: IPv4 duplicate
//!   address detection packet"): the reply goes unicast to the prober's
//!   MAC with target address 0.0.0.0, which tells the prober the address
//!   is taken.
//! - Gratuitous ARP (sender address = target address) is an announcement,
//!   not a question: not answered (`NotForUs`).
//! - Nothing is sent to a group or zero MAC, or for a sender address that
//!   is loopback, multicast, broadcast or reserved (`BadSource`).
//! - ARP replies are not learnt here (`Unsupported`): the node's next
//!   hops come from its configuration.

use super::{is_bad_source, is_group_or_zero, link_reply, Ignored, Outgoing, PortId, PortInfo};
use crate::packet::arp::{self, op, ArpPacket};
use crate::packet::ethernet::{ethertype, EthernetFrame};
use crate::packet::punted::PuntedFrame;
use crate::packet::Error;

/// The broadcast MAC.
const BROADCAST: [u8; 6] = [0xff; 6];

/// Answers the ARP packet in `p`, received on `rx_port` (`port`).
pub(super) fn respond(
    p: &PuntedFrame<'_>,
    rx_port: PortId,
    port: &PortInfo,
) -> Result<Option<Outgoing>, Ignored> {
    if p.dst_mac != BROADCAST && p.dst_mac != port.mac {
        return Err(Ignored::NotForUs);
    }
    let req = ArpPacket::new_checked(p.l3()).map_err(|e| match e {
        Error::Truncated => Ignored::Truncated,
        // Another hardware or protocol type.
        Error::Malformed => Ignored::Unsupported,
    })?;
    if req.operation() != op::REQUEST {
        return Err(Ignored::Unsupported);
    }
    let sender_ip = req.sender_ip();
    if is_group_or_zero(&req.sender_mac())
        || (!sender_ip.is_unspecified() && is_bad_source(sender_ip))
    {
        return Err(Ignored::BadSource);
    }
    if req.is_gratuitous() {
        return Err(Ignored::NotForUs);
    }
    match port.address {
        Some((addr, _)) if addr == req.target_ip() => {}
        _ => return Err(Ignored::NotForUs),
    }
    let mut reply = [0u8; arp::PACKET_LEN];
    arp::write_reply(&mut reply, &req, port.mac)?;
    let mut frame = link_reply(p, port.mac, ethertype::ARP, &reply);
    // Linux answers to the ARP sender's MAC, which may differ from the
    // Ethernet source (a proxy or bridge in between).
    EthernetFrame::new_unchecked(&mut frame[..]).set_dst(req.sender_mac());
    Ok(Some(Outgoing::Frame {
        port: rx_port,
        frame,
    }))
}
