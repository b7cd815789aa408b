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
    let (mut media_keys, mut media) = (Vec::new(), Vec::new());
    read_flows(
        &media_map,
        map_names::MEDIA_FLOWS,
        &mut media_keys,
        &mut media,
    )?;
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
            entries: flows.len() as u64 - main_entries,
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
