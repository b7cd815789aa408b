//! Export: OTLP metrics and anomaly log records, and the Prometheus scrape endpoint.
//!
//! Everything runs on its own thread with its own small Tokio runtime, so a slow or dead
//! collector can never delay map polling or the status socket: the daemon only hands
//! over the function that builds its status report, and export reads the latest snapshot
//! through it when an interval comes round (nothing is queued between the two).

pub mod anomaly_log;
pub mod call_log;
pub mod call_series;
pub mod otlp;
pub mod prometheus;
pub mod prometheus_http;
pub mod series;
mod transport;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::config::export::ExportSettings;
use crate::status::model::{ExportStatus, StatusReport};

/// Builds the current status report (the same function the status socket uses).
pub type ReportFn = Arc<dyn Fn() -> StatusReport + Send + Sync>;

/// Export health, shared between the export thread and the status report.
#[derive(Clone, Debug, Default)]
pub struct StatusCell(Arc<Mutex<Option<ExportStatus>>>);

impl StatusCell {
    /// The initial status for `settings`; `None` inside when export is off.
    pub fn new(settings: &ExportSettings) -> Self {
        if !settings.enabled() {
            return Self::default();
        }
        let o = settings.otlp.as_ref();
        Self(Arc::new(Mutex::new(Some(ExportStatus {
            otlp_endpoint: o.map(|o| o.endpoint.clone()),
            otlp_protocol: o.map(|o| o.protocol.as_str().to_string()),
            interval_ms: o.map(|o| o.interval.as_millis() as u64).unwrap_or(0),
            timeout_ms: o.map(|o| o.timeout.as_millis() as u64).unwrap_or(0),
            prometheus_listen: settings.prometheus_listen.map(|a| a.to_string()),
            site_name: settings.site_name().to_string(),
            otlp_tls: o.is_some_and(|o| o.uses_tls()),
            otlp_compression: o.map(|o| o.compression.as_str().to_string()),
            ..Default::default()
        }))))
    }

    pub fn get(&self) -> Option<ExportStatus> {
        self.0.lock().ok().and_then(|s| s.clone())
    }

    fn update(&self, f: impl FnOnce(&mut ExportStatus)) {
        if let Ok(mut s) = self.0.lock()
            && let Some(s) = s.as_mut()
        {
            f(s)
        }
    }
}

/// The running export thread; dropping it stops the thread.
pub struct Exporter {
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    /// Where the Prometheus endpoint listens (resolved, so port 0 shows the real port).
    pub prometheus_addr: Option<SocketAddr>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts export; `Ok(None)` when nothing is configured. Binding the Prometheus port and
/// building the OTLP pipeline happen before this returns, so their errors stop start-up.
pub fn start(
    settings: ExportSettings,
    report: ReportFn,
    status: StatusCell,
) -> anyhow::Result<Option<Exporter>> {
    if !settings.enabled() {
        return Ok(None);
    }
    let prometheus = match settings.prometheus_listen {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("export.prometheus_listen: cannot listen on {addr}"))?;
            l.set_nonblocking(true)?;
            Some(l)
        }
        None => None,
    };
    let prometheus_addr = prometheus.as_ref().and_then(|l| l.local_addr().ok());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<anyhow::Result<()>>(1);
    let thread = std::thread::Builder::new()
        .name("monitor-export".into())
        .spawn(move || {
            // Everything on this thread is async (the SDK's collect and our log queue do
            // not block), so one current-thread runtime drives it all.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(run(
                settings,
                report,
                status,
                prometheus,
                shutdown_rx,
                ready_tx,
            ));
        })
        .context("starting the export thread")?;
    let exporter = Exporter {
        shutdown,
        thread: Some(thread),
        prometheus_addr,
    };
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Some(exporter)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(anyhow::anyhow!("the export thread ended during start-up")),
    }
}

async fn run(
    settings: ExportSettings,
    report: ReportFn,
    status: StatusCell,
    prometheus: Option<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
    ready: std::sync::mpsc::SyncSender<anyhow::Result<()>>,
) {
    let mut tasks = Vec::new();
    if let Some(listener) = prometheus {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => tasks.push(tokio::spawn(prometheus_http::serve(
                l,
                report.clone(),
                settings.max_call_series,
                settings.resource.clone(),
                shutdown.clone(),
            ))),
            Err(e) => {
                let _ = ready.send(Err(e).context("serving the Prometheus endpoint"));
                return;
            }
        }
    }
    let Some(otlp_settings) = settings.otlp.clone() else {
        let _ = ready.send(Ok(()));
        for t in tasks {
            let _ = t.await;
        }
        return;
    };
    let mut pipeline =
        match otlp::Otlp::new(&otlp_settings, &settings.resource, settings.max_call_series) {
            Ok(p) => p,
            Err(e) => {
                let _ = ready.send(Err(e).context("setting up OTLP export"));
                return;
            }
        };
    let _ = ready.send(Ok(()));
    log::info!(
        "exporting OTLP ({}{}{}) to {} every {} ms (timeout {} ms){}",
        otlp_settings.protocol.as_str(),
        if otlp_settings.uses_tls() {
            ", TLS"
        } else {
            ""
        },
        if otlp_settings.compression == crate::config::export::OtlpCompression::Gzip {
            ", gzip"
        } else {
            ""
        },
        otlp_settings.endpoint,
        otlp_settings.interval.as_millis(),
        otlp_settings.timeout.as_millis(),
        if otlp_settings.logs_url.is_none() {
            "; no logs endpoint: anomaly log records are not exported"
        } else {
            ""
        }
    );
    export_loop(
        &mut pipeline,
        &otlp_settings,
        settings.max_call_series,
        &report,
        &status,
        shutdown,
    )
    .await;
    for t in tasks {
        let _ = t.await;
    }
}

async fn export_loop(
    pipeline: &mut otlp::Otlp,
    settings: &crate::config::export::OtlpSettings,
    max_call_series: u32,
    report: &ReportFn,
    status: &StatusCell,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(settings.interval);
    // An export never outlives its interval (timeout <= interval), so nothing is skipped
    // in practice; if the runtime itself was starved, start afresh instead of bursting.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tracker = anomaly_log::Tracker::default();
    let mut records = call_log::Sent::default();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let report = report();
        for t in tracker.update(&report.anomalies) {
            pipeline.log(&t);
        }
        for r in records.update(&report.call_records) {
            pipeline.log_call(&r);
        }
        pipeline.set_calls(
            call_series::collect(&report, max_call_series),
            &report.call_window_observations,
        );
        let outcome = pipeline
            .export(series::collect(&report, max_call_series))
            .await;
        let log_dropped = pipeline.log_records_dropped();
        match outcome {
            otlp::Outcome::Ok { log_records } => {
                if failing {
                    log::info!("OTLP export to {} works again", settings.endpoint);
                    failing = false;
                }
                status.update(|s| {
                    s.exported += 1;
                    s.log_records_exported += log_records;
                    s.log_records_dropped = log_dropped;
                    s.last_success_unix_s = Some(unix_now());
                    s.last_error = None;
                });
            }
            otlp::Outcome::Failed(e) => {
                if !failing {
                    log::warn!(
                        "OTLP export to {} failed: {e}; counting drops until it works again",
                        settings.endpoint
                    );
                    failing = true;
                }
                status.update(|s| {
                    s.dropped += 1;
                    s.log_records_dropped = log_dropped;
                    s.last_error = Some(e);
                });
            }
        }
    }
}
