//! Reading the maps: one consistent-enough copy of counters and flows per poll.

use aya::{
    Ebpf,
    maps::{HashMap, IterableMap as _, LpmTrie, MapData, PerCpuArray},
};
use monitor_common::{FlowKey, FlowStats, GlobalCounters, MediaFlowStats, map_names};

use std::os::fd::AsFd as _;

use super::{KernelError, batch};
use crate::flows::table::FlowTable;
use crate::status::model::MapFill;

/// A copy of the kernel state at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// CLOCK_MONOTONIC when the snapshot was taken, the clock of the flow timestamps.
    pub taken_mono_ns: u64,
    pub counters: GlobalCounters,
    pub flows: FlowTable,
    pub maps: Vec<MapFill>,
    /// How long reading the maps took.
    pub took_ns: u64,
    /// RTP streams, STUN RTT and media counters (see `crate::quality`).
    pub quality: crate::quality::QualitySnapshot,
}

/// CLOCK_MONOTONIC in nanoseconds, the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn take(ebpf: &Ebpf) -> Result<Snapshot, KernelError> {
    take_into(ebpf, FlowTable::new())
}

/// [`take`], reading the flows into `buffer` (emptied first): the daemon hands each
/// poll the last poll's buffer, so a large table's snapshot lands in pages already
/// mapped (a fresh one of a million flows costs ~85 ms of page faults every poll).
pub fn take_into(ebpf: &Ebpf, buffer: FlowTable) -> Result<Snapshot, KernelError> {
    let started = monotonic_ns();
    let map = |name: &'static str| ebpf.map(name).ok_or(KernelError::Missing(name));
    let err = |map| move |source| KernelError::Map { map, source };

    let per_cpu: PerCpuArray<&MapData, GlobalCounters> =
        PerCpuArray::try_from(map(map_names::COUNTERS)?).map_err(err(map_names::COUNTERS))?;
    let mut counters = GlobalCounters::default();
    for cpu in per_cpu.get(&0, 0).map_err(err(map_names::COUNTERS))?.iter() {
        counters.accumulate(cpu);
    }

    let flows_map: HashMap<&MapData, FlowKey, FlowStats> =
        HashMap::try_from(map(map_names::FLOWS)?).map_err(err(map_names::FLOWS))?;
    let media_map: HashMap<&MapData, FlowKey, MediaFlowStats> =
        HashMap::try_from(map(map_names::MEDIA_FLOWS)?).map_err(err(map_names::MEDIA_FLOWS))?;
    let taken_mono_ns = monotonic_ns();
    // Room for both tables full and the batch in flight: read straight into place,
    // never moved while it grows (pages not written are not used).
    let mut flows = buffer;
    flows.clear();
    flows.reserve(
        (max_entries(flows_map.map()) + max_entries(media_map.map())) as usize + batch::BATCH,
    );
    flows.append_with(|keys, stats| read_flows(&flows_map, map_names::FLOWS, keys, stats))?;
    let main_entries = flows.len() as u64;
    let (mut media_keys, mut media): (Vec<FlowKey>, Vec<MediaFlowStats>) = (Vec::new(), Vec::new());
    read_flows(
        &media_map,
        map_names::MEDIA_FLOWS,
        &mut media_keys,
        &mut media,
    )?;
    // A key listed in both tables (a packet raced the learner's move, or a reload made an
    // existing flow media): one flow, its counters summed into the media entry.
    fold_duplicates(&mut flows, &media_keys, &mut media);
    let media_entries = media.len() as u64;
    let embedded = crate::quality::embedded_streams(media_keys.iter().zip(&media));
    flows.extend(media_keys.into_iter().zip(media).map(|(k, v)| (k, v.stats)));

    let mut maps = vec![
        MapFill {
            name: map_names::FLOWS.to_string(),
            entries: main_entries,
            max_entries: max_entries(flows_map.map()),
        },
        MapFill {
            name: map_names::MEDIA_FLOWS.to_string(),
            entries: media_entries,
            max_entries: max_entries(media_map.map()),
        },
    ];
    for name in [map_names::WEBEX_V4, map_names::WEBEX_V6] {
        let m = map(name)?;
        let (entries, max) = match name {
            map_names::WEBEX_V4 => {
                let t: LpmTrie<&MapData, [u8; 4], u32> = LpmTrie::try_from(m).map_err(err(name))?;
                (t.keys().count(), max_entries(t.map()))
            }
            _ => {
                let t: LpmTrie<&MapData, [u8; 16], u32> =
                    LpmTrie::try_from(m).map_err(err(name))?;
                (t.keys().count(), max_entries(t.map()))
            }
        };
        maps.push(MapFill {
            name: name.to_string(),
            entries: entries as u64,
            max_entries: max,
        });
    }

    let quality = crate::quality::take_with(ebpf, embedded)?;
    maps.push(MapFill {
        name: map_names::RTP_STREAMS.to_string(),
        entries: quality.streams_in_map,
        max_entries: quality.streams_max,
    });

    Ok(Snapshot {
        taken_mono_ns,
        counters,
        flows,
        maps,
        took_ns: monotonic_ns().saturating_sub(started),
        quality,
    })
}

/// Removes from `main` (the `FLOWS` rows) every flow whose key `MEDIA_FLOWS` lists too
/// (`media_keys`, values `media` at the same places), adding its counters into the media
/// entry's ([`fold`]): the status and the exports see one flow. Only `MEDIA_FLOWS`'s keys
/// are looked for (it is the small table), and only UDP rows of `main` are hashed.
/// Returns how many rows were folded.
fn fold_duplicates(
    main: &mut FlowTable,
    media_keys: &[FlowKey],
    media: &mut [MediaFlowStats],
) -> usize {
    if media_keys.is_empty() {
        return 0;
    }
    let at: crate::fasthash::HashMap<&FlowKey, usize> =
        media_keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let twice: Vec<(usize, usize)> = main
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k.protocol == monitor_common::ports::IPPROTO_UDP)
        .filter_map(|(row, (k, _))| at.get(k).map(|&m| (row, m)))
        .collect();
    if twice.is_empty() {
        return 0;
    }
    for &(row, m) in &twice {
        if let Some((_, v)) = main.get(row) {
            fold(&mut media[m].stats, v);
        }
    }
    let mut rows = twice.iter().map(|&(row, _)| row).peekable();
    let mut i = 0;
    main.retain(|_, _| {
        let dropped = rows.peek() == Some(&i);
        if dropped {
            rows.next();
        }
        i += 1;
        !dropped
    });
    twice.len()
}

/// Adds the counters of `other` (the same flow's `FLOWS` entry) into `media` (its
/// `MEDIA_FLOWS` entry): sums of packets, bytes, fragments, DSCP, ICMP and oversize
/// counts, the DSCP values seen of both, the earliest first and latest last packet;
/// class and Webex side stay the media entry's, the last DSCP and next-hop MTU the
/// later entry's (when it has one).
fn fold(media: &mut FlowStats, other: &FlowStats) {
    let later = other.last_seen_ns > media.last_seen_ns;
    media.packets += other.packets;
    media.bytes += other.bytes;
    media.fragments += other.fragments;
    media.dscp_match += other.dscp_match;
    media.dscp_mismatch += other.dscp_mismatch;
    media.dscp_rewritten += other.dscp_rewritten;
    media.dscp_seen |= other.dscp_seen;
    media.icmp_unreachable += other.icmp_unreachable;
    media.icmp_frag_needed += other.icmp_frag_needed;
    media.oversize += other.oversize;
    media.first_seen_ns = media.first_seen_ns.min(other.first_seen_ns);
    media.last_seen_ns = media.last_seen_ns.max(other.last_seen_ns);
    if later {
        media.last_dscp = other.last_dscp;
    }
    if other.next_hop_mtu != 0 && (later || media.next_hop_mtu == 0) {
        media.next_hop_mtu = other.next_hop_mtu;
    }
    if media.handshake_rtt_ns == 0 {
        media.handshake_rtt_ns = other.handshake_rtt_ns;
    }
}

/// A flow map (`name`) in batches, or key by key where the kernel lacks batch lookups,
/// appended to `keys` and `values`.
fn read_flows<V: aya::Pod>(
    flows_map: &HashMap<&MapData, FlowKey, V>,
    name: &'static str,
    keys: &mut Vec<FlowKey>,
    values: &mut Vec<V>,
) -> Result<(), KernelError> {
    let start = keys.len();
    match batch::lookup_all(flows_map.map().fd().as_fd(), keys, values) {
        Ok(true) => return Ok(()),
        Ok(false) => {
            keys.truncate(start);
            values.truncate(start);
        }
        Err(e) => {
            return Err(KernelError::Map {
                map: name,
                source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                    call: "bpf_map_lookup_batch",
                    io_error: e,
                }),
            });
        }
    }
    for entry in flows_map.iter() {
        match entry {
            Ok((k, v)) => {
                keys.push(k);
                values.push(v);
            }
            // A flow evicted between listing and reading its value: skip it.
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => {
                return Err(KernelError::Map {
                    map: name,
                    source: e,
                });
            }
        }
    }
    Ok(())
}

fn max_entries(map: &MapData) -> u64 {
    map.info().map(|i| i.max_entries() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_common::{Class, WebexSide, ports::IPPROTO_UDP};

    fn key(n: u8, protocol: u8) -> FlowKey {
        FlowKey {
            src_addr: [n; 16],
            dst_addr: [200; 16],
            src_port: 40000 + n as u16,
            dst_port: 5004,
            protocol,
            ..Default::default()
        }
    }

    fn stats(packets: u64, first: u64, last: u64) -> FlowStats {
        FlowStats {
            packets,
            bytes: packets * 100,
            first_seen_ns: first,
            last_seen_ns: last,
            fragments: 1,
            class: Class::NotWebex as u32,
            last_dscp: 0,
            webex_side: WebexSide::Src as u32,
            next_hop_mtu: 1400,
            dscp_match: 2,
            dscp_mismatch: 3,
            dscp_rewritten: 4,
            dscp_seen: 1,
            handshake_rtt_ns: 0,
            icmp_unreachable: 5,
            icmp_frag_needed: 6,
            oversize: 7,
        }
    }

    #[test]
    fn a_key_in_both_tables_is_one_flow_with_the_sums() {
        // Rows: a TCP flow, the old entry of media flow 2 (60 packets, earlier), a UDP
        // flow only in FLOWS, the old entry of media flow 4.
        let mut main: FlowTable = vec![
            (key(1, 6), stats(9, 1, 2)),
            (key(2, IPPROTO_UDP), stats(60, 100, 500)),
            (key(3, IPPROTO_UDP), stats(8, 1, 2)),
            (key(4, IPPROTO_UDP), stats(1, 300, 900)),
        ]
        .into();
        let media_keys = vec![
            key(4, IPPROTO_UDP),
            key(2, IPPROTO_UDP),
            key(5, IPPROTO_UDP),
        ];
        let mut later = stats(40, 600, 1000);
        later.class = Class::Audio as u32;
        later.webex_side = WebexSide::Dst as u32;
        later.last_dscp = 46;
        later.dscp_seen = 1 << 46;
        later.next_hop_mtu = 0;
        let mut earlier = stats(2, 200, 800);
        earlier.class = Class::Video as u32;
        earlier.last_dscp = 34;
        earlier.next_hop_mtu = 1300;
        let mut media = vec![
            MediaFlowStats {
                stats: earlier,
                ..Default::default()
            },
            MediaFlowStats {
                stats: later,
                ..Default::default()
            },
            MediaFlowStats::default(),
        ];
        assert_eq!(fold_duplicates(&mut main, &media_keys, &mut media), 2);
        assert_eq!(main.keys(), &[key(1, 6), key(3, IPPROTO_UDP)]);
        assert_eq!(main.stats()[1].packets, 8);

        let two = media[1].stats;
        assert_eq!((two.packets, two.bytes), (100, 10_000));
        assert_eq!((two.first_seen_ns, two.last_seen_ns), (100, 1000));
        assert_eq!(two.fragments, 2);
        assert_eq!(
            (two.dscp_match, two.dscp_mismatch, two.dscp_rewritten),
            (4, 6, 8)
        );
        assert_eq!(two.dscp_seen, 1 | 1 << 46);
        assert_eq!((two.icmp_unreachable, two.icmp_frag_needed), (10, 12));
        assert_eq!(two.oversize, 14);
        // Class, side and last DSCP of the media entry (the later one); the MTU the
        // other one saw, the media entry having none.
        assert_eq!(two.class, Class::Audio as u32);
        assert_eq!(two.webex_side, WebexSide::Dst as u32);
        assert_eq!(two.last_dscp, 46);
        assert_eq!(two.next_hop_mtu, 1400);

        // The FLOWS entry is the later one here: its last DSCP and MTU win.
        let four = media[0].stats;
        assert_eq!(
            (four.packets, four.first_seen_ns, four.last_seen_ns),
            (3, 200, 900)
        );
        assert_eq!(four.class, Class::Video as u32);
        assert_eq!(four.last_dscp, 0);
        assert_eq!(four.next_hop_mtu, 1400);
        assert_eq!(media[2], MediaFlowStats::default());
    }

    #[test]
    fn nothing_is_folded_when_no_key_is_listed_twice() {
        let rows = vec![(key(1, IPPROTO_UDP), stats(9, 1, 2))];
        let mut main: FlowTable = rows.clone().into();
        let mut media = vec![MediaFlowStats::default()];
        assert_eq!(
            fold_duplicates(&mut main, &[key(2, IPPROTO_UDP)], &mut media),
            0
        );
        assert_eq!(fold_duplicates(&mut main, &[], &mut []), 0);
        assert_eq!(main, FlowTable::from(rows));
    }
}
