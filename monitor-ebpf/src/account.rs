//! Flow accounting: find or create the flow of a parsed packet and add to it.

use aya_ebpf::{
    EbpfContext, bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns, maps::lpm_trie::Key,
};
use aya_log_ebpf::warn;
use core::{
    intrinsics::{AtomicOrdering, atomic_xadd},
    mem::MaybeUninit,
    ptr::write_volatile,
};
use monitor_common::{
    Class, FlowKey, FlowStats, GlobalCounters, MediaFlowStats, WebexSide, classify,
    flow::FAMILY_V4,
    link::Remote,
    ports::{self, IPPROTO_UDP},
    settings::{SETTING_DEDICATED_PORT_RANGES, SETTING_TRACK_ALL_FLOWS},
    tunnel,
};

use crate::{
    maps::{FLOWS, MEDIA_FLOWS, NEW_FLOW, PORT_CLASS, SETTINGS, WEBEX_V4, WEBEX_V6},
    packet::Packet,
    parse::Parsed,
};

const EEXIST: i32 = 17;

/// The flow a packet was accounted to, for the per-class work after accounting.
pub struct FlowRef {
    pub stats: *mut FlowStats,
    pub class: Class,
    /// The packet's time (`bpf_ktime_get_ns`, read once per packet: the quality stage
    /// gets it handed over instead of calling the helper again).
    pub now: u64,
    /// 1 when the packet's RTP stream was accounted already (the stream embedded in its
    /// media flow, `crate::quality::embedded`): the quality stage is then not wanted.
    pub rtp_done: u64,
}

/// What one packet adds to its flow. On TC egress a GSO super-packet stands for several
/// wire packets.
pub struct Delta {
    pub packets: u64,
    pub bytes: u64,
}

/// Accounts `p`, seen on `ifindex` in `direction`, into the flow map, and runs `work`
/// (the per-flow work: DSCP, quality hand-over, failure counters) on the packet's flow.
/// `Some` when the packet belongs to a tracked flow.
///
/// A new flow is inserted once: `work` runs on the new value while it is still in the
/// scratch slot, which is then inserted as it is, so the new entry needs no second
/// look-up. When another CPU inserted the same flow first (EEXIST), the packet is added
/// to theirs and `work`'s counts for this one packet are not kept.
#[inline(always)]
// The per-packet facts are separate arguments on purpose: bundled in a struct they would
// take stack the flow stage does not have.
#[allow(clippy::too_many_arguments)]
pub fn account<C: EbpfContext, W: FnOnce(&FlowRef)>(
    ctx: &C,
    pkt: &Packet,
    counters: &mut GlobalCounters,
    p: &Parsed,
    ifindex: u32,
    direction: u8,
    remote: Remote,
    delta: Delta,
    missed: u32,
    work: W,
) -> Option<()> {
    let key = flow_key(p, ifindex, direction);
    let key = &key;
    let now = unsafe { bpf_ktime_get_ns() };
    let fragments = if p.is_fragment() { delta.packets } else { 0 };

    // Established flow: the common case, no classification work (one look-up, see
    // `flow_ptr`). The entry programs normally take this case themselves
    // (`established`) and say where they missed (`missed`, `Looked`: not looked up
    // again); the flow stage sees it for fragments and ICMP errors.
    if missed == Looked::Nowhere as u32
        && let Some((stats, _)) = flow_ptr(key)
    {
        work(&established(counters, stats, p, delta, now));
        return Some(());
    }

    let settings = SETTINGS.get(0).map(|s| s.flags).unwrap_or(0);
    let (class, side) = match webex_side(p, remote) {
        Some(side) => {
            let (peer_port, inner_port) = match side {
                WebexSide::Dst => (p.dst_port, p.src_port),
                WebexSide::Src => (p.src_port, p.dst_port),
            };
            let port_class = ports::table_index(p.protocol, peer_port)
                .and_then(|i| PORT_CLASS.get(i))
                .copied()
                .unwrap_or(0);
            let dedicated = settings & SETTING_DEDICATED_PORT_RANGES != 0;
            (classify(port_class, inner_port, dedicated), side)
        }
        None => {
            // VPN tunnels are tracked too: media hidden in them is judged by its cadence
            // (`media_in_tunnel`).
            if settings & SETTING_TRACK_ALL_FLOWS == 0
                && tunnel::tunnel(p.protocol, p.src_port, p.dst_port).is_none()
            {
                counters.not_webex_packets += delta.packets;
                return None;
            }
            (Class::NotWebex, WebexSide::Dst)
        }
    };

    let media = in_media_table(class, key);
    // The entry program looked in the media table only (`entry_flow_ptr`): a flow that is
    // not media may be in the main table.
    if !media
        && missed == Looked::MediaOnly as u32
        && let Some(stats) = FLOWS.get_ptr_mut(key)
    {
        work(&established(counters, stats, p, delta, now));
        return Some(());
    }

    // The new flow's value is built in a per-CPU scratch slot, not on the 512-byte stack.
    let Some(scratch) = NEW_FLOW.get_ptr_mut(0) else {
        counters.flow_insert_failed += 1;
        return None;
    };
    // SAFETY: this CPU's scratch slot; nothing else runs on it until we return.
    let scratch = unsafe { &mut *scratch };
    let stats = &mut scratch.stats;
    // Field by field, each store on its own (volatile): a struct literal, or plain zero
    // stores side by side, become a `memset` call, an out-of-line byte loop on this
    // target that older verifiers (6.1) walk on every path.
    // SAFETY: plain stores to fields of this CPU's scratch value.
    unsafe {
        write_volatile(&mut stats.packets, delta.packets);
        write_volatile(&mut stats.bytes, delta.bytes);
        write_volatile(&mut stats.first_seen_ns, now);
        write_volatile(&mut stats.last_seen_ns, now);
        write_volatile(&mut stats.fragments, fragments);
        write_volatile(&mut stats.class, class as u32);
        write_volatile(&mut stats.last_dscp, p.dscp as u32);
        write_volatile(&mut stats.webex_side, side as u32);
        write_volatile(&mut stats.next_hop_mtu, 0);
        write_volatile(&mut stats.dscp_match, 0);
        write_volatile(&mut stats.dscp_mismatch, 0);
        write_volatile(&mut stats.dscp_rewritten, 0);
        write_volatile(&mut stats.dscp_seen, 1u64 << (p.dscp & 63));
        write_volatile(&mut stats.handshake_rtt_ns, 0);
        write_volatile(&mut stats.icmp_unreachable, 0);
        write_volatile(&mut stats.icmp_frag_needed, 0);
        write_volatile(&mut stats.oversize, 0);
    }
    count_class(counters, class as u32, delta.packets);
    // A media flow's first RTP packet starts the stream embedded in the value: it is
    // inserted with it (no stream insert). Before `work`: a DSCP rewrite there
    // invalidates the packet pointers.
    let rtp_done = if media {
        crate::quality::first_stream(pkt, p, scratch, now)
    } else {
        0
    };
    work(&FlowRef {
        stats: &raw mut scratch.stats,
        class,
        now,
        rtp_done,
    });
    let inserted = if media {
        MEDIA_FLOWS.insert(key, &*scratch, BPF_NOEXIST as u64)
    } else {
        FLOWS.insert(key, &scratch.stats, BPF_NOEXIST as u64)
    };
    if rtp_done != 0 {
        crate::quality::count_first_stream(inserted.is_ok());
    }
    match inserted {
        Ok(()) => {
            counters.flows_created += 1;
            if media {
                counters.media_flows_created += 1;
            }
            Some(())
        }
        // Another CPU created it first: add to theirs.
        Err(e) if e == -EEXIST => match in_table(media, key) {
            Some(existing) => {
                add(existing, &delta, fragments, now, p.dscp);
                Some(())
            }
            None => {
                counters.flow_insert_failed += 1;
                None
            }
        },
        Err(e) => {
            counters.flow_insert_failed += 1;
            warn!(ctx, "flow map insert failed: error {}", e);
            None
        }
    }
}

/// The flow key of `p`, seen on `ifindex` in `direction`.
#[inline(always)]
pub fn flow_key(p: &Parsed, ifindex: u32, direction: u8) -> FlowKey {
    // Built in place (see `Parsed::copy_addrs`); every byte is written.
    let mut key = MaybeUninit::<FlowKey>::uninit();
    let k = key.as_mut_ptr();
    // SAFETY: writes to the fields of a local; FlowKey is 4-aligned (it holds a u32)
    // with its addresses at offsets 0 and 16.
    unsafe {
        p.copy_addrs(&raw mut (*k).src_addr, &raw mut (*k).dst_addr);
        (&raw mut (*k).ifindex).write(ifindex);
        (&raw mut (*k).src_port).write(p.src_port);
        (&raw mut (*k).dst_port).write(p.dst_port);
        (&raw mut (*k).protocol).write(p.protocol);
        (&raw mut (*k).family).write(p.family);
        (&raw mut (*k).direction).write(direction);
        (&raw mut (*k)._pad).write(0);
        key.assume_init()
    }
}

/// Accounts `p` to its established flow `stats` (found by [`flow_ptr`]): the flow for
/// the per-flow work that follows.
#[inline(always)]
pub fn established(
    counters: &mut GlobalCounters,
    stats: *mut FlowStats,
    p: &Parsed,
    delta: Delta,
    now: u64,
) -> FlowRef {
    let fragments = if p.is_fragment() { delta.packets } else { 0 };
    add(stats, &delta, fragments, now, p.dscp);
    // SAFETY: a live map value; the class is written once, at creation.
    let class = unsafe { (*stats).class };
    count_class(counters, class, delta.packets);
    FlowRef {
        stats,
        class: Class::from_u32(class).unwrap_or(Class::OtherWebex),
        now,
        rtp_done: 0,
    }
}

/// The flow of `key`: its counters, and its whole value when it is a media flow (null
/// otherwise). Media is UDP (`in_media_table`), so a TCP or ICMP packet looks in the
/// main table only and a UDP one in the media table first: an established RTP or TCP
/// packet costs one look-up; only UDP of other classes pays a second.
#[inline(always)]
pub fn flow_ptr(key: &FlowKey) -> Option<(*mut FlowStats, *mut MediaFlowStats)> {
    if key.protocol == IPPROTO_UDP
        && let Some(m) = MEDIA_FLOWS.get_ptr_mut(key)
    {
        // SAFETY: a live map value; `stats` is its first field.
        return Some((unsafe { &raw mut (*m).stats }, m));
    }
    FLOWS.get_ptr_mut(key).map(|s| (s, core::ptr::null_mut()))
}

/// Where an entry program looked for a packet's flow before handing it to the flow stage
/// (`Job::missed`).
#[repr(u32)]
pub enum Looked {
    /// Not looked up (the flow stage looks).
    Nowhere = 0,
    /// Both tables missed.
    Both = 1,
    /// The media table missed and the main one was not looked at: a UDP packet between a
    /// Webex peer and a media port (`entry_flow_ptr`).
    MediaOnly = 2,
}

/// The entry program's look-up: [`flow_ptr`], except that a UDP packet that misses the
/// media table, has a Webex peer, and a media port on the remote side (`media_port`)
/// does not look in the main table too: such a flow is created media, in the media table,
/// and its look-up in the larger main table (a cache miss on its bucket) was a quarter of
/// a new media flow's cost. The flow stage looks there itself when the class it finds is
/// not media (with the role unknown, the media port may be the non-Webex side's).
///
/// Only where nothing else can have put that flow in the main table: not with
/// `track_all_flows` (its not-Webex flows are in the main table, and are re-classified
/// there, media or not, when their peer is learned), nor for a VPN tunnel's ports (tracked
/// the same way). A flow created before a reload made its port media, or its peer Webex,
/// has a class of the old config and stays where it is; its next packets then start a
/// media flow with the class of the new one (the daemon's snapshot reports the two
/// entries as one flow, their counters summed). `Err` says where it missed.
#[inline(always)]
pub fn entry_flow_ptr(
    key: &FlowKey,
    p: &Parsed,
    remote: Remote,
) -> Result<(*mut FlowStats, *mut MediaFlowStats), Looked> {
    if key.protocol == IPPROTO_UDP {
        if let Some(m) = MEDIA_FLOWS.get_ptr_mut(key) {
            // SAFETY: a live map value; `stats` is its first field.
            return Ok((unsafe { &raw mut (*m).stats }, m));
        }
        let settings = SETTINGS.get(0).map(|s| s.flags).unwrap_or(0);
        if settings & SETTING_TRACK_ALL_FLOWS == 0
            && media_port(p, remote)
            && tunnel::tunnel(p.protocol, p.src_port, p.dst_port).is_none()
            && webex_side(p, remote).is_some()
        {
            return Err(Looked::MediaOnly);
        }
    }
    match FLOWS.get_ptr_mut(key) {
        Some(s) => Ok((s, core::ptr::null_mut())),
        None => Err(Looked::Both),
    }
}

/// True when the port of `p`'s remote side (either side when the role is unknown) is a
/// media port in the port table: a Webex flow with its peer there is media.
#[inline(always)]
fn media_port(p: &Parsed, remote: Remote) -> bool {
    (remote != Remote::Src && is_media_port(p.dst_port))
        || (remote != Remote::Dst && is_media_port(p.src_port))
}

#[inline(always)]
fn is_media_port(port: u16) -> bool {
    let class = ports::table_index(IPPROTO_UDP, port)
        .and_then(|i| PORT_CLASS.get(i))
        .copied()
        .unwrap_or(0);
    Class::from_u32(class as u32).is_some_and(Class::is_media)
}

/// The flow of `key` in the media table or the main one.
#[inline(always)]
fn in_table(media: bool, key: &FlowKey) -> Option<*mut FlowStats> {
    if media {
        // SAFETY: a live map value; `stats` is its first field.
        MEDIA_FLOWS
            .get_ptr_mut(key)
            .map(|m| unsafe { &raw mut (*m).stats })
    } else {
        FLOWS.get_ptr_mut(key)
    }
}

/// Which table a new flow goes to: media (which is UDP) to the media table, so a flood
/// of other new flows evicts only those.
#[inline(always)]
fn in_media_table(class: Class, key: &FlowKey) -> bool {
    class.is_media() && key.protocol == IPPROTO_UDP
}

#[inline(always)]
fn count_class(counters: &mut GlobalCounters, class: u32, packets: u64) {
    if class == Class::NotWebex as u32 {
        counters.not_webex_packets += packets;
    } else {
        counters.webex_packets += packets;
    }
}

/// Adds to a flow shared by all CPUs: counters atomically, the last-seen fields plainly
/// (a racing writer only makes them a packet older).
#[inline(always)]
fn add(stats: *mut FlowStats, delta: &Delta, fragments: u64, now: u64, dscp: u8) {
    unsafe {
        // The BPF target has no `AtomicU64::fetch_add`; the intrinsic with its result
        // unused compiles to the BPF atomic add.
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
            &raw mut (*stats).packets,
            delta.packets,
        );
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).bytes, delta.bytes);
        if fragments != 0 {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
                &raw mut (*stats).fragments,
                fragments,
            );
        }
        (*stats).last_seen_ns = now;
        (*stats).last_dscp = dscp as u32;
        (*stats).dscp_seen |= 1u64 << (dscp & 63);
    }
}

/// True when a packet without a flow would not get one: no Webex peer, not a VPN
/// tunnel, and not every flow tracked. The entry programs count such a packet as not
/// Webex themselves (no tail call); the flow stage classifies the others.
#[inline(always)]
pub fn untracked(p: &Parsed, remote: Remote) -> bool {
    let settings = SETTINGS.get(0).map(|s| s.flags).unwrap_or(0);
    settings & SETTING_TRACK_ALL_FLOWS == 0
        && tunnel::tunnel(p.protocol, p.src_port, p.dst_port).is_none()
        && webex_side(p, remote).is_none()
}

/// Which side of the packet is a Webex peer, from the prefix tries: only the remote
/// address is looked up when the interface's role says which one it is (one trie
/// look-up; the local side, a site host or the gateway itself, is never the peer even
/// when it falls in a Webex prefix), both when the role is unknown.
#[inline(always)]
fn webex_side(p: &Parsed, remote: Remote) -> Option<WebexSide> {
    // One test after each look-up (the destination first: it wins when both match, as
    // `WebexSide::pick` says): combining the two results lets LLVM OR the two map value
    // pointers before their null tests, which the verifier rejects.
    if remote != Remote::Src && is_webex(p, &p.dst_addr) {
        return Some(WebexSide::Dst);
    }
    if remote != Remote::Dst && is_webex(p, &p.src_addr) {
        return Some(WebexSide::Src);
    }
    None
}

/// True when `addr` (an address of `p`, IPv4-mapped for IPv4) is in a Webex prefix.
#[inline(always)]
fn is_webex(p: &Parsed, addr: &[u8; 16]) -> bool {
    if p.family == FAMILY_V4 {
        let a = [addr[12], addr[13], addr[14], addr[15]];
        WEBEX_V4.get(Key::new(32, a)).is_some()
    } else {
        WEBEX_V6.get(Key::new(128, *addr)).is_some()
    }
}
