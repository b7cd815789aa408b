//! Call records as OTel log records (event `monitor.call.record`), each exactly once:
//! found by comparing each export's record list with the IDs already sent. Only IDs still
//! in the list are remembered, so memory follows the list (`[quality] max_call_records`).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, Severity};

use crate::report::calls::CallRecord;

pub const EVENT_NAME: &str = "monitor.call.record";

#[derive(Debug, Default)]
pub struct Sent {
    ids: BTreeSet<String>,
}

impl Sent {
    /// The records in `records` not sent yet, oldest first.
    pub fn update(&mut self, records: &[CallRecord]) -> Vec<CallRecord> {
        let present: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        self.ids.retain(|id| present.contains(id.as_str()));
        let mut out: Vec<CallRecord> = records
            .iter()
            .filter(|r| self.ids.insert(r.id.clone()))
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// When the call ended.
pub fn at(r: &CallRecord) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(r.ended_unix_s)
}

/// INFO for a call that stayed healthy, WARN when it was not.
pub fn severity(r: &CallRecord) -> (Severity, &'static str) {
    if r.worst_health == "ok" {
        (Severity::Info, "INFO")
    } else {
        (Severity::Warn, "WARN")
    }
}

pub fn body(r: &CallRecord) -> String {
    format!(
        "call {} {}:{} <-> {}:{} ended after {:.0} s: {} packets, loss {:.2} %, jitter {:.1} ms, \
         worst {}",
        r.id,
        r.inner_addr,
        r.inner_port,
        r.peer_addr,
        r.peer_port,
        r.duration_s,
        r.packets,
        r.loss_pct,
        r.jitter_ms,
        r.worst_health
    )
}

/// Attributes in a fixed order (absent values left out).
pub fn attributes(r: &CallRecord) -> Vec<(String, AnyValue)> {
    let mut v: Vec<(String, AnyValue)> = vec![
        ("monitor.call.id".into(), r.id.clone().into()),
        ("monitor.call.kind".into(), r.kind.clone().into()),
        ("network.local.address".into(), r.inner_addr.clone().into()),
        ("network.local.port".into(), i64::from(r.inner_port).into()),
        ("network.peer.address".into(), r.peer_addr.clone().into()),
        ("network.peer.port".into(), i64::from(r.peer_port).into()),
        (
            "monitor.call.started_unix_s".into(),
            (r.started_unix_s as i64).into(),
        ),
        (
            "monitor.call.ended_unix_s".into(),
            (r.ended_unix_s as i64).into(),
        ),
        ("monitor.call.duration_s".into(), r.duration_s.into()),
        ("monitor.call.packets".into(), (r.packets as i64).into()),
        ("monitor.call.loss".into(), (r.loss_pct / 100.0).into()),
        (
            "monitor.call.jitter_s".into(),
            (r.jitter_ms / 1000.0).into(),
        ),
        (
            "monitor.call.worst_health".into(),
            r.worst_health.clone().into(),
        ),
    ];
    if let Some(rtt) = r.rtt_ms {
        v.push(("monitor.call.rtt_s".into(), (rtt / 1000.0).into()));
    }
    if let Some(m) = r.mos_min {
        v.push(("monitor.call.mos_min".into(), m.into()));
    }
    if let Some(m) = r.mos_mean {
        v.push(("monitor.call.mos_mean".into(), m.into()));
    }
    if let Some(w) = &r.worst_window {
        v.push((
            "monitor.call.worst_window.loss".into(),
            (w.loss_pct / 100.0).into(),
        ));
        v.push((
            "monitor.call.worst_window.jitter_s".into(),
            (w.jitter_ms / 1000.0).into(),
        ));
    }
    for l in &r.legs {
        v.push((
            format!("monitor.call.{}.measured_at", l.direction),
            l.measured_at.clone().into(),
        ));
        v.push((
            format!("monitor.call.{}.lost", l.direction),
            (l.lost as i64).into(),
        ));
    }
    for s in &r.segments {
        v.push((
            format!("monitor.call.segment.{}.{}.lost", s.segment, s.direction),
            (s.lost as i64).into(),
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> CallRecord {
        CallRecord {
            id: id.into(),
            worst_health: "ok".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_record_once_oldest_first_and_forgotten_when_gone() {
        let mut s = Sent::default();
        // The list is newest first.
        let sent = s.update(&[rec("b"), rec("a")]);
        assert_eq!(
            sent.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(s.update(&[rec("b"), rec("a")]).is_empty());
        assert_eq!(s.update(&[rec("c"), rec("b")]).len(), 1);
        assert_eq!(s.ids.len(), 2);
        assert!(s.update(&[]).is_empty());
        assert!(s.ids.is_empty());
    }
}
