//! `dns_blocks_webex`: lookups of Webex names (under `[learn] domains`) that fail. The
//! learner records each matched answer with NXDOMAIN, SERVFAIL or REFUSED and each
//! query left unanswered for the query timeout (`crate::learn::failures`); this
//! detector judges the last [`WINDOW_NS`] of them: one finding per name and code while
//! any fell in the window. A resolver or DNS filter that refuses or sinks Webex names
//! breaks registration and calling even when every firewall port is open.

use std::{
    collections::{BTreeMap, VecDeque},
    net::IpAddr,
};

use crate::{
    anomaly::{Finding, Severity},
    learn::failures::{Code, DnsFailure, MAX_EVENTS},
};

pub const ID: &str = "dns_blocks_webex";
pub const REMEDIATION: &str = "Let the site's resolvers answer the Webex domains: remove \
     them from DNS filtering/blocklists (RPZ, DNS security services, content filters), \
     fix the forwarders or conditional forwarding that refuse or fail them, and allow \
     DNS (UDP/TCP 53) from the resolvers to the internet.";

/// The failures judged: those of the last 7 s. With the book's 10 s clear hold-down a
/// finding clears within 20 s of the last failure (README "Failure detectors").
pub const WINDOW_NS: u64 = 7_000_000_000;

/// The failures of the window (oldest first), at most [`MAX_EVENTS`].
#[derive(Debug, Default)]
pub struct State {
    recent: VecDeque<DnsFailure>,
    /// Dropped by the learner's ring since start (shown in the evidence).
    ring_dropped: u64,
    /// The oldest failures forgotten to stay within [`MAX_EVENTS`], since start.
    dropped: u64,
}

/// What the window holds for one name and code.
struct Tally {
    count: u64,
    resolver: IpAddr,
    client: IpAddr,
}

impl State {
    /// Its table for status `detectors` (the learner's ring is in status `learn`).
    pub fn table(&self) -> crate::report::detectors::DetectorTable {
        crate::report::detectors::DetectorTable::new(
            ID,
            "failures",
            self.recent.len(),
            MAX_EVENTS,
            self.dropped,
        )
    }

    /// Takes the failures recorded since the last poll and the ring's drop counter.
    pub fn add(&mut self, events: Vec<DnsFailure>, ring_dropped: u64) {
        self.recent.extend(events);
        while self.recent.len() > MAX_EVENTS {
            self.recent.pop_front();
            self.dropped += 1;
        }
        self.ring_dropped = ring_dropped;
    }

    /// The findings of the window ending at `now_ns` (CLOCK_MONOTONIC).
    pub fn detect(&mut self, now_ns: u64) -> Vec<Finding> {
        self.recent
            .retain(|e| now_ns.saturating_sub(e.at_ns) < WINDOW_NS);
        let mut by_key: BTreeMap<(&str, Code), Tally> = BTreeMap::new();
        for e in &self.recent {
            let t = by_key.entry((&e.name, e.code)).or_insert(Tally {
                count: 0,
                resolver: e.resolver,
                client: e.client,
            });
            t.count += 1;
            // The latest one names the resolver and client.
            t.resolver = e.resolver;
            t.client = e.client;
        }
        by_key
            .into_iter()
            .map(|((name, code), t)| {
                let what = match code {
                    Code::Unanswered => "got no answer".to_string(),
                    c => format!("was answered {}", c.as_str().to_uppercase()),
                };
                Finding {
                    id: ID,
                    severity: Severity::Warning,
                    subject: format!("{} {name}", code.as_str()),
                    summary: format!(
                        "the Webex name {name} {what} from resolver {} ({} times in the last \
                         {} s)",
                        t.resolver,
                        t.count,
                        WINDOW_NS / 1_000_000_000
                    ),
                    evidence: vec![
                        ("name".into(), name.to_string()),
                        ("code".into(), code.as_str().into()),
                        ("count".into(), t.count.to_string()),
                        ("resolver".into(), t.resolver.to_string()),
                        ("client".into(), t.client.to_string()),
                        ("window_s".into(), (WINDOW_NS / 1_000_000_000).to_string()),
                        ("events_dropped".into(), self.ring_dropped.to_string()),
                    ],
                    remediation: REMEDIATION,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn ev(name: &str, code: Code, at_s: u64, client: &str) -> DnsFailure {
        DnsFailure {
            name: name.into(),
            code,
            resolver: "198.51.100.53".parse().unwrap(),
            client: client.parse().unwrap(),
            at_ns: at_s * S,
        }
    }

    fn evidence<'a>(f: &'a Finding, key: &str) -> &'a str {
        &f.evidence.iter().find(|(k, _)| k == key).unwrap().1
    }

    #[test]
    fn one_finding_per_name_and_code_with_counts_in_the_window() {
        let mut s = State::default();
        assert!(s.detect(100 * S).is_empty());
        s.add(
            vec![
                ev("mtg.webex.com", Code::NxDomain, 100, "192.0.2.10"),
                ev("mtg.webex.com", Code::NxDomain, 101, "192.0.2.11"),
                ev("mtg.webex.com", Code::Refused, 101, "192.0.2.10"),
                ev("cdn.webex.com", Code::Unanswered, 102, "192.0.2.10"),
            ],
            3,
        );
        let f = s.detect(102 * S);
        let subjects: Vec<&str> = f.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "unanswered cdn.webex.com",
                "nxdomain mtg.webex.com",
                "refused mtg.webex.com"
            ]
        );
        let nx = &f[1];
        assert_eq!((nx.id, nx.severity), (ID, Severity::Warning));
        assert_eq!(evidence(nx, "count"), "2");
        assert_eq!(evidence(nx, "client"), "192.0.2.11");
        assert_eq!(evidence(nx, "resolver"), "198.51.100.53");
        assert_eq!(evidence(nx, "events_dropped"), "3");
        assert_eq!(evidence(&f[2], "count"), "1");
        assert_eq!(evidence(&f[0], "code"), "unanswered");
    }

    #[test]
    fn findings_end_when_the_failures_leave_the_window() {
        let mut s = State::default();
        s.add(
            vec![
                ev("mtg.webex.com", Code::NxDomain, 100, "192.0.2.10"),
                ev("mtg.webex.com", Code::NxDomain, 104, "192.0.2.10"),
            ],
            0,
        );
        let f = s.detect(106 * S);
        assert_eq!(evidence(&f[0], "count"), "2");
        // The first one is out of the window, the second still in.
        let f = s.detect(107 * S);
        assert_eq!(evidence(&f[0], "count"), "1");
        assert_eq!(s.detect(110 * S).len(), 1);
        assert!(s.detect(111 * S).is_empty());
        // No new failure: nothing comes back.
        s.add(Vec::new(), 0);
        assert!(s.detect(112 * S).is_empty());
    }

    #[test]
    fn the_window_is_bounded() {
        let mut s = State::default();
        let many = (0..MAX_EVENTS + 10)
            .map(|_| ev("mtg.webex.com", Code::ServFail, 100, "192.0.2.10"))
            .collect();
        s.add(many, 4);
        let f = s.detect(100 * S);
        assert_eq!(evidence(&f[0], "count"), MAX_EVENTS.to_string());
        // Shown in status `detectors.tables`: 10 dropped here (the learner's ring shows
        // its own 4 in `learn.dns_failures_dropped`).
        let t = s.table();
        assert_eq!((t.detector.as_str(), t.table.as_str()), (ID, "failures"));
        assert_eq!(
            (t.cap, t.entries, t.dropped),
            (MAX_EVENTS as u64, MAX_EVENTS as u64, 10)
        );
    }
}
