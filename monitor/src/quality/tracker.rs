//! Calls across polls: each stream's counters between polls ([`super::window`]), which
//! call each stream belongs to, when a call starts and ends, and the records of ended
//! calls.
//!
//! A call starts with the first packet of a 5-tuple that has no active call, and ends
//! when all its streams have been silent for `[quality] call_idle_s`; it then becomes a
//! [`CallRecord`], kept for `call_record_max_age_s`, at most `max_call_records`. Media on
//! the same 5-tuple after the end is a new call with a new ID, measured from the
//! kernel's counters at that moment.

use std::collections::{HashMap, HashSet, VecDeque};

use monitor_common::rtp::RtpStreamKey;

use super::{
    QualitySnapshot,
    calls::{CallKey, Iface, observe},
    histograms::Histograms,
    measure,
    window::{Counts, Track},
};
use crate::{
    config::quality::QualityConfig,
    report::calls::{
        CallRecord, CallStatus, CallTracking, HistoryPoint, RecordLeg, WindowHistogram,
        WindowObservation, WindowStatus,
    },
};

const S: u64 = 1_000_000_000;

/// One active call.
#[derive(Clone, Debug)]
pub struct Call {
    pub serial: u64,
    pub id: String,
    pub started_mono_ns: u64,
    pub started_unix_s: u64,
    /// The last packet of any of its streams.
    pub last_packet_ns: u64,
    /// Health level (0 ok, 1 warning, 2 critical) and the worst it reached.
    pub level: u8,
    pub worst_level: u8,
    /// Window MOS over the polls with a sufficient window: lowest, sum and count.
    pub mos_min: Option<f64>,
    pub mos_sum: f64,
    pub mos_polls: u64,
    pub worst_window: Option<WindowStatus>,
    /// The call as last reported, for its record.
    pub last: Option<CallStatus>,
    /// When its window last went into the histograms (the call's start at first).
    pub observed_ns: u64,
    /// One point per poll, oldest first, at most [`super::history::POINTS`].
    pub history: VecDeque<HistoryPoint>,
}

/// When a poll is taken: the monotonic clock (for intervals) and the wall clock (for
/// the times reported).
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub mono_ns: u64,
    pub unix_s: u64,
}

/// What one poll of the tracker reports.
#[derive(Clone, Debug, Default)]
pub struct Polled {
    /// Active calls, busiest first.
    pub calls: Vec<CallStatus>,
    /// Records of ended calls, newest first.
    pub records: Vec<CallRecord>,
    /// Calls that ended in this poll.
    pub ended: Vec<CallRecord>,
    pub tracking: CallTracking,
    /// Window histograms per class and interface, and their latest observations.
    pub histograms: Vec<WindowHistogram>,
    pub observations: Vec<WindowObservation>,
}

/// The calls' state between polls.
#[derive(Debug, Default)]
pub struct Tracker {
    streams: HashMap<RtpStreamKey, Track>,
    calls: HashMap<CallKey, Call>,
    records: VecDeque<CallRecord>,
    next_serial: u64,
    polls: u64,
    tracking: CallTracking,
    histograms: Histograms,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Takes one snapshot: updates every stream, starts and ends calls, and returns the
    /// calls and records to show.
    pub fn poll(
        &mut self,
        flows: &crate::flows::table::FlowTable,
        snap: &QualitySnapshot,
        ifaces: &HashMap<u32, Iface<'_>>,
        q: &QualityConfig,
        now_mono_ns: u64,
        now_unix_s: u64,
    ) -> Polled {
        self.polls += 1;
        let at_start = self.polls == 1;
        let idle_ns = q.call_idle_s * S;
        let window_ns = q.window_s * S;

        // Every stream's counters, before anything is joined.
        let present: HashSet<&RtpStreamKey> = snap.streams.iter().map(|(k, _)| k).collect();
        self.streams.retain(|k, _| present.contains(k));
        for (key, s) in &snap.streams {
            let cur = Counts::of(s);
            let stale = now_mono_ns.saturating_sub(s.last_seen_ns) > idle_ns;
            let track = self
                .streams
                .entry(*key)
                .or_insert_with(|| Track::new(cur, stale, at_start));
            track.update(cur, s.jitter_ms(), now_mono_ns, window_ns, s.first_seen_ns);
        }

        // Streams by call. A call is active while one of its streams carried a packet
        // within `call_idle_s`; a stream of an active call stays in it when it falls
        // silent (so the record has every direction), others join only when live.
        let obs = observe(flows, snap, ifaces);
        let live = |o: &super::calls::Obs| now_mono_ns.saturating_sub(o.s.last_seen_ns) <= idle_ns;
        let mut all: HashMap<CallKey, Vec<&super::calls::Obs>> = HashMap::new();
        for o in &obs {
            all.entry(o.call).or_default().push(o);
        }
        let mut groups: HashMap<CallKey, Vec<&super::calls::Obs>> = HashMap::new();
        for (key, members) in all {
            if !members.iter().any(|o| live(o)) {
                continue;
            }
            let serial = self.calls.get(&key).map(|c| c.serial);
            let members: Vec<&super::calls::Obs> = members
                .into_iter()
                .filter(|o| {
                    live(o)
                        || serial.is_some()
                            && self.streams.get(o.key).and_then(|t| t.call) == serial
                })
                .collect();
            groups.insert(key, members);
        }

        // Calls with no active stream have ended.
        let mut ended = Vec::new();
        let gone: Vec<CallKey> = self
            .calls
            .keys()
            .filter(|k| !groups.contains_key(k))
            .copied()
            .collect();
        for k in gone {
            if let Some(call) = self.calls.remove(&k) {
                ended.extend(record(&call, now_mono_ns, now_unix_s));
            }
        }

        let mut calls = Vec::new();
        let mut keys: Vec<&CallKey> = groups.keys().collect();
        keys.sort();
        for key in keys {
            let members = &groups[key];
            if !self.calls.contains_key(key) {
                let call = self.start(key, members, now_mono_ns, now_unix_s);
                self.calls.insert(*key, call);
            }
            let Some(call) = self.calls.get_mut(key) else {
                continue;
            };
            call.last_packet_ns = members
                .iter()
                .map(|o| o.s.last_seen_ns)
                .max()
                .unwrap_or(call.last_packet_ns);
            for o in members {
                if let Some(t) = self.streams.get_mut(o.key)
                    && t.call != Some(call.serial)
                {
                    t.join(call.serial);
                }
            }
            let status = measure::call(
                key,
                members,
                &self.streams,
                snap,
                q,
                call,
                Now {
                    mono_ns: now_mono_ns,
                    unix_s: now_unix_s,
                },
            );
            // Each completed window of the call once into the histograms.
            if status.window.sufficient && now_mono_ns.saturating_sub(call.observed_ns) >= window_ns
            {
                self.histograms.observe(&status);
                call.observed_ns = now_mono_ns;
            }
            call.last = Some(status.clone());
            calls.push(status);
        }
        for t in self.streams.values_mut() {
            t.finish_poll();
        }

        self.tracking.calls_ended += ended.len() as u64;
        for r in &ended {
            self.records.push_front(r.clone());
        }
        self.records
            .retain(|r| now_unix_s.saturating_sub(r.ended_unix_s) <= q.call_record_max_age_s);
        while self.records.len() > q.max_call_records {
            self.records.pop_back();
            self.tracking.records_dropped += 1;
        }

        calls.sort_by(|a, b| {
            b.packets
                .cmp(&a.packets)
                .then_with(|| a.inner_addr.cmp(&b.inner_addr))
                .then_with(|| a.inner_port.cmp(&b.inner_port))
        });
        let tracking = CallTracking {
            window_s: q.window_s,
            min_window_packets: q.min_window_packets,
            call_idle_s: q.call_idle_s,
            max_call_records: q.max_call_records as u64,
            call_record_max_age_s: q.call_record_max_age_s,
            window_history_points: super::history::POINTS as u64,
            ..self.tracking.clone()
        };
        Polled {
            calls,
            records: self.records.iter().cloned().collect(),
            ended,
            tracking,
            histograms: self.histograms.histograms(),
            observations: self.histograms.observations(),
        }
    }

    fn start(
        &mut self,
        key: &CallKey,
        members: &[&super::calls::Obs],
        now_mono_ns: u64,
        now_unix_s: u64,
    ) -> Call {
        self.next_serial += 1;
        self.tracking.calls_started += 1;
        // The first packet: a stream new to the tracker began with the call; one that
        // carried an earlier call resumed within the last poll.
        let started_mono_ns = members
            .iter()
            .map(|o| match self.streams.get(o.key) {
                Some(t) if t.call.is_none() && t.base == Counts::default() => o.s.first_seen_ns,
                _ => now_mono_ns,
            })
            .min()
            .unwrap_or(now_mono_ns)
            .min(now_mono_ns);
        let started_unix_s =
            now_unix_s.saturating_sub(now_mono_ns.saturating_sub(started_mono_ns) / S);
        let taken: HashSet<&str> = self
            .calls
            .values()
            .map(|c| c.id.as_str())
            .chain(self.records.iter().map(|r| r.id.as_str()))
            .collect();
        let mut salt = 0u64;
        let id = loop {
            let id = call_id(key, started_mono_ns, self.next_serial + salt);
            if !taken.contains(id.as_str()) {
                break id;
            }
            salt += 1;
        };
        Call {
            serial: self.next_serial,
            id,
            started_mono_ns,
            started_unix_s,
            last_packet_ns: started_mono_ns,
            level: 0,
            worst_level: 0,
            mos_min: None,
            mos_sum: 0.0,
            mos_polls: 0,
            worst_window: None,
            last: None,
            observed_ns: started_mono_ns,
            history: VecDeque::new(),
        }
    }
}

/// A short ID (8 hex digits, FNV-1a) of a call's 5-tuple, start and serial: stable for
/// the call's life and its record, unlikely to repeat (the tracker checks it does not).
fn call_id(key: &CallKey, started_mono_ns: u64, serial: u64) -> String {
    let text = format!(
        "{}|{}|{}|{}|{started_mono_ns}|{serial}",
        key.inner, key.inner_port, key.peer, key.peer_port
    );
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// The record of an ended call (none if it was never reported).
fn record(call: &Call, now_mono_ns: u64, now_unix_s: u64) -> Option<CallRecord> {
    let c = call.last.as_ref()?;
    let ended_unix_s =
        now_unix_s.saturating_sub(now_mono_ns.saturating_sub(call.last_packet_ns) / S);
    Some(CallRecord {
        id: call.id.clone(),
        inner_addr: c.inner_addr.clone(),
        inner_port: c.inner_port,
        peer_addr: c.peer_addr.clone(),
        peer_port: c.peer_port,
        kind: c.kind.clone(),
        started_unix_s: call.started_unix_s,
        ended_unix_s,
        duration_s: call.last_packet_ns.saturating_sub(call.started_mono_ns) as f64 / 1e9,
        packets: c.packets,
        loss_pct: c.loss_pct,
        jitter_ms: c.legs.iter().map(|l| l.mean_jitter_ms).fold(0.0, f64::max),
        rtt_ms: c.rtt_ms,
        mos_min: call.mos_min,
        mos_mean: (call.mos_polls > 0).then(|| round2(call.mos_sum / call.mos_polls as f64)),
        worst_window: call.worst_window.clone(),
        worst_health: super::health::name(call.worst_level).to_string(),
        legs: c
            .legs
            .iter()
            .map(|l| RecordLeg {
                direction: l.direction.clone(),
                measured_at: l.measured_at.clone(),
                packets: l.packets,
                expected: l.expected,
                lost: l.lost,
                loss_pct: l.loss_pct,
            })
            .collect(),
        segments: c.segments.clone(),
        window_history: c.window_history.clone(),
    })
}

pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests;
