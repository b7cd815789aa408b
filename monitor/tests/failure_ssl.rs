//! `ssl_inspection` (README "Failure detectors") with a real TLS-intercepting proxy on
//! the namespace testbed and the real daemon. A TLS 1.2 server named like a Webex host
//! (`openssl s_server`, certificate for x.wbx2.com from a test CA named like IdenTrust)
//! runs in a namespace behind the WAN host; the WAN host routes to it, and with the proxy
//! on, redirects its port 443 into mitmproxy (transparent mode, its own CA). The LAN
//! host connects with `openssl s_client -tls1_2 -servername x.wbx2.com`, whose view of
//! the issuer and subject is the oracle. The LAN host's STUN checks to the media node
//! are answered 40 ms late (the path to Webex, measured outside TCP).
//!
//! Without the proxy: the certificate is read (counted) and nothing is raised. With it:
//! `ssl_inspection`, critical, with the proxy's issuer and subject as the client saw
//! them, the SNI, the server, a sub-millisecond handshake and the 40 ms STUN RTT. The
//! proxy removed, the next connection shows the Webex CA again and the finding clears.
//! TLS 1.3 through the proxy (certificate encrypted): a "likely" warning from the round
//! trips alone, cleared by a TLS 1.2 connection to that server showing the Webex CA.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::daemon::evidence;
use xtask::{
    Netns, TempDir,
    bed::GatewayBed,
    testbed::{LAN_HOST_V4, WAN_HOST_V4, WEBEX_NODE_V4},
};

/// The TLS server, inside the Webex prefix, in its own namespace behind the WAN host.
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
const SNI: &str = "x.wbx2.com";
const MITMDUMP: &str = "/opt/mitmproxy/bin/mitmdump";
const PROXY_PORT: u16 = 8080;
const ID: &str = "ssl_inspection";
/// How late the media node answers each STUN check.
const STUN_DELAY: Duration = Duration::from_millis(40);
const STUN_CHECKS: u8 = 10;
const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// A child process this test started: killed (by its pid) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server's namespace; deleted on drop (after the processes in it, dropped first).
struct Far(Netns);

impl Drop for Far {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", self.0.name()])
            .status();
    }
}

fn run(ns: &Netns, argv: &[&str]) {
    let out = ns.exec(argv).unwrap_or_else(|e| panic!("{argv:?}: {e:#}"));
    assert!(out.status.success(), "{argv:?}: {out:?}");
}

fn openssl(dir: &TempDir, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("openssl (cargo xtask setup installs it)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A test CA named like Webex's (IdenTrust) and its certificate for `SNI`.
fn certificates(dir: &TempDir) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
    ];
    ca.extend(ec);
    ca.extend(["-subj", "/C=US/O=IdenTrust/CN=TrustID Server CA Test"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-keyout", "srv.key", "-out", "srv.csr"];
    csr.extend(ec);
    csr.extend(["-subj", "/CN=x.wbx2.com"]);
    openssl(dir, &csr);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "srv.pem",
        ],
    );
}

/// The server's namespace, linked to the WAN host (which forwards to it).
fn far(bed: &GatewayBed) -> Far {
    let name = format!("{}-far", bed.tb.prefix());
    let st = Command::new("ip").args(["netns", "add", &name]).status();
    assert!(st.is_ok_and(|s| s.success()), "ip netns add {name}");
    let far = Far(Netns::new(name.clone()));
    let wan = &bed.tb.wan;
    run(
        wan,
        &[
            "ip", "link", "add", "far0", "type", "veth", "peer", "name", "eth0", "netns", &name,
        ],
    );
    run(&far.0, &["ip", "link", "set", "lo", "up"]);
    run(
        &far.0,
        &["ip", "addr", "add", &format!("{SERVER}/32"), "dev", "eth0"],
    );
    run(&far.0, &["ip", "link", "set", "eth0", "up"]);
    run(&far.0, &["ip", "route", "add", "default", "dev", "eth0"]);
    run(wan, &["ip", "link", "set", "far0", "up"]);
    run(
        wan,
        &["ip", "route", "add", &format!("{SERVER}/32"), "dev", "far0"],
    );
    wan.sysctl("net.ipv4.conf.far0.proxy_arp", "1").unwrap();
    wan.sysctl("net.ipv4.ip_forward", "1").unwrap();
    far
}

fn s_server(far: &Far, dir: &TempDir) -> Proc {
    let child = far
        .0
        .command(&[
            "openssl",
            "s_server",
            "-accept",
            &format!("{SERVER}:443"),
            "-tls1_2",
            "-cert",
            "srv.pem",
            "-key",
            "srv.key",
            "-cert_chain",
            "ca.pem",
            "-quiet",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    Proc(child)
}

fn mitmdump(bed: &GatewayBed, dir: &TempDir) -> Proc {
    let confdir = dir.join("mitmproxy");
    std::fs::create_dir_all(&confdir).unwrap();
    let child = bed
        .tb
        .wan
        .command(&[
            MITMDUMP,
            "--mode",
            "transparent",
            "--listen-port",
            &PROXY_PORT.to_string(),
            "--set",
            &format!("confdir={}", confdir.display()),
            "--set",
            "ssl_insecure=true",
            "-q",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mitmdump (cargo xtask setup installs mitmproxy into /opt/mitmproxy)");
    Proc(child)
}

/// Waits (bounded) until something listens on `addr` as seen from `ns`.
fn wait_listening(ns: &Netns, addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ns.run(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()) {
        assert!(Instant::now() < deadline, "{what} not listening on {addr}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The WAN host's redirect of the server's port 443 into the proxy.
fn proxy_on(bed: &GatewayBed) {
    let wan = &bed.tb.wan;
    run(wan, &["nft", "add", "table", "ip", "mitm"]);
    run(
        wan,
        &[
            "nft",
            "add",
            "chain",
            "ip",
            "mitm",
            "pre",
            "{ type nat hook prerouting priority dstnat; }",
        ],
    );
    let server = SERVER.to_string();
    let to = format!(":{PROXY_PORT}");
    run(
        wan,
        &[
            "nft", "add", "rule", "ip", "mitm", "pre", "ip", "daddr", &server, "tcp", "dport",
            "443", "redirect", "to", &to,
        ],
    );
}

fn proxy_off(bed: &GatewayBed) {
    run(&bed.tb.wan, &["nft", "delete", "table", "ip", "mitm"]);
}

/// "CN = mitmproxy, O = mitmproxy" (OpenSSL's form) as the daemon renders names.
fn compact(name: &str) -> String {
    name.trim().replace(" = ", "=")
}

/// One TLS connection (`version`: `-tls1_2`, `-tls1_3`) from the LAN host; the issuer
/// and subject the client saw.
fn connect(bed: &GatewayBed, version: &str) -> (String, String) {
    let out = bed
        .tb
        .lan
        .command(&[
            "timeout",
            "20",
            "openssl",
            "s_client",
            "-connect",
            &format!("{SERVER}:443"),
            "-servername",
            SNI,
            version,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(compact)
            .unwrap_or_else(|| panic!("no {prefix} in s_client output: {text}"))
    };
    (field("issuer="), field("subject="))
}

fn is_stun(m: &[u8], kind: [u8; 2]) -> bool {
    m.len() >= 20 && m[0..2] == kind && m[4..8] == MAGIC
}

/// The media node: answers each STUN binding request `STUN_DELAY` late; returns how many.
fn stun_node(node: SocketAddr) -> u32 {
    let s = UdpSocket::bind(node).expect("bind");
    s.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut due: Vec<(Instant, Vec<u8>, SocketAddr)> = Vec::new();
    let (mut answered, mut buf) = (0u32, [0u8; 1500]);
    while start.elapsed() < Duration::from_secs(6) && answered < STUN_CHECKS as u32 {
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            if is_stun(&buf[..n], [0x00, 0x01]) {
                let mut resp = buf[..20].to_vec();
                resp[0..2].copy_from_slice(&[0x01, 0x01]);
                due.push((Instant::now() + STUN_DELAY, resp, from));
            }
        }
        due.retain(|(at, resp, to)| {
            if Instant::now() >= *at {
                s.send_to(resp, to).expect("answer");
                answered += 1;
                false
            } else {
                true
            }
        });
        std::thread::sleep(Duration::from_micros(500));
    }
    answered
}

/// The LAN host's checks, one every 100 ms; returns the answers received.
fn stun_client(node: SocketAddr) -> u32 {
    let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 52000)).expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut answers, mut buf) = (0u32, [0u8; 1500]);
    let start = Instant::now();
    for i in 0..STUN_CHECKS {
        let mut m = vec![0x00, 0x01, 0x00, 0x00];
        m.extend_from_slice(&MAGIC);
        m.extend_from_slice(&[0x73, 0x73, 0x6c, 0, 0, 0, 0, 0, 0, 0, 0, i]);
        s.send_to(&m, node).expect("check");
        if let Ok((n, _)) = s.recv_from(&mut buf)
            && is_stun(&buf[..n], [0x01, 0x01])
        {
            answers += 1;
        }
    }
    while answers < STUN_CHECKS as u32 && start.elapsed() < Duration::from_secs(5) {
        if let Ok((n, _)) = s.recv_from(&mut buf)
            && is_stun(&buf[..n], [0x01, 0x01])
        {
            answers += 1;
        }
    }
    answers
}

/// The path to Webex outside TCP: 10 STUN checks to the media node, 40 ms each.
fn stun_checks(bed: &GatewayBed) {
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 9000);
    let (answers, answered) = std::thread::scope(|s| {
        let n = s.spawn(|| bed.tb.wan.run(|| stun_node(node)));
        std::thread::sleep(Duration::from_millis(100));
        let a = bed.tb.lan.run(|| stun_client(node));
        (a, n.join().expect("node"))
    });
    assert_eq!((answers, answered), (10, 10));
}

/// The open `ssl_inspection` anomaly, within 15 s.
fn open_finding(bed: &GatewayBed) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = bed.status();
        if let Some(a) = findings(&s)
            .into_iter()
            .find(|a| a["cleared_unix_s"].is_null())
        {
            return a;
        }
        assert!(Instant::now() < deadline, "no {ID}: {:#}", s["anomalies"]);
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Until the one `ssl_inspection` anomaly is cleared (after the book's hold-down),
/// with `certificates` read by then.
fn wait_cleared(bed: &GatewayBed, certificates: u64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let s = bed.status();
        let f = findings(&s);
        if certificates_read(&s) == certificates
            && f.len() == 1
            && f[0]["cleared_unix_s"].as_u64().is_some()
        {
            return;
        }
        assert!(Instant::now() < deadline, "not cleared: {f:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn findings(s: &Value) -> Vec<Value> {
    s["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == ID)
        .cloned()
        .collect()
}

fn certificates_read(s: &Value) -> u64 {
    s["learn"]["tls_certificates"].as_u64().unwrap_or(0)
}

/// The testbed with the daemon, the TLS server behind the WAN host, the proxy ready (not
/// yet in the path) and the STUN path to Webex measured. Fields drop in order: the
/// processes, the server's namespace, the files, then the daemon and testbed.
struct Scene {
    _proxy: Proc,
    _server: Proc,
    _far: Far,
    _dir: TempDir,
    bed: GatewayBed,
}

impl Scene {
    fn start() -> Scene {
        let bed = GatewayBed::launch();
        let dir = TempDir::new().expect("tempdir");
        certificates(&dir);
        let far = far(&bed);
        let server = s_server(&far, &dir);
        let proxy = mitmdump(&bed, &dir);
        wait_listening(
            &bed.tb.wan,
            SocketAddr::new(IpAddr::V4(SERVER), 443),
            "s_server",
        );
        wait_listening(
            &bed.tb.wan,
            SocketAddr::new(IpAddr::V4(WAN_HOST_V4), PROXY_PORT),
            "mitmdump",
        );
        stun_checks(&bed);
        Scene {
            _proxy: proxy,
            _server: server,
            _far: far,
            _dir: dir,
            bed,
        }
    }
}

#[test]
fn a_tls_intercepting_proxy_is_reported_with_its_issuer_and_the_rtt_evidence() {
    let scene = Scene::start();
    let bed = &scene.bed;

    // No proxy: the client sees the Webex-like CA; the certificate is read, nothing
    // raised (the fast handshake alone is a near server, not inspection).
    let (issuer, subject) = connect(bed, "-tls1_2");
    assert_eq!(issuer, "C=US, O=IdenTrust, CN=TrustID Server CA Test");
    assert_eq!(subject, "CN=x.wbx2.com");
    bed.wait_status("the server's certificate read", |s| {
        certificates_read(s) == 1
    });
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let s = bed.status();
        assert!(findings(&s).is_empty(), "{:#}", s["anomalies"]);
        std::thread::sleep(Duration::from_millis(300));
    }

    // The proxy in the path: its CA signs what the client sees.
    proxy_on(bed);
    let (issuer, subject) = connect(bed, "-tls1_2");
    assert!(issuer.contains("mitmproxy"), "{issuer}");
    let a = open_finding(bed);
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["subject"], format!("tls issuer {issuer}"));
    assert_eq!(evidence(&a, "issuer"), issuer);
    assert_eq!(evidence(&a, "certificate_subject"), subject);
    assert_eq!(evidence(&a, "sni"), SNI);
    assert_eq!(evidence(&a, "server"), format!("{SERVER}:443"));
    assert_eq!(evidence(&a, "connections"), "1");
    let handshake: f64 = evidence(&a, "handshake_rtt_ms").parse().expect("timed");
    let stun: f64 = evidence(&a, "stun_rtt_ms").parse().expect("measured");
    assert!(handshake < 5.0, "the proxy answers at once: {handshake} ms");
    assert!(
        (40.0..45.0).contains(&stun),
        "the node answers 40 ms late: {stun} ms"
    );
    let s = bed.status();
    assert_eq!(certificates_read(&s), 2);
    assert_eq!(findings(&s).len(), 1);
    // The detectors' tables in status: this one remembers the name and server once.
    let tables = s["detectors"]["tables"]
        .as_array()
        .expect("detectors.tables");
    let rows: Vec<(&str, &str, u64)> = tables
        .iter()
        .map(|t| {
            (
                t["detector"].as_str().unwrap(),
                t["table"].as_str().unwrap(),
                t["cap"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("webex_blocked_here", "lan_flows", 4096),
            ("dns_blocks_webex", "failures", 1024),
            ("media_in_tunnel", "tunnel_flows", 4096),
            ("vpn_hairpin", "pool_hosts", 1024),
            ("ssl_inspection", "connections", 1024),
        ]
    );
    let ssl = &tables[4];
    assert_eq!(
        (ssl["entries"].as_u64(), ssl["dropped"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(tables.iter().all(|t| t["dropped"] == 0), "{tables:#?}");

    // The proxy removed: the next connection shows the Webex CA, and the finding clears
    // (after the book's hold-down).
    proxy_off(bed);
    let (issuer, _) = connect(bed, "-tls1_2");
    assert_eq!(issuer, "C=US, O=IdenTrust, CN=TrustID Server CA Test");
    wait_cleared(bed, 3);
}

/// TLS 1.3 hides the certificate: through the proxy, the handshake answered far faster
/// than STUN to the same prefix is a "likely" warning with the RTT evidence alone; a
/// TLS 1.2 connection to that server showing the Webex CA (the proxy gone) clears it.
#[test]
fn tls13_through_the_proxy_is_likely_inspection_from_the_round_trips() {
    let scene = Scene::start();
    let bed = &scene.bed;
    proxy_on(bed);
    let (issuer, _) = connect(bed, "-tls1_3");
    assert!(issuer.contains("mitmproxy"), "{issuer}");
    let a = open_finding(bed);
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["subject"], "tls to 203.0.113.0/24");
    assert_eq!(evidence(&a, "issuer"), "- (TLS 1.3: not in clear)");
    assert_eq!(evidence(&a, "sni"), SNI);
    assert_eq!(evidence(&a, "server"), format!("{SERVER}:443"));
    assert_eq!(evidence(&a, "connections"), "1");
    let handshake: f64 = evidence(&a, "handshake_rtt_ms").parse().expect("timed");
    let stun: f64 = evidence(&a, "stun_rtt_ms").parse().expect("measured");
    assert!(handshake < 5.0, "the proxy answers at once: {handshake} ms");
    assert!((40.0..45.0).contains(&stun), "{stun} ms");
    assert_eq!(certificates_read(&bed.status()), 1);

    proxy_off(bed);
    let (issuer, _) = connect(bed, "-tls1_2");
    assert_eq!(issuer, "C=US, O=IdenTrust, CN=TrustID Server CA Test");
    wait_cleared(bed, 2);
}
