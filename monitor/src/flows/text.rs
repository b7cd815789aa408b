//! A flow's text as status shows it (interface name, direction, transport, addresses,
//! class) made from the kernel's key and counters, and the order flows are shown in.
//! Made once per flow and kept by [`super::rows::FlowRows`] while its counters do not
//! change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use monitor_common::{
    Class, Direction, FlowKey, FlowStats, WebexSide, flow::FAMILY_V4, rtp::HANDSHAKE_PENDING,
};

use crate::{
    fasthash::HashMap,
    status::model::{FlowStatus, InterfaceStatus},
};

/// Interface names by index; flows of an interface's earlier indexes (deleted and
/// created again) keep its name.
pub fn interface_names(interfaces: &[InterfaceStatus]) -> HashMap<u32, &str> {
    interfaces
        .iter()
        .flat_map(|i| {
            i.previous_ifindexes
                .iter()
                .chain(std::iter::once(&i.ifindex))
                .filter(|index| **index != 0)
                .map(|index| (*index, i.name.as_str()))
        })
        .collect()
}

/// Interface indexes ranked by name (indexes without a name after the named ones, by
/// index): the interface part of [`busiest_key`].
pub fn interface_rank(names: &HashMap<u32, &str>) -> impl Fn(u32) -> (u8, usize) + use<> {
    let mut by_name: Vec<(&str, u32)> = names.iter().map(|(i, n)| (*n, *i)).collect();
    by_name.sort_unstable();
    let rank: HashMap<u32, usize> = by_name
        .iter()
        .enumerate()
        .map(|(r, (_, i))| (*i, r))
        .collect();
    move |i: u32| rank.get(&i).map_or((1, i as usize), |r| (0, *r))
}

/// The order flows are shown in: busiest first, then by interface name, direction
/// (egress first), source address (numerically) and port, and the rest of the key, so
/// the order is total. On the raw keys, before any text is made: comparing formatted
/// addresses was most of a poll's time with 100k flows.
pub fn busiest_key(
    k: &FlowKey,
    v: &FlowStats,
    if_rank: &dyn Fn(u32) -> (u8, usize),
) -> impl Ord + use<> {
    let dir_rank = match Direction::from_u8(k.direction) {
        Some(Direction::Egress) => 0u8,
        Some(Direction::Ingress) => 1,
        None => 2,
    };
    (
        std::cmp::Reverse(v.packets),
        if_rank(k.ifindex),
        dir_rank,
        k.src_addr,
        k.src_port,
        k.dst_addr,
        k.dst_port,
        k.protocol,
    )
}

pub fn flow_status(
    k: &FlowKey,
    v: &FlowStats,
    names: &HashMap<u32, &str>,
    now_mono_ns: u64,
) -> FlowStatus {
    use compact_str::{CompactString, ToCompactString};
    // Each address formatted once, into the string itself: an IPv4 address and every
    // name fit inline (no allocation per field; with a million flows kept, that is
    // most of their memory).
    let src = addr(k.family, &k.src_addr).to_compact_string();
    let dst = addr(k.family, &k.dst_addr).to_compact_string();
    let (inner, inner_port, peer, peer_port) = match WebexSide::from_u32(v.webex_side) {
        WebexSide::Dst => (src.clone(), k.src_port, dst.clone(), k.dst_port),
        WebexSide::Src => (dst.clone(), k.dst_port, src.clone(), k.src_port),
    };
    let seconds = |ns: u64| now_mono_ns.saturating_sub(ns) as f64 / 1e9;
    FlowStatus {
        interface: names
            .get(&k.ifindex)
            .map(|n| CompactString::from(*n))
            .unwrap_or_else(|| compact_str::format_compact!("if{}", k.ifindex)),
        direction: CompactString::const_new(
            Direction::from_u8(k.direction)
                .map(Direction::as_str)
                .unwrap_or("unknown"),
        ),
        protocol: protocol_name(k.protocol).into(),
        ip_version: if k.family == FAMILY_V4 { 4 } else { 6 },
        src_addr: src,
        src_port: k.src_port,
        dst_addr: dst,
        dst_port: k.dst_port,
        inner_addr: inner,
        inner_port,
        peer_addr: peer,
        peer_port,
        class: CompactString::const_new(
            Class::from_u32(v.class)
                .map(Class::as_str)
                .unwrap_or("unknown"),
        ),
        packets: v.packets,
        bytes: v.bytes,
        fragments: v.fragments,
        last_dscp: v.last_dscp as u8,
        age_s: seconds(v.first_seen_ns),
        idle_s: seconds(v.last_seen_ns),
        classified_by: None,
        dscp_class: None,
        dscp: None,
        icmp_unreachable: v.icmp_unreachable,
        icmp_frag_needed: v.icmp_frag_needed,
        oversize: v.oversize,
        handshake_pending: v.handshake_rtt_ns & HANDSHAKE_PENDING != 0,
        next_hop_mtu: v.next_hop_mtu,
    }
}

pub fn addr(family: u8, bytes: &[u8; 16]) -> IpAddr {
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

pub fn protocol_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        other => other.to_string(),
    }
}
