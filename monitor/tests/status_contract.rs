//! What scripts and monitoring rely on in `monitor status`: the JSON schema's field names
//! (golden), the exit status per health, and no colour when piped. The real `monitor`
//! binary runs against a status socket served by this test.

// The full-report fixture is one large json! literal.
#![recursion_limit = "512"]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use monitor::status::model::{SCHEMA_VERSION, StatusReport};
use serde_json::{Value, json};
use xtask::TempDir;

mod status_fake;
use status_fake::FakeDaemon;

/// A report with every optional part present (Some, non-empty lists), so that every
/// field name of the schema appears when it is serialised.
fn full_report() -> StatusReport {
    serde_json::from_value(json!({
        "schema_version": SCHEMA_VERSION,
        "daemon": {
            "version": "0.1.0", "pid": 42, "started_at_unix_s": 1_700_000_000u64,
            "uptime_s": 60, "config_path": "/etc/monitor/monitor.toml",
            "pin_path": "/sys/fs/bpf/monitor", "poll_interval_ms": 1000,
            "snapshot_age_ms": 120, "adopted_pinned_maps": false, "last_poll_ms": 0.4,
            "pin_migrations": ["FLOWS: layout changed; all 3 entries migrated"],
            "last_reload": {
                "at_unix_s": 1_700_000_030u64, "ok": true, "message": "reloaded",
                "needs_restart": ["daemon.pin_path"]
            }
        },
        "interfaces": [{
            "name": "wan0", "ifindex": 3, "role": "wan", "xdp_mode": "native",
            "tc_attach": "tcx", "state": "attached", "reattached": 0,
            "link_type": "ethernet", "xdp_fallback": false, "ingress_hook": "xdp",
            "pinned": true,
            "adopted": true, "dscp_rewrite": true, "previous_ifindexes": [2]
        }],
        "maps": [{"name": "FLOWS", "entries": 1, "max_entries": 65536}],
        "counters": {
            "seen": 100, "parsed": 100, "non_ip": 0, "ipv4": 100, "ipv6": 0,
            "fragments": 0, "fragments_matched": 0, "fragments_unmatched": 0,
            "stage_failed": 0, "webex_packets": 100, "not_webex_packets": 0,
            "flows_created": 1, "flow_insert_failed": 0, "flows_evicted": 0,
            "malformed_total": 0,
            "malformed": {"l4_truncated": 0}
        },
        "flows": [{
            "interface": "wan0", "direction": "egress", "protocol": "udp", "ip_version": 4,
            "src_addr": "198.51.100.1", "src_port": 40000,
            "dst_addr": "203.0.113.10", "dst_port": 5004,
            "inner_addr": "198.51.100.1", "inner_port": 40000,
            "peer_addr": "203.0.113.10", "peer_port": 5004,
            "class": "media", "packets": 100, "bytes": 18800, "fragments": 0,
            "last_dscp": 46, "age_s": 2.0, "idle_s": 0.02,
            "classified_by": "port_rule", "dscp_class": "media",
            "dscp": {"expected": 46, "matched": 100, "mismatched": 0, "rewritten": 0, "seen": [46]}
        }],
        "calls": [{
            "inner_addr": "192.0.2.10", "peer_addr": "203.0.113.10", "peer_port": 5004,
            "kind": "audio", "direction": "both", "packets": 100, "loss_pct": 0.0,
            "jitter_ms": 1.5, "rtt_ms": 20.0, "one_way_latency_ms_estimate": 10.0,
            "mos": 4.3, "mos_codec": "opus", "health": "good", "breaches": ["jitter"],
            "clock_rate": 48000, "clock_source": "payload_type", "idle_s": 0.02,
            "id": "0badcafe", "inner_port": 40000, "duration_s": 2.0,
            "window": {
                "seconds": 10, "expected": 100, "lost": 0, "loss_pct": 0.0,
                "jitter_ms": 1.5, "mos": 4.3, "sufficient": true
            },
            "segments": [{
                "segment": "gateway", "direction": "to_webex",
                "measured": "lan0 ingress - wan0 egress", "expected": 50, "lost": 0,
                "loss_pct": 0.0, "window_expected": 50, "window_lost": 0,
                "window_loss_pct": 0.0
            }],
            "bad_segment": "gateway",
            "window_history": [{
                "unix_s": 1_700_000_010u64, "expected": 50, "lost": 1, "loss_pct": 2.0,
                "jitter_ms": 1.5, "mos": 4.3, "health": "ok"
            }],
            "legs": [{
                "direction": "outbound", "measured_at": "wan0", "packets": 50,
                "expected": 50, "lost": 0, "loss_pct": 0.0, "duplicates": 0,
                "reordered": 0, "jitter_ms": 1.5, "mean_jitter_ms": 1.4,
                "streams": [{
                    "interface": "wan0", "direction": "egress",
                    "src_addr": "198.51.100.1", "src_port": 40000,
                    "dst_addr": "203.0.113.10", "dst_port": 5004,
                    "ssrc": 1234, "payload_type": 111, "packets": 50, "expected": 50,
                    "received": 50, "lost_rfc": 0, "lost": 0, "duplicates": 0,
                    "reordered": 0, "restarts": 0, "jitter_ms": 1.5, "max_jitter_ms": 2.0,
                    "mean_jitter_ms": 1.4, "clock_rate": 48000,
                    "clock_source": "payload_type", "idle_s": 0.02,
                    "media": "voice", "call_expected": 50, "call_lost": 0,
                    "loss_bursts": 0,
                    "last_poll": {"expected": 50, "received": 50, "lost": 0, "jitter_ms": 1.5},
                    "window_expected": 50, "window_lost": 0, "window_jitter_ms": 1.4,
                    "burst_r": 1.0, "mos": 4.3, "packets_per_s": 50.0,
                    "frames_per_s": 30.0
                }]
            }]
        }],
        "call_records": [{
            "id": "0badf00d", "inner_addr": "192.0.2.10", "inner_port": 40002,
            "peer_addr": "203.0.113.10", "peer_port": 5004, "kind": "audio",
            "started_unix_s": 1_700_000_000u64, "ended_unix_s": 1_700_000_060u64,
            "duration_s": 60.0, "packets": 6000, "loss_pct": 1.0, "jitter_ms": 2.0,
            "rtt_ms": 20.0, "mos_min": 3.9, "mos_mean": 4.2,
            "worst_window": {
                "seconds": 10, "expected": 500, "lost": 10, "loss_pct": 2.0,
                "jitter_ms": 2.0, "mos": 3.9, "sufficient": true
            },
            "worst_health": "warning",
            "legs": [{
                "direction": "to_webex", "measured_at": "lan0 ingress", "packets": 3000,
                "expected": 3000, "lost": 0, "loss_pct": 0.0
            }],
            "segments": [{
                "segment": "isp_from_webex", "direction": "from_webex",
                "measured": "wan0 ingress gaps", "expected": 3000, "lost": 60,
                "loss_pct": 2.0, "window_expected": 0, "window_lost": 0,
                "window_loss_pct": 0.0
            }],
            "window_history": [{
                "unix_s": 1_700_000_010u64, "expected": 50, "lost": 1, "loss_pct": 2.0,
                "jitter_ms": 1.5, "mos": 4.3, "health": "ok"
            }]
        }],
        "call_tracking": {
            "window_s": 10, "min_window_packets": 100, "call_idle_s": 60,
            "max_call_records": 100, "call_record_max_age_s": 3600, "calls_started": 2,
            "calls_ended": 1, "records_dropped": 0, "window_history_points": 30
        },
        "call_histograms": [{
            "measure": "loss", "class": "audio", "interface": "lan0",
            "bounds": [0.01, 0.1], "counts": [1, 0, 0], "sum": 0.0, "count": 1
        }],
        "anomalies": [{
            "id": "sip_alg", "severity": "critical", "subject": "wan0",
            "summary": "a SIP ALG rewrites SIP on wan0",
            "evidence": [{"name": "rewritten_messages", "value": "3"}],
            "remediation": "Turn the SIP ALG off.",
            "first_seen_unix_s": 1_700_000_000u64, "last_seen_unix_s": 1_700_000_010u64,
            "cleared_unix_s": 1_700_000_020u64
        }],
        "export": {
            "otlp_endpoint": "http://127.0.0.1:4317", "otlp_protocol": "grpc",
            "interval_ms": 10000, "timeout_ms": 5000, "prometheus_listen": "127.0.0.1:9464",
            "last_success_unix_s": 1_700_000_050u64, "exported": 5, "dropped": 1,
            "log_records_exported": 2, "log_records_dropped": 0, "last_error": "refused"
        },
        "dscp": [{
            "interface": "wan0", "direction": "egress", "class": "media", "expected": 46,
            "flows": 1, "matched": 100, "mismatched": 0, "rewritten": 0,
            "compliance_pct": 100.0
        }],
        "detectors": {"tables": [{
            "detector": "ssl_inspection", "table": "connections", "entries": 1,
            "cap": 1024, "dropped": 0
        }]},
        "learned_peers": [{
            "addr": "203.0.113.20", "name": "media.webex.com", "source": "dns",
            "expires_in_s": 42
        }],
        "learn": {
            "enabled": true, "samples": 3, "sample_drops": 0, "duplicates": 1,
            "dns_responses": 2, "dns_malformed": {"truncated": 1}, "dns_cut": 0,
            "client_hellos": 1, "sni_malformed": {}, "learned_dns": 1, "learned_sni": 0,
            "refused_full": 0, "expired": 0, "flows_deleted": 0, "peers": 1
        },
        "scale": {
            "caps": [{"name": "learn.peers", "limit": 4096, "held": 1, "refused": 0}]
        }
    }))
    .expect("the fixture no longer deserialises: a required field was added or renamed")
}

/// Objects whose keys are data, not schema (e.g. one key per malformed reason).
const MAPS: &[&str] = &[
    "learn.dns_malformed",
    "learn.refused",
    "learn.sni_malformed",
    "learn.tls_certificate_unread",
    "learn.tls_certificates",
    "learn.tls_certificates_cap",
    "learn.tls_certificates_dropped",
    "learn.tls_hellos_waiting",
    "learn.tls_hellos_waiting_cap",
    "learn.tls_server_flights",
    "counters.malformed",
];

/// The schema's field names, as dotted paths (`[]` for list elements), sorted.
///
/// Golden on purpose: removing or renaming a field breaks every script that reads it, so
/// this test fails; that change must bump `SCHEMA_VERSION` instead (status/model.rs).
/// Adding a field also fails here, so that each addition is deliberate: add its path
/// below (and its value in `full_report` if it is optional or nested), and document it
/// in README "Status JSON".
const GOLDEN: &[&str] = &[
    "anomalies",
    "anomalies[].cleared_unix_s",
    "anomalies[].evidence",
    "anomalies[].evidence[].name",
    "anomalies[].evidence[].value",
    "anomalies[].first_seen_unix_s",
    "anomalies[].id",
    "anomalies[].last_seen_unix_s",
    "anomalies[].remediation",
    "anomalies[].severity",
    "anomalies[].subject",
    "anomalies[].summary",
    "call_histograms",
    "call_histograms[].bounds",
    "call_histograms[].class",
    "call_histograms[].count",
    "call_histograms[].counts",
    "call_histograms[].interface",
    "call_histograms[].measure",
    "call_histograms[].sum",
    "call_records",
    "call_records[].duration_s",
    "call_records[].ended_unix_s",
    "call_records[].id",
    "call_records[].inner_addr",
    "call_records[].inner_port",
    "call_records[].jitter_ms",
    "call_records[].kind",
    "call_records[].legs",
    "call_records[].legs[].direction",
    "call_records[].legs[].expected",
    "call_records[].legs[].loss_pct",
    "call_records[].legs[].lost",
    "call_records[].legs[].measured_at",
    "call_records[].legs[].packets",
    "call_records[].loss_pct",
    "call_records[].mos_mean",
    "call_records[].mos_min",
    "call_records[].packets",
    "call_records[].peer_addr",
    "call_records[].peer_port",
    "call_records[].rtt_ms",
    "call_records[].segments",
    "call_records[].segments[].direction",
    "call_records[].segments[].expected",
    "call_records[].segments[].loss_pct",
    "call_records[].segments[].lost",
    "call_records[].segments[].measured",
    "call_records[].segments[].segment",
    "call_records[].segments[].window_expected",
    "call_records[].segments[].window_loss_pct",
    "call_records[].segments[].window_lost",
    "call_records[].started_unix_s",
    "call_records[].window_history",
    "call_records[].window_history[].expected",
    "call_records[].window_history[].health",
    "call_records[].window_history[].jitter_ms",
    "call_records[].window_history[].loss_pct",
    "call_records[].window_history[].lost",
    "call_records[].window_history[].mos",
    "call_records[].window_history[].unix_s",
    "call_records[].worst_health",
    "call_records[].worst_window",
    "call_records[].worst_window.expected",
    "call_records[].worst_window.jitter_ms",
    "call_records[].worst_window.loss_pct",
    "call_records[].worst_window.lost",
    "call_records[].worst_window.mos",
    "call_records[].worst_window.seconds",
    "call_records[].worst_window.sufficient",
    "call_tracking",
    "call_tracking.call_idle_s",
    "call_tracking.call_record_max_age_s",
    "call_tracking.calls_ended",
    "call_tracking.calls_started",
    "call_tracking.max_call_records",
    "call_tracking.min_window_packets",
    "call_tracking.records_dropped",
    "call_tracking.window_history_points",
    "call_tracking.window_s",
    "calls",
    "calls[].bad_segment",
    "calls[].breaches",
    "calls[].clock_rate",
    "calls[].clock_source",
    "calls[].direction",
    "calls[].duration_s",
    "calls[].health",
    "calls[].id",
    "calls[].idle_s",
    "calls[].inner_addr",
    "calls[].inner_port",
    "calls[].jitter_ms",
    "calls[].kind",
    "calls[].legs",
    "calls[].legs[].direction",
    "calls[].legs[].duplicates",
    "calls[].legs[].expected",
    "calls[].legs[].jitter_ms",
    "calls[].legs[].loss_pct",
    "calls[].legs[].lost",
    "calls[].legs[].mean_jitter_ms",
    "calls[].legs[].measured_at",
    "calls[].legs[].packets",
    "calls[].legs[].reordered",
    "calls[].legs[].streams",
    "calls[].legs[].streams[].burst_r",
    "calls[].legs[].streams[].call_expected",
    "calls[].legs[].streams[].call_lost",
    "calls[].legs[].streams[].clock_rate",
    "calls[].legs[].streams[].clock_source",
    "calls[].legs[].streams[].direction",
    "calls[].legs[].streams[].dst_addr",
    "calls[].legs[].streams[].dst_port",
    "calls[].legs[].streams[].duplicates",
    "calls[].legs[].streams[].expected",
    "calls[].legs[].streams[].frames_per_s",
    "calls[].legs[].streams[].idle_s",
    "calls[].legs[].streams[].interface",
    "calls[].legs[].streams[].jitter_ms",
    "calls[].legs[].streams[].last_poll",
    "calls[].legs[].streams[].last_poll.expected",
    "calls[].legs[].streams[].last_poll.jitter_ms",
    "calls[].legs[].streams[].last_poll.lost",
    "calls[].legs[].streams[].last_poll.received",
    "calls[].legs[].streams[].loss_bursts",
    "calls[].legs[].streams[].lost",
    "calls[].legs[].streams[].lost_rfc",
    "calls[].legs[].streams[].max_jitter_ms",
    "calls[].legs[].streams[].mean_jitter_ms",
    "calls[].legs[].streams[].media",
    "calls[].legs[].streams[].mos",
    "calls[].legs[].streams[].packets",
    "calls[].legs[].streams[].packets_per_s",
    "calls[].legs[].streams[].payload_type",
    "calls[].legs[].streams[].received",
    "calls[].legs[].streams[].reordered",
    "calls[].legs[].streams[].restarts",
    "calls[].legs[].streams[].src_addr",
    "calls[].legs[].streams[].src_port",
    "calls[].legs[].streams[].ssrc",
    "calls[].legs[].streams[].window_expected",
    "calls[].legs[].streams[].window_jitter_ms",
    "calls[].legs[].streams[].window_lost",
    "calls[].loss_pct",
    "calls[].mos",
    "calls[].mos_codec",
    "calls[].one_way_latency_ms_estimate",
    "calls[].packets",
    "calls[].peer_addr",
    "calls[].peer_port",
    "calls[].rtt_ms",
    "calls[].segments",
    "calls[].segments[].direction",
    "calls[].segments[].expected",
    "calls[].segments[].loss_pct",
    "calls[].segments[].lost",
    "calls[].segments[].measured",
    "calls[].segments[].segment",
    "calls[].segments[].window_expected",
    "calls[].segments[].window_loss_pct",
    "calls[].segments[].window_lost",
    "calls[].window",
    "calls[].window.expected",
    "calls[].window.jitter_ms",
    "calls[].window.loss_pct",
    "calls[].window.lost",
    "calls[].window.mos",
    "calls[].window.seconds",
    "calls[].window.sufficient",
    "calls[].window_history",
    "calls[].window_history[].expected",
    "calls[].window_history[].health",
    "calls[].window_history[].jitter_ms",
    "calls[].window_history[].loss_pct",
    "calls[].window_history[].lost",
    "calls[].window_history[].mos",
    "calls[].window_history[].unix_s",
    "counters",
    "counters.flow_insert_failed",
    "counters.flows_created",
    "counters.flows_evicted",
    "counters.fragments",
    "counters.fragments_matched",
    "counters.fragments_unmatched",
    "counters.ipv4",
    "counters.ipv6",
    "counters.malformed",
    "counters.malformed_total",
    "counters.non_ip",
    "counters.not_webex_packets",
    "counters.parsed",
    "counters.seen",
    "counters.stage_failed",
    "counters.webex_packets",
    "daemon",
    "daemon.adopted_pinned_maps",
    "daemon.config_path",
    "daemon.last_poll_ms",
    "daemon.last_reload",
    "daemon.last_reload.at_unix_s",
    "daemon.last_reload.message",
    "daemon.last_reload.needs_restart",
    "daemon.last_reload.ok",
    "daemon.pid",
    "daemon.pin_migrations",
    "daemon.pin_path",
    "daemon.poll_interval_ms",
    "daemon.snapshot_age_ms",
    "daemon.started_at_unix_s",
    "daemon.uptime_s",
    "daemon.version",
    "detectors",
    "detectors.tables",
    "detectors.tables[].cap",
    "detectors.tables[].detector",
    "detectors.tables[].dropped",
    "detectors.tables[].entries",
    "detectors.tables[].table",
    "dscp",
    "dscp[].class",
    "dscp[].compliance_pct",
    "dscp[].direction",
    "dscp[].expected",
    "dscp[].flows",
    "dscp[].interface",
    "dscp[].matched",
    "dscp[].mismatched",
    "dscp[].rewritten",
    "export",
    "export.dropped",
    "export.exported",
    "export.interval_ms",
    "export.last_error",
    "export.last_success_unix_s",
    "export.log_records_dropped",
    "export.log_records_exported",
    "export.otlp_compression",
    "export.otlp_endpoint",
    "export.otlp_protocol",
    "export.otlp_tls",
    "export.prometheus_listen",
    "export.site_name",
    "export.timeout_ms",
    "flows",
    "flows[].age_s",
    "flows[].bytes",
    "flows[].class",
    "flows[].classified_by",
    "flows[].direction",
    "flows[].dscp",
    "flows[].dscp.expected",
    "flows[].dscp.matched",
    "flows[].dscp.mismatched",
    "flows[].dscp.rewritten",
    "flows[].dscp.seen",
    "flows[].dscp_class",
    "flows[].dst_addr",
    "flows[].dst_port",
    "flows[].fragments",
    "flows[].handshake_pending",
    "flows[].icmp_frag_needed",
    "flows[].icmp_unreachable",
    "flows[].idle_s",
    "flows[].inner_addr",
    "flows[].inner_port",
    "flows[].interface",
    "flows[].ip_version",
    "flows[].last_dscp",
    "flows[].next_hop_mtu",
    "flows[].oversize",
    "flows[].packets",
    "flows[].peer_addr",
    "flows[].peer_port",
    "flows[].protocol",
    "flows[].src_addr",
    "flows[].src_port",
    "flows_total",
    "interfaces",
    "interfaces[].adopted",
    "interfaces[].dscp_rewrite",
    "interfaces[].ifindex",
    "interfaces[].ingress_hook",
    "interfaces[].link_type",
    "interfaces[].name",
    "interfaces[].pinned",
    "interfaces[].previous_ifindexes",
    "interfaces[].reattached",
    "interfaces[].role",
    "interfaces[].state",
    "interfaces[].tc_attach",
    "interfaces[].xdp_fallback",
    "interfaces[].xdp_mode",
    "learn",
    "learn.client_hellos",
    "learn.client_rate_per_s",
    "learn.dns_cut",
    "learn.dns_failures_cap",
    "learn.dns_failures_dropped",
    "learn.dns_malformed",
    "learn.dns_negative",
    "learn.dns_queries",
    "learn.dns_responses",
    "learn.duplicates",
    "learn.enabled",
    "learn.expired",
    "learn.flows_deleted",
    "learn.flows_reclassified",
    "learn.handshakes",
    "learn.handshakes_waiting",
    "learn.idle_s",
    "learn.learned_dns",
    "learn.learned_sni",
    "learn.partial_waiting",
    "learn.peers",
    "learn.queries_waiting",
    "learn.rate_limited",
    "learn.reassembled",
    "learn.refused",
    "learn.refused_full",
    "learn.sample_drops",
    "learn.samples",
    "learn.sni_malformed",
    "learn.tls_certificate_unread",
    "learn.tls_certificates",
    "learn.tls_certificates_cap",
    "learn.tls_certificates_dropped",
    "learn.tls_hellos_waiting",
    "learn.tls_hellos_waiting_cap",
    "learn.tls_server_flights",
    "learned_peers",
    "learned_peers[].addr",
    "learned_peers[].expires_in_s",
    "learned_peers[].name",
    "learned_peers[].source",
    "maps",
    "maps[].entries",
    "maps[].max_entries",
    "maps[].name",
    "media",
    "media.handshakes",
    "media.handshakes_timed",
    "media.packets",
    "media.rtp_truncated",
    "media.stream_insert_failed",
    "media.streams_created",
    "media.streams_evicted",
    "media.stun_matched",
    "media.stun_requests",
    "media.stun_responses",
    "scale",
    "scale.analysis_ms",
    "scale.rows_made",
    "scale.caps",
    "scale.caps[].held",
    "scale.caps[].limit",
    "scale.caps[].name",
    "scale.caps[].refused",
    "scale.anomalies",
    "scale.anomalies.aggregates",
    "scale.anomalies.cap_per_id",
    "scale.anomalies.findings",
    "scale.anomalies.folded",
    "scale.anomalies.shown",
    "scale.anomalies.shown_per_id",
    "scale.conntrack",
    "scale.conntrack.age_s",
    "scale.conntrack.entries",
    "scale.conntrack.interval_s",
    "scale.conntrack.last_join_ms",
    "scale.conntrack.last_read_ms",
    "scale.conntrack.nat_entries",
    "scale.conntrack.reads",
    "scale.flow_tables",
    "scale.flow_tables.media",
    "scale.flow_tables.media.created",
    "scale.flow_tables.media.entries",
    "scale.flow_tables.media.evicted",
    "scale.flow_tables.media.max_entries",
    "scale.flow_tables.other",
    "scale.flow_tables.other.created",
    "scale.flow_tables.other.entries",
    "scale.flow_tables.other.evicted",
    "scale.flow_tables.other.max_entries",
    "scale.status_socket",
    "scale.status_socket.clients",
    "scale.status_socket.closed_idle",
    "scale.status_socket.max_clients",
    "scale.status_socket.peak_clients",
    "scale.status_socket.refused_busy",
    "scale.status_socket.reply_timeout_ms",
    "scale.status_socket.reply_timeouts",
    "scale.status_socket.request_timeout_ms",
    "scale.status_socket.request_timeouts",
    "scale.status_socket.served",
    "schema_version",
];

fn field_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(fields) if !MAPS.contains(&prefix) => {
            for (k, child) in fields {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(path.clone());
                field_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                field_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn status_json_field_names_are_golden() {
    let json = serde_json::to_value(full_report()).unwrap();
    let mut paths = Vec::new();
    field_paths(&json, "", &mut paths);
    paths.sort();
    paths.dedup();
    let golden: Vec<String> = GOLDEN.iter().map(|s| s.to_string()).collect();
    let missing: Vec<_> = golden.iter().filter(|p| !paths.contains(p)).collect();
    let added: Vec<_> = paths.iter().filter(|p| !golden.contains(p)).collect();
    assert!(
        missing.is_empty() && added.is_empty(),
        "status JSON schema changed.\nremoved or renamed (breaks users: bump SCHEMA_VERSION \
         instead): {missing:?}\nadded (deliberate? then add to GOLDEN and README): {added:?}"
    );
    assert_eq!(json["schema_version"], 1);
}

// ---------------------------------------------------------------- the CLI

/// `monitor status --socket <socket> <args>` with stdout piped.
fn status(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_monitor"))
        .arg("status")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn with_open_anomaly(severity: Option<&str>) -> StatusReport {
    let mut r = full_report();
    match severity {
        None => r.anomalies.clear(),
        Some(s) => {
            r.anomalies[0].cleared_unix_s = None;
            r.anomalies[0].severity = serde_json::from_value(json!(s)).unwrap();
        }
    }
    r
}

#[test]
fn exit_status_is_the_health_and_piped_output_has_no_colour() {
    for (severity, code, word) in [
        (None, 0, "OK"),
        (Some("info"), 0, "OK"),
        (Some("warning"), 1, "WARNING"),
        (Some("critical"), 2, "CRITICAL"),
    ] {
        let daemon = FakeDaemon::serve(&with_open_anomaly(severity));
        let text = status(&daemon.path, &[]);
        assert_eq!(text.status.code(), Some(code), "{severity:?}");
        let stdout = String::from_utf8(text.stdout).unwrap();
        assert!(stdout.contains(&format!("HEALTH {word}")), "{stdout}");
        // Piped: not a terminal, so no escape sequence at all, even for CRITICAL.
        assert!(
            !stdout.contains('\x1b'),
            "colour in piped output:\n{stdout}"
        );

        let json = status(&daemon.path, &["--json"]);
        assert_eq!(json.status.code(), Some(code), "--json, {severity:?}");
        assert!(!json.stdout.contains(&0x1b));
        let parsed: StatusReport = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(parsed, with_open_anomaly(severity));
    }

    let dir = TempDir::new().unwrap();
    let gone = status(&dir.join("missing.sock"), &[]);
    assert_eq!(gone.status.code(), Some(3), "daemon not reachable");
    assert!(gone.stdout.is_empty());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not running"));
}

/// Runs `monitor status` on a pseudo-terminal (util-linux `script`), so the only
/// difference from the piped runs above is the terminal.
fn status_on_terminal(socket: &Path, no_color: Option<&str>) -> Vec<u8> {
    let command = format!(
        "{} status --socket {}",
        env!("CARGO_BIN_EXE_monitor"),
        socket.display()
    );
    let mut script = Command::new("script");
    script
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if let Some(v) = no_color {
        script.env("NO_COLOR", v);
    }
    let out = script
        .output()
        .expect("script (util-linux, installed by `cargo xtask setup`)");
    assert_eq!(
        out.status.code(),
        Some(2),
        "critical health through the pty"
    );
    out.stdout
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let daemon = FakeDaemon::serve(&with_open_anomaly(Some("critical")));
    let tty = status_on_terminal(&daemon.path, None);
    let tty = String::from_utf8_lossy(&tty);
    assert!(tty.contains("\x1b[31mCRITICAL\x1b[0m"), "{tty}");
    let no_color = status_on_terminal(&daemon.path, Some("1"));
    assert!(
        !no_color.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&no_color)
    );
}
