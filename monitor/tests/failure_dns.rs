//! `dns_blocks_webex` end to end on the namespace testbed: a real resolver (dnsmasq on
//! the WAN host) answers the LAN host's lookups through the gateway's NAT with NXDOMAIN
//! for one Webex name (`--address=/name/`, no address) and REFUSED for another (no
//! upstream server to forward it to). Each name and code is one finding with the exact
//! number of failed lookups, raised within 15 s and cleared within 20 s of the last one;
//! a name that resolves raises nothing. A query to a resolver that never answers is one
//! `unanswered` finding within 20 s.

mod learn_bed;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    process::Stdio,
    time::{Duration, Instant},
};

use learn_bed::*;
use serde_json::Value;
use xtask::daemon::evidence;
use xtask::{
    TempDir, Testbed,
    testbed::{LAN_HOST_V4, WAN_HOST_V4},
};

const ID: &str = "dns_blocks_webex";
/// dnsmasq answers NXDOMAIN for this name.
const NX_NAME: &str = "blocked.webex.com";
/// dnsmasq has no upstream for this name: REFUSED.
const REFUSED_NAME: &str = "mtg.webex.com";
/// dnsmasq answers this one (and teaches nothing the test needs).
const GOOD_NAME: &str = "ok.webex.com";
/// Asked of a resolver that never answers.
const SILENT_NAME: &str = "silent.webex.com";
/// A second WAN host address where a socket takes queries and never answers.
const SILENT_RESOLVER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);

fn resolver(tb: &Testbed, dir: &TempDir) -> Helper {
    let child = tb
        .wan
        .command(&[
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--port=53",
            &format!("--listen-address={WAN_HOST_V4}"),
            &format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
            "--user=root",
            &format!("--address=/{NX_NAME}/"),
            &format!("--host-record={GOOD_NAME},{WAN_HOST_V4},60"),
            "--host-record=edge.cdn.example,198.51.100.20,60",
            "--log-queries",
            "--log-facility=-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (cargo xtask setup installs it)");
    Helper(child)
}

/// One lookup of `name` with `id` from the LAN host; the answer's RCODE.
fn rcode(tb: &Testbed, id: u16, name: &str) -> u8 {
    let q = query(id, name);
    tb.lan
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 0))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.send_to(&q, SocketAddr::new(IpAddr::V4(WAN_HOST_V4), 53))?;
            let mut buf = [0u8; 1500];
            let (n, _) = s.recv_from(&mut buf)?;
            anyhow::ensure!(n >= 12 && buf[..2] == id.to_be_bytes(), "another answer");
            Ok::<_, anyhow::Error>(buf[3] & 0x0f)
        })
        .expect("DNS answer from dnsmasq")
}

/// The `dns_blocks_webex` anomalies, open ones only.
fn open(s: &Value) -> Vec<Value> {
    s["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter(|a| a["id"] == ID && a["cleared_unix_s"].is_null())
        .cloned()
        .collect()
}

fn subject<'a>(list: &'a [Value], subject: &str) -> Option<&'a Value> {
    list.iter().find(|a| a["subject"] == subject)
}

#[test]
fn failed_lookups_of_webex_names_are_found_with_exact_counts_then_cleared() {
    let bed = Bed::new(|tb, dir| vec![resolver(tb, dir)]);
    wait_for_dnsmasq(&bed.tb);

    // Baseline: a Webex name that resolves raises nothing.
    assert_eq!(rcode(&bed.tb, 0x100, GOOD_NAME), 0);
    std::thread::sleep(Duration::from_secs(3));
    let s = bed.status();
    assert!(open(&s).is_empty(), "{}", s["anomalies"]);
    assert_eq!(s["learn"]["dns_negative"], 0, "{}", s["learn"]);

    // Three NXDOMAIN and two REFUSED lookups (distinct IDs: each is its own answer).
    let started = Instant::now();
    for id in 0..3u16 {
        assert_eq!(rcode(&bed.tb, 0x200 + id, NX_NAME), 3, "NXDOMAIN");
    }
    for id in 0..2u16 {
        assert_eq!(rcode(&bed.tb, 0x300 + id, REFUSED_NAME), 5, "REFUSED");
    }
    let last_failure = Instant::now();
    let nx_subject = format!("nxdomain {NX_NAME}");
    let refused_subject = format!("refused {REFUSED_NAME}");
    let s = bed.wait_until(15, "both DNS findings with their counts", |s| {
        let o = open(s);
        subject(&o, &nx_subject).is_some_and(|a| evidence(a, "count") == "3")
            && subject(&o, &refused_subject).is_some_and(|a| evidence(a, "count") == "2")
    });
    assert!(started.elapsed() <= Duration::from_secs(15));
    let o = open(&s);
    assert_eq!(o.len(), 2, "one finding per name and code: {o:?}");
    let nx = subject(&o, &nx_subject).unwrap();
    assert_eq!(nx["severity"], "warning");
    assert_eq!(evidence(nx, "name"), NX_NAME);
    assert_eq!(evidence(nx, "code"), "nxdomain");
    assert_eq!(evidence(nx, "resolver"), WAN_HOST_V4.to_string());
    // The answer is seen first on the WAN side, to the gateway's NAT address.
    assert_eq!(
        evidence(nx, "client"),
        xtask::testbed::GW_WAN_V4.to_string()
    );
    assert_eq!(evidence(nx, "events_dropped"), "0");
    let refused = subject(&o, &refused_subject).unwrap();
    assert_eq!(evidence(refused, "code"), "refused");
    // Each answer counts once though the gateway sees it on both interfaces.
    assert_eq!(s["learn"]["dns_negative"], 5, "{}", s["learn"]);
    assert_eq!(s["learn"]["dns_failures_cap"], 1024);
    assert_eq!(s["learn"]["dns_failures_dropped"], 0);

    // No new failure: both clear within 20 s of the last one.
    let s = bed.wait_until(25, "the DNS findings to clear", |s| open(s).is_empty());
    let took = last_failure.elapsed();
    assert!(took <= Duration::from_secs(21), "cleared after {took:?}");
    let cleared: Vec<&Value> = s["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == ID)
        .collect();
    assert_eq!(cleared.len(), 2, "{}", s["anomalies"]);
    // The name that resolves still raises nothing.
    assert_eq!(rcode(&bed.tb, 0x400, GOOD_NAME), 0);
    std::thread::sleep(Duration::from_secs(3));
    assert!(open(&bed.status()).is_empty());

    // A resolver that takes the query and never answers (a socket that reads nothing:
    // no ICMP either): one `unanswered` finding within 20 s, though the gateway sees
    // the query on the LAN and the WAN side.
    bed.tb
        .wan
        .ip(&[
            "addr",
            "add",
            &format!("{SILENT_RESOLVER_V4}/24"),
            "dev",
            "eth0",
        ])
        .expect("silent resolver address");
    let silent = bed
        .tb
        .wan
        .run(|| UdpSocket::bind(SocketAddr::new(IpAddr::V4(SILENT_RESOLVER_V4), 53)))
        .expect("silent resolver");
    let asked = Instant::now();
    bed.tb
        .lan
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 0))?;
            s.send_to(&query(0x500, SILENT_NAME), (SILENT_RESOLVER_V4, 53))
        })
        .expect("query to the silent resolver");
    let unanswered_subject = format!("unanswered {SILENT_NAME}");
    let s = bed.wait_until(20, "the unanswered finding", |s| {
        subject(&open(s), &unanswered_subject).is_some()
    });
    assert!(asked.elapsed() <= Duration::from_secs(20));
    let o = open(&s);
    assert_eq!(o.len(), 1, "{o:?}");
    let a = &o[0];
    assert_eq!(evidence(a, "count"), "1");
    assert_eq!(evidence(a, "code"), "unanswered");
    assert_eq!(evidence(a, "resolver"), SILENT_RESOLVER_V4.to_string());
    let client = evidence(a, "client");
    assert!(
        client == LAN_HOST_V4.to_string() || client == xtask::testbed::GW_WAN_V4.to_string(),
        "{client}"
    );
    // Given up 10 s after it was asked: cleared within 20 s of that.
    bed.wait_until(25, "the unanswered finding to clear", |s| {
        open(s).is_empty()
    });
    let took = asked.elapsed();
    assert!(
        took <= Duration::from_secs(31),
        "cleared {took:?} after the query"
    );
    drop(silent);
}
