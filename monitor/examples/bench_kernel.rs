//! Kernel cost per packet, measured with BPF_PROG_TEST_RUN: each case runs the real
//! program on a crafted packet, against a floor program (XDP that only passes, TC that
//! only returns OK) measured in the same run the same way. `cargo xtask bench` runs this
//! and writes BENCHMARKS.md; it prints one JSON object per case on stdout.
//!
//! Usage: bench_kernel [--repeat N] [--runs N] [--new-flows N]

use std::{net::Ipv4Addr, path::Path, time::Duration};

use monitor::{config, kernel::harness::Harness};
use monitor_common::program_names::{FLOOR_TC, FLOOR_XDP, TC, XDP};
use xtask::{
    PinDir,
    frames::{self, Ipv4, Ipv6, L4},
    rtp::RtpStream,
};

struct Args {
    repeat: u32,
    runs: usize,
    new_flows: u32,
}

fn args() -> Args {
    let mut a = Args {
        repeat: 1_000_000,
        runs: 5,
        new_flows: 20_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--repeat", Some(v)) => a.repeat = v,
            ("--runs", Some(v)) => a.runs = v as usize,
            ("--new-flows", Some(v)) => a.new_flows = v,
            _ => {
                eprintln!("usage: bench_kernel [--repeat N] [--runs N] [--new-flows N]");
                std::process::exit(64);
            }
        }
    }
    a
}

fn harness(pin: &Path, table: u32) -> Harness {
    harness_with(pin, table, "")
}

/// `interface` adds keys to the `lo` interface (e.g. a DSCP mode).
fn harness_with(pin: &Path, table: u32, interface: &str) -> Harness {
    let text = format!(
        r#"
[daemon]
pin_path = "{}"
flow_table_size = {table}

[[interfaces]]
name = "lo"
role = "wan"
{interface}

[webex]
use_default_prefixes = false
prefixes = ["203.0.113.0/24", "2001:db8:ff::/48"]
"#,
        pin.display()
    );
    let cfg = config::parse_and_validate(&text, Path::new("bench.toml"), &|_| Some(1))
        .unwrap_or_else(|e| panic!("bench config: {e}"));
    Harness::load(&cfg).unwrap_or_else(|e| panic!("loading the object: {e:?}"))
}

const LAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const WEBEX: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn rtp_frame(seq_offset: u16) -> Vec<u8> {
    let mut s = RtpStream::pcmu(0x1234_5678);
    s.skip(seq_offset);
    frames::v4(
        &Ipv4::new(LAN, WEBEX),
        &L4::Udp {
            src: 52000,
            dst: 5004,
            payload: s.next_packet(160),
        },
    )
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

/// One case: `runs` measurements of `repeat` repetitions, for the program and its floor.
fn repeated(h: &mut Harness, case: &str, tc: bool, frame: &[u8], a: &Args) {
    let (prog, floor) = if tc { (TC, FLOOR_TC) } else { (XDP, FLOOR_XDP) };
    let run = |h: &mut Harness, name: &'static str| {
        let r = if tc {
            h.tc(name, frame, 0, a.repeat)
        } else {
            h.xdp(name, frame, a.repeat)
        }
        .unwrap_or_else(|e| panic!("{case}: {e:?}"));
        assert!(
            r.verdict == 2 || (tc && r.verdict == 0),
            "{case}: verdict {}",
            r.verdict
        );
        ns(r.per_run)
    };
    // Warm-up: creates the flow, so what is measured is the established path.
    run(h, prog);
    let mut progs = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..a.runs {
        floors.push(run(h, floor));
        progs.push(run(h, prog));
    }
    report(case, if tc { "tc" } else { "xdp" }, progs, floors, a.repeat);
}

fn report(case: &str, program: &str, progs: Vec<f64>, floors: Vec<f64>, repeat: u32) {
    let (p, pmin, pmax) = median(progs);
    let (f, fmin, fmax) = median(floors);
    println!(
        "{}",
        serde_json::json!({
            "case": case, "program": program, "repeat": repeat,
            "ns": p, "ns_min": pmin, "ns_max": pmax,
            "floor_ns": f, "floor_min": fmin, "floor_max": fmax,
        })
    );
}

/// New flows: one packet per test run, a new 5-tuple each time; each run's own time, the
/// median over `new_flows` packets, `runs` times. The floor is measured the same way.
fn new_flows(a: &Args) {
    let mut progs = Vec::new();
    let mut floors = Vec::new();
    for run in 0..a.runs {
        let pin = PinDir::new();
        let mut h = harness(pin.path(), (a.new_flows * 2).max(1024));
        let mut p = Vec::with_capacity(a.new_flows as usize);
        let mut f = Vec::with_capacity(a.new_flows as usize);
        for i in 0..a.new_flows {
            let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 0, 2, 0)) | (i >> 16) & 0xff);
            let port = (i & 0xffff) as u16;
            let frame = frames::v4(
                &Ipv4::new(src, WEBEX),
                &L4::udp(port, 5004 + run as u16, 160),
            );
            f.push(ns(h.xdp(FLOOR_XDP, &frame, 1).expect("floor").per_run));
            p.push(ns(h.xdp(XDP, &frame, 1).expect("new flow").per_run));
        }
        progs.push(median(p).0);
        floors.push(median(f).0);
    }
    report(
        "new flow (one packet per run, new 5-tuple each)",
        "xdp",
        progs,
        floors,
        1,
    );
}

fn main() {
    let a = args();
    let pin = PinDir::new();
    let mut h = harness(pin.path(), 65536);

    repeated(
        &mut h,
        "RTP packet, established call",
        false,
        &rtp_frame(0),
        &a,
    );
    repeated(
        &mut h,
        "RTP packet, established call (TC egress)",
        true,
        &rtp_frame(0),
        &a,
    );
    let ip6 = Ipv6::new(
        "2001:db8:1::10".parse().unwrap(),
        "2001:db8:ff::10".parse().unwrap(),
    );
    let mut s6 = RtpStream::pcmu(0x0bad_cafe);
    let v6 = frames::v6(
        &ip6,
        &L4::Udp {
            src: 52002,
            dst: 5004,
            payload: s6.next_packet(160),
        },
    );
    repeated(&mut h, "IPv6 RTP packet, established call", false, &v6, &a);
    let tcp = frames::v4(&Ipv4::new(LAN, WEBEX), &L4::tcp(40000, 5061, 300));
    repeated(
        &mut h,
        "TCP signalling segment (SIP/TLS 5061)",
        false,
        &tcp,
        &a,
    );
    let other = frames::v4(
        &Ipv4::new(LAN, Ipv4Addr::new(198, 51, 100, 2)),
        &L4::udp(40001, 443, 200),
    );
    repeated(&mut h, "non-Webex packet", false, &other, &a);
    // A DNS response from a (non-Webex) resolver: an A answer for a Webex name.
    let dns = frames::v4(
        &Ipv4::new(Ipv4Addr::new(198, 51, 100, 53), LAN),
        &L4::Udp {
            src: 53,
            dst: 40002,
            payload: dns_answer(),
        },
    );
    repeated(&mut h, "DNS response", false, &dns, &a);
    drop(h);
    new_flows(&a);
    rewrite(&a);
}

/// DSCP rewrite on TC egress: an unmarked RTP packet of an established call rewritten to
/// EF, one packet per test run (a repeated run would see its own rewrite and skip it),
/// the median of `new_flows` runs, the TC floor likewise.
fn rewrite(a: &Args) {
    let pin = PinDir::new();
    let mut h = harness_with(pin.path(), 65536, "dscp_egress = \"rewrite\"");
    let frame = rtp_frame(0);
    let first = h.tc(TC, &frame, 0, 1).expect("rewrite warm-up");
    assert_eq!(
        first.packet[15] >> 2,
        46,
        "the benchmark packet is rewritten to EF"
    );
    let mut progs = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..a.runs {
        let mut p = Vec::with_capacity(a.new_flows as usize);
        let mut f = Vec::with_capacity(a.new_flows as usize);
        for _ in 0..a.new_flows {
            f.push(ns(h.tc(FLOOR_TC, &frame, 0, 1).expect("floor").per_run));
            p.push(ns(h.tc(TC, &frame, 0, 1).expect("rewrite").per_run));
        }
        progs.push(median(p).0);
        floors.push(median(f).0);
    }
    report(
        "DSCP rewrite to EF, established call (one packet per run)",
        "tc",
        progs,
        floors,
        1,
    );
}

/// A DNS response for `media.webex.com. A 203.0.113.10`, TTL 300.
fn dns_answer() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in ["media", "webex", "com"] {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 203, 0, 113, 10]);
    m
}
