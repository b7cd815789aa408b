//! The map side of learning peers: learned addresses in the prefix tries (as /32 or
//! /128 with the DNS or SNI bit, next to any configured bit), the flows of expired peers
//! removed from the flow map, the flows of new peers re-classified, and the persistent
//! counts (flows removed, samples the kernel rate-limited).

use std::{collections::HashSet, net::IpAddr};

use aya::{
    Ebpf,
    maps::{Array, HashMap, LpmTrie, MapData, RingBuf, lpm_trie::Key},
};
use monitor_common::{
    Class, FlowKey, FlowStats, MediaFlowStats, Settings, WebexSide, classify,
    learn::{
        SOURCE_LEARNED, STATE_FLOWS_DELETED, STATE_RATE_LIMITED, STATE_SAMPLE_COST_NS, cost_ns,
    },
    map_names, ports,
    settings::SETTING_DEDICATED_PORT_RANGES,
};

use super::{KernelError, loader::map_mut};

fn err(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { map, source }
}

/// Takes the sample ring buffer out of the object (the daemon reads it on its own).
pub fn take_ring(ebpf: &mut Ebpf) -> Result<RingBuf<MapData>, KernelError> {
    let name = map_names::LEARN_SAMPLES;
    let map = ebpf.take_map(name).ok_or(KernelError::Missing(name))?;
    RingBuf::try_from(map).map_err(err(name))
}

/// Sets `bits` on the entry of `addr` (creating it), keeping the bits already there.
pub fn add(ebpf: &mut Ebpf, addr: IpAddr, bits: u32) -> Result<(), KernelError> {
    match addr {
        IpAddr::V4(a) => update::<4>(ebpf, map_names::WEBEX_V4, a.octets(), bits, 0),
        IpAddr::V6(a) => update::<16>(ebpf, map_names::WEBEX_V6, a.octets(), bits, 0),
    }
}

/// Clears the learned bits of `addr`'s entry, removing it when no bit is left. Returns
/// whether `addr` is still a Webex peer (a configured prefix covers it).
pub fn remove(ebpf: &mut Ebpf, addr: IpAddr) -> Result<bool, KernelError> {
    match addr {
        IpAddr::V4(a) => {
            update::<4>(ebpf, map_names::WEBEX_V4, a.octets(), 0, SOURCE_LEARNED)?;
            covered::<4>(ebpf, map_names::WEBEX_V4, a.octets())
        }
        IpAddr::V6(a) => {
            update::<16>(ebpf, map_names::WEBEX_V6, a.octets(), 0, SOURCE_LEARNED)?;
            covered::<16>(ebpf, map_names::WEBEX_V6, a.octets())
        }
    }
}

fn update<const N: usize>(
    ebpf: &mut Ebpf,
    name: &'static str,
    data: [u8; N],
    set: u32,
    clear: u32,
) -> Result<(), KernelError>
where
    [u8; N]: aya::Pod,
{
    let mut trie: LpmTrie<_, [u8; N], u32> =
        LpmTrie::try_from(map_mut(ebpf, name)?).map_err(err(name))?;
    let key = Key::new(N as u32 * 8, data);
    // The value of an exact entry for this address. An LPM look-up answers with a covering
    // prefix when there is none: learned bits only sit on full-length entries, so a hit
    // with one is exact; otherwise ask the (small) trie for an exact entry.
    let old = match trie.get(&key, 0) {
        Ok(v) if v & SOURCE_LEARNED != 0 => v,
        Ok(_) => exact(&trie, &key),
        Err(_) => 0,
    };
    let new = (old | set) & !clear;
    if new == old && old != 0 {
        return Ok(());
    }
    if new == 0 {
        if old != 0 {
            trie.remove(&key).map_err(err(name))?;
        }
        return Ok(());
    }
    trie.insert(&key, new, 0).map_err(err(name))
}

fn exact<T: std::borrow::Borrow<MapData>, const N: usize>(
    trie: &LpmTrie<T, [u8; N], u32>,
    key: &Key<[u8; N]>,
) -> u32
where
    [u8; N]: aya::Pod,
{
    trie.iter()
        .filter_map(Result::ok)
        .find(|(k, _)| k.prefix_len() == key.prefix_len() && k.data() == key.data())
        .map(|(_, v)| v)
        .unwrap_or(0)
}

fn covered<const N: usize>(
    ebpf: &mut Ebpf,
    name: &'static str,
    data: [u8; N],
) -> Result<bool, KernelError>
where
    [u8; N]: aya::Pod,
{
    let trie: LpmTrie<_, [u8; N], u32> =
        LpmTrie::try_from(map_mut(ebpf, name)?).map_err(err(name))?;
    Ok(trie.get(&Key::new(N as u32 * 8, data), 0).is_ok())
}

/// Learned entries in the tries now (a previous run left them): address and bits.
pub fn learned_entries(ebpf: &mut Ebpf) -> Result<Vec<(IpAddr, u32)>, KernelError> {
    let mut out = Vec::new();
    let name = map_names::WEBEX_V4;
    let t: LpmTrie<_, [u8; 4], u32> = LpmTrie::try_from(map_mut(ebpf, name)?).map_err(err(name))?;
    for (k, v) in t.iter().filter_map(Result::ok) {
        if k.prefix_len() == 32 && v & SOURCE_LEARNED != 0 {
            out.push((IpAddr::from(k.data()), v & SOURCE_LEARNED));
        }
    }
    let name = map_names::WEBEX_V6;
    let t: LpmTrie<_, [u8; 16], u32> =
        LpmTrie::try_from(map_mut(ebpf, name)?).map_err(err(name))?;
    for (k, v) in t.iter().filter_map(Result::ok) {
        if k.prefix_len() == 128 && v & SOURCE_LEARNED != 0 {
            out.push((IpAddr::from(k.data()), v & SOURCE_LEARNED));
        }
    }
    Ok(out)
}

/// Deletes the Webex flows whose Webex-side address is in `gone` (as `FlowKey`
/// addresses, IPv4 v4-mapped), from the list of flows just read. Returns the keys
/// deleted.
pub fn delete_flows(
    ebpf: &mut Ebpf,
    flows: &crate::flows::table::FlowTable,
    gone: &HashSet<[u8; 16]>,
) -> Result<Vec<FlowKey>, KernelError> {
    let mut deleted = Vec::new();
    let name = map_names::FLOWS;
    let mut map: HashMap<_, FlowKey, FlowStats> =
        HashMap::try_from(map_mut(ebpf, name)?).map_err(err(name))?;
    delete_from(&mut map, flows, gone, &mut deleted);
    let name = map_names::MEDIA_FLOWS;
    let mut map: HashMap<_, FlowKey, monitor_common::MediaFlowStats> =
        HashMap::try_from(map_mut(ebpf, name)?).map_err(err(name))?;
    delete_from(&mut map, flows, gone, &mut deleted);
    Ok(deleted)
}

/// [`delete_flows`] in one of the two flow maps (values `V`: a flow's counters or a
/// media flow's value).
fn delete_from<V: aya::Pod>(
    map: &mut HashMap<&mut MapData, FlowKey, V>,
    flows: &crate::flows::table::FlowTable,
    gone: &HashSet<[u8; 16]>,
    deleted: &mut Vec<FlowKey>,
) {
    for (k, v) in flows {
        if v.class == monitor_common::Class::NotWebex as u32 {
            continue;
        }
        let peer = match WebexSide::from_u32(v.webex_side) {
            WebexSide::Dst => &k.dst_addr,
            WebexSide::Src => &k.src_addr,
        };
        // Already gone (LRU eviction) is fine: it was not counted as created-and-present.
        if gone.contains(peer) && map.remove(k).is_ok() {
            deleted.push(*k);
        }
    }
}

/// The flows deleted so far (persistent, `learn::STATE_FLOWS_DELETED`).
pub fn flows_deleted(ebpf: &Ebpf) -> Result<u64, KernelError> {
    let name = map_names::LEARN_STATE;
    let map = ebpf.map(name).ok_or(KernelError::Missing(name))?;
    let a: Array<_, u64> = Array::try_from(map).map_err(err(name))?;
    a.get(&STATE_FLOWS_DELETED, 0).map_err(err(name))
}

pub fn add_flows_deleted(ebpf: &mut Ebpf, n: u64) -> Result<u64, KernelError> {
    let total = flows_deleted(ebpf)? + n;
    let name = map_names::LEARN_STATE;
    let mut a: Array<_, u64> = Array::try_from(map_mut(ebpf, name)?).map_err(err(name))?;
    a.set(STATE_FLOWS_DELETED, total, 0).map_err(err(name))?;
    Ok(total)
}

/// Samples the kernel did not copy because their client was over its rate (persistent,
/// `learn::STATE_RATE_LIMITED`).
pub fn rate_limited(ebpf: &Ebpf) -> Result<u64, KernelError> {
    let name = map_names::LEARN_STATE;
    let map = ebpf.map(name).ok_or(KernelError::Missing(name))?;
    let a: Array<_, u64> = Array::try_from(map).map_err(err(name))?;
    a.get(&STATE_RATE_LIMITED, 0).map_err(err(name))
}

/// Sets the per-client sample rate the kernel charges samples at.
pub fn set_client_rate(ebpf: &mut Ebpf, rate_per_s: u32) -> Result<(), KernelError> {
    let name = map_names::LEARN_STATE;
    let mut a: Array<_, u64> = Array::try_from(map_mut(ebpf, name)?).map_err(err(name))?;
    a.set(STATE_SAMPLE_COST_NS, cost_ns(rate_per_s as u64), 0)
        .map_err(err(name))
}

/// Gives the not-Webex flows of peers learned since they were created (an address in
/// `fresh`, as `FlowKey` addresses) the class the kernel would give them now, from the
/// same port table. Only `track_all_flows` keeps such flows; without it the next packet
/// of the conversation creates a Webex flow anyway. A flow that becomes media moves to
/// the media table (a flow is never kept in both: the kernel would find the media one
/// first and the other would stop counting). Returns the flows changed, with their new
/// values.
///
/// The entry is read again just before it is written: the kernel's packets counted in
/// the microseconds between the two are lost from that flow's counters (the global
/// counters keep them). A kernel-side re-check would cost every established packet a
/// look-up instead.
pub fn reclassify(
    ebpf: &mut Ebpf,
    flows: &crate::flows::table::FlowTable,
    fresh: &HashSet<[u8; 16]>,
) -> Result<Vec<(FlowKey, FlowStats)>, KernelError> {
    let candidates: Vec<(FlowKey, WebexSide)> = flows
        .iter()
        .filter(|(_, v)| v.class == Class::NotWebex as u32)
        .filter_map(|(k, _)| {
            // As the kernel picks it (WebexSide::pick): the destination wins.
            let side = if fresh.contains(&k.dst_addr) {
                WebexSide::Dst
            } else if fresh.contains(&k.src_addr) {
                WebexSide::Src
            } else {
                return None;
            };
            Some((*k, side))
        })
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let dedicated = {
        let name = map_names::SETTINGS;
        let map = ebpf.map(name).ok_or(KernelError::Missing(name))?;
        let a: Array<_, Settings> = Array::try_from(map).map_err(err(name))?;
        a.get(&0, 0).map_err(err(name))?.flags & SETTING_DEDICATED_PORT_RANGES != 0
    };
    let port_class = {
        let name = map_names::PORT_CLASS;
        let map = ebpf.map(name).ok_or(KernelError::Missing(name))?;
        let a: Array<_, u8> = Array::try_from(map).map_err(err(name))?;
        move |protocol: u8, port: u16| {
            ports::table_index(protocol, port)
                .and_then(|i| a.get(&i, 0).ok())
                .unwrap_or(0)
        }
    };
    let classes: Vec<(FlowKey, WebexSide, Class)> = candidates
        .into_iter()
        .map(|(k, side)| {
            let (peer_port, inner_port) = match side {
                WebexSide::Dst => (k.dst_port, k.src_port),
                WebexSide::Src => (k.src_port, k.dst_port),
            };
            let class = classify(port_class(k.protocol, peer_port), inner_port, dedicated);
            (k, side, class)
        })
        .collect();
    let [Some(main), Some(media_map)] =
        ebpf.maps_disjoint_mut([map_names::FLOWS, map_names::MEDIA_FLOWS])
    else {
        return Err(KernelError::Missing(map_names::MEDIA_FLOWS));
    };
    let mut map: HashMap<_, FlowKey, FlowStats> =
        HashMap::try_from(main).map_err(err(map_names::FLOWS))?;
    let mut media_map: HashMap<_, FlowKey, MediaFlowStats> =
        HashMap::try_from(media_map).map_err(err(map_names::MEDIA_FLOWS))?;
    let mut changed = Vec::new();
    let mut raced = 0;
    for (k, side, class) in classes {
        // Gone meanwhile (LRU): nothing to change.
        let Ok(mut v) = map.get(&k, 0) else { continue };
        v.class = class as u32;
        v.webex_side = side as u32;
        if class.is_media() && k.protocol == ports::IPPROTO_UDP {
            // A media flow lives in the media table, where the kernel looks first: moved
            // with its counters (no embedded stream: its next RTP packet starts one).
            // BPF_NOEXIST: a packet that created the media entry meanwhile keeps it, and
            // this entry stays in the main table with the media class; the snapshot
            // reports the two as one flow with the sums (`snapshot::fold_duplicates`).
            let moved = MediaFlowStats {
                stats: v,
                ..Default::default()
            };
            if media_map.insert(k, moved, BPF_NOEXIST).is_ok() {
                // The packets counted in the main entry between the read and this
                // delete are lost from the flow (microseconds; the global counters keep
                // them).
                let _ = map.remove(&k);
                changed.push((k, v));
                continue;
            }
            raced += 1;
        }
        // BPF_EXIST: never re-create an entry the kernel just evicted.
        if map.insert(k, v, BPF_EXIST).is_ok() {
            changed.push((k, v));
        }
    }
    if raced > 0 {
        log::info!(
            "{raced} re-classified media flows were created in the media table by a packet \
             meanwhile: each is counted in both tables and reported as one flow"
        );
    }
    Ok(changed)
}

/// `bpf_map_update_elem` flags.
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;
