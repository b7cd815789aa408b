//! Histograms of the calls' window figures per class and interface: each direction of a
//! call adds its window's MOS (voice only), jitter and loss once per completed window,
//! so a long call weighs by its length and no window is counted twice. Kept cumulative
//! here (the Prometheus endpoint shows them as they are) with a numbered ring of the
//! latest observations (the OTLP exporter records each exactly once).

use std::collections::{BTreeMap, VecDeque};

use crate::report::calls::{CallStatus, WindowHistogram, WindowObservation};

/// Bucket bounds of each measure.
pub const MOS_BOUNDS: &[f64] = &[1.0, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4];
pub const JITTER_BOUNDS_S: &[f64] = &[0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2];
pub const LOSS_BOUNDS: &[f64] = &[0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2];

/// Observations kept for the exporter; older ones are dropped (an exporter slower than
/// this many observations per export misses some, and says so in its log).
pub const RING: usize = 4096;

#[derive(Debug, Default)]
pub struct Histograms {
    by_key: BTreeMap<(&'static str, String, String), WindowHistogram>,
    ring: VecDeque<WindowObservation>,
    serial: u64,
}

pub fn bounds(measure: &str) -> &'static [f64] {
    match measure {
        "mos" => MOS_BOUNDS,
        "jitter" => JITTER_BOUNDS_S,
        _ => LOSS_BOUNDS,
    }
}

impl Histograms {
    /// Adds `c`'s window, one observation per direction and measure.
    pub fn observe(&mut self, c: &CallStatus) {
        for leg in &c.legs {
            let interface = leg
                .measured_at
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            let expected: u64 = leg.streams.iter().map(|s| s.window_expected).sum();
            if expected == 0 {
                continue;
            }
            let gateway: u64 = c
                .segments
                .iter()
                .filter(|s| s.segment == "gateway" && s.direction == leg.direction)
                .map(|s| s.window_lost)
                .sum();
            let lost: u64 = leg.streams.iter().map(|s| s.window_lost).sum::<u64>() + gateway;
            let jitter_ms = leg
                .streams
                .iter()
                .map(|s| s.window_jitter_ms)
                .fold(0.0, f64::max);
            let mos = leg
                .streams
                .iter()
                .filter_map(|s| s.mos)
                .min_by(|a, b| a.total_cmp(b));
            self.add("loss", &c.kind, &interface, lost as f64 / expected as f64);
            self.add("jitter", &c.kind, &interface, jitter_ms / 1000.0);
            if let Some(m) = mos {
                self.add("mos", &c.kind, &interface, m);
            }
        }
    }

    fn add(&mut self, measure: &'static str, class: &str, interface: &str, value: f64) {
        let h = self
            .by_key
            .entry((measure, class.to_string(), interface.to_string()))
            .or_insert_with(|| WindowHistogram {
                measure: measure.to_string(),
                class: class.to_string(),
                interface: interface.to_string(),
                bounds: bounds(measure).to_vec(),
                counts: vec![0; bounds(measure).len() + 1],
                sum: 0.0,
                count: 0,
            });
        let bucket = h
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(h.bounds.len());
        h.counts[bucket] += 1;
        h.sum += value;
        h.count += 1;
        self.serial += 1;
        self.ring.push_back(WindowObservation {
            serial: self.serial,
            measure: measure.to_string(),
            class: class.to_string(),
            interface: interface.to_string(),
            value,
        });
        while self.ring.len() > RING {
            self.ring.pop_front();
        }
    }

    pub fn histograms(&self) -> Vec<WindowHistogram> {
        self.by_key.values().cloned().collect()
    }

    pub fn observations(&self) -> Vec<WindowObservation> {
        self.ring.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::calls::{CallLeg, SegmentStatus, StreamStatus};

    #[test]
    fn each_direction_adds_its_window_once_per_measure() {
        let stream = |expected, lost, jitter, mos| StreamStatus {
            window_expected: expected,
            window_lost: lost,
            window_jitter_ms: jitter,
            mos,
            ..serde_json::from_value(serde_json::json!({
                "interface": "", "direction": "", "src_addr": "", "src_port": 0,
                "dst_addr": "", "dst_port": 0, "ssrc": 0, "payload_type": 0, "packets": 0,
                "expected": 0, "received": 0, "lost_rfc": 0, "lost": 0, "duplicates": 0,
                "reordered": 0, "restarts": 0, "jitter_ms": 0.0, "max_jitter_ms": 0.0,
                "mean_jitter_ms": 0.0, "clock_rate": 0, "clock_source": "", "idle_s": 0.0
            }))
            .unwrap()
        };
        let leg = |direction: &str, at: &str, streams| CallLeg {
            direction: direction.into(),
            measured_at: at.into(),
            packets: 0,
            expected: 0,
            lost: 0,
            loss_pct: 0.0,
            duplicates: 0,
            reordered: 0,
            jitter_ms: 0.0,
            mean_jitter_ms: 0.0,
            streams,
        };
        let mut c: CallStatus = serde_json::from_value(serde_json::json!({
            "inner_addr": "", "peer_addr": "", "peer_port": 0, "kind": "audio",
            "direction": "both", "packets": 0, "loss_pct": 0.0, "jitter_ms": 0.0,
            "rtt_ms": null, "one_way_latency_ms_estimate": null, "mos": null,
            "mos_codec": "", "health": "ok", "breaches": [], "clock_rate": 0,
            "clock_source": "", "idle_s": 0.0, "legs": []
        }))
        .unwrap();
        c.legs = vec![
            leg(
                "to_webex",
                "lan0 ingress",
                vec![stream(500, 0, 4.0, Some(4.4))],
            ),
            leg(
                "from_webex",
                "wan0 ingress",
                vec![stream(500, 40, 12.0, Some(3.6))],
            ),
        ];
        // 10 more lost inside the gateway on the way in: 50 of 500.
        c.segments = vec![SegmentStatus {
            segment: "gateway".into(),
            direction: "from_webex".into(),
            window_lost: 10,
            ..Default::default()
        }];
        let mut h = Histograms::default();
        h.observe(&c);
        let all = h.histograms();
        assert_eq!(all.len(), 6);
        let get = |m: &str, i: &str| {
            all.iter()
                .find(|x| x.measure == m && x.interface == i)
                .unwrap()
                .clone()
        };
        let loss = get("loss", "wan0");
        assert_eq!((loss.count, loss.sum), (1, 0.1));
        // 0.1 falls in the bucket with upper bound 0.1.
        assert_eq!(loss.counts, vec![0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(get("loss", "lan0").counts[0], 1);
        assert_eq!(get("jitter", "wan0").sum, 0.012);
        assert_eq!(
            get("mos", "wan0").counts,
            vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        let obs = h.observations();
        assert_eq!(obs.len(), 6);
        assert_eq!(obs.last().unwrap().serial, 6);
    }
}
