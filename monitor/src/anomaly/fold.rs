//! Folding: one poll's findings bounded before they reach the anomaly book, so forged
//! traffic (e.g. fragments from thousands of random sources) cannot open thousands of
//! anomalies. Per detector id at most [`SHOWN_PER_ID`] findings pass as they are (the
//! most severe first; among equals those shown in the previous poll, so the shown set
//! does not churn); the rest are folded into aggregates per peer prefix (/24 for IPv4,
//! /48 for IPv6, from the subject's peer address), at most [`AGGREGATES_PER_ID`] per id
//! (the largest prefixes; the others share one "other" aggregate). So a poll yields at
//! most [`CAP_PER_ID`] anomalies per detector id. The counts are in status
//! (`scale.anomalies`): `folded` is exactly `findings - shown`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use super::{Finding, Severity};
use crate::report::scale::AnomalyFolding;

/// Findings per detector id that pass unfolded.
pub const SHOWN_PER_ID: usize = 16;
/// Aggregates per detector id (the largest prefixes; the last one takes the rest).
pub const AGGREGATES_PER_ID: usize = 4;
/// Anomalies a poll can yield per detector id.
pub const CAP_PER_ID: usize = SHOWN_PER_ID + AGGREGATES_PER_ID;
/// Example subjects quoted in an aggregate's evidence.
const EXAMPLES: usize = 3;

/// Folds findings poll by poll; remembers which subjects it showed last time.
#[derive(Debug, Default)]
pub struct Folder {
    shown: HashSet<(&'static str, String)>,
    last: AnomalyFolding,
}

impl Folder {
    /// The findings to give the book: at most [`CAP_PER_ID`] per detector id.
    pub fn fold(&mut self, findings: Vec<Finding>) -> Vec<Finding> {
        // One finding per (id, subject): the first, as the book would keep one.
        let mut seen = HashSet::new();
        let mut by_id: BTreeMap<&'static str, Vec<Finding>> = BTreeMap::new();
        for f in findings {
            if seen.insert((f.id, f.subject.clone())) {
                by_id.entry(f.id).or_default().push(f);
            }
        }
        let distinct = seen.len() as u64;
        let mut out = Vec::new();
        let mut shown = HashSet::new();
        let mut aggregates = 0u64;
        for (id, mut list) in by_id {
            list.sort_by(|a, b| {
                b.severity
                    .cmp(&a.severity)
                    .then_with(|| {
                        let was = |f: &Finding| !self.shown.contains(&(id, f.subject.clone()));
                        was(a).cmp(&was(b))
                    })
                    .then_with(|| a.subject.cmp(&b.subject))
            });
            let rest = list.split_off(list.len().min(SHOWN_PER_ID));
            for f in &list {
                shown.insert((id, f.subject.clone()));
            }
            out.extend(list);
            let folded = aggregate(id, rest);
            aggregates += folded.len() as u64;
            out.extend(folded);
        }
        self.last = AnomalyFolding {
            shown_per_id: SHOWN_PER_ID as u64,
            cap_per_id: CAP_PER_ID as u64,
            findings: distinct,
            shown: shown.len() as u64,
            folded: distinct - shown.len() as u64,
            aggregates,
        };
        self.shown = shown;
        out
    }

    /// What the last poll folded.
    pub fn stats(&self) -> AnomalyFolding {
        self.last.clone()
    }
}

/// The peer prefix a subject is about: the address after its last "->" (or the last
/// address in it), as /24 or /48; `None` when it names no address.
fn prefix(subject: &str) -> Option<String> {
    let tail = subject.rsplit_once("->").map_or(subject, |(_, t)| t);
    let addr = tail.split_whitespace().rev().find_map(|word| {
        let word = word.trim_matches(|c| c == '[' || c == ']' || c == ',');
        word.parse::<IpAddr>().ok().or_else(|| {
            // "addr:port"; an IPv6 address keeps its own colons.
            let (a, port) = word.rsplit_once(':')?;
            port.parse::<u16>().ok()?;
            a.trim_matches(|c| c == '[' || c == ']').parse().ok()
        })
    })?;
    Some(match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
    })
}

/// `rest` (the findings of `id` beyond those shown) as at most [`AGGREGATES_PER_ID`]
/// aggregates: one per peer prefix, largest first, the smallest together as "other".
fn aggregate(id: &'static str, rest: Vec<Finding>) -> Vec<Finding> {
    if rest.is_empty() {
        return Vec::new();
    }
    let mut groups: HashMap<String, Vec<Finding>> = HashMap::new();
    for f in rest {
        let key = prefix(&f.subject).unwrap_or_else(|| "other".into());
        groups.entry(key).or_default().push(f);
    }
    let mut groups: Vec<(String, Vec<Finding>)> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    if groups.len() > AGGREGATES_PER_ID {
        let others: Vec<Finding> = groups
            .split_off(AGGREGATES_PER_ID - 1)
            .into_iter()
            .flat_map(|(_, g)| g)
            .collect();
        groups.push(("other".into(), others));
    }
    groups
        .into_iter()
        .map(|(prefix, group)| {
            let severity = group
                .iter()
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Info);
            let examples: Vec<&str> = group
                .iter()
                .take(EXAMPLES)
                .map(|f| f.subject.as_str())
                .collect();
            Finding {
                id,
                severity,
                subject: format!("folded: {prefix}"),
                summary: format!(
                    "{} more {id} findings with peers in {prefix} (folded), e.g. {}",
                    group.len(),
                    group[0].summary
                ),
                evidence: vec![
                    ("folded_findings".into(), group.len().to_string()),
                    ("examples".into(), examples.join("; ")),
                ],
                remediation: group[0].remediation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &'static str, subject: String, severity: Severity) -> Finding {
        Finding {
            id,
            severity,
            summary: format!("{id} on {subject}"),
            subject,
            evidence: Vec::new(),
            remediation: "fix it",
        }
    }

    fn flow(src: &str, dst: &str) -> String {
        format!("wan0 ingress udp {src}:4000 -> {dst}:5004")
    }

    #[test]
    fn peer_prefixes_from_subjects() {
        assert_eq!(
            prefix(&flow("198.51.100.7", "203.0.113.10")).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            prefix("fragments lan0 ingress 17 2001:db8:1::5:0 -> 2001:db8:ff:3::9:0").as_deref(),
            Some("2001:db8:ff::/48")
        );
        assert_eq!(prefix("net.netfilter.nf_conntrack_udp_timeout"), None);
        assert_eq!(prefix("gateway frag-needed"), None);
    }

    #[test]
    fn few_findings_pass_unchanged() {
        let mut folder = Folder::default();
        let findings: Vec<Finding> = (0..SHOWN_PER_ID)
            .map(|i| {
                finding(
                    "a",
                    flow(&format!("198.51.100.{i}"), "203.0.113.1"),
                    Severity::Warning,
                )
            })
            .collect();
        assert_eq!(folder.fold(findings.clone()), {
            let mut sorted = findings;
            sorted.sort_by(|a, b| a.subject.cmp(&b.subject));
            sorted
        });
        let s = folder.stats();
        assert_eq!(
            (s.findings, s.shown, s.folded, s.aggregates),
            (16, 16, 0, 0)
        );
    }

    #[test]
    fn ten_thousand_findings_fold_to_the_cap_with_exact_counts() {
        let mut folder = Folder::default();
        let mut findings = Vec::new();
        // 10,000 sources towards 5 peer prefixes, one critical among them, and a
        // duplicate of each of the first 10 (counted once).
        for i in 0..10_000u32 {
            let src = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
            let dst = format!("203.0.{}.9", 100 + i % 5);
            let severity = if i == 7777 {
                Severity::Critical
            } else {
                Severity::Warning
            };
            findings.push(finding("mtu_fragmentation", flow(&src, &dst), severity));
        }
        findings.extend(findings[..10].to_vec());
        findings.push(finding("sip_alg", "conntrack x".into(), Severity::Critical));
        let out = folder.fold(findings);
        let mtu: Vec<&Finding> = out.iter().filter(|f| f.id == "mtu_fragmentation").collect();
        assert_eq!(mtu.len(), CAP_PER_ID);
        assert_eq!(out.len(), CAP_PER_ID + 1);
        // The critical one is shown as it is.
        assert_eq!(mtu[0].severity, Severity::Critical);
        assert!(
            mtu[0]
                .subject
                .starts_with("wan0 ingress udp 10.0.30.97:4000")
        );
        let s = folder.stats();
        assert_eq!((s.findings, s.shown), (10_001, SHOWN_PER_ID as u64 + 1));
        assert_eq!(s.folded, 10_001 - 17);
        assert_eq!(s.aggregates, AGGREGATES_PER_ID as u64);
        // The aggregates hold every folded finding: three prefixes and "other".
        let folded: u64 = mtu
            .iter()
            .filter(|f| f.subject.starts_with("folded: "))
            .map(|f| f.evidence[0].1.parse::<u64>().unwrap())
            .sum();
        assert_eq!(folded, s.folded);
        // Three prefixes (the largest), then the other two together.
        let subjects: Vec<&str> = mtu[SHOWN_PER_ID..]
            .iter()
            .map(|f| f.subject.as_str())
            .collect();
        assert!(
            subjects[..3]
                .iter()
                .all(|s| s.starts_with("folded: 203.0.10")),
            "{subjects:?}"
        );
        assert_eq!(subjects[3], "folded: other");
    }

    #[test]
    fn the_shown_set_stays_put_across_polls() {
        let mut folder = Folder::default();
        let all: Vec<Finding> = (0..40)
            .map(|i| {
                finding(
                    "a",
                    flow(&format!("198.51.100.{i}"), "203.0.113.1"),
                    Severity::Warning,
                )
            })
            .collect();
        // First poll: the last 20 only; then all 40: the same 16 stay shown.
        let first: Vec<String> = folder
            .fold(all[20..].to_vec())
            .into_iter()
            .take(SHOWN_PER_ID)
            .map(|f| f.subject)
            .collect();
        let second: Vec<String> = folder
            .fold(all.clone())
            .into_iter()
            .take(SHOWN_PER_ID)
            .map(|f| f.subject)
            .collect();
        assert_eq!(first, second);
        assert_eq!(folder.stats().folded, 40 - SHOWN_PER_ID as u64);
    }
}
