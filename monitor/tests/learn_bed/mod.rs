//! The learning testbed shared by testbed_learn.rs and testbed_trust.rs: the namespace
//! testbed with a daemon, helper processes (dnsmasq, openssl s_server) killed on drop,
//! hand-written DNS queries, and frames injected on a link with AF_PACKET (a forged
//! packet the gateway sees exactly once: TTL 1, so it is never forwarded).
#![allow(dead_code)]

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    Daemon, PinDir, TempDir, Testbed, monitor_bin,
    netns::Netns,
    testbed::{LAN_HOST_V4, WAN_HOST_V4},
    traffic::{send_udp, udp_sink},
};

/// A second address on the WAN host, outside the Webex prefixes, that the resolver
/// hands out for a Webex name.
pub const LEARNED_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
/// TTL the resolver gives its answers (the config's floor is lower).
pub const DNS_TTL_S: u64 = 4;
pub const MEDIA_PORT: u16 = 5004;

/// The [learn] section the tests run with: TTLs short enough to watch them expire.
pub const LEARN_TOML: &str = "\n[learn]\nttl_floor_s = 1\nttl_cap_s = 3600\nsni_ttl_s = 30\n";

pub struct Bed {
    // Field order is drop order: daemon, helpers, then namespaces, pins and files.
    pub daemon: Daemon,
    pub helpers: Vec<Helper>,
    pub tb: Testbed,
    pub pin: PinDir,
    pub dir: TempDir,
}

/// A helper process (dnsmasq, openssl s_server) killed and reaped on drop.
pub struct Helper(pub Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Bed {
    pub fn new(helpers: impl FnOnce(&Testbed, &TempDir) -> Vec<Helper>) -> Bed {
        Bed::with("idle_s = 2\n", helpers)
    }

    /// A bed whose config has `extra` TOML after the `[learn]` section (more keys of it;
    /// `idle_s` is always one of them).
    pub fn with(extra: &str, helpers: impl FnOnce(&Testbed, &TempDir) -> Vec<Helper>) -> Bed {
        Bed::with_daemon("", extra, helpers)
    }

    /// As [`Bed::with`], with `daemon` TOML keys added to `[daemon]`.
    pub fn with_daemon(
        daemon: &str,
        extra: &str,
        helpers: impl FnOnce(&Testbed, &TempDir) -> Vec<Helper>,
    ) -> Bed {
        let tb = Testbed::new().expect("testbed");
        let dir = TempDir::new().expect("tempdir");
        let pin = PinDir::new();
        let config = dir.join("monitor.toml");
        let mut toml = xtask::config::gateway_config(pin.path(), &dir.join("monitor.sock"))
            .replace("[daemon]\n", &format!("[daemon]\n{daemon}"));
        toml.push_str(LEARN_TOML);
        toml.push_str(extra);
        std::fs::write(&config, toml).expect("config");
        let helpers = helpers(&tb, &dir);
        let daemon = Daemon::start(&monitor_bin(), &tb.gw, &config, &dir.join("monitor.sock"))
            .expect("daemon start");
        Bed {
            daemon,
            helpers,
            tb,
            pin,
            dir,
        }
    }

    pub fn status(&self) -> Value {
        self.daemon.status_json().expect("status --json")
    }

    /// Polls status until `done` holds (at most `secs` seconds).
    pub fn wait_until(&self, secs: u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
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

pub fn peers(s: &Value) -> Vec<Value> {
    s["learned_peers"].as_array().cloned().unwrap_or_default()
}

/// Flows whose Webex-side (peer) address is `addr`.
pub fn flows_to(s: &Value, addr: Ipv4Addr) -> Vec<Value> {
    s["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .filter(|f| f["peer_addr"] == addr.to_string())
        .cloned()
        .collect()
}

/// A DNS query for `name` (type A), written by hand: no system resolver is involved.
pub fn query(id: u16, name: &str) -> Vec<u8> {
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
pub fn resolve(tb: &Testbed, name: &str) -> usize {
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

pub fn send_media(bed: &Bed, count: u32) {
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

/// Waits (at most 10 s) until dnsmasq on the WAN host answers the LAN host: the answer
/// is for a name outside the domains, so it teaches nothing.
pub fn wait_for_dnsmasq(tb: &Testbed) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tb
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
}

pub fn dnsmasq(tb: &Testbed, dir: &TempDir) -> Helper {
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

pub fn openssl_server(tb: &Testbed, dir: &TempDir) -> Helper {
    openssl_server_at(&tb.wan, IpAddr::V4(WAN_HOST_V4), dir)
}

/// `openssl s_server` in `ns` on `addr`:443.
pub fn openssl_server_at(ns: &Netns, addr: IpAddr, dir: &TempDir) -> Helper {
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
    let child = ns
        .command(&[
            "openssl",
            "s_server",
            "-accept",
            &format!("{addr}:443"),
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
pub fn s_client(tb: &Testbed, sni: &str) -> bool {
    s_client_to(tb, IpAddr::V4(WAN_HOST_V4), sni)
}

/// One TLS handshake LAN host -> `addr`:443 with `sni`; whether it completed.
pub fn s_client_to(tb: &Testbed, addr: IpAddr, sni: &str) -> bool {
    let out = tb
        .lan
        .command(&[
            "timeout",
            "10",
            "openssl",
            "s_client",
            "-connect",
            &format!("{addr}:443"),
            "-servername",
            sni,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE")
}

/// The MAC address of `ifname` in `ns`.
pub fn mac(ns: &Netns, ifname: &str) -> [u8; 6] {
    let out = ns.ip(&["-j", "link", "show", ifname]).expect("ip link");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    let text = v[0]["address"].as_str().expect("address").to_string();
    let mut m = [0u8; 6];
    for (i, b) in text.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(b, 16).expect("hex");
    }
    m
}

/// An IPv4 packet `src -> dst` carrying `l4`, with TTL 1: the gateway sees it on the
/// link it arrives on and never forwards it, so it is sampled exactly once.
pub fn ttl1_packet(src: Ipv4Addr, dst: Ipv4Addr, l4: &xtask::frames::L4) -> Vec<u8> {
    let (protocol, bytes) = match l4 {
        xtask::frames::L4::Udp { .. } => (17, l4.bytes()),
        _ => (6, l4.bytes()),
    };
    let mut p = xtask::frames::Ipv4::new(src, dst).packet(protocol, &bytes);
    p[8] = 1;
    p[10] = 0;
    p[11] = 0;
    let sum = xtask::frames::ipv4_checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

/// Sends each IP packet of `packets` as one Ethernet frame out of `ifname` in `ns`
/// to `dst_mac` (AF_PACKET: no routing, no neighbour look-up).
pub fn inject(ns: &Netns, ifname: &str, dst_mac: [u8; 6], packets: &[Vec<u8>]) {
    let name = std::ffi::CString::new(ifname).unwrap();
    ns.run(|| {
        // SAFETY: plain socket calls on a socket closed below; the address is a
        // zeroed sockaddr_ll filled in field by field.
        unsafe {
            let proto = (libc::ETH_P_IP as u16).to_be() as i32;
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, proto);
            assert!(fd >= 0, "AF_PACKET socket");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto as u16;
            sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&dst_mac);
            for p in packets {
                // The EtherType by the IP version.
                let ether_type = if p[0] >> 4 == 6 {
                    libc::ETH_P_IPV6
                } else {
                    libc::ETH_P_IP
                };
                sll.sll_protocol = (ether_type as u16).to_be();
                let n = libc::sendto(
                    fd,
                    p.as_ptr().cast(),
                    p.len(),
                    0,
                    (&raw const sll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(n, p.len() as isize, "sendto");
            }
            libc::close(fd);
        }
    });
}

/// The `learn.refused` count of `reason`.
pub fn refused(s: &Value, reason: &str) -> u64 {
    s["learn"]["refused"][reason].as_u64().unwrap_or(0)
}

/// A DNS response to `id` for `name`: A `addr`, TTL 60.
pub fn answer(id: u16, name: &str, addr: Ipv4Addr) -> Vec<u8> {
    let mut m = query(id, name);
    m[2] = 0x81;
    m[3] = 0x80;
    m[7] = 1; // ANCOUNT
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    m.extend_from_slice(&addr.octets());
    m
}

/// A TLS 1.2-style ClientHello record carrying `sni` (and `pad` bytes of a padding
/// extension, to make it as long as a post-quantum hello).
pub fn client_hello(sni: &str, pad: usize) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut exts = Vec::new();
    // Padding first, so the name lands at the end (in the second segment).
    exts.extend_from_slice(&[0x00, 0x15]);
    exts.extend_from_slice(&(pad as u16).to_be_bytes());
    exts.extend(std::iter::repeat_n(0u8, pad));
    exts.extend_from_slice(&[0, 0]);
    exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni_ext);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}
