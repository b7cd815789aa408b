//! Per-stream counters between polls: each poll's deltas of the kernel's cumulative
//! counters, the sliding window of the last `[quality] window_s` seconds of them, and the
//! baseline where the stream's current call began.

use std::collections::VecDeque;

use monitor_common::rtp::RtpStreamState;

use crate::report::calls::PollDelta;

/// The kernel's cumulative counters of a stream that quality is computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub packets: u64,
    pub duplicates: u64,
    pub expected: u64,
    pub lost: u64,
    pub bursts: u64,
    /// Video frames (new timestamps in order).
    pub frames: u64,
    /// RFC 3550 jitter summed after each regular packet (16 × timestamp units), and
    /// how many: their quotient is the mean jitter over those packets.
    pub jitter_sum: u64,
    pub jitter_samples: u64,
}

impl Counts {
    pub fn of(s: &RtpStreamState) -> Counts {
        Counts {
            packets: s.packets,
            duplicates: s.duplicates,
            expected: s.expected(),
            lost: s.lost(),
            // 16-bit in the kernel: widened across polls by `Track::update`.
            bursts: s.loss_bursts as u64,
            frames: s.frames as u64,
            jitter_sum: s.jitter_sum,
            jitter_samples: s.jitter_samples,
        }
    }

    /// `self − base`, never below zero (a late packet can lower the kernel's loss).
    pub fn minus(&self, base: &Counts) -> Counts {
        Counts {
            packets: self.packets.saturating_sub(base.packets),
            duplicates: self.duplicates.saturating_sub(base.duplicates),
            expected: self.expected.saturating_sub(base.expected),
            lost: self.lost.saturating_sub(base.lost),
            bursts: self.bursts.saturating_sub(base.bursts),
            frames: self.frames.saturating_sub(base.frames),
            jitter_sum: self.jitter_sum.saturating_sub(base.jitter_sum),
            jitter_samples: self.jitter_samples.saturating_sub(base.jitter_samples),
        }
    }

    pub fn add(&mut self, o: &Counts) {
        self.packets += o.packets;
        self.duplicates += o.duplicates;
        self.expected += o.expected;
        self.lost += o.lost;
        self.bursts += o.bursts;
        self.frames += o.frames;
        self.jitter_sum += o.jitter_sum;
        self.jitter_samples += o.jitter_samples;
    }

    /// Packets that arrived once (duplicates removed).
    pub fn distinct(&self) -> u64 {
        self.packets.saturating_sub(self.duplicates)
    }

    /// Mean jitter in ms at `clock_rate` (0 when unknown or no samples).
    pub fn mean_jitter_ms(&self, clock_rate: u32) -> f64 {
        if clock_rate == 0 || self.jitter_samples == 0 {
            return 0.0;
        }
        self.jitter_sum as f64 / self.jitter_samples as f64 / 16.0 * 1000.0 / clock_rate as f64
    }
}

/// Loss in percent of `lost` out of `expected` (0 when nothing was expected).
pub fn pct(lost: u64, expected: u64) -> f64 {
    if expected == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / expected as f64
    }
}

/// One stream across polls.
#[derive(Clone, Debug, Default)]
pub struct Track {
    /// The counters at the last poll.
    pub prev: Counts,
    /// The counters when the stream's current call began.
    pub base: Counts,
    /// The serial of the call it belongs to.
    pub call: Option<u64>,
    /// This poll's counters.
    pub now: Counts,
    /// The last poll's change.
    pub last: PollDelta,
    /// Per-poll deltas with the interval they cover (previous poll, this poll), oldest
    /// first, for the window.
    samples: VecDeque<(u64, u64, Counts)>,
    /// When the last poll was taken.
    last_poll_ns: Option<u64>,
}

/// The 16-bit kernel counter `raw` widened past `prev` (whose low 16 bits are the last
/// raw value).
fn widen16(prev: u64, raw: u64) -> u64 {
    prev + (raw as u16).wrapping_sub(prev as u16) as u64
}

impl Track {
    /// A stream first seen now. A stream silent for longer than a call's idle gap when
    /// first seen (the daemon restarted on pinned maps) belongs to no call: its counters
    /// so far are the baseline. On the daemon's first poll (`at_start`) the counters so
    /// far are the call's but not the window's: a window (and so a verdict) never holds
    /// counts from before this daemon started.
    pub fn new(cur: Counts, stale: bool, at_start: bool) -> Track {
        let base = if stale { cur } else { Counts::default() };
        Track {
            prev: if stale || at_start { cur } else { base },
            base,
            ..Default::default()
        }
    }

    /// Takes this poll's counters at `now_ns` and keeps `window_ns` of deltas; a stream
    /// new to the tracker began at `first_seen_ns`.
    pub fn update(
        &mut self,
        mut cur: Counts,
        jitter_ms: f64,
        now_ns: u64,
        window_ns: u64,
        first_seen_ns: u64,
    ) {
        if cur.packets < self.prev.packets {
            // The kernel's entry was replaced (evicted, then the stream came back).
            self.prev = Counts::default();
            self.base = Counts::default();
        }
        cur.bursts = widen16(self.prev.bursts, cur.bursts);
        cur.frames = widen16(self.prev.frames, cur.frames);
        let from = self.last_poll_ns.unwrap_or(first_seen_ns.min(now_ns));
        self.last_poll_ns = Some(now_ns);
        let d = cur.minus(&self.prev);
        self.last = PollDelta {
            expected: d.expected,
            received: d.distinct(),
            lost: d.lost,
            jitter_ms,
        };
        if d.packets > 0 || d.expected > 0 {
            self.samples.push_back((from, now_ns, d));
        }
        while self
            .samples
            .front()
            .is_some_and(|(_, at, _)| now_ns.saturating_sub(*at) >= window_ns)
        {
            self.samples.pop_front();
        }
        self.now = cur;
    }

    /// Seconds the window covers (at most the window, less for a young stream).
    pub fn window_span_s(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some((from, _, _)), Some((_, last, _))) => last.saturating_sub(*from) as f64 / 1e9,
            _ => 0.0,
        }
    }

    /// Joins the call `serial`: its counters before this poll are the baseline, and the
    /// window starts with this poll's delta (an earlier call's packets are not this
    /// call's).
    pub fn join(&mut self, serial: u64) {
        if self.call.is_some() {
            self.base = self.prev;
            let keep = self.samples.pop_back();
            self.samples.clear();
            self.samples.extend(keep);
        }
        self.call = Some(serial);
    }

    /// Ends this poll: the counters now are the next poll's previous ones.
    pub fn finish_poll(&mut self) {
        self.prev = self.now;
    }

    /// The call's share of the stream.
    pub fn in_call(&self) -> Counts {
        self.now.minus(&self.base)
    }

    /// The sum of the window's deltas.
    pub fn window(&self) -> Counts {
        let mut w = Counts::default();
        for (_, _, d) in &self.samples {
            w.add(d);
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn c(packets: u64, expected: u64, lost: u64) -> Counts {
        Counts {
            packets,
            expected,
            lost,
            ..Default::default()
        }
    }

    #[test]
    fn the_window_keeps_the_last_seconds_of_deltas() {
        let mut t = Track::new(Counts::default(), false, false);
        // 50 packets a second, clean for 3 s, then 5 lost a second.
        let mut cur = c(0, 0, 0);
        for sec in 1..=6u64 {
            let lost = if sec > 3 { 5 } else { 0 };
            cur = c(cur.packets + 50 - lost, cur.expected + 50, cur.lost + lost);
            t.update(cur, 0.0, sec * S, 2 * S, 0);
            t.finish_poll();
        }
        // The window holds seconds 5 and 6 only: the polls of 5 and 6 s, from 4 s.
        assert_eq!(t.window(), c(90, 100, 10));
        assert_eq!(t.window_span_s(), 2.0);
        assert_eq!(t.in_call(), c(285, 300, 15));
        assert_eq!((t.last.expected, t.last.received, t.last.lost), (50, 45, 5));
    }

    #[test]
    fn a_new_call_on_the_stream_starts_from_its_counters_then() {
        let mut t = Track::new(Counts::default(), false, false);
        t.update(c(100, 100, 2), 0.0, S, 10 * S, 0);
        t.join(1);
        t.finish_poll();
        // Silent, then a new call: only the new packets are its.
        t.update(c(150, 150, 3), 0.0, 40 * S, 10 * S, 0);
        t.join(2);
        t.finish_poll();
        assert_eq!(t.in_call(), c(50, 50, 1));
        assert_eq!(t.window(), c(50, 50, 1));
    }

    #[test]
    fn sixteen_bit_kernel_counters_are_widened_across_polls() {
        let mut t = Track::new(Counts::default(), false, false);
        let raw = |frames| Counts {
            packets: frames,
            frames: frames % 65536,
            ..Default::default()
        };
        t.update(raw(65530), 0.0, S, 10 * S, 0);
        t.finish_poll();
        t.update(raw(65540), 0.0, 2 * S, 10 * S, 0);
        assert_eq!(t.now.frames, 65540);
        assert_eq!(t.last.expected, 0);
        assert_eq!(t.window().frames, 65540);
    }

    #[test]
    fn a_stale_stream_at_start_and_a_replaced_entry() {
        let t = Track::new(c(500, 500, 9), true, false);
        assert_eq!(t.base, c(500, 500, 9));
        // At the daemon's start: the call's, not the window's.
        let mut t = Track::new(c(500, 500, 9), false, true);
        t.update(c(550, 550, 9), 0.0, S, 10 * S, 0);
        assert_eq!(t.in_call(), c(550, 550, 9));
        assert_eq!(t.window(), c(50, 50, 0));
        let mut t = Track::new(c(500, 500, 9), false, false);
        t.update(c(500, 500, 9), 0.0, S, 10 * S, 0);
        t.finish_poll();
        t.update(c(20, 20, 0), 0.0, 2 * S, 10 * S, 0);
        assert_eq!(t.in_call(), c(20, 20, 0));
    }
}
