//! What the daemon's caps turned away, folded or dropped, and what an upgrade did not
//! keep: one line each, only when it happened (README "Scale and caps", "Detector
//! tables", "Never blind"). The numbers are in the JSON's `scale`, `detectors` and
//! `daemon.pin_migrations`; these lines are what on-call reads.

use crate::status::model::StatusReport;

/// The lines, without indentation; empty when no cap acted and no upgrade lost anything.
pub fn notes(report: &StatusReport) -> Vec<String> {
    let mut out: Vec<String> = report
        .daemon
        .pin_migrations
        .iter()
        .map(|m| format!("upgrade: {m}"))
        .collect();
    let s = &report.scale;
    let t = &s.flow_tables;
    if t.media.evicted + t.other.evicted > 0 {
        out.push(format!(
            "flows evicted: media {} of {} created, other {} of {} (media flows have their own \
             table)",
            t.media.evicted, t.media.created, t.other.evicted, t.other.created
        ));
    }
    let a = &s.anomalies;
    if a.folded > 0 {
        out.push(format!(
            "anomalies folded: {} of {} findings into {} aggregates (at most {} per detector)",
            a.folded, a.findings, a.aggregates, a.cap_per_id
        ));
    }
    let c = &s.status_socket;
    if c.refused_busy + c.closed_idle > 0 {
        out.push(format!(
            "status clients turned away: {} busy, {} silent connections closed (at most {} at \
             once)",
            c.refused_busy, c.closed_idle, c.max_clients
        ));
    }
    for t in report.detectors.tables.iter().filter(|t| t.dropped > 0) {
        out.push(format!(
            "{} {} table full: {} dropped (at most {})",
            t.detector, t.table, t.dropped, t.cap
        ));
    }
    // The served report's flows are cut by design (the JSON's `flows_total` has the
    // count): not a limit reached.
    for cap in s
        .caps
        .iter()
        .filter(|c| c.refused > 0 && c.name != "report.flows")
    {
        out.push(format!(
            "{} full: {} refused (at most {})",
            cap.name, cap.refused, cap.limit
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::detectors::DetectorTable;
    use crate::report::scale::{AnomalyFolding, Cap};
    use crate::status::render::tests::sample_report;

    #[test]
    fn nothing_acted_nothing_said() {
        assert!(notes(&sample_report()).is_empty());
    }

    #[test]
    fn each_cap_that_acted_and_each_upgrade_loss_is_one_line() {
        let mut r = sample_report();
        r.daemon.pin_migrations = vec!["FLOWS: 3 entries not kept (layout changed)".into()];
        r.scale.flow_tables.other.created = 9_988;
        r.scale.flow_tables.other.evicted = 5_892;
        r.scale.flow_tables.media.created = 12;
        r.scale.anomalies = AnomalyFolding {
            shown_per_id: 16,
            cap_per_id: 20,
            findings: 10_000,
            shown: 16,
            folded: 9_984,
            aggregates: 1,
        };
        r.scale.status_socket.refused_busy = 3;
        r.scale.status_socket.max_clients = 512;
        r.detectors.tables = vec![
            DetectorTable::new("vpn_hairpin", "pool_hosts", 3, 1024, 0),
            DetectorTable::new("ssl_inspection", "connections", 1024, 1024, 7),
        ];
        r.scale.caps = vec![
            Cap::new("report.flows", 1000, 1000, 64_536),
            Cap::new("learn.peers", 4096, 4096, 2),
            Cap::new("quality.call_records", 1000, 10, 0),
        ];
        assert_eq!(
            notes(&r),
            [
                "upgrade: FLOWS: 3 entries not kept (layout changed)",
                "flows evicted: media 0 of 12 created, other 5892 of 9988 (media flows have \
                 their own table)",
                "anomalies folded: 9984 of 10000 findings into 1 aggregates (at most 20 per \
                 detector)",
                "status clients turned away: 3 busy, 0 silent connections closed (at most 512 \
                 at once)",
                "ssl_inspection connections table full: 7 dropped (at most 1024)",
                "learn.peers full: 2 refused (at most 4096)",
            ]
        );
    }

    #[test]
    fn the_interfaces_view_lists_them_and_the_compact_view_points_there() {
        use crate::status::render::{compact, views};
        let mut r = sample_report();
        r.interfaces[0].pinned = true;
        r.interfaces[0].dscp_rewrite = true;
        let quiet = compact::render(&r, 80, false);
        assert!(!quiet.contains("LIMITS"), "{quiet}");
        r.scale.flow_tables.other.created = 20;
        r.scale.flow_tables.other.evicted = 4;
        r.detectors.tables = vec![DetectorTable::new(
            "dns_blocks_webex",
            "failures",
            1024,
            1024,
            9,
        )];
        let view = views::render(Some(views::View::Interfaces), &r, 120, false);
        assert!(view.contains("attached, pinned, rewriting DSCP"), "{view}");
        assert!(
            view.ends_with(
                "  flows evicted: media 0 of 0 created, other 4 of 20 (media flows have their own \
                 table)\n  dns_blocks_webex failures table full: 9 dropped (at most 1024)\n"
            ),
            "{view}"
        );
        let text = compact::render(&r, 200, false);
        assert!(
            text.ends_with(
                "\nLIMITS flows evicted: media 0 of 0 created, other 4 of 20 (media flows have \
                 their own table) (+1 more): monitor status interfaces\n"
            ),
            "{text}"
        );
    }
}
