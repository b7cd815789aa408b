//! The anomaly detectors of each poll, and the book that turns their findings into open
//! and cleared anomalies. Add a detector by adding its findings in [`Detectors::poll`].
//!
//! Every detector judges what changed since the last poll ([`Deltas`]); the first poll
//! after start is a baseline, so counters pinned by an earlier run never reopen a
//! finding. Each transition (opened, escalated, de-escalated, cleared) is one journal
//! line at its level; export sends them as log records.

use crate::{
    anomaly::{
        Event, Severity,
        book::{Book, Transition},
        window::{Counts, Deltas},
    },
    dscp,
    report::scale::{AnomalyFolding, ConntrackRead},
    status::model::{FlowStatus, StatusReport},
};

pub struct Detectors {
    book: Book,
    dscp: dscp::Setup,
    deltas: Deltas,
    dscp_detect: dscp::detect::State,
    /// DSCP counters since start, per interface, direction and class (never go down).
    dscp_totals: dscp::model::Totals,
    /// SIP ALG, blocked/one-way media, NAT timeouts and exhaustion, MTU (`crate::detect`).
    failures: crate::detect::Failures,
    /// Caps each poll's findings before the book (README "Scale and caps").
    folder: crate::anomaly::fold::Folder,
    /// Failed lookups of Webex names in the recent window (`dns_blocks_webex`).
    dns: crate::detect::dns::State,
    /// CLOCK_MONOTONIC the DNS window of the next poll ends at.
    dns_now_ns: u64,
}

impl Detectors {
    pub fn new(dscp: dscp::Setup) -> Detectors {
        Detectors {
            book: Book::default(),
            dscp,
            deltas: Deltas::default(),
            dscp_detect: Default::default(),
            dscp_totals: Default::default(),
            failures: crate::detect::Failures::new(Default::default(), 1500),
            folder: Default::default(),
            dns: Default::default(),
            dns_now_ns: 0,
        }
    }

    /// Takes the failure detectors' thresholds and path MTU from the config.
    pub fn set_failure_config(&mut self, cfg: &crate::config::ValidatedConfig) {
        self.failures =
            crate::detect::Failures::new(cfg.config.detect.clone(), cfg.config.mtu.path_mtu);
    }

    /// The STUN RTTs of the snapshot the next [`poll`](Self::poll)'s report is built from.
    pub fn set_stun_rtt(
        &mut self,
        rtt: &[(monitor_common::FlowKey, monitor_common::rtp::RttStats)],
    ) {
        self.failures.set_stun_rtt(rtt);
    }

    /// The servers' certificates on Webex connections read since the last poll, with
    /// the snapshot's TCP handshake RTTs (`ssl_inspection`).
    pub fn set_server_certs(
        &mut self,
        certs: Vec<crate::learn::certs::ServerCert>,
        handshakes: &[(monitor_common::FlowKey, u64)],
        now_unix_s: u64,
    ) {
        self.failures
            .set_server_certs(certs, handshakes, now_unix_s);
    }

    /// The failed lookups of Webex names recorded since the last poll, the learner's
    /// ring drop counter, and CLOCK_MONOTONIC now (the failures are stamped with it).
    pub fn set_dns_failures(
        &mut self,
        events: Vec<crate::learn::failures::DnsFailure>,
        ring_dropped: u64,
        now_mono_ns: u64,
    ) {
        self.dns.add(events, ring_dropped);
        self.dns_now_ns = now_mono_ns;
    }

    /// Runs every detector on one poll's `report` at `now_unix_s`: sets its anomalies
    /// (open first, then the recently cleared) and its DSCP rows (totals since start).
    pub fn poll(&mut self, report: &mut StatusReport, now_unix_s: u64) {
        let baseline = self.deltas.before_baseline();
        let deltas = self.deltas.update(&report.flows);
        self.poll_with_deltas(report, &deltas, baseline, None, now_unix_s);
    }

    /// [`Detectors::poll`] with each flow's counts since the last poll already known
    /// (`deltas`, in the order of `report.flows`; `baseline` on the first poll), as
    /// [`FlowRows`](crate::flows::rows::FlowRows) keeps them; `rows` are the rows
    /// `report.flows` was lent by.
    pub fn poll_with_deltas(
        &mut self,
        report: &mut StatusReport,
        deltas: &[Counts],
        baseline: bool,
        rows: Option<&crate::flows::rows::FlowRows>,
        now_unix_s: u64,
    ) {
        self.add_dscp_totals(
            report,
            deltas,
            baseline,
            rows.map(|r| r.of_interest(crate::flows::rows::Interest::DscpChecked)),
        );

        let mut findings = Vec::new();
        findings.extend(self.dscp_detect.detect(
            &report.flows,
            deltas,
            baseline,
            rows.map(|r| r.changed()),
            &self.dscp,
            now_unix_s,
        ));
        findings.extend(crate::quality::detect::detect(&report.calls));
        findings.extend(
            self.failures
                .poll_rows(report, deltas, baseline, rows, now_unix_s),
        );
        findings.extend(crate::detect::interfaces::detect(&report.interfaces));
        findings.extend(self.dns.detect(self.dns_now_ns));
        let findings = self.folder.fold(findings);
        for t in self.book.update(findings, now_unix_s) {
            journal(&t);
        }
        report.anomalies = self.book.list();
        report.detectors.tables = self.failures.tables();
        report.detectors.tables.insert(1, self.dns.table());
        report.dscp = self.dscp_totals.rows();
    }

    /// The first poll counts every flow's packets so far; later ones what each counted
    /// since.
    /// `checked`: the places of the only flows that count (those whose marks were
    /// checked), when known.
    fn add_dscp_totals(
        &mut self,
        report: &StatusReport,
        deltas: &[Counts],
        baseline: bool,
        checked: Option<&[usize]>,
    ) {
        fn one<'f>(
            (f, d): (&'f FlowStatus, &Counts),
            baseline: bool,
        ) -> Option<(dscp::model::FlowMarks<'f>, Counts)> {
            let m = dscp::marks(f)?;
            Some((m, if baseline { Counts::of(f) } else { *d }))
        }
        match checked {
            Some(places) => self.dscp_totals.add(
                places
                    .iter()
                    .filter_map(|&i| one((&report.flows[i], &deltas[i]), baseline)),
            ),
            None => self.dscp_totals.add(
                report
                    .flows
                    .iter()
                    .zip(deltas)
                    .filter_map(|p| one(p, baseline)),
            ),
        }
    }

    /// The last poll's folding and conntrack cost, for status `scale`.
    pub fn scale(&self) -> (AnomalyFolding, ConntrackRead) {
        (self.folder.stats(), self.failures.conntrack_cost())
    }
}

/// The journal line of a transition, at the level of the anomaly's severity (cleared:
/// info).
pub fn journal(t: &Transition) {
    let a = &t.anomaly;
    let level = match (t.event, a.severity) {
        (Event::Cleared, _) | (_, Severity::Info) => log::Level::Info,
        (_, Severity::Warning) => log::Level::Warn,
        (_, Severity::Critical) => log::Level::Error,
    };
    let from = t
        .from
        .map(|s| format!(" (was {})", s.as_str()))
        .unwrap_or_default();
    log::log!(
        level,
        "anomaly {} {} {} on {}{from}: {}",
        a.id,
        t.event.as_str(),
        a.severity.as_str(),
        a.subject,
        a.summary
    );
}
