//! The anomaly detectors of each poll, and the book that turns their findings into open
//! and cleared anomalies. Add a detector by adding its findings in [`Detectors::poll`].

use crate::{
    anomaly::{Anomaly, book::Book},
    dscp,
    report::scale::{AnomalyFolding, ConntrackRead},
    status::model::StatusReport,
};

pub struct Detectors {
    book: Book,
    dscp: dscp::Setup,
    /// SIP ALG, blocked/one-way media, NAT timeouts and exhaustion, MTU (`crate::detect`).
    failures: crate::detect::Failures,
    /// Caps each poll's findings before the book (README "Scale and caps").
    folder: crate::anomaly::fold::Folder,
}

impl Detectors {
    pub fn new(dscp: dscp::Setup) -> Detectors {
        Detectors {
            book: Book::default(),
            dscp,
            failures: crate::detect::Failures::new(Default::default(), 1500),
            folder: Default::default(),
        }
    }

    /// Takes the failure detectors' thresholds and path MTU from the config.
    pub fn set_failure_config(&mut self, cfg: &crate::config::ValidatedConfig) {
        self.failures =
            crate::detect::Failures::new(cfg.config.detect.clone(), cfg.config.mtu.path_mtu);
    }

    /// Runs every detector on one poll's `report` at `now_unix_s` and returns the
    /// anomalies to show (open first, then the recently cleared).
    pub fn poll(&mut self, report: &StatusReport, now_unix_s: u64) -> Vec<Anomaly> {
        let mut findings = Vec::new();
        findings.extend(dscp::detect::detect(&report.flows, &self.dscp));
        findings.extend(crate::quality::detect::detect(&report.calls));
        findings.extend(self.failures.poll(report, now_unix_s));
        let findings = self.folder.fold(findings);
        for a in self.book.update(findings, now_unix_s) {
            log::warn!("anomaly {} on {}: {}", a.id, a.subject, a.summary);
        }
        self.book.list()
    }

    /// The last poll's folding and conntrack cost, for status `scale`.
    pub fn scale(&self) -> (AnomalyFolding, ConntrackRead) {
        (self.folder.stats(), self.failures.conntrack_cost())
    }
}
