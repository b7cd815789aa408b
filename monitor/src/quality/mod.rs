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
    FlowKey, MediaFlowStats, map_names,
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
    /// Of `streams`, those in the stream map (the rest are embedded in media flows).
    pub streams_in_map: u64,
}

/// The RTP streams embedded in media flows (`MediaFlowStats`: the flow's first SSRC),
/// as the `RTP_STREAMS` entries they stand for.
pub fn embedded_streams<'a>(
    media: impl IntoIterator<Item = (&'a FlowKey, &'a MediaFlowStats)>,
) -> Vec<(RtpStreamKey, RtpStreamState)> {
    media
        .into_iter()
        .filter_map(|(k, v)| v.embedded(k))
        .collect()
}

/// Reads the quality maps (entries evicted while reading are skipped), with the streams
/// embedded in the media flows (read from `MEDIA_FLOWS` here; the poll passes those it
/// read with the flows to [`take_with`]).
pub fn take(ebpf: &Ebpf) -> Result<QualitySnapshot, KernelError> {
    let name = map_names::MEDIA_FLOWS;
    let media: HashMap<&MapData, FlowKey, MediaFlowStats> =
        HashMap::try_from(ebpf.map(name).ok_or(KernelError::Missing(name))?)
            .map_err(|source| KernelError::Map { map: name, source })?;
    let media = read(&media).map_err(|source| KernelError::Map { map: name, source })?;
    take_with(ebpf, embedded_streams(media.iter().map(|(k, v)| (k, v))))
}

/// [`take`] with the embedded streams already read. A stream is one entry whichever map
/// holds it: were the same stream in both (a media flow evicted and created again while
/// its stream's `RTP_STREAMS` entry of an earlier version stays), the one seen last is
/// the live one.
pub fn take_with(
    ebpf: &Ebpf,
    embedded: Vec<(RtpStreamKey, RtpStreamState)>,
) -> Result<QualitySnapshot, KernelError> {
    let map = |name: &'static str| ebpf.map(name).ok_or(KernelError::Missing(name));
    let err = |map| move |source| KernelError::Map { map, source };

    let streams_map: HashMap<&MapData, RtpStreamKey, RtpStreamState> =
        HashMap::try_from(map(map_names::RTP_STREAMS)?).map_err(err(map_names::RTP_STREAMS))?;
    let mut streams = read(&streams_map).map_err(err(map_names::RTP_STREAMS))?;
    let streams_in_map = streams.len() as u64;
    streams = merge_streams(streams, embedded);
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
        streams_in_map,
    })
}

/// The streams of the stream map and the embedded ones, each key once (the one seen
/// last when both hold it).
fn merge_streams(
    mut streams: Vec<(RtpStreamKey, RtpStreamState)>,
    embedded: Vec<(RtpStreamKey, RtpStreamState)>,
) -> Vec<(RtpStreamKey, RtpStreamState)> {
    if streams.is_empty() {
        return embedded;
    }
    let mut at: std::collections::HashMap<RtpStreamKey, usize> = streams
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, i))
        .collect();
    for (k, s) in embedded {
        match at.get(&k) {
            Some(&i) => {
                if s.last_seen_ns >= streams[i].1.last_seen_ns {
                    streams[i].1 = s;
                }
            }
            None => {
                at.insert(k, streams.len());
                streams.push((k, s));
            }
        }
    }
    streams
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

#[cfg(test)]
mod merge_tests {
    use super::*;

    fn stream(ssrc: u32, last_seen_ns: u64) -> (RtpStreamKey, RtpStreamState) {
        (
            RtpStreamKey {
                flow: FlowKey::default(),
                ssrc,
            },
            RtpStreamState {
                last_seen_ns,
                ..Default::default()
            },
        )
    }

    #[test]
    fn each_stream_once_the_one_seen_last_when_both_maps_hold_it() {
        let map = vec![stream(1, 10), stream(2, 50)];
        let embedded = vec![stream(2, 40), stream(3, 5), stream(1, 20)];
        let mut got: Vec<(u32, u64)> = merge_streams(map, embedded)
            .iter()
            .map(|(k, s)| (k.ssrc, s.last_seen_ns))
            .collect();
        got.sort();
        assert_eq!(got, [(1, 20), (2, 50), (3, 5)]);
        assert_eq!(merge_streams(Vec::new(), vec![stream(4, 1)]).len(), 1);
    }
}
