//! Host-side parsers under random input: the config (TOML, then validation) and the status
//! JSON a client reads. Deterministic mutations of valid documents, from a fixed seed;
//! each must come back as a value or a clear error, never a panic or a hang.

use std::path::Path;

use monitor::{config, status::model::StatusReport};

/// xorshift64*: small and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to TOML and JSON, so mutations reach the parsers' corners.
const INTERESTING: &[u8] = b"[]{}\"'=,.:-/\\#\n 0123456789abcxyz\x00\xff";

fn mutate(rng: &mut Rng, doc: &[u8]) -> Vec<u8> {
    let mut d = doc.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d.remove(i);
            }
            2 => {
                let i = rng.below(d.len() + 1);
                d.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if !d.is_empty() => {
                let at = rng.below(d.len());
                d.truncate(at);
            }
            _ if d.len() > 2 => {
                // Duplicate a slice: repeated keys and tables.
                let a = rng.below(d.len() - 1);
                let b = a + 1 + rng.below((d.len() - a - 1).min(40));
                let piece = d[a..b].to_vec();
                let at = rng.below(d.len());
                d.splice(at..at, piece);
            }
            _ => {}
        }
    }
    d
}

#[test]
fn mutated_configs_are_accepted_or_refused_with_a_message_never_a_panic() {
    let shipped = include_str!("../../systemd/monitor.toml");
    let seeds = [
        shipped.to_string(),
        "[daemon]\nflow_table_size = 2048\n\n[[interfaces]]\nname = \"eth0\"\nrole = \"wan\"\n\
         dscp_egress = \"rewrite\"\n\n[webex]\nprefixes = [\"203.0.113.0/24\", \"2001:db8::/32\"]\n\n\
         [ports]\nmedia_udp = [5004, \"19560-65535\"]\n"
            .to_string(),
    ];
    let mut rng = Rng(0x00c0_ffee_1234_5678);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let seed = &seeds[rng.below(seeds.len())];
        let doc = mutate(&mut rng, seed.as_bytes());
        let text = String::from_utf8_lossy(&doc);
        match config::parse_and_validate(&text, Path::new("fuzz.toml"), &|_| Some(2)) {
            Ok(_) => ok += 1,
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("config fuzz.toml") || msg.contains("fuzz.toml"),
                    "{msg}"
                );
                assert!(!msg.contains('\n'), "one line: {msg:?}");
                refused += 1;
            }
        }
    }
    // Both outcomes are reached: the mutations are neither all harmless nor all fatal.
    assert!(ok > 100 && refused > 1000, "ok {ok}, refused {refused}");
}

#[test]
fn mutated_status_json_is_read_or_refused_never_a_panic() {
    let report: serde_json::Value = serde_json::json!({
        "schema_version": 1,
        "daemon": {"version": "0.1.0", "pid": 1, "started_at_unix_s": 1, "uptime_s": 2,
                   "config_path": "/etc/monitor/monitor.toml", "pin_path": "/sys/fs/bpf/monitor",
                   "poll_interval_ms": 1000, "snapshot_age_ms": 3, "adopted_pinned_maps": false},
        "interfaces": [{"name": "wan0", "ifindex": 3, "role": "wan", "xdp_mode": "native",
                        "tc_attach": "tcx"}],
        "maps": [{"name": "FLOWS", "entries": 1, "max_entries": 65536}],
        "counters": {"seen": 10, "parsed": 10, "non_ip": 0, "ipv4": 10, "ipv6": 0,
                     "fragments": 0, "webex_packets": 10, "not_webex_packets": 0,
                     "flows_created": 1, "flow_insert_failed": 0, "malformed_total": 0,
                     "malformed": {"l4_truncated": 0}},
        "flows": []
    });
    let valid = serde_json::to_vec(&report).unwrap();
    serde_json::from_slice::<StatusReport>(&valid).expect("the seed itself is valid");
    let mut rng = Rng(0x5747_0000_0000_0001);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let doc = mutate(&mut rng, &valid);
        match serde_json::from_slice::<StatusReport>(&doc) {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(ok > 10 && refused > 1000, "ok {ok}, refused {refused}");
}
