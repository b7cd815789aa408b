//! The Prometheus scrape endpoint: the same series as OTLP, in the text exposition
//! format, named by the OTel-to-Prometheus rules (dots to underscores, unit suffix,
//! `_total` on counters, resource attributes on `target_info`), every series labelled
//! with the site (`site_name`) so one Prometheus can scrape a fleet and tell sites apart.
//!
//! The HTTP server is in [`super::prometheus_http`].

use std::fmt::Write as _;

use super::call_series::{self, CallSeries};
use super::series::{self, Kind, MetricDef, Series};
use crate::config::export::SITE_ATTRIBUTE;

/// The label every series carries: the resource attribute `site.name`.
pub const SITE_LABEL: &str = "site_name";

/// The Prometheus name of an OTel metric (the OTel compatibility rules: dots become
/// underscores, the unit becomes a suffix, `1` becomes `_ratio`, `{...}` annotations add
/// nothing, counters end in `_total`).
pub fn prom_name(def: &MetricDef) -> String {
    let mut name = def.name.replace('.', "_");
    let suffix = match def.unit {
        "By" => "bytes",
        "ms" => "milliseconds",
        "s" => "seconds",
        "1" => "ratio",
        _ => "",
    };
    if !suffix.is_empty() && !name.ends_with(suffix) {
        name.push('_');
        name.push_str(suffix);
    }
    if def.kind == Kind::Counter {
        name.push_str("_total");
    }
    name
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(out: &mut String, pairs: &mut dyn Iterator<Item = (String, String)>) {
    let mut first = true;
    for (k, v) in pairs {
        out.push(if first { '{' } else { ',' });
        first = false;
        let _ = write!(out, "{}=\"{}\"", k.replace('.', "_"), escape(&v));
    }
    if !first {
        out.push('}');
    }
}

/// Renders every series, after a `target_info` carrying the resource attributes; every
/// series starts with the `site_name` label.
pub fn render(series: &Series, resource: &[(String, String)]) -> String {
    let site = resource
        .iter()
        .find(|(k, _)| k == SITE_ATTRIBUTE)
        .map(|(_, v)| v.clone());
    let site_label = || site.iter().map(|v| (SITE_LABEL.to_string(), v.clone()));
    let mut out = String::new();
    out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info");
    labels(&mut out, &mut resource.iter().cloned());
    out.push_str(" 1\n");
    for def in series::ALL {
        let name = prom_name(def);
        let kind = match def.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {name} {}", def.description);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for p in series.get(def.name).into_iter().flatten() {
            out.push_str(&name);
            labels(
                &mut out,
                &mut site_label()
                    .chain(p.attrs.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
            );
            let _ = writeln!(out, " {}", p.value);
        }
    }
    out
}

/// Appends the call gauges and window histograms (`_bucket` with cumulative `le`
/// counts, `_sum`, `_count`).
/// Every series starts with the `site_name` label, as in [`render`].
pub fn render_calls(out: &mut String, calls: &CallSeries, resource: &[(String, String)]) {
    let site = resource
        .iter()
        .find(|(k, _)| k == SITE_ATTRIBUTE)
        .map(|(_, v)| (SITE_LABEL.to_string(), v.clone()));
    let attrs = |p: &[(&'static str, series::AttrValue)]| -> Vec<(String, String)> {
        site.iter()
            .cloned()
            .chain(p.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .collect()
    };
    for def in call_series::GAUGES {
        let name = prom_name(def);
        let _ = writeln!(out, "# HELP {name} {}", def.description);
        let _ = writeln!(out, "# TYPE {name} gauge");
        for p in calls.gauges.get(def.name).into_iter().flatten() {
            out.push_str(&name);
            labels(out, &mut attrs(&p.attrs).into_iter());
            let _ = writeln!(out, " {}", p.value);
        }
    }
    for (_, def) in call_series::HISTOGRAMS {
        let name = prom_name(def);
        let _ = writeln!(out, "# HELP {name} {}", def.description);
        let _ = writeln!(out, "# TYPE {name} histogram");
        for p in calls.histograms.get(def.name).into_iter().flatten() {
            let mut cumulative = 0;
            let les = p
                .bounds
                .iter()
                .map(|b| b.to_string())
                .chain(std::iter::once("+Inf".to_string()));
            for (le, n) in les.zip(&p.counts) {
                cumulative += n;
                let _ = write!(out, "{name}_bucket");
                let mut pairs = attrs(&p.attrs);
                pairs.push(("le".to_string(), le));
                labels(out, &mut pairs.into_iter());
                let _ = writeln!(out, " {cumulative}");
            }
            let _ = write!(out, "{name}_sum");
            labels(out, &mut attrs(&p.attrs).into_iter());
            let _ = writeln!(out, " {}", p.sum);
            let _ = write!(out, "{name}_count");
            labels(out, &mut attrs(&p.attrs).into_iter());
            let _ = writeln!(out, " {}", p.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::render::tests::sample_report;

    #[test]
    fn otel_names_become_prometheus_names() {
        assert_eq!(prom_name(&series::FLOW_BYTES), "monitor_flow_bytes_total");
        assert_eq!(
            prom_name(&series::FLOW_PACKETS),
            "monitor_flow_packets_total"
        );
        assert_eq!(prom_name(&series::FLOW_ACTIVE), "monitor_flow_active");
        assert_eq!(
            prom_name(&series::SNAPSHOT_AGE),
            "monitor_snapshot_age_seconds"
        );
        assert_eq!(
            prom_name(&series::FLOWS_EVICTED),
            "monitor_flows_evicted_total"
        );
        let ratio = MetricDef {
            name: "monitor.call.loss",
            unit: "1",
            kind: Kind::Gauge,
            description: "",
        };
        assert_eq!(prom_name(&ratio), "monitor_call_loss_ratio");
        let mos = MetricDef {
            name: "monitor.call.mos",
            unit: "{mos}",
            kind: Kind::Gauge,
            description: "",
        };
        assert_eq!(prom_name(&mos), "monitor_call_mos");
    }

    #[test]
    fn text_format() {
        let report = sample_report();
        let text = render(
            &series::collect(&report, 10),
            &[
                ("service.name".into(), "mon\"itor".into()),
                ("site.name".into(), "hq".into()),
            ],
        );
        assert!(text.starts_with(
            "# HELP target_info Target metadata\n# TYPE target_info gauge\n\
             target_info{service_name=\"mon\\\"itor\",site_name=\"hq\"} 1\n"
        ));
        assert!(text.contains("# TYPE monitor_packets_seen_total counter\n"));
        assert!(text.contains(&format!(
            "\nmonitor_packets_seen_total{{site_name=\"hq\"}} {}\n",
            report.counters.seen
        )));
        assert!(text.contains(
            "monitor_packets_malformed_total{site_name=\"hq\",monitor_malformed_reason=\"truncated_l4\"} 3\n"
        ));
        // Every sample line carries the site.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("site_name=\"hq\""), "{line}");
        }
        assert!(text.contains("# TYPE monitor_map_entries gauge\n"));
        assert!(text.ends_with('\n'));
    }
}
