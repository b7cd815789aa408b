//! The call metrics, from the report's typed calls (`crate::report::calls`): per active
//! call (the busiest `max_call_series`) the recent window's loss, jitter and MOS, the
//! RTT and the health as gauges; the active calls per kind; and per class and interface
//! histograms of the window MOS, jitter and loss. Names and units are fixed (README
//! "Metrics"); values are floating point, so they live beside `super::series`.

use std::collections::BTreeMap;

use super::series::{AttrValue, Kind, MetricDef, def};
use crate::{
    report::calls::{CallStatus, WindowHistogram},
    status::model::StatusReport,
};

def!(
    CALL_LOSS,
    "monitor.call.loss",
    "1",
    Gauge,
    "Loss of the call's worse direction over the recent window (all segments this gateway sees), 0..1; absent until the window has enough packets."
);
def!(
    CALL_JITTER,
    "monitor.call.jitter",
    "s",
    Gauge,
    "Mean RFC 3550 jitter of the call's worse direction over the recent window."
);
def!(
    CALL_RTT,
    "monitor.call.rtt",
    "s",
    Gauge,
    "Latest STUN round-trip time between the call's inner host and its Webex peer."
);
def!(
    CALL_MOS,
    "monitor.call.mos",
    "{mos}",
    Gauge,
    "E-model MOS of the call's worst voice stream over the recent window (no series for video-only calls)."
);
def!(
    CALL_HEALTH,
    "monitor.call.health",
    "{health}",
    Gauge,
    "Call health on the recent window: 0 ok, 1 warning, 2 critical."
);
def!(
    CALLS_ACTIVE,
    "monitor.calls.active",
    "{call}",
    Gauge,
    "Active calls by monitor.call.kind (audio, video, media)."
);
def!(
    WINDOW_MOS,
    "monitor.call.window.mos",
    "{mos}",
    Histogram,
    "Window MOS of voice streams, one observation per call direction and completed window, per class and interface."
);
def!(
    WINDOW_JITTER,
    "monitor.call.window.jitter",
    "s",
    Histogram,
    "Window jitter, one observation per call direction and completed window, per class and interface."
);
def!(
    WINDOW_LOSS,
    "monitor.call.window.loss",
    "1",
    Histogram,
    "Window loss ratio, one observation per call direction and completed window, per class and interface."
);

/// The per-call gauges, then the active calls.
pub const GAUGES: &[&MetricDef] = &[
    &CALL_LOSS,
    &CALL_JITTER,
    &CALL_RTT,
    &CALL_MOS,
    &CALL_HEALTH,
    &CALLS_ACTIVE,
];

/// The window histograms, by the measure name they hold.
pub const HISTOGRAMS: &[(&str, &MetricDef)] = &[
    ("mos", &WINDOW_MOS),
    ("jitter", &WINDOW_JITTER),
    ("loss", &WINDOW_LOSS),
];

/// Call kinds always present in `monitor.calls.active` (so the series never vanish).
const KINDS: &[&str] = &["audio", "video", "media"];

/// One gauge value.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatPoint {
    pub attrs: Vec<(&'static str, AttrValue)>,
    pub value: f64,
}

/// One histogram (cumulative).
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramPoint {
    pub attrs: Vec<(&'static str, AttrValue)>,
    pub bounds: Vec<f64>,
    /// Per bucket (not cumulative); one more than `bounds`.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallSeries {
    pub gauges: BTreeMap<&'static str, Vec<FloatPoint>>,
    pub histograms: BTreeMap<&'static str, Vec<HistogramPoint>>,
}

fn s(v: impl Into<String>) -> AttrValue {
    AttrValue::Str(v.into())
}

/// The attributes of a per-call series.
pub fn call_attrs(c: &CallStatus) -> Vec<(&'static str, AttrValue)> {
    vec![
        ("monitor.call.id", s(&c.id)),
        ("monitor.call.kind", s(&c.kind)),
        ("network.local.address", s(&c.inner_addr)),
        ("network.peer.address", s(&c.peer_addr)),
        ("network.peer.port", AttrValue::Int(c.peer_port.into())),
    ]
}

/// The attributes of a histogram.
pub fn histogram_attrs(class: &str, interface: &str) -> Vec<(&'static str, AttrValue)> {
    vec![
        ("monitor.class", s(class)),
        ("network.interface.name", s(interface)),
    ]
}

fn level(health: &str) -> f64 {
    match health {
        "ok" => 0.0,
        "warning" => 1.0,
        _ => 2.0,
    }
}

/// Every call series of `report`, at most `max_call_series` calls (busiest first).
pub fn collect(report: &StatusReport, max_call_series: u32) -> CallSeries {
    let mut out = CallSeries::default();
    for def in GAUGES {
        out.gauges.insert(def.name, Vec::new());
    }
    for c in report.calls.iter().take(max_call_series as usize) {
        let attrs = call_attrs(c);
        let mut put = |def: &MetricDef, value: f64| {
            if let Some(v) = out.gauges.get_mut(def.name) {
                v.push(FloatPoint {
                    attrs: attrs.clone(),
                    value,
                });
            }
        };
        if c.window.sufficient {
            put(&CALL_LOSS, c.window.loss_pct / 100.0);
            put(&CALL_JITTER, c.window.jitter_ms / 1000.0);
        }
        if let Some(rtt) = c.rtt_ms {
            put(&CALL_RTT, rtt / 1000.0);
        }
        if let Some(mos) = c.mos {
            put(&CALL_MOS, mos);
        }
        put(&CALL_HEALTH, level(&c.health));
    }
    let mut kinds: Vec<&str> = KINDS.to_vec();
    for c in &report.calls {
        if !kinds.contains(&c.kind.as_str()) {
            kinds.push(&c.kind);
        }
    }
    out.gauges.insert(
        CALLS_ACTIVE.name,
        kinds
            .iter()
            .map(|k| FloatPoint {
                attrs: vec![("monitor.call.kind", s(*k))],
                value: report.calls.iter().filter(|c| c.kind == *k).count() as f64,
            })
            .collect(),
    );
    for (measure, def) in HISTOGRAMS {
        out.histograms.insert(
            def.name,
            report
                .call_histograms
                .iter()
                .filter(|h| h.measure == *measure)
                .map(histogram_point)
                .collect(),
        );
    }
    out
}

fn histogram_point(h: &WindowHistogram) -> HistogramPoint {
    HistogramPoint {
        attrs: histogram_attrs(&h.class, &h.interface),
        bounds: h.bounds.clone(),
        counts: h.counts.clone(),
        sum: h.sum,
        count: h.count,
    }
}

/// The histogram metric of a measure name.
pub fn histogram_def(measure: &str) -> Option<&'static MetricDef> {
    HISTOGRAMS
        .iter()
        .find(|(m, _)| *m == measure)
        .map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::render::tests::sample_report;

    #[test]
    fn per_call_gauges_are_capped_and_active_calls_counted_by_kind() {
        let mut report = sample_report();
        let mut c: CallStatus = serde_json::from_value(serde_json::json!({
            "inner_addr": "192.0.2.10", "peer_addr": "203.0.113.10", "peer_port": 5004,
            "kind": "audio", "direction": "both", "packets": 500, "loss_pct": 2.0,
            "jitter_ms": 3.0, "rtt_ms": 40.0, "one_way_latency_ms_estimate": 20.0,
            "mos": 3.9, "mos_codec": "G.711", "health": "warning", "breaches": [],
            "clock_rate": 8000, "clock_source": "static", "idle_s": 0.1, "legs": []
        }))
        .unwrap();
        c.id = "0000beef".into();
        c.window.sufficient = true;
        c.window.loss_pct = 10.0;
        c.window.jitter_ms = 4.0;
        let mut young = c.clone();
        young.id = "0000cafe".into();
        young.window.sufficient = false;
        young.mos = None;
        young.rtt_ms = None;
        young.health = "ok".into();
        report.calls = vec![c, young];
        let cs = collect(&report, 5);
        let one = |name: &str| cs.gauges[name].clone();
        assert_eq!(
            one(CALL_LOSS.name).len(),
            1,
            "no loss before a sufficient window"
        );
        assert_eq!(one(CALL_LOSS.name)[0].value, 0.1);
        assert_eq!(one(CALL_JITTER.name)[0].value, 0.004);
        assert_eq!(one(CALL_RTT.name)[0].value, 0.04);
        assert_eq!(one(CALL_MOS.name)[0].value, 3.9);
        assert_eq!(
            one(CALL_HEALTH.name)
                .iter()
                .map(|p| p.value)
                .collect::<Vec<_>>(),
            [1.0, 0.0]
        );
        assert_eq!(
            one(CALL_LOSS.name)[0].attrs,
            vec![
                ("monitor.call.id", s("0000beef")),
                ("monitor.call.kind", s("audio")),
                ("network.local.address", s("192.0.2.10")),
                ("network.peer.address", s("203.0.113.10")),
                ("network.peer.port", AttrValue::Int(5004)),
            ]
        );
        let active = one(CALLS_ACTIVE.name);
        assert_eq!(active.len(), 3);
        assert_eq!(active[0].value, 2.0);
        assert_eq!(active[1].value, 0.0);
        // Capped at one call: the busiest only.
        assert_eq!(collect(&report, 1).gauges[CALL_HEALTH.name].len(), 1);
        assert!(collect(&report, 0).gauges[CALL_HEALTH.name].is_empty());
    }
}
