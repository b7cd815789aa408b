//! Uplinks that are not plain Ethernet, end to end on the namespace testbed: a real tun
//! device as the WAN (the test holds its fd) and crafted PPPoE session frames on the
//! veths (half in VLAN 7): classification, RTP loss and DSCP rewrite exact, as on
//! Ethernet.

mod support;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use serde_json::Value;
use support::gateway::*;
use xtask::{
    testbed::{GW_LAN_IF, GW_WAN_IF, GW_WAN_V4, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::udp_sink,
};

/// A tun device: its packets are the file's reads and writes (IPv4, no packet info).
struct Tun {
    fd: std::os::fd::OwnedFd,
}

impl Tun {
    /// Creates `name` in the current thread's network namespace.
    fn create(name: &str) -> Tun {
        use std::os::fd::FromRawFd as _;
        // SAFETY: open(2) of a constant path; the fd is owned below.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
        assert!(
            fd >= 0,
            "open /dev/net/tun: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh fd we own from here on.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain data; the name is NUL-terminated (zeroed tail).
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *d = *s as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        use std::os::fd::AsRawFd as _;
        // SAFETY: TUNSETIFF on our tun fd with a valid ifreq.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        Tun { fd }
    }

    /// Packets the gateway sent out of the tun device (IP packets) that `keep` accepts,
    /// until `want` of them came or `wait` passed.
    fn read_matching(
        &self,
        keep: impl Fn(&[u8]) -> bool,
        want: usize,
        wait: Duration,
    ) -> Vec<Vec<u8>> {
        read_matching(&self.fd, keep, want, wait)
    }

    /// Hands `packet` to the gateway as if it arrived on the tun device.
    fn write(&self, packet: &[u8]) {
        use std::os::fd::AsRawFd as _;
        // SAFETY: writing our own buffer to our own fd.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        assert_eq!(n, packet.len() as isize, "tun write");
    }
}

#[test]
fn a_tun_uplink_is_classified_measured_and_rewritten_as_ethernet_is() {
    use xtask::frames::{Ipv4, L4};
    const OUT: u32 = 200;
    const RTP_SENT: u16 = 150;
    const RTP_LOST: u16 = 7;
    let tun_section =
        "[[interfaces]]\nname = \"tun0\"\nrole = \"wan\"\ndscp_egress = \"rewrite\"\n";
    let mut tun = None;
    let bed = launch(NO_DSCP, tun_section, |tb| {
        tun = Some(tb.gw.run(|| Tun::create("tun0")));
        tb.gw.ip(&["link", "set", "tun0", "up"]).expect("tun0 up");
        // The Webex node is reached through the tun uplink now.
        tb.gw
            .ip(&["route", "replace", "203.0.113.0/24", "dev", "tun0"])
            .expect("route via tun0");
    });
    let tun = tun.unwrap();
    let s = bed.status();
    let t = iface(&s, "tun0");
    assert_eq!(t["state"], "attached", "{t}");
    assert_eq!(t["link_type"], "none (tun, wireguard)", "{t}");
    assert_eq!(t["pinned"], true);
    assert_eq!(t["dscp_rewrite"], true);

    // Out: LAN host audio to the node leaves through tun0, rewritten to EF.
    send(&bed.tb.lan, OUT, Duration::from_millis(1));
    let is_audio = |p: &[u8]| {
        p.len() > 28 && p[0] >> 4 == 4 && p[9] == 17 && p[22..24] == 5004u16.to_be_bytes()
    };
    let audio = tun.read_matching(is_audio, OUT as usize, Duration::from_secs(10));
    assert_eq!(audio.len(), OUT as usize, "audio packets out of tun0");
    assert!(
        audio.iter().all(|p| p[1] >> 2 == EF),
        "every packet carries EF"
    );
    assert!(
        audio
            .iter()
            .all(|p| xtask::frames::ipv4_checksum(&p[..20]) == u16::from_be_bytes([p[10], p[11]])),
        "valid checksums"
    );

    // In: RTP from the node arrives on tun0 with a known gap.
    let mut rtp = xtask::rtp::RtpStream::pcmu(0x5eed);
    let ip = Ipv4::new(WEBEX_NODE_V4, LAN_HOST_V4);
    let lan_sink = bed
        .tb
        .lan
        .run(|| udp_sink(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), AUDIO_PORT)))
        .expect("lan sink");
    for i in 0..RTP_SENT {
        if i == 50 {
            rtp.skip(RTP_LOST);
        }
        let payload = rtp.next_packet(172);
        tun.write(
            &ip.packet(
                17,
                &L4::Udp {
                    src: 5004,
                    dst: AUDIO_PORT,
                    payload,
                }
                .bytes(),
            ),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        lan_sink.wait_for(RTP_SENT.into(), Duration::from_secs(10)),
        u64::from(RTP_SENT)
    );

    let s = bed.wait_status("both directions on tun0", |s| {
        packets(s, "tun0", "egress") == [u64::from(OUT)]
            && packets_from_node(s, "tun0") == Some(u64::from(RTP_SENT))
            && tun_stream(s).is_some_and(|st| st["packets"] == RTP_SENT)
    });
    let out = flow(&s, "tun0", "egress");
    assert_eq!(out["class"], "audio", "{out}");
    assert_eq!(out["dscp"]["rewritten"], OUT, "{out}");
    assert_eq!(out["dscp"]["matched"], OUT, "{out}");
    let stream = tun_stream(&s).unwrap();
    assert_eq!(stream["lost"], RTP_LOST, "{stream}");
    assert_eq!(stream["lost_rfc"], RTP_LOST, "{stream}");
    // tun has no native XDP: `auto` fell back to generic, which is a warning.
    let t = iface(&s, "tun0");
    assert_eq!(t["xdp_mode"], "generic", "{t}");
    assert_eq!(t["xdp_fallback"], true, "{t}");
    assert!(open_anomaly(&s, "xdp_generic_fallback", "tun0"));
}

/// Packets of the flow from the node's port 5004 on `interface` ingress.
fn packets_from_node(s: &Value, interface: &str) -> Option<u64> {
    s["flows"].as_array()?.iter().find_map(|f| {
        (f["interface"] == interface && f["direction"] == "ingress" && f["src_port"] == 5004)
            .then(|| f["packets"].as_u64().unwrap())
    })
}

/// The RTP stream measured on tun0's ingress.
fn tun_stream(s: &Value) -> Option<Value> {
    s["calls"].as_array()?.iter().find_map(|c| {
        c["legs"].as_array()?.iter().find_map(|l| {
            l["streams"]
                .as_array()?
                .iter()
                .find(|st| st["interface"] == "tun0" && st["direction"] == "ingress")
                .cloned()
        })
    })
}

/// A broadcast PPPoE session frame (after `vlans` tags) carrying an IPv4 datagram.
fn pppoe_frame(vlans: &[(u16, u16)], ip: &[u8]) -> Vec<u8> {
    let mut p = vec![0x11, 0x00, 0x00, 0x42];
    p.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    p.extend_from_slice(&0x0021u16.to_be_bytes());
    p.extend_from_slice(ip);
    let mut f = xtask::frames::ethernet(vlans, 0x8864, &p);
    f[..6].copy_from_slice(&[0xff; 6]);
    f
}

/// Offset of the IPv4 header in a frame from [`pppoe_frame`], if it is one.
fn pppoe_ip_offset(f: &[u8]) -> Option<usize> {
    let mut off = 12;
    while f.get(off..off + 2)? == [0x81, 0x00] {
        off += 4;
    }
    (f.get(off..off + 2)? == [0x88, 0x64] && f.get(off + 8..off + 10)? == [0x00, 0x21])
        .then_some(off + 10)
}

#[test]
fn pppoe_sessions_on_a_veth_are_classified_measured_and_rewritten_as_ethernet_is() {
    use xtask::frames::{Ipv4, L4};
    const OUT: u16 = 120;
    const OUT_LOST: u16 = 3;
    const IN: u16 = 90;
    const IN_LOST: u16 = 5;
    let bed = launch("dscp_egress = \"rewrite\"", "", |_| {});
    let vlan7 = [(xtask::frames::ETH_P_8021Q, 7)];
    // The LAN host's call enters on lan0; the gateway's own (a call of its own, from its
    // WAN address) is measured on wan0 egress.
    let rtp_ip = |from: Ipv4Addr, rtp: &mut xtask::rtp::RtpStream| {
        Ipv4::new(from, WEBEX_NODE_V4).packet(
            17,
            &L4::Udp {
                src: AUDIO_PORT,
                dst: 5004,
                payload: rtp.next_packet(172),
            }
            .bytes(),
        )
    };
    // `count` RTP packets from `from`, `lost` skipped after the first `count / 2`, half
    // of them in VLAN 7.
    let stream = |link: &RawLink, from: Ipv4Addr, ssrc: u32, count: u16, lost: u16| {
        let mut rtp = xtask::rtp::RtpStream::pcmu(ssrc);
        for i in 0..count {
            if i == count / 2 {
                rtp.skip(lost);
            }
            let vlans: &[(u16, u16)] = if i % 2 == 0 { &vlan7 } else { &[] };
            link.send(&pppoe_frame(vlans, &rtp_ip(from, &mut rtp)));
            std::thread::sleep(Duration::from_millis(2));
        }
    };

    // Into lan0 from the LAN host, half of them in VLAN 7: XDP parses them.
    let lan = bed.tb.lan.run(|| RawLink::open("eth0"));
    stream(&lan, LAN_HOST_V4, 0x1111, IN, IN_LOST);

    // Out of wan0 from the gateway itself: TC rewrites the DSCP inside the session.
    let wan_host = bed.tb.wan.run(|| RawLink::open("eth0"));
    let gw = bed.tb.gw.run(|| RawLink::open(GW_WAN_IF));
    stream(&gw, GW_WAN_V4, 0x2222, OUT, OUT_LOST);
    let seen = wan_host.recv_matching(
        |f| pppoe_ip_offset(f).is_some_and(|ip| f.get(ip + 9) == Some(&17)),
        OUT.into(),
        Duration::from_secs(10),
    );
    assert_eq!(seen.len(), usize::from(OUT), "PPPoE frames on the WAN host");
    for f in &seen {
        let ip = pppoe_ip_offset(f).unwrap();
        assert_eq!(f[ip + 1] >> 2, EF, "EF inside the session");
        let header = &f[ip..ip + 20];
        assert_eq!(
            xtask::frames::ipv4_checksum(header),
            u16::from_be_bytes([header[10], header[11]]),
            "valid checksum"
        );
    }

    let measured = |s: &Value, interface: &str, direction: &str| -> Option<Value> {
        s["calls"].as_array()?.iter().find_map(|c| {
            c["legs"].as_array()?.iter().find_map(|l| {
                l["streams"]
                    .as_array()?
                    .iter()
                    .find(|st| st["interface"] == interface && st["direction"] == direction)
                    .cloned()
            })
        })
    };
    let s = bed.wait_status("both PPPoE streams", |s| {
        packets(s, GW_LAN_IF, "ingress") == [u64::from(IN)]
            && packets(s, GW_WAN_IF, "egress") == [u64::from(OUT)]
            && measured(s, GW_LAN_IF, "ingress").is_some_and(|st| st["packets"] == IN)
            && measured(s, GW_WAN_IF, "egress").is_some_and(|st| st["packets"] == OUT)
    });
    for (interface, direction, lost) in [
        (GW_LAN_IF, "ingress", IN_LOST),
        (GW_WAN_IF, "egress", OUT_LOST),
    ] {
        let f = flow(&s, interface, direction);
        assert_eq!(f["class"], "audio", "{f}");
        let st = measured(&s, interface, direction).unwrap();
        assert_eq!(st["lost"], lost, "{st}");
    }
    let out = flow(&s, GW_WAN_IF, "egress");
    assert_eq!(out["dscp"]["rewritten"], OUT, "{out}");
    assert_eq!(out["dscp"]["matched"], OUT, "{out}");
    assert_eq!(s["counters"]["malformed_total"], 0);
}
