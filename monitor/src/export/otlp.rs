//! OTLP export through the OpenTelemetry SDK, driven by our own loop instead of the SDK's
//! `PeriodicReader`.
//!
//! Why: the periodic reader has no export timeout (an export that never returns stops
//! every later one), and its HTTP support needs a blocking client. Here a
//! [`ManualReader`] collects on our schedule and each export (metrics, then anomaly log
//! records) runs under one deadline (`export.timeout_ms`, at most one interval). One
//! export is in flight at a time; an export that fails or times out is dropped and
//! counted, never queued, so a dead collector costs no memory. There are no retries
//! within an interval on purpose: the counters are cumulative, so the next export
//! carries the totals again and nothing is lost but resolution. Log records are the
//! exception: they are kept (a bounded queue) and sent again with the next export.
//!
//! The SDK's cardinality limit (2,000 attribute sets per stream by default, silently
//! folding the rest into an overflow series) is set from `export.max_call_series`;
//! `series::collect` already bounds every metric far below it.
//!
//! Connections: an export that failed or timed out may have left a half-open connection
//! behind (a NAT or firewall that dropped its state, a collector that hung): gRPC would
//! keep multiplexing every later export onto it. So after a failed export both
//! exporters are rebuilt on fresh channels, and the next interval connects anew. (HTTP/2 keepalive
//! pings are not used: the OTel Collector's gRPC server, like any grpc-go server with its
//! default policy, answers pings more frequent than every 5 minutes with GOAWAY.)
//!
//! TLS (https:// endpoints) is rustls with the `ring` provider: the system's root
//! certificates plus `export.otlp_ca_file`, and an optional client certificate.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::metrics::{Histogram, MeterProvider as _, ObservableCounter, ObservableGauge};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    LogBatch, LogExporter as _, LogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    Instrument, InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Stream, Temporality,
};

use super::anomaly_log::Transition;
use super::call_series::{self, CallSeries};
use super::series::{self, AttrValue, Kind, Series};
use super::transport::{Exporters, exporters};
use crate::config::export::OtlpSettings;
use crate::report::calls::{CallRecord, WindowObservation};

/// Anomaly log records kept for the next export while the collector is unreachable.
pub const LOG_QUEUE: usize = 256;

/// The OTel instrumentation scope of everything we export.
const SCOPE: &str = "monitor";

/// Lets the provider own the reader while we keep a handle to collect from it.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Keeps emitted log records for our loop to export (bounded; oldest dropped first).
#[derive(Debug, Clone, Default)]
struct LogQueue(Arc<Mutex<LogQueueInner>>);

#[derive(Debug, Default)]
struct LogQueueInner {
    records: VecDeque<(SdkLogRecord, InstrumentationScope)>,
    dropped: u64,
}

impl LogQueue {
    fn push(&self, record: SdkLogRecord, scope: InstrumentationScope) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.records.len() >= LOG_QUEUE {
            q.records.pop_front();
            q.dropped += 1;
        }
        q.records.push_back((record, scope));
    }
}

impl LogProcessor for LogQueue {
    fn emit(&self, data: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        self.push(data.clone(), instrumentation.clone());
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
}

/// Result of one export round.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Ok { log_records: u64 },
    Failed(String),
}

pub struct Otlp {
    reader: Arc<ManualReader>,
    // Kept alive: the provider owns the pipeline the reader collects from.
    _provider: SdkMeterProvider,
    _counters: Vec<ObservableCounter<u64>>,
    _gauges: Vec<ObservableGauge<u64>>,
    slot: Arc<Mutex<Arc<Series>>>,
    /// The call gauges (floating point) and their series.
    _call_gauges: Vec<ObservableGauge<f64>>,
    call_slot: Arc<Mutex<Arc<CallSeries>>>,
    /// The window histograms by measure, fed each observation once.
    histograms: HashMap<&'static str, Histogram<f64>>,
    last_observation: Mutex<u64>,
    exporters: Exporters,
    resource: Resource,
    settings: OtlpSettings,
    _log_provider: SdkLoggerProvider,
    logger: SdkLogger,
    log_queue: LogQueue,
    timeout: Duration,
}

fn key_value(key: &'static str, value: &AttrValue) -> KeyValue {
    match value {
        AttrValue::Str(s) => KeyValue::new(key, s.clone()),
        AttrValue::Int(i) => KeyValue::new(key, *i),
    }
}

impl Otlp {
    /// Builds the pipeline. Must run inside a Tokio runtime (the gRPC channel and the
    /// HTTP client spawn their connection tasks on it).
    pub fn new(
        settings: &OtlpSettings,
        resource: &[(String, String)],
        max_call_series: u32,
    ) -> anyhow::Result<Self> {
        let resource = Resource::builder_empty()
            .with_attributes(
                resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let reader = Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        );
        let limit = series::cardinality_limit(max_call_series);
        let provider = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(SharedReader(reader.clone()))
            .with_view(move |i: &Instrument| {
                Stream::builder()
                    .with_name(i.name().to_string())
                    .with_cardinality_limit(limit)
                    .build()
                    .ok()
            })
            .build();
        let meter = provider.meter(SCOPE);
        let slot: Arc<Mutex<Arc<Series>>> = Arc::default();
        let mut counters = Vec::new();
        let mut gauges = Vec::new();
        for def in series::ALL {
            let slot = slot.clone();
            let name = def.name;
            let observe = move |emit: &dyn Fn(u64, &[KeyValue])| {
                let series = slot.lock().map(|s| s.clone()).unwrap_or_default();
                for p in series.get(name).into_iter().flatten() {
                    let attrs: Vec<KeyValue> =
                        p.attrs.iter().map(|(k, v)| key_value(k, v)).collect();
                    emit(p.value, &attrs);
                }
            };
            match def.kind {
                Kind::Counter => counters.push(
                    meter
                        .u64_observable_counter(Cow::Borrowed(def.name))
                        .with_unit(def.unit)
                        .with_description(def.description)
                        .with_callback(move |o| observe(&|v, a| o.observe(v, a)))
                        .build(),
                ),
                Kind::Gauge | Kind::Histogram => gauges.push(
                    meter
                        .u64_observable_gauge(Cow::Borrowed(def.name))
                        .with_unit(def.unit)
                        .with_description(def.description)
                        .with_callback(move |o| observe(&|v, a| o.observe(v, a)))
                        .build(),
                ),
            }
        }
        let call_slot: Arc<Mutex<Arc<CallSeries>>> = Arc::default();
        let call_gauges = call_series::GAUGES
            .iter()
            .map(|def| {
                let slot = call_slot.clone();
                let name = def.name;
                meter
                    .f64_observable_gauge(Cow::Borrowed(def.name))
                    .with_unit(def.unit)
                    .with_description(def.description)
                    .with_callback(move |o| {
                        let series = slot.lock().map(|s| s.clone()).unwrap_or_default();
                        for p in series.gauges.get(name).into_iter().flatten() {
                            let attrs: Vec<KeyValue> =
                                p.attrs.iter().map(|(k, v)| key_value(k, v)).collect();
                            o.observe(p.value, &attrs);
                        }
                    })
                    .build()
            })
            .collect();
        let histograms = call_series::HISTOGRAMS
            .iter()
            .map(|(measure, def)| {
                let bounds = crate::quality::histograms::bounds(measure).to_vec();
                let h = meter
                    .f64_histogram(Cow::Borrowed(def.name))
                    .with_unit(def.unit)
                    .with_description(def.description)
                    .with_boundaries(bounds)
                    .build();
                (*measure, h)
            })
            .collect();

        let exporters = exporters(settings, &resource)?;
        let log_queue = LogQueue::default();
        let log_provider = SdkLoggerProvider::builder()
            .with_resource(resource.clone())
            .with_log_processor(log_queue.clone())
            .build();
        let logger = log_provider.logger(SCOPE);
        Ok(Self {
            reader,
            _provider: provider,
            _counters: counters,
            _gauges: gauges,
            slot,
            _call_gauges: call_gauges,
            call_slot,
            histograms,
            last_observation: Mutex::new(0),
            exporters,
            resource,
            settings: settings.clone(),
            _log_provider: log_provider,
            logger,
            log_queue,
            timeout: settings.timeout,
        })
    }

    /// Queues one anomaly transition as a log record.
    pub fn log(&self, t: &Transition) {
        let mut r = self.logger.create_log_record();
        r.set_event_name(t.event_name());
        r.set_timestamp(t.at());
        r.set_observed_timestamp(SystemTime::now());
        let (number, text) = t.severity();
        r.set_severity_number(number);
        r.set_severity_text(text);
        r.set_body(AnyValue::from(t.body()));
        for (k, v) in t.attributes() {
            r.add_attribute(k, v);
        }
        self.logger.emit(r);
    }

    /// Queues one call record as a log record (event `monitor.call.record`).
    pub fn log_call(&self, rec: &CallRecord) {
        use super::call_log;
        let mut r = self.logger.create_log_record();
        r.set_event_name(call_log::EVENT_NAME);
        r.set_timestamp(call_log::at(rec));
        r.set_observed_timestamp(SystemTime::now());
        let (number, text) = call_log::severity(rec);
        r.set_severity_number(number);
        r.set_severity_text(text);
        r.set_body(AnyValue::from(call_log::body(rec)));
        for (k, v) in call_log::attributes(rec) {
            r.add_attribute(k, v);
        }
        self.logger.emit(r);
    }

    /// Sets the call gauges for the next export and records the window observations
    /// not recorded yet into the histograms.
    pub fn set_calls(&self, series: CallSeries, observations: &[WindowObservation]) {
        if let Ok(mut s) = self.call_slot.lock() {
            *s = Arc::new(series);
        }
        let Ok(mut last) = self.last_observation.lock() else {
            return;
        };
        if let Some(first) = observations.first()
            && first.serial > *last + 1
            && *last != 0
        {
            log::warn!(
                "OTLP: {} call window observations were dropped before this export (more \
                 than {} per export interval); the histograms undercount them",
                first.serial - *last - 1,
                crate::quality::histograms::RING
            );
        }
        let from = *last;
        for o in observations.iter().filter(|o| o.serial > from) {
            if let Some(h) = self.histograms.get(o.measure.as_str()) {
                let attrs: Vec<KeyValue> = call_series::histogram_attrs(&o.class, &o.interface)
                    .iter()
                    .map(|(k, v)| key_value(k, v))
                    .collect();
                h.record(o.value, &attrs);
            }
            *last = o.serial;
        }
    }

    /// Log records dropped because the queue was full.
    pub fn log_records_dropped(&self) -> u64 {
        self.log_queue.0.lock().map(|q| q.dropped).unwrap_or(0)
    }

    /// Collects the current series and exports them, then the queued log records, all
    /// within the timeout. After a failure or a timeout the exporters start over on
    /// fresh connections (see the module comment).
    pub async fn export(&mut self, series: Series) -> Outcome {
        let outcome = match tokio::time::timeout(self.timeout, self.export_inner(series)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failed(format!(
                "timed out after {} ms (the next export uses a new connection)",
                self.timeout.as_millis()
            )),
        };
        // Whichever deadline fired first (ours, or the channel's own, which reports a
        // cancelled call), the connection may be half-open: never reuse it.
        if let Outcome::Failed(text) = outcome {
            return Outcome::Failed(match exporters(&self.settings, &self.resource) {
                Ok(fresh) => {
                    self.exporters = fresh;
                    text
                }
                Err(e) => format!("{text}; reconnecting failed: {e:#}"),
            });
        }
        outcome
    }

    async fn export_inner(&self, series: Series) -> Outcome {
        if let Ok(mut s) = self.slot.lock() {
            *s = Arc::new(series);
        }
        let mut rm = ResourceMetrics::default();
        if let Err(e) = self.reader.collect(&mut rm) {
            return Outcome::Failed(format!("collecting metrics: {e}"));
        }
        if let Err(e) = self.exporters.metrics.export(&rm).await {
            return Outcome::Failed(format!("exporting metrics: {}", self.explain(&e)));
        }
        let Some(logs) = &self.exporters.logs else {
            // No logs endpoint configured: the records are not wanted, keep no backlog
            // (and count no drops).
            self.log_queue
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .records
                .clear();
            return Outcome::Ok { log_records: 0 };
        };
        let batch: Vec<_> = {
            let q = self.log_queue.0.lock().unwrap_or_else(|e| e.into_inner());
            q.records.iter().cloned().collect()
        };
        if batch.is_empty() {
            return Outcome::Ok { log_records: 0 };
        }
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            batch.iter().map(|(r, s)| (r, s)).collect();
        if let Err(e) = logs.export(LogBatch::new(&refs)).await {
            return Outcome::Failed(format!(
                "exporting anomaly log records: {}",
                self.explain(&e)
            ));
        }
        // Delivered: remove them (new ones may have been queued meanwhile, behind them).
        let mut q = self.log_queue.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = batch.len().min(q.records.len());
        q.records.drain(..n);
        Outcome::Ok {
            log_records: batch.len() as u64,
        }
    }
}

impl Otlp {
    /// The SDK's error text, with what to check when TLS is the likely cause.
    fn explain(&self, e: &opentelemetry_sdk::error::OTelSdkError) -> String {
        let mut text = e.to_string();
        if let Some(cause) = self
            .exporters
            .http_error
            .lock()
            .ok()
            .and_then(|mut c| c.take())
        {
            text = format!("{text} ({cause})");
        }
        let lower = text.to_ascii_lowercase();
        // Words of rustls' and tonic's TLS errors (not of a refused connection).
        let tls_trouble = ["certificate", "tls", "handshake", "alert"]
            .iter()
            .any(|w| lower.contains(w));
        if !(self.settings.uses_tls() && tls_trouble) {
            return text;
        }
        let hint = if self.settings.tls.ca_file.is_some() {
            "check that export.otlp_ca_file (OTEL_EXPORTER_OTLP_CERTIFICATE) signed the \
             collector's certificate and that its name matches the endpoint"
        } else {
            "check that the system's CAs trust the collector's certificate (or set \
             export.otlp_ca_file) and that its name matches the endpoint"
        };
        format!("{text} (TLS: {hint})")
    }
}
