//! The data path never goes blind, on the namespace testbed: XDP and TC stay attached
//! (pinned links) across SIGTERM, SIGKILL and the next start, so a stream counts exactly
//! and every packet leaves with its DSCP mark while no daemon runs (tshark on the WAN host
//! is the oracle); `monitor detach` removes them; interfaces that go down, vanish, return
//! under a new index or appear only after the start are followed, reported as anomalies
//! while they last, and counted under their name.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    Daemon, Netns, PinDir, TempDir, Testbed,
    bed::GatewayBed,
    capture::Capture,
    monitor_bin,
    testbed::{GW_LAN_IF, GW_WAN_IF, GW_WAN_V4, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{UdpSink, send_udp, udp_sink},
};

const PAYLOAD: usize = 100;
/// In the dedicated audio range: the class is audio, whose mark is EF (46).
const AUDIO_PORT: u16 = 52000;
const EF: u8 = 46;
const POLL_MS: u64 = 200;
/// wan0 without DSCP counting: no DSCP anomaly for the unmarked test traffic.
const NO_DSCP: &str = "dscp_egress = \"off\"";

/// The gateway bed with DSCP verify off on lan0, `wan_lines` added to wan0's section, `extra_interfaces` before
/// `[webex]`, a 200 ms poll and the dedicated port ranges on; `prepare` runs on the
/// testbed before the daemon starts.
fn launch(wan_lines: &str, extra_interfaces: &str, prepare: impl FnOnce(&Testbed)) -> GatewayBed {
    let tb = Testbed::new().expect("testbed");
    prepare(&tb);
    let mut bed = GatewayBed {
        daemon: None,
        tb,
        pin: PinDir::new(),
        dir: TempDir::new().expect("tempdir"),
    };
    // Unmarked audio from the LAN host is no DSCP anomaly on lan0: exit statuses then
    // show the interfaces' health alone (wan0's DSCP mode comes from `wan_lines`).
    let text = xtask::config::gateway_config(bed.pin.path(), &bed.socket())
        .replace(
            "name = \"lan0\"\nrole = \"lan\"\n",
            "name = \"lan0\"\nrole = \"lan\"\ndscp_ingress = \"off\"\n",
        )
        .replace(
            "name = \"wan0\"\nrole = \"wan\"\n",
            &format!("name = \"wan0\"\nrole = \"wan\"\n{wan_lines}\n"),
        )
        .replace(
            "[daemon]\n",
            &format!("[daemon]\npoll_interval_ms = {POLL_MS}\n"),
        )
        .replace(
            "[webex]\n",
            &format!("{extra_interfaces}\n[webex]\ndedicated_port_ranges = true\n"),
        );
    std::fs::write(bed.config(), text).expect("config");
    bed.start();
    bed
}

fn node() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004)
}

fn sink(tb: &Testbed) -> UdpSink {
    tb.wan.run(|| udp_sink(node())).expect("sink")
}

/// Sends `count` datagrams from the LAN host's audio port to the node, `gap` apart.
fn send(lan: &Netns, count: u32, gap: Duration) {
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), AUDIO_PORT);
    lan.run(|| send_udp(from, node(), count, PAYLOAD, gap))
        .expect("send");
}

/// The one flow on `interface`/`direction` to the node's port 5004 (several when the
/// interface was created again: then their packet counts, smallest first).
fn packets(status: &Value, interface: &str, direction: &str) -> Vec<u64> {
    let mut p: Vec<u64> = status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["interface"] == interface
                && f["direction"] == direction
                && f["dst_addr"] == WEBEX_NODE_V4.to_string()
                && f["dst_port"] == 5004
        })
        .map(|f| f["packets"].as_u64().unwrap())
        .collect();
    p.sort();
    p
}

fn flow<'a>(status: &'a Value, interface: &str, direction: &str) -> &'a Value {
    status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["interface"] == interface && f["direction"] == direction && f["dst_port"] == 5004
        })
        .unwrap_or_else(|| panic!("no {interface} {direction} flow: {status}"))
}

fn iface<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no interface {name}: {status}"))
}

/// The open anomaly `id` on `subject`.
fn open_anomaly(status: &Value, id: &str, subject: &str) -> bool {
    status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == id && a["subject"] == subject && a["cleared_unix_s"].is_null())
}

fn cleared_anomaly(status: &Value, id: &str, subject: &str) -> bool {
    let all: Vec<&Value> = status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == id && a["subject"] == subject)
        .collect();
    !all.is_empty() && all.iter().all(|a| !a["cleared_unix_s"].is_null())
}

/// `monitor status`'s exit status (0 ok, 1 warning, 2 critical).
fn status_exit(bed: &GatewayBed) -> i32 {
    Command::new(monitor_bin())
        .arg("status")
        .arg("--socket")
        .arg(bed.socket())
        .output()
        .expect("monitor status")
        .status
        .code()
        .expect("exit code")
}

/// Runs `monitor <args>` in the gateway's namespace (nsenter keeps bpffs visible).
fn monitor_in_gw(bed: &GatewayBed, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", bed.tb.gw.path().display()))
        .arg("--")
        .arg(monitor_bin())
        .args(args)
        .output()
        .expect("monitor in the gateway namespace")
}

fn has_xdp(bed: &GatewayBed, interface: &str) -> bool {
    let out = bed.tb.gw.ip(&["-d", "link", "show", interface]).unwrap();
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

/// Starts the daemon again on the same config (as `systemctl start` would).
fn start(bed: &GatewayBed) -> Daemon {
    Daemon::start(&monitor_bin(), &bed.tb.gw, &bed.config(), &bed.socket()).expect("start")
}

fn wait_received(sink: &UdpSink, at_least: u64) -> u64 {
    let got = sink.wait_for(at_least, Duration::from_secs(30));
    assert!(
        got >= at_least,
        "only {got} of {at_least} datagrams arrived"
    );
    got
}

/// The DSCP of each UDP packet from `src` to port 5004 in `capture`.
fn dscp_of_packets_from(capture: Capture, src: IpAddr) -> Vec<u8> {
    capture
        .fields("udp", &["ip.src", "udp.dstport", "ip.dsfield.dscp"])
        .into_iter()
        .filter(|f| f.len() == 3 && f[0] == src.to_string() && f[1] == "5004")
        .map(|f| f[2].parse().unwrap_or(255))
        .collect()
}

#[test]
fn sigterm_and_sigkill_mid_stream_lose_no_packet_and_no_mark() {
    const N: u32 = 3000;
    let mut bed = launch("dscp_egress = \"rewrite\"", "", |_| {});
    let s = bed.status();
    for name in [GW_LAN_IF, GW_WAN_IF] {
        let i = iface(&s, name);
        assert_eq!(i["state"], "attached", "{i}");
        assert_eq!(i["pinned"], true, "{i}");
        assert_eq!(i["adopted"], false, "{i}");
    }
    assert_eq!(iface(&s, GW_WAN_IF)["dscp_rewrite"], true);
    assert_eq!(iface(&s, GW_LAN_IF)["dscp_rewrite"], false);
    let sink = sink(&bed.tb);
    let capture = Capture::start(&bed.tb.wan, "eth0", bed.dir.path());

    let log = std::thread::scope(|scope| {
        let lan = &bed.tb.lan;
        let sender = scope.spawn(move || send(lan, N, Duration::from_millis(3)));

        // SIGTERM, as `systemctl stop`: a clean exit that leaves the data path running.
        wait_received(&sink, u64::from(N) / 6);
        let daemon = bed.daemon.take().unwrap();
        let mut log = daemon.log();
        assert!(daemon.stop().success());
        assert!(has_xdp(&bed, GW_LAN_IF) && has_xdp(&bed, GW_WAN_IF));
        let stopped_at = sink.received();
        // Some of the stream passes with no daemon at all.
        wait_received(&sink, stopped_at + 100);
        let daemon = start(&bed);
        let s = daemon.status_json().unwrap();
        for name in [GW_LAN_IF, GW_WAN_IF] {
            assert_eq!(iface(&s, name)["adopted"], true, "{s}");
        }

        // SIGKILL, as a crash.
        wait_received(&sink, u64::from(N) / 2);
        log.push_str(&daemon.log());
        assert!(!daemon.kill().success());
        let killed_at = sink.received();
        wait_received(&sink, killed_at + 100);
        bed.daemon = Some(start(&bed));
        let restarted_at = sink.received();
        assert!(
            restarted_at < u64::from(N),
            "the stream ended before the second restart ({restarted_at} of {N})"
        );
        sender.join().expect("sender");
        log
    });
    assert_eq!(
        sink.wait_for(N.into(), Duration::from_secs(20)),
        u64::from(N)
    );

    let s = bed.wait_status("every packet counted", |s| {
        packets(s, GW_LAN_IF, "ingress") == [u64::from(N)]
            && packets(s, GW_WAN_IF, "egress") == [u64::from(N)]
    });
    let wan = flow(&s, GW_WAN_IF, "egress");
    assert_eq!(wan["class"], "audio", "{wan}");
    assert_eq!(wan["dscp"]["rewritten"], N, "{wan}");
    assert_eq!(wan["dscp"]["matched"], N, "{wan}");
    assert_eq!(wan["dscp"]["mismatched"], 0, "{wan}");
    // The oracle: every packet on the WAN wire carries EF, the gaps included.
    let marks = dscp_of_packets_from(capture, IpAddr::V4(GW_WAN_V4));
    assert_eq!(
        marks.len(),
        N as usize,
        "captured packets; daemon log:\n{log}"
    );
    let unmarked = marks.iter().filter(|m| **m != EF).count();
    assert_eq!(unmarked, 0, "packets without EF on the WAN");

    // With the daemon stopped, `monitor check` says the data path and rewrite are on.
    bed.stop();
    let config = bed.config();
    let out = monitor_in_gw(
        &bed,
        &["check", "--json", "--config", config.to_str().unwrap()],
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("check --json");
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {report}"))
            .clone()
    };
    let wan = check("attached_wan0");
    assert_eq!(wan["status"], "pass", "{wan}");
    assert_eq!(wan["value"], "attached (tcx, xdp-native)", "{wan}");
    assert!(
        wan["detail"]
            .as_str()
            .unwrap()
            .contains("DSCP rewrite active (also while the daemon is down)"),
        "{wan}"
    );
    let lan = check("attached_lan0");
    assert_eq!(lan["status"], "pass", "{lan}");
    assert!(
        !lan["detail"].as_str().unwrap().contains("rewrite"),
        "{lan}"
    );
}

#[test]
fn detach_refuses_while_running_then_removes_links_and_optionally_maps() {
    let mut bed = launch("", "", |_| {});
    let config = bed.config();
    let config = config.to_str().unwrap();
    let out = monitor_in_gw(&bed, &["detach", "--config", config]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the daemon is running"));

    bed.stop();
    assert!(has_xdp(&bed, GW_LAN_IF) && has_xdp(&bed, GW_WAN_IF));
    let out = monitor_in_gw(&bed, &["detach", "--config", config]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "detached tcx from lan0",
        "detached tcx from wan0",
        "detached xdp-native from lan0",
        "detached xdp-native from wan0",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    assert!(!has_xdp(&bed, GW_LAN_IF) && !has_xdp(&bed, GW_WAN_IF));
    assert!(bed.pin.path().join("FLOWS").exists(), "maps kept");
    assert!(!bed.pin.path().join("stages").exists());

    let out = monitor_in_gw(&bed, &["detach", "--config", config, "--unpin"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!bed.pin.path().exists(), "pin directory removed");

    // The next start attaches afresh, from zero.
    bed.start();
    let s = bed.status();
    assert_eq!(s["daemon"]["adopted_pinned_maps"], false);
    assert_eq!(iface(&s, GW_WAN_IF)["adopted"], false);
    assert!(has_xdp(&bed, GW_WAN_IF));
}

#[test]
fn interface_down_and_deleted_are_anomalies_until_it_returns_and_flows_keep_its_name() {
    let bed = launch(NO_DSCP, "", |_| {});
    let sink = sink(&bed.tb);
    send(&bed.tb.lan, 20, Duration::from_millis(1));
    assert_eq!(sink.wait_for(20, Duration::from_secs(10)), 20);
    bed.wait_status("20 packets", |s| packets(s, GW_LAN_IF, "ingress") == [20]);
    assert_eq!(status_exit(&bed), 0);

    // Down: attached, but no traffic can pass.
    bed.tb.gw.ip(&["link", "set", GW_LAN_IF, "down"]).unwrap();
    let s = bed.wait_status("lan0 down", |s| {
        open_anomaly(s, "interface_down", GW_LAN_IF)
    });
    assert_eq!(iface(&s, GW_LAN_IF)["state"], "down");
    assert_eq!(status_exit(&bed), 2);
    bed.tb.gw.ip(&["link", "set", GW_LAN_IF, "up"]).unwrap();
    let s = bed.wait_status("lan0 up again", |s| {
        cleared_anomaly(s, "interface_down", GW_LAN_IF)
    });
    assert_eq!(iface(&s, GW_LAN_IF)["state"], "attached");
    assert_eq!(status_exit(&bed), 0);

    // Deleted, then created again under a new index.
    let old_index = iface(&s, GW_LAN_IF)["ifindex"].as_u64().unwrap();
    bed.tb.unplug_lan().unwrap();
    let s = bed.wait_status("lan0 missing", |s| {
        open_anomaly(s, "interface_missing", GW_LAN_IF)
    });
    assert_eq!(iface(&s, GW_LAN_IF)["state"], "missing");
    assert_eq!(status_exit(&bed), 2);
    bed.tb.plug_lan().unwrap();
    let s = bed.wait_status("lan0 back", |s| {
        cleared_anomaly(s, "interface_missing", GW_LAN_IF)
            && iface(s, GW_LAN_IF)["state"] == "attached"
    });
    let i = iface(&s, GW_LAN_IF);
    assert_ne!(i["ifindex"].as_u64().unwrap(), old_index);
    assert_eq!(i["previous_ifindexes"], serde_json::json!([old_index]));
    assert_eq!(i["reattached"], 1);
    assert_eq!(status_exit(&bed), 0);

    send(&bed.tb.lan, 30, Duration::from_millis(1));
    assert_eq!(sink.wait_for(50, Duration::from_secs(10)), 50);
    // The old index's flow and the new one's, both under the name.
    let s = bed.wait_status("30 packets on the new lan0", |s| {
        packets(s, GW_LAN_IF, "ingress") == [20, 30]
    });
    let unnamed: Vec<&Value> = s["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["interface"].as_str().unwrap().starts_with("if"))
        .collect();
    assert!(unnamed.is_empty(), "flows without a name: {unnamed:?}");
}

#[test]
fn a_wan_interface_that_appears_after_start_is_waited_for_then_attached() {
    let bed = launch(NO_DSCP, "", |tb| tb.unplug_wan().expect("unplug wan0"));
    let s = bed.status();
    let wan = iface(&s, GW_WAN_IF);
    assert_eq!(wan["state"], "waiting", "{wan}");
    assert_eq!(wan["ifindex"], 0);
    let s = bed.wait_status("the waiting anomaly", |s| {
        open_anomaly(s, "interface_waiting", GW_WAN_IF)
    });
    let waiting = s["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "interface_waiting")
        .unwrap();
    assert_eq!(waiting["severity"], "warning");
    assert!(
        waiting["summary"]
            .as_str()
            .unwrap()
            .contains("waiting for interface wan0"),
        "{waiting}"
    );
    assert_eq!(status_exit(&bed), 1);
    // `monitor check` warns about it.
    let config = bed.config();
    let out = monitor_in_gw(
        &bed,
        &["check", "--json", "--config", config.to_str().unwrap()],
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("check --json");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "attached_wan0")
        .unwrap_or_else(|| panic!("no attached_wan0 check: {report}"));
    assert_eq!(check["status"], "warn", "{check}");
    assert_eq!(check["value"], "waiting", "{check}");

    bed.tb.plug_wan().unwrap();
    let appeared = Instant::now();
    let s = bed.wait_status("wan0 attached", |s| {
        iface(s, GW_WAN_IF)["state"] == "attached"
    });
    let took = appeared.elapsed();
    // One poll, plus the analysis and the status query on a loaded machine.
    assert!(
        took < Duration::from_millis(POLL_MS) + Duration::from_secs(2),
        "attached {took:?} after it appeared"
    );
    assert!(iface(&s, GW_WAN_IF)["ifindex"].as_u64().unwrap() > 0);

    let sink = sink(&bed.tb);
    send(&bed.tb.lan, 40, Duration::from_millis(1));
    assert_eq!(sink.wait_for(40, Duration::from_secs(10)), 40);
    bed.wait_status("40 packets on both sides", |s| {
        packets(s, GW_LAN_IF, "ingress") == [40]
            && packets(s, GW_WAN_IF, "egress") == [40]
            && cleared_anomaly(s, "interface_waiting", GW_WAN_IF)
    });
    assert_eq!(status_exit(&bed), 0);
}

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

/// Raw `bpf(2)` for the upgrade test: maps of an "earlier version" with layouts this
/// version has no Rust type for.
mod raw {
    use std::os::fd::{FromRawFd as _, OwnedFd};

    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    const BPF_OBJ_PIN: libc::c_long = 6;
    pub const LRU_HASH: u32 = 9;

    fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> libc::c_long {
        // SAFETY: bpf(2) with a zero-padded 128-byte attribute whose pointers refer to
        // live buffers.
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), 128usize) }
    }

    pub fn create(map_type: u32, key: u32, value: u32, entries: u32) -> OwnedFd {
        let mut attr = [0u64; 16];
        attr[0] = u64::from(map_type) | (u64::from(key) << 32);
        attr[1] = u64::from(value) | (u64::from(entries) << 32);
        let fd = bpf(BPF_MAP_CREATE, &mut attr);
        assert!(fd >= 0, "map create: {}", std::io::Error::last_os_error());
        // SAFETY: a new fd we own.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    }

    pub fn update(fd: &OwnedFd, key: &[u8], value: &[u8]) {
        use std::os::fd::AsRawFd as _;
        let mut attr = [0u64; 16];
        attr[0] = fd.as_raw_fd() as u64;
        attr[1] = key.as_ptr() as u64;
        attr[2] = value.as_ptr() as u64;
        assert_eq!(bpf(BPF_MAP_UPDATE_ELEM, &mut attr), 0, "update");
    }

    pub fn pin(fd: &OwnedFd, path: &std::path::Path) {
        use std::os::fd::AsRawFd as _;
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let mut attr = [0u64; 16];
        attr[0] = c.as_ptr() as u64;
        attr[1] = fd.as_raw_fd() as u64;
        assert_eq!(
            bpf(BPF_OBJ_PIN, &mut attr),
            0,
            "pin {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn an_upgrade_across_a_map_layout_change_migrates_or_states_what_it_cannot_keep() {
    use aya::maps::{HashMap, MapData};
    use monitor_common::{FlowKey, FlowStats};
    let mut bed = launch(NO_DSCP, "", |_| {});
    let sink = sink(&bed.tb);
    send(&bed.tb.lan, 60, Duration::from_millis(1));
    assert_eq!(sink.wait_for(60, Duration::from_secs(10)), 60);
    bed.wait_status("60 packets", |s| {
        packets(s, GW_LAN_IF, "ingress") == [60] && packets(s, GW_WAN_IF, "egress") == [60]
    });
    bed.stop();

    // What an earlier version left: its flow map had no `oversize` (8 bytes shorter
    // values), its RTT map another key. Built from this run's flows, pinned in their place.
    let pins = bed.pin.path().to_path_buf();
    let flows: Vec<(FlowKey, FlowStats)> = {
        let map = MapData::from_pin(pins.join("FLOWS")).unwrap();
        let map: HashMap<_, FlowKey, FlowStats> =
            HashMap::try_from(aya::maps::Map::LruHashMap(map)).unwrap();
        map.iter().map(Result::unwrap).collect()
    };
    assert!(flows.len() >= 2, "{} flows", flows.len());
    let key_len = std::mem::size_of::<FlowKey>();
    let value_len = std::mem::size_of::<FlowStats>();
    let old_flows = raw::create(raw::LRU_HASH, key_len as u32, value_len as u32 - 8, 1024);
    for (k, v) in &flows {
        // SAFETY: plain #[repr(C)] data viewed as bytes.
        let (kb, vb) = unsafe {
            (
                std::slice::from_raw_parts((k as *const FlowKey).cast::<u8>(), key_len),
                std::slice::from_raw_parts((v as *const FlowStats).cast::<u8>(), value_len),
            )
        };
        raw::update(&old_flows, kb, &vb[..value_len - 8]);
    }
    std::fs::remove_file(pins.join("FLOWS")).unwrap();
    raw::pin(&old_flows, &pins.join("FLOWS"));
    let old_rtt = raw::create(raw::LRU_HASH, 8, 16, 64);
    for i in 0u64..5 {
        raw::update(&old_rtt, &i.to_ne_bytes(), &[7u8; 16]);
    }
    std::fs::remove_file(pins.join("MEDIA_RTT")).unwrap();
    raw::pin(&old_rtt, &pins.join("MEDIA_RTT"));

    bed.start();
    let s = bed.status();
    let lines: Vec<&str> = s["daemon"]["pin_migrations"]
        .as_array()
        .unwrap_or_else(|| panic!("no pin_migrations: {}", s["daemon"]))
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.contains(
            &format!(
                "FLOWS: layout changed (key/value bytes {key_len}/{value_len} were {key_len}/{}); \
             all {} entries migrated, added bytes start at zero",
                value_len - 8,
                flows.len()
            )
            .as_str()
        ),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("MEDIA_RTT: layout changed")
                && l.ends_with(
                    "cannot be migrated: its 5 entries are not kept (this map starts empty)"
                )),
        "{lines:?}"
    );
    // The counts continue from the migrated entries.
    send(&bed.tb.lan, 40, Duration::from_millis(1));
    assert_eq!(sink.wait_for(100, Duration::from_secs(10)), 100);
    bed.wait_status("100 packets", |s| {
        packets(s, GW_LAN_IF, "ingress") == [100] && packets(s, GW_WAN_IF, "egress") == [100]
    });
    assert!(
        !pins.join("replaced").join("FLOWS").exists(),
        "old map released"
    );
}

/// A raw packet socket on one interface (AF_PACKET): crafted frames in, every frame out.
struct RawLink {
    fd: std::os::fd::OwnedFd,
}

impl RawLink {
    /// Opens it on `name` in the current thread's network namespace.
    fn open(name: &str) -> RawLink {
        use std::os::fd::{AsRawFd as _, FromRawFd as _};
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket(2); the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK,
                i32::from(all),
            )
        };
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh fd we own.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        assert_ne!(ifindex, 0, "no {name}");
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: bind(2) with a sockaddr_ll of its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        RawLink { fd }
    }

    fn send(&self, frame: &[u8]) {
        use std::os::fd::AsRawFd as _;
        // SAFETY: sending our own buffer on our own bound socket.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Frames `keep` accepts, until `want` came or `wait` passed.
    fn recv_matching(
        &self,
        keep: impl Fn(&[u8]) -> bool,
        want: usize,
        wait: Duration,
    ) -> Vec<Vec<u8>> {
        read_matching(&self.fd, keep, want, wait)
    }
}

/// Reads from the non-blocking `fd` what `keep` accepts, until `want` came or `wait`
/// passed.
fn read_matching(
    fd: &std::os::fd::OwnedFd,
    keep: impl Fn(&[u8]) -> bool,
    want: usize,
    wait: Duration,
) -> Vec<Vec<u8>> {
    use std::os::fd::AsRawFd as _;
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while out.len() < want && Instant::now() < deadline {
        // SAFETY: reading into our own buffer from our own fd.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            if keep(&buf[..n as usize]) {
                out.push(buf[..n as usize].to_vec());
            }
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    out
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
