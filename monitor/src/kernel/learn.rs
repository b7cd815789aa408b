//! The map side of learning peers: learned addresses in the prefix tries (as /32 or
//! /128 with the DNS or SNI bit, next to any configured bit), the flows of expired peers
//! removed from the flow map, and the persistent count of those removals.

use std::{collections::HashSet, net::IpAddr};

use aya::{
    Ebpf,
    maps::{Array, HashMap, LpmTrie, MapData, RingBuf, lpm_trie::Key},
};
use monitor_common::{
    FlowKey, FlowStats, WebexSide,
    learn::{SOURCE_LEARNED, STATE_FLOWS_DELETED},
    map_names,
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
    flows: &[(FlowKey, FlowStats)],
    gone: &HashSet<[u8; 16]>,
) -> Result<Vec<FlowKey>, KernelError> {
    let mut deleted = Vec::new();
    for name in [map_names::FLOWS, map_names::MEDIA_FLOWS] {
        let mut map: HashMap<_, FlowKey, FlowStats> =
            HashMap::try_from(map_mut(ebpf, name)?).map_err(err(name))?;
        delete_from(&mut map, flows, gone, &mut deleted);
    }
    Ok(deleted)
}

/// [`delete_flows`] in one of the two flow maps.
fn delete_from(
    map: &mut HashMap<&mut MapData, FlowKey, FlowStats>,
    flows: &[(FlowKey, FlowStats)],
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
