//! `nat_port_exhaustion`: the NAT running out of room.
//!
//! - the conntrack table: `nf_conntrack_count` against `nf_conntrack_max`;
//! - per public address and transport: the source ports masquerade/SNAT has handed out
//!   (distinct reply ports of translated conntrack entries) against the port range of the
//!   NAT rule (`masquerade to :a-b`; 1024-65535 without one).
//!
//! Opens at `[detect] nat_use_pct` percent. Evidence includes the Webex flows arriving
//! from the LAN that have no conntrack binding at all: new flows the NAT could not place.

use crate::{
    anomaly::{Finding, Severity},
    config::detect::DetectConfig,
};

use super::{
    View,
    system::{self, DEFAULT_NAT_PORTS},
};

pub const ID: &str = "nat_port_exhaustion";
pub const REMEDIATION: &str = "Size the NAT for peak calls: widen the masquerade/SNAT port \
     range or add public addresses to the NAT pool, and raise net.netfilter.nf_conntrack_max \
     if the table is full; each call holds several UDP bindings.";

/// Recently active: a flow seen within this many seconds counts as wanting a binding.
const ACTIVE_S: f64 = 5.0;

pub fn detect(view: &View<'_>, cfg: &DetectConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let pct = cfg.nat_use_pct as u64;
    if let (Some(count), Some(max)) = (
        system::sysctl("nf_conntrack_count"),
        system::sysctl("nf_conntrack_max"),
    ) && max > 0
        && count * 100 >= pct * max
    {
        out.push(Finding {
            id: ID,
            severity: if count >= max {
                Severity::Critical
            } else {
                Severity::Warning
            },
            subject: "conntrack table".into(),
            summary: format!("the conntrack table holds {count} of {max} entries"),
            evidence: vec![
                ("nf_conntrack_count".into(), count.to_string()),
                ("nf_conntrack_max".into(), max.to_string()),
                ("threshold_pct".into(), pct.to_string()),
            ],
            remediation: REMEDIATION,
        });
    }

    let Some(table) = view.conntrack_index() else {
        return out;
    };
    // Ports in use per (public address, transport) and every binding by its numeric
    // original tuple, indexed when conntrack was read: no text per entry (a table holds
    // 100,000).
    let used = &table.ports_used;
    // Webex flows from the LAN that are active but have no binding.
    let unbound = view
        .recent(ACTIVE_S)
        .filter(|f| {
            view.is_lan(f)
                && view.is_outbound(f)
                && f.idle_s < ACTIVE_S
                && (f.protocol == "udp" || f.protocol == "tcp")
                // A flow newer than the conntrack read cannot be in it yet.
                && f.age_s >= view.conntrack_age_s
                && table.of_flow(f).is_none()
        })
        .count();
    let ranges: Vec<(u16, u16)> = match view.ruleset {
        Some(r) if !r.nat_port_ranges.is_empty() => r.nat_port_ranges.clone(),
        _ => vec![DEFAULT_NAT_PORTS],
    };
    for ((public, protocol), ports) in used {
        // The range holding most of this address's ports is the rule that placed them.
        let (first, last) = *ranges
            .iter()
            .max_by_key(|(a, b)| ports.range(*a..=*b).count())
            .expect("at least the default range");
        let size = (last - first) as u64 + 1;
        let in_use = ports.range(first..=last).count() as u64;
        if in_use * 100 < pct * size {
            continue;
        }
        out.push(Finding {
            id: ID,
            severity: if in_use >= size || unbound > 0 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            subject: format!("{public} {protocol}"),
            summary: format!(
                "{in_use} of {size} NAT ports ({first}-{last}) of {public} are in use for \
                 {protocol}; {unbound} active Webex flows from the LAN have no NAT binding"
            ),
            evidence: vec![
                ("public_address".into(), public.to_string()),
                ("protocol".into(), protocol.to_string()),
                ("ports_in_use".into(), in_use.to_string()),
                ("port_range".into(), format!("{first}-{last}")),
                ("port_range_size".into(), size.to_string()),
                ("flows_without_binding".into(), unbound.to_string()),
                ("threshold_pct".into(), pct.to_string()),
            ],
            remediation: REMEDIATION,
        });
    }
    out
}
