//! Kernel cost per packet, measured with BPF_PROG_TEST_RUN: each case runs the real
//! program on a crafted packet, against a floor program (XDP that only passes, TC that
//! only returns OK) measured in the same run the same way. `cargo xtask bench` runs this
//! and writes BENCHMARKS.md; it prints one JSON object per case on stdout.
//!
//! The interface (`lo`, where BPF_PROG_TEST_RUN runs the programs) gets the role a real
//! gateway's interface would have for each case, so that the kernel looks up the remote
//! address only: LAN for packets from a site host entering the gateway (XDP), WAN for
//! packets leaving towards Webex (TC) and for packets arriving from outside.
//!
//! Usage: bench_kernel [--repeat N] [--runs N] [--new-flows N] [--streams N]

use std::{net::Ipv4Addr, path::Path, time::Duration};

use monitor::{config, kernel::harness::Harness};
use monitor_common::{
    link::{ROLE_LAN, ROLE_WAN},
    program_names::{FLOOR_TC, FLOOR_XDP, TC, XDP},
};
use xtask::{
    PinDir,
    frames::{self, Ipv4, Ipv6, L4},
    rtp::RtpStream,
};

struct Args {
    repeat: u32,
    runs: usize,
    new_flows: u32,
    /// Concurrent streams of the cache-pressure case.
    streams: u32,
}

fn args() -> Args {
    let mut a = Args {
        repeat: 1_000_000,
        runs: 5,
        new_flows: 20_000,
        streams: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--repeat", Some(v)) => a.repeat = v,
            ("--runs", Some(v)) => a.runs = v as usize,
            ("--new-flows", Some(v)) => a.new_flows = v,
            ("--streams", Some(v)) => a.streams = v,
            _ => {
                eprintln!(
                    "usage: bench_kernel [--repeat N] [--runs N] [--new-flows N] [--streams N]"
                );
                std::process::exit(64);
            }
        }
    }
    a.runs = a.runs.max(1);
    a.new_flows = a.new_flows.max(1);
    a.streams = a.streams.clamp(1, 60_000);
    a
}

/// The loopback interface, where BPF_PROG_TEST_RUN runs XDP and TC programs.
const LO: u32 = 1;

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

/// Gives `lo` the role a gateway interface has for the case (see the module comment).
fn role(h: &mut Harness, role: u8) {
    h.set_link(LO, role)
        .unwrap_or_else(|e| panic!("setting the role of lo: {e:?}"));
}

const LAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const WEBEX: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// A Webex media port.
const MEDIA_PORT: u16 = 5004;
/// A Webex signalling port (SIP over TLS).
const SIP_TLS_PORT: u16 = 5061;

fn rtp_frame(src: Ipv4Addr, src_port: u16, ssrc: u32) -> Vec<u8> {
    let mut s = RtpStream::pcmu(ssrc);
    frames::v4(
        &Ipv4::new(src, WEBEX),
        &L4::Udp {
            src: src_port,
            dst: MEDIA_PORT,
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

/// One run of `name` on `frame`: the time per repetition. Every program passes.
fn run(h: &mut Harness, case: &str, tc: bool, name: &'static str, frame: &[u8], n: u32) -> f64 {
    let r = if tc {
        h.tc(name, frame, 0, n)
    } else {
        h.xdp(name, frame, n)
    }
    .unwrap_or_else(|e| panic!("{case}: {e:?}"));
    assert!(
        r.verdict == 2 || (tc && r.verdict == 0),
        "{case}: verdict {}",
        r.verdict
    );
    ns(r.per_run)
}

fn floor_of(tc: bool) -> (&'static str, &'static str) {
    if tc { (TC, FLOOR_TC) } else { (XDP, FLOOR_XDP) }
}

/// One case: `runs` measurements of `repeat` repetitions, for the program and its floor.
fn repeated(h: &mut Harness, case: &str, tc: bool, frame: &[u8], a: &Args) {
    let (prog, floor) = floor_of(tc);
    // Warm-up: creates the flow, so what is measured is the established path.
    run(h, case, tc, prog, frame, 1);
    let mut progs = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..a.runs {
        floors.push(run(h, case, tc, floor, frame, a.repeat));
        progs.push(run(h, case, tc, prog, frame, a.repeat));
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

/// One packet per test run over `frames` in turn, `a.runs` times: each measurement is
/// the median of the runs' own times (`passes` passes over the frames), the floor the
/// same way on the same frames.
fn per_packet(
    h: &mut Harness,
    case: &str,
    frames: &[Vec<u8>],
    passes: usize,
    a: &Args,
) -> (Vec<f64>, Vec<f64>) {
    let mut progs = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..a.runs {
        let mut p = Vec::with_capacity(frames.len() * passes);
        let mut f = Vec::with_capacity(frames.len() * passes);
        for _ in 0..passes {
            for frame in frames {
                f.push(run(h, case, false, FLOOR_XDP, frame, 1));
                p.push(run(h, case, false, XDP, frame, 1));
            }
        }
        progs.push(median(p).0);
        floors.push(median(f).0);
    }
    (progs, floors)
}

/// New flows: one packet per test run, a new 5-tuple each time; each run's own time, the
/// median over `new_flows` packets, `runs` times, each in a fresh object. The floor is
/// measured the same way. `frame(i)` is the i-th new flow's first packet.
fn new_flows(a: &Args, case: &str, frame: impl Fn(u32) -> Vec<u8>) {
    let mut progs = Vec::new();
    let mut floors = Vec::new();
    for _ in 0..a.runs {
        let pin = PinDir::new();
        // Four times the flows: the media table (a quarter) holds every one of them, so
        // no insert evicts.
        let mut h = harness(pin.path(), (a.new_flows * 4).max(4096));
        role(&mut h, ROLE_LAN);
        let mut p = Vec::with_capacity(a.new_flows as usize);
        let mut f = Vec::with_capacity(a.new_flows as usize);
        for i in 0..a.new_flows {
            let frame = frame(i);
            f.push(run(&mut h, case, false, FLOOR_XDP, &frame, 1));
            p.push(run(&mut h, case, false, XDP, &frame, 1));
        }
        progs.push(median(p).0);
        floors.push(median(f).0);
    }
    report(case, "xdp", progs, floors, 1);
}

/// A site host's address and source port for new flow `i` (distinct for 2^24 flows).
fn host(i: u32) -> (Ipv4Addr, u16) {
    let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 0, 2, 0)) | (i >> 16) & 0xff);
    (
        src,
        1024 + (i & 0x7fff) as u16 + ((i >> 15) & 1) as u16 * 0x8000,
    )
}

/// Established RTP under cache pressure: `streams` concurrent streams (one flow and one
/// SSRC each), one packet of each in turn, against the same measured on one stream.
fn cache_pressure(a: &Args) {
    let pin = PinDir::new();
    let mut h = harness(pin.path(), 65536.max(a.streams * 4));
    role(&mut h, ROLE_LAN);
    let many: Vec<Vec<u8>> = (0..a.streams)
        .map(|i| {
            let (src, port) = host(i);
            rtp_frame(src, port, 0x1000_0000 + i)
        })
        .collect();
    let one = vec![many[0].clone()];
    // Warm-up: every stream's flow and stream state exist.
    for frame in &many {
        run(&mut h, "cache pressure warm-up", false, XDP, frame, 1);
    }
    let passes = (a.new_flows / a.streams).max(1) as usize;
    let case = "RTP packet, established, one stream (one packet per run)";
    let (p, f) = per_packet(&mut h, case, &one, passes * a.streams as usize, a);
    report(case, "xdp", p, f, 1);
    let case = format!(
        "RTP packet, established, {} streams interleaved (one packet per run)",
        a.streams
    );
    let (p, f) = per_packet(&mut h, &case, &many, passes, a);
    report(&case, "xdp", p, f, 1);
}

fn main() {
    let a = args();
    let pin = PinDir::new();
    let mut h = harness(pin.path(), 65536);

    // From a site host towards Webex: entering the LAN interface (XDP), leaving the WAN
    // interface (TC).
    let rtp = rtp_frame(LAN, 52000, 0x1234_5678);
    role(&mut h, ROLE_LAN);
    repeated(&mut h, "RTP packet, established call", false, &rtp, &a);
    role(&mut h, ROLE_WAN);
    repeated(
        &mut h,
        "RTP packet, established call (TC egress)",
        true,
        &rtp,
        &a,
    );
    role(&mut h, ROLE_LAN);
    let ip6 = Ipv6::new(
        "2001:db8:1::10".parse().unwrap(),
        "2001:db8:ff::10".parse().unwrap(),
    );
    let mut s6 = RtpStream::pcmu(0x0bad_cafe);
    let v6 = frames::v6(
        &ip6,
        &L4::Udp {
            src: 52002,
            dst: MEDIA_PORT,
            payload: s6.next_packet(160),
        },
    );
    repeated(&mut h, "IPv6 RTP packet, established call", false, &v6, &a);
    let tcp = frames::v4(&Ipv4::new(LAN, WEBEX), &L4::tcp(40000, SIP_TLS_PORT, 300));
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
    // A DNS response from a (non-Webex) resolver, arriving from outside: an A answer for
    // a Webex name.
    role(&mut h, ROLE_WAN);
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
    // Every new flow's first packet goes to a Webex media port (or SYN to a signalling
    // port), so each row prices the media (or signalling) new-flow path alone.
    new_flows(
        &a,
        "new RTP flow (first packet to a media port, new 5-tuple each)",
        |i| {
            let (src, port) = host(i);
            rtp_frame(src, port, 0x2000_0000 + i)
        },
    );
    new_flows(
        &a,
        "new TCP SYN to a Webex port (SIP/TLS 5061, new 5-tuple each)",
        |i| {
            let (src, port) = host(i);
            frames::v4(
                &Ipv4::new(src, WEBEX),
                &L4::Tcp {
                    src: port,
                    dst: SIP_TLS_PORT,
                    flags: 0x02,
                    payload: Vec::new(),
                },
            )
        },
    );
    cache_pressure(&a);
    rewrite(&a);
}

/// DSCP rewrite on TC egress: an unmarked RTP packet of an established call rewritten to
/// EF, one packet per test run (a repeated run would see its own rewrite and skip it),
/// the median of `new_flows` runs, the TC floor likewise.
fn rewrite(a: &Args) {
    let pin = PinDir::new();
    let mut h = harness_with(pin.path(), 65536, "dscp_egress = \"rewrite\"");
    role(&mut h, ROLE_WAN);
    let frame = rtp_frame(LAN, 52000, 0x1234_5678);
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
