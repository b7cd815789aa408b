//! The part of a poll that does not touch the kernel — building the report from the
//! snapshot and running the detectors over it — on a blocking thread, so the daemon's
//! loop keeps answering signals, status requests and learning samples while it runs
//! (with a million flows it takes longer than a poll interval).

use std::{
    sync::{Arc, Mutex},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use log::{error, warn};
use tokio::task::JoinHandle;

use super::{detectors::Detectors, report};
use crate::flows::rows::FlowRows;
use crate::{
    kernel::snapshot::{self, Snapshot},
    learn::run::View as LearnView,
    quality::tracker::Tracker,
    report::scale::Cap,
    status::model::{InterfaceStatus, StatusReport},
};

/// The report of `snap` with the learned peers, before the detectors.
pub fn build(
    snap: &Snapshot,
    info: &report::StaticInfo,
    interfaces: &[InterfaceStatus],
    learn: &Mutex<LearnView>,
) -> StatusReport {
    build_with(snap, info, interfaces, learn, &mut Tracker::new())
}

/// [`build`] with the calls followed across polls by `tracker`.
fn build_with(
    snap: &Snapshot,
    info: &report::StaticInfo,
    interfaces: &[InterfaceStatus],
    learn: &Mutex<LearnView>,
    tracker: &mut Tracker,
) -> StatusReport {
    let mut report =
        report::build_tracked(info, interfaces, snap, snapshot::monotonic_ns(), tracker);
    if let Ok(v) = learn.lock() {
        v.annotate(&mut report, &snap.counters, snapshot::monotonic_ns());
    }
    report
}

/// The caps of what the report holds: its flows (the rest counted in `flows_total`)
/// and the call records.
fn report_caps(report: &StatusReport) -> Vec<Cap> {
    let kept = report.flows.len();
    let mut caps = vec![Cap::new(
        "report.flows",
        crate::status::model::MAX_FLOWS_SERVED + crate::config::export::MAX_CALL_SERIES as usize,
        kept,
        report.flows_total.saturating_sub(kept as u64),
    )];
    if let Some(t) = &report.call_tracking {
        caps.push(Cap {
            name: "quality.call_records".into(),
            limit: t.max_call_records,
            held: report.call_records.len() as u64,
            refused: t.records_dropped,
        });
    }
    caps
}

/// A finished analysis: the report with its anomalies, and when its snapshot was taken.
pub struct Done {
    pub report: StatusReport,
    pub taken_mono_ns: u64,
    /// The snapshot's flow buffer, emptied, for the next poll's read
    /// ([`snapshot::take_into`]).
    pub flow_buffer: crate::flows::table::FlowTable,
}

type Output = (Detectors, Tracker, FlowRows, Done);

/// At most one analysis runs at a time; a snapshot taken while one runs is not made.
pub struct Analysis {
    /// The detectors and the anomaly book they keep; away while an analysis runs.
    detectors: Option<Detectors>,
    /// The calls across polls; away while an analysis runs.
    tracker: Option<Tracker>,
    /// The flows' rows across polls; away while an analysis runs.
    rows: Option<FlowRows>,
    running: Option<JoinHandle<Output>>,
    make_detectors: Box<dyn Fn() -> Detectors + Send>,
    skipped: u64,
    warned: Option<Instant>,
    /// The last finished analysis's flow buffer ([`Done::flow_buffer`]).
    spare: crate::flows::table::FlowTable,
}

impl Analysis {
    /// `make_detectors` builds fresh detectors (at start, and if an analysis panicked).
    pub fn new(make_detectors: impl Fn() -> Detectors + Send + 'static) -> Analysis {
        Analysis {
            detectors: Some(make_detectors()),
            tracker: Some(Tracker::new()),
            rows: Some(FlowRows::new()),
            running: None,
            make_detectors: Box::new(make_detectors),
            skipped: 0,
            warned: None,
            spare: Default::default(),
        }
    }

    /// The buffer the next snapshot reads its flows into (empty at first).
    pub fn take_buffer(&mut self) -> crate::flows::table::FlowTable {
        std::mem::take(&mut self.spare)
    }

    /// True while an analysis runs: the caller then skips this poll's snapshot (it
    /// would only queue behind). Counts the skip and logs it at most once a minute.
    pub fn skip_if_busy(&mut self) -> bool {
        if self.running.is_none() {
            return false;
        }
        self.skipped += 1;
        if self.warned.is_none_or(|t| t.elapsed().as_secs() >= 60) {
            warn!(
                "building the report takes longer than the poll interval: {} polls skipped \
                 so far; status shows the last finished poll (see daemon.snapshot_age_ms). \
                 A smaller daemon.flow_table_size or a longer poll_interval_ms helps",
                self.skipped
            );
            self.warned = Some(Instant::now());
        }
        true
    }

    /// Starts analysing `snap` on a blocking thread.
    pub fn start(
        &mut self,
        snap: Snapshot,
        info: Arc<report::StaticInfo>,
        interfaces: Vec<InterfaceStatus>,
        learn: Arc<Mutex<LearnView>>,
    ) {
        let mut detectors = self
            .detectors
            .take()
            .unwrap_or_else(|| (self.make_detectors)());
        let mut tracker = self.tracker.take().unwrap_or_default();
        let mut rows = self.rows.take().unwrap_or_default();
        self.running = Some(tokio::task::spawn_blocking(move || {
            let done = analyse(
                &mut detectors,
                &mut tracker,
                &mut rows,
                snap,
                &info,
                &interfaces,
                &learn,
            );
            (detectors, tracker, rows, done)
        }));
    }

    /// Completes when the running analysis does (never while none runs). Cancel-safe: if
    /// dropped before completion, the analysis keeps running and is awaited next time.
    pub async fn finished(&mut self) -> Option<Done> {
        let Some(handle) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let result = handle.await;
        self.running = None;
        match result {
            Ok((detectors, tracker, rows, mut done)) => {
                self.detectors = Some(detectors);
                self.tracker = Some(tracker);
                self.rows = Some(rows);
                self.spare = std::mem::take(&mut done.flow_buffer);
                Some(done)
            }
            Err(e) => {
                error!(
                    "building the report failed ({e}); the anomaly book and the calls start afresh and \
                     status shows the previous poll"
                );
                self.detectors = Some((self.make_detectors)());
                self.tracker = Some(Tracker::new());
                self.rows = Some(FlowRows::new());
                None
            }
        }
    }
}

/// One poll's analysis: the report of `snap` with the calls (`tracker`), the flows'
/// rows (`rows`) and the learned peers, the detectors run over it, and only the flows
/// status and export show kept. What a poll costs after the map read; `bench_analysis`
/// runs it without a kernel.
pub fn analyse(
    detectors: &mut Detectors,
    tracker: &mut Tracker,
    rows: &mut FlowRows,
    snap: Snapshot,
    info: &report::StaticInfo,
    interfaces: &[InterfaceStatus],
    learn: &Mutex<LearnView>,
) -> Done {
    let started = Instant::now();
    let (mut report, deltas, baseline) = report::build_rows(
        info,
        interfaces,
        &snap,
        snapshot::monotonic_ns(),
        tracker,
        rows,
    );
    if let Ok(v) = learn.lock() {
        v.annotate(&mut report, &snap.counters, snapshot::monotonic_ns());
    }
    let names = report::interface_names(interfaces);
    // The report has every flow now; the raw copy's buffer is kept for the next poll's
    // read. The certificate detector's handshake times come from the raw flows.
    let handshakes = handshake_rtts(rows.handshakes());
    let Snapshot {
        taken_mono_ns,
        quality,
        flows: mut flow_buffer,
        ..
    } = snap;
    flow_buffer.clear();
    let now_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    detectors.set_stun_rtt(&quality.rtt);
    drop(quality);
    let (dns_failures, dropped) = learn
        .lock()
        .map(|v| v.take_dns_failures())
        .unwrap_or_default();
    detectors.set_dns_failures(dns_failures, dropped, snapshot::monotonic_ns());
    let (certs, _) = learn
        .lock()
        .map(|v| v.take_server_certs())
        .unwrap_or_default();
    detectors.set_server_certs(certs, &handshakes, now_unix_s);
    detectors.poll_with_deltas(&mut report, &deltas, baseline, Some(rows), now_unix_s);
    (report.scale.anomalies, report.scale.conntrack) = detectors.scale();
    // Only the flows status and export show stay in the published report
    // (copies, busiest first); the rows take their statuses back.
    let all = std::mem::take(&mut report.flows);
    report.flow_aggregates = Some(rows.aggregate());
    report.flows_total = all.len() as u64;
    let rank = report::interface_rank(&names);
    report.flows = rows
        .shown(
            crate::status::model::MAX_FLOWS_SERVED,
            crate::config::export::MAX_CALL_SERIES as usize,
            &rank,
        )
        .into_iter()
        .map(|i| {
            let mut f = all[i].clone();
            (f.age_s, f.idle_s) = rows.times(i, taken_mono_ns);
            f
        })
        .collect();
    rows.give_back(all, deltas);
    report.scale.rows_made = rows.last_made as u64;
    report.scale.caps.extend(report_caps(&report));
    report.scale.analysis_ms = started.elapsed().as_secs_f64() * 1e3;
    Done {
        report,
        taken_mono_ns,
        flow_buffer,
    }
}

/// The kernel's completed TCP handshake RTTs (SYN to SYN/ACK, ns) per flow of `flows`.
/// `flows` are the rows' timed handshakes ([`FlowRows::handshakes`]): completed ones only.
fn handshake_rtts<'a>(
    flows: impl Iterator<Item = (&'a monitor_common::FlowKey, &'a monitor_common::FlowStats)>,
) -> Vec<(monitor_common::FlowKey, u64)> {
    flows
        .filter(|(k, _)| k.protocol == 6)
        .map(|(k, v)| (*k, v.handshake_rtt_ns))
        .collect()
}
