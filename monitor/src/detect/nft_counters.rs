//! Which firewall rule dropped it: the nftables rules with a counter and a `drop` or
//! `reject` verdict, read from `nft -j list ruleset` (iptables-nft rules are nftables
//! rules and show there too). `webex_blocked_here` names the rules whose counter moved
//! while Webex packets vanished on this gateway. Rules without a `counter` statement
//! cannot be named: nothing counts them.

use std::{collections::HashMap, process::Command};

use serde_json::Value;

/// One dropping rule with its counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// "inet block forward handle 3 drop" (family, table, chain, handle, verdict).
    pub name: String,
    pub packets: u64,
}

/// Runs `nft -j list ruleset`; `None` when nft is missing or not permitted.
pub fn read() -> Option<Vec<Rule>> {
    let out = Command::new("nft")
        .args(["-j", "list", "ruleset"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(parse(&String::from_utf8_lossy(&out.stdout)))
}

/// The rules of an `nft -j list ruleset` output that count and drop or reject.
pub fn parse(json: &str) -> Vec<Rule> {
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let Some(items) = v["nftables"].as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| rule(&i["rule"]))
        .collect::<Vec<_>>()
}

fn rule(r: &Value) -> Option<Rule> {
    let exprs = r["expr"].as_array()?;
    let packets = exprs
        .iter()
        .find_map(|e| e["counter"]["packets"].as_u64())?;
    let verdict = exprs.iter().find_map(|e| {
        let o = e.as_object()?;
        ["drop", "reject"].into_iter().find(|v| o.contains_key(*v))
    })?;
    let verdict = match (
        verdict,
        r["expr"]
            .as_array()?
            .iter()
            .find_map(|e| e["reject"]["type"].as_str().map(str::to_string)),
    ) {
        ("reject", Some(kind)) => format!("reject with {kind}"),
        (v, _) => v.to_string(),
    };
    Some(Rule {
        name: format!(
            "{} {} {} handle {} {verdict}",
            r["family"].as_str()?,
            r["table"].as_str()?,
            r["chain"].as_str()?,
            r["handle"].as_u64()?
        ),
        packets,
    })
}

/// The rules' counters between reads: which moved recently.
#[derive(Default)]
pub struct Moves {
    /// Per rule: its counter at the last read, and when it last moved.
    last: HashMap<String, (u64, Option<u64>)>,
}

impl Moves {
    /// Takes a read at `now`; the first read of a rule is its baseline.
    pub fn update(&mut self, rules: &[Rule], now: u64) {
        let mut next = HashMap::with_capacity(rules.len());
        for r in rules {
            let moved = match self.last.get(&r.name) {
                Some(&(before, _)) if r.packets > before => Some(now),
                Some(&(_, moved)) => moved,
                None => None,
            };
            next.insert(r.name.clone(), (r.packets, moved));
        }
        self.last = next;
    }

    /// Rules whose counter moved within `window_s` before `now`, with the counter (all
    /// it counted since the rule was added), sorted by name.
    pub fn moved_since(&self, now: u64, window_s: u64) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .last
            .iter()
            .filter(|(_, (_, moved))| moved.is_some_and(|at| now.saturating_sub(at) <= window_s))
            .map(|(name, (packets, _))| (name.clone(), *packets))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULESET: &str = r#"{"nftables": [
      {"metainfo": {"version": "1.1.3", "json_schema_version": 1}},
      {"table": {"family": "inet", "name": "block", "handle": 1}},
      {"chain": {"family": "inet", "table": "block", "name": "fwd", "handle": 1,
                 "type": "filter", "hook": "forward", "prio": -10, "policy": "accept"}},
      {"rule": {"family": "inet", "table": "block", "chain": "fwd", "handle": 2,
        "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp",
                   "field": "dport"}}, "right": 5004}},
                 {"counter": {"packets": 1250, "bytes": 230000}}, {"drop": null}]}},
      {"rule": {"family": "inet", "table": "block", "chain": "fwd", "handle": 3,
        "expr": [{"counter": {"packets": 4, "bytes": 240}},
                 {"reject": {"type": "tcp reset"}}]}},
      {"rule": {"family": "inet", "table": "block", "chain": "fwd", "handle": 4,
        "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                   "field": "dport"}}, "right": 8934}}, {"drop": null}]}},
      {"rule": {"family": "ip", "table": "nat", "chain": "post", "handle": 5,
        "expr": [{"counter": {"packets": 99, "bytes": 9900}}, {"masquerade": null}]}}
    ]}"#;

    #[test]
    fn only_counting_rules_that_drop_or_reject() {
        assert_eq!(
            parse(RULESET),
            [
                Rule {
                    name: "inet block fwd handle 2 drop".into(),
                    packets: 1250
                },
                Rule {
                    name: "inet block fwd handle 3 reject with tcp reset".into(),
                    packets: 4
                },
            ]
        );
        assert_eq!(parse("not json"), []);
        assert_eq!(parse("{}"), []);
    }

    #[test]
    fn a_rule_moved_within_the_window() {
        let rule = |packets| Rule {
            name: "inet block fwd handle 2 drop".into(),
            packets,
        };
        let mut m = Moves::default();
        // The first read is the baseline: counts from before are history.
        m.update(&[rule(100)], 10);
        assert_eq!(m.moved_since(10, 10), []);
        m.update(&[rule(100)], 11);
        assert_eq!(m.moved_since(11, 10), []);
        m.update(&[rule(109)], 12);
        assert_eq!(
            m.moved_since(12, 10),
            [("inet block fwd handle 2 drop".into(), 109)]
        );
        m.update(&[rule(109)], 22);
        assert_eq!(
            m.moved_since(22, 10),
            [("inet block fwd handle 2 drop".into(), 109)]
        );
        m.update(&[rule(109)], 23);
        assert_eq!(m.moved_since(23, 10), []);
    }
}
