//! Call quality in userspace: reads the kernel's RTP stream, STUN RTT and media maps,
//! groups streams into calls ([`calls`]), follows them across polls ([`tracker`]: per-poll
//! deltas, the recent window, call start and end, records), computes loss per segment,
//! jitter, RTT, MOS per voice stream (ITU-T G.107 E-model) and health on the window
//! ([`measure`], [`health`]), and reports threshold breaches ([`detect`]).

pub mod calls;
pub mod detect;
pub mod health;
pub mod histograms;
pub mod history;
pub mod measure;
pub mod model;
pub mod mos;
pub mod tracker;
pub mod window;

use aya::{
    Ebpf,
    maps::{HashMap, IterableMap as _, MapData, PerCpuArray},
};
use monitor_common::{
    FlowKey, map_names,
    rtp::{MediaCounters, RtpStreamKey, RtpStreamState, RttStats},
};

use crate::kernel::KernelError;

/// The quality maps at one moment.
#[derive(Clone, Debug, Default)]
pub struct QualitySnapshot {
    pub streams: Vec<(RtpStreamKey, RtpStreamState)>,
    /// STUN RTT by the flow of the requests.
    pub rtt: Vec<(FlowKey, RttStats)>,
    pub counters: MediaCounters,
    /// Capacity of the stream map, for the map fill.
    pub streams_max: u64,
}

/// Reads the quality maps (entries evicted while reading are skipped).
pub fn take(ebpf: &Ebpf) -> Result<QualitySnapshot, KernelError> {
    let map = |name: &'static str| ebpf.map(name).ok_or(KernelError::Missing(name));
    let err = |map| move |source| KernelError::Map { map, source };

    let streams_map: HashMap<&MapData, RtpStreamKey, RtpStreamState> =
        HashMap::try_from(map(map_names::RTP_STREAMS)?).map_err(err(map_names::RTP_STREAMS))?;
    let streams = read(&streams_map).map_err(err(map_names::RTP_STREAMS))?;
    let streams_max = streams_map
        .map()
        .info()
        .map(|i| i.max_entries() as u64)
        .unwrap_or(0);
    let rtt_map: HashMap<&MapData, FlowKey, RttStats> =
        HashMap::try_from(map(map_names::MEDIA_RTT)?).map_err(err(map_names::MEDIA_RTT))?;
    let rtt = read(&rtt_map).map_err(err(map_names::MEDIA_RTT))?;

    let per_cpu: PerCpuArray<&MapData, MediaCounters> =
        PerCpuArray::try_from(map(map_names::MEDIA_COUNTERS)?)
            .map_err(err(map_names::MEDIA_COUNTERS))?;
    let mut counters = MediaCounters::default();
    for cpu in per_cpu
        .get(&0, 0)
        .map_err(err(map_names::MEDIA_COUNTERS))?
        .iter()
    {
        counters.accumulate(cpu);
    }
    Ok(QualitySnapshot {
        streams,
        rtt,
        counters,
        streams_max,
    })
}

fn read<K: aya::Pod, V: aya::Pod>(
    m: &HashMap<&MapData, K, V>,
) -> Result<Vec<(K, V)>, aya::maps::MapError> {
    let mut out = Vec::new();
    for entry in m.iter() {
        match entry {
            Ok(kv) => out.push(kv),
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
