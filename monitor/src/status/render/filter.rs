//! `--host`, `--peer`, `--severity` and `--since`: which rows a view shows.
//!
//! `--host` matches a call's or record's inner host, a flow's inner address and an
//! anomaly whose subject or evidence names the address; `--peer` the Webex side the same
//! way, and a learned peer's address. `--severity LEVEL` keeps calls, records (by their
//! worst health) and anomalies at that level or worse (a call's "ok" is below every
//! level but `info`). `--since` keeps anomalies seen and records ended in that span
//! (active calls are active now, so always kept). Each filter leaves the sections it
//! does not apply to whole.

use super::ago::report_now;
use crate::anomaly::{Anomaly, Severity};
use crate::status::health::Health;
use crate::status::model::StatusReport;

/// The filters of one `monitor status` run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub host: Option<String>,
    pub peer: Option<String>,
    pub severity: Option<Severity>,
    pub since_s: Option<u64>,
}

impl Filter {
    /// True when any filter is set (the exit status then follows what is shown).
    pub fn is_active(&self) -> bool {
        self.host.is_some()
            || self.peer.is_some()
            || self.severity.is_some()
            || self.since_s.is_some()
    }

    /// A copy of `report` with only the matching rows.
    pub fn apply(&self, report: &StatusReport) -> StatusReport {
        let mut r = report.clone_limited(report.flows.len());
        let since = self.since_s.map(|s| report_now(report).saturating_sub(s));
        let host = self.host.as_deref();
        let peer = self.peer.as_deref();
        let at_least = |health: &str| match self.severity {
            None | Some(Severity::Info) => true,
            Some(level) => health_severity(health).is_some_and(|s| s >= level),
        };
        r.calls.retain(|c| {
            same(host, &c.inner_addr) && same(peer, &c.peer_addr) && at_least(&c.health)
        });
        r.call_records.retain(|c| {
            same(host, &c.inner_addr)
                && same(peer, &c.peer_addr)
                && at_least(&c.worst_health)
                && since.is_none_or(|t| c.ended_unix_s >= t)
        });
        r.anomalies.retain(|a| {
            host.is_none_or(|h| mentions(a, h))
                && peer.is_none_or(|p| mentions(a, p))
                && self.severity.is_none_or(|s| a.severity >= s)
                && since.is_none_or(|t| a.last_seen_unix_s.max(a.cleared_unix_s.unwrap_or(0)) >= t)
        });
        r.flows
            .retain(|f| same(host, &f.inner_addr) && same(peer, &f.peer_addr));
        r.flows_total = r.flows.len() as u64;
        r.learned_peers.retain(|p| same(peer, &p.addr));
        r
    }
}

fn same(filter: Option<&str>, addr: &str) -> bool {
    filter.is_none_or(|f| f == addr)
}

/// A call's health word as an anomaly severity ("ok" is none).
pub fn health_severity(health: &str) -> Option<Severity> {
    match health {
        "warning" => Some(Severity::Warning),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// A call's health word as [`Health`].
pub fn call_health(health: &str) -> Health {
    match health {
        "warning" => Health::Warning,
        "critical" => Health::Critical,
        _ => Health::Ok,
    }
}

/// True when the anomaly's subject or evidence names `addr` (as a whole address, with
/// or without a port).
pub fn mentions(a: &Anomaly, addr: &str) -> bool {
    std::iter::once(a.subject.as_str())
        .chain(a.evidence.iter().map(|e| e.value.as_str()))
        .any(|text| names(text, addr))
}

fn names(text: &str, addr: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '=' | '>' | '<'))
        .map(|token| {
            let token = token.trim_start_matches('[');
            // "192.0.2.1:5004" and "[2001:db8::1]:5004": the address without the port.
            match token.split_once("]:") {
                Some((a, _)) => a,
                None if token.matches(':').count() == 1 => token.split(':').next().unwrap_or(""),
                None => token.trim_end_matches(']'),
            }
        })
        .any(|token| token == addr)
}

/// `--since`: "90", "90s", "15m", "2h" or "1d".
pub fn parse_since(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a span: try 90s, 15m, 2h or 1d"))?;
    let unit = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h or d)"
            ));
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too long a span"))
}

/// `--severity`: info, warning or critical.
pub fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("{text:?}: use info, warning or critical"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_levels() {
        assert_eq!(parse_since("90"), Ok(90));
        assert_eq!(parse_since("15m"), Ok(900));
        assert_eq!(parse_since("2h"), Ok(7200));
        assert_eq!(parse_since("1d"), Ok(86400));
        assert!(parse_since("soon").is_err());
        assert!(parse_since("5w").is_err());
        assert_eq!(parse_severity("WARNING"), Ok(Severity::Warning));
        assert!(parse_severity("bad").is_err());
    }

    #[test]
    fn addresses_match_whole() {
        assert!(names("192.0.2.10", "192.0.2.10"));
        assert!(names("flow 192.0.2.10:40000 > x", "192.0.2.10"));
        assert!(!names("192.0.2.100", "192.0.2.10"));
        assert!(names("[2001:db8::1]:5004", "2001:db8::1"));
        assert!(names("2001:db8::1", "2001:db8::1"));
        assert!(!names("lan0", "192.0.2.10"));
    }
}
