//! Learning Webex peers by name, end to end on the namespace testbed: a real resolver
//! (dnsmasq) in the WAN namespace answers a query the LAN host sends through the NAT,
//! and a real TLS client (`openssl s_client`) talks to a real server (`openssl
//! s_server`). The addresses used are outside the configured Webex prefixes, so only
//! learning can make them Webex.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    Daemon, PinDir, TempDir, Testbed, monitor_bin,
    testbed::{LAN_HOST_V4, WAN_HOST_V4},
    traffic::{send_udp, udp_sink},
};

/// A second address on the WAN host, outside the Webex prefixes, that the resolver
/// hands out for a Webex name.
const LEARNED_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
/// TTL the resolver gives its answers (the config's floor is lower).
const DNS_TTL_S: u64 = 4;
const MEDIA_PORT: u16 = 5004;

/// The [learn] section the tests run with: TTLs short enough to watch them expire.
const LEARN_TOML: &str = "\n[learn]\nttl_floor_s = 1\nttl_cap_s = 3600\nsni_ttl_s = 30\n";

struct Bed {
    // Field order is drop order: daemon, helpers, then namespaces, pins and files.
    daemon: Daemon,
    _helpers: Vec<Helper>,
    tb: Testbed,
    _pin: PinDir,
    dir: TempDir,
}

/// A helper process (dnsmasq, openssl s_server) killed and reaped on drop.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Bed {
    fn new(helpers: impl FnOnce(&Testbed, &TempDir) -> Vec<Helper>) -> Bed {
        let tb = Testbed::new().expect("testbed");
        let dir = TempDir::new().expect("tempdir");
        let pin = PinDir::new();
        let config = dir.join("monitor.toml");
        let mut toml = xtask::config::gateway_config(pin.path(), &dir.join("monitor.sock"));
        toml.push_str(LEARN_TOML);
        std::fs::write(&config, toml).expect("config");
        let helpers = helpers(&tb, &dir);
        let daemon = Daemon::start(&monitor_bin(), &tb.gw, &config, &dir.join("monitor.sock"))
            .expect("daemon start");
        Bed {
            daemon,
            _helpers: helpers,
            tb,
            _pin: pin,
            dir,
        }
    }

    fn status(&self) -> Value {
        self.daemon.status_json().expect("status --json")
    }

    /// Polls status until `done` holds (at most `secs` seconds).
    fn wait_until(&self, secs: u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status();
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; learn: {}\nlearned_peers: {}\nflows: {}\nlog:\n{}",
                    s["learn"],
                    s["learned_peers"],
                    serde_json::to_string_pretty(&s["flows"]).unwrap(),
                    self.daemon.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn peers(s: &Value) -> Vec<Value> {
    s["learned_peers"].as_array().cloned().unwrap_or_default()
}

/// Flows whose Webex-side (peer) address is `addr`.
fn flows_to(s: &Value, addr: Ipv4Addr) -> Vec<Value> {
    s["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .filter(|f| f["peer_addr"] == addr.to_string())
        .cloned()
        .collect()
}

/// A DNS query for `name` (type A), written by hand: no system resolver is involved.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Asks the resolver on the WAN host from the LAN host; returns the answer's size.
fn resolve(tb: &Testbed, name: &str) -> usize {
    let q = query(0x4242, name);
    tb.lan
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 0))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.send_to(&q, SocketAddr::new(IpAddr::V4(WAN_HOST_V4), 53))?;
            let mut buf = [0u8; 1500];
            let (n, _) = s.recv_from(&mut buf)?;
            anyhow::ensure!(buf[..2] == [0x42, 0x42], "answer to another query");
            Ok::<_, anyhow::Error>(n)
        })
        .expect("DNS answer from dnsmasq")
}

fn send_media(bed: &Bed, count: u32) {
    let sink_addr = SocketAddr::new(IpAddr::V4(LEARNED_V4), MEDIA_PORT);
    let sink = bed.tb.wan.run(|| udp_sink(sink_addr)).expect("sink");
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 52000);
    bed.tb
        .lan
        .run(|| send_udp(from, sink_addr, count, 100, Duration::from_millis(1)))
        .expect("send");
    assert_eq!(
        sink.wait_for(count as u64, Duration::from_secs(10)),
        count as u64
    );
}

fn dnsmasq(tb: &Testbed, dir: &TempDir) -> Helper {
    tb.wan
        .ip(&["addr", "add", &format!("{LEARNED_V4}/24"), "dev", "eth0"])
        .expect("second WAN host address");
    let ttl = DNS_TTL_S.to_string();
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
            &format!("--local-ttl={ttl}"),
            &format!("--auth-ttl={ttl}"),
            // media.webex.com -> edge.cdn.example (outside the domains) -> LEARNED_V4.
            &format!("--cname=media.webex.com,edge.cdn.example,{ttl}"),
            &format!("--host-record=edge.cdn.example,{LEARNED_V4},{ttl}"),
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

#[test]
fn dns_answers_make_an_address_webex_until_their_ttl() {
    let bed = Bed::new(|tb, dir| vec![dnsmasq(tb, dir)]);
    // Wait for dnsmasq to listen: the first answers proves it (and is outside the
    // domains, so it teaches nothing).
    let deadline = Instant::now() + Duration::from_secs(10);
    while bed
        .tb
        .lan
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 0)).ok()?;
            s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
            s.send_to(&query(1, "edge.cdn.example"), (WAN_HOST_V4, 53))
                .ok()?;
            let mut buf = [0u8; 512];
            s.recv_from(&mut buf).ok()
        })
        .is_none()
    {
        assert!(Instant::now() < deadline, "dnsmasq did not answer");
    }

    // Before any answer for a Webex name: not tracked.
    send_media(&bed, 10);
    std::thread::sleep(Duration::from_millis(1500));
    let s = bed.status();
    assert!(flows_to(&s, LEARNED_V4).is_empty(), "{}", s["flows"]);
    assert!(peers(&s).is_empty(), "{}", s["learned_peers"]);

    // The answer (CNAME chain) teaches the address.
    assert!(resolve(&bed.tb, "media.webex.com") > 0);
    let s = bed.wait_until(10, "the learned peer", |s| !peers(s).is_empty());
    let p = &peers(&s)[0];
    assert_eq!(p["addr"], LEARNED_V4.to_string());
    assert_eq!(p["name"], "media.webex.com");
    assert_eq!(p["source"], "dns");
    assert!(p["expires_in_s"].as_u64().unwrap() <= DNS_TTL_S);
    assert_eq!(peers(&s).len(), 1);
    // Seen on WAN ingress and LAN egress: counted once.
    assert!(
        s["learn"]["duplicates"].as_u64().unwrap() >= 1,
        "{}",
        s["learn"]
    );

    // Now traffic to it is Webex: the LAN-ingress and WAN-egress flows, 10 packets each.
    send_media(&bed, 10);
    let s = bed.wait_until(5, "learned flows", |s| flows_to(s, LEARNED_V4).len() == 2);
    for f in flows_to(&s, LEARNED_V4) {
        assert_eq!(f["packets"], 10);
        assert_ne!(f["class"], "not_webex");
    }
    let created = s["counters"]["flows_created"].as_u64().unwrap();

    // After the TTL: forgotten, and its flows deleted (not counted as evicted).
    let s = bed.wait_until(DNS_TTL_S + 5, "expiry", |s| {
        peers(s).is_empty() && flows_to(s, LEARNED_V4).is_empty()
    });
    assert_eq!(s["learn"]["flows_deleted"], 2, "{}", s["learn"]);
    assert_eq!(s["learn"]["expired"], 1);
    assert_eq!(s["counters"]["flows_evicted"], 0);
    // New traffic is not tracked any more.
    send_media(&bed, 10);
    std::thread::sleep(Duration::from_millis(1500));
    let s = bed.status();
    assert!(flows_to(&s, LEARNED_V4).is_empty(), "{}", s["flows"]);
    assert_eq!(s["counters"]["flows_created"].as_u64().unwrap(), created);
    let _ = &bed.dir;
}

fn openssl_server(tb: &Testbed, dir: &TempDir) -> Helper {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=media.webex.com", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("openssl req");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = tb
        .wan
        .command(&[
            "openssl",
            "s_server",
            "-accept",
            &format!("{WAN_HOST_V4}:443"),
            "-cert",
            &cert.to_string_lossy(),
            "-key",
            &key.to_string_lossy(),
            "-quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    Helper(child)
}

/// One TLS handshake LAN host -> WAN host:443 with `sni`; whether it completed.
fn s_client(tb: &Testbed, sni: &str) -> bool {
    let out = tb
        .lan
        .command(&[
            "timeout",
            "10",
            "openssl",
            "s_client",
            "-connect",
            &format!("{WAN_HOST_V4}:443"),
            "-servername",
            sni,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE")
}

#[test]
fn a_tls_server_name_teaches_the_server_address() {
    let bed = Bed::new(|tb, dir| vec![openssl_server(tb, dir)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    // A name outside the domains teaches nothing (and proves the server is up).
    while !s_client(&bed.tb, "www.example.org") {
        assert!(Instant::now() < deadline, "s_server did not answer");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let s = bed.status();
    assert!(peers(&s).is_empty(), "{}", s["learned_peers"]);
    assert!(flows_to(&s, WAN_HOST_V4).is_empty());

    // The first Webex handshake teaches. (Its connection's last packets may already be
    // tracked: classification happens whenever an untracked packet passes.)
    assert!(s_client(&bed.tb, "media.webex.com"));
    let s = bed.wait_until(10, "the learned peer", |s| !peers(s).is_empty());
    let p = &peers(&s)[0];
    assert_eq!(p["addr"], WAN_HOST_V4.to_string());
    assert_eq!(p["name"], "media.webex.com");
    assert_eq!(p["source"], "sni");

    // The next connection is Webex HTTPS control. (The report is the last poll's: the
    // flows and the learning counters of one instant.)
    assert!(s_client(&bed.tb, "media.webex.com"));
    let s = bed.wait_until(5, "the HTTPS flows and the third ClientHello", |s| {
        !flows_to(s, WAN_HOST_V4).is_empty()
            && s["learn"]["client_hellos"].as_u64().unwrap_or(0) >= 3
    });
    for f in flows_to(&s, WAN_HOST_V4) {
        assert_eq!(f["class"], "https_control", "{f}");
        assert_eq!(f["peer_port"], 443);
    }
    assert!(
        s["learn"]["client_hellos"].as_u64().unwrap() >= 3,
        "{}",
        s["learn"]
    );
}
