//! The gateway testbed as the never-blind, interface-health and uplink tests use it:
//! the daemon on lan0 and wan0 with a short poll, audio from the LAN host to the Webex
//! node, and readers of the status they share.

use std::{
    net::{IpAddr, SocketAddr},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    Daemon, Netns, PinDir, TempDir, Testbed,
    bed::GatewayBed,
    monitor_bin,
    testbed::{LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{UdpSink, send_udp, udp_sink},
};

pub const PAYLOAD: usize = 100;
/// In the dedicated audio range: the class is audio, whose mark is EF (46).
pub const AUDIO_PORT: u16 = 52000;
pub const EF: u8 = 46;
pub const POLL_MS: u64 = 200;
/// wan0 without DSCP counting: no DSCP anomaly for the unmarked test traffic.
pub const NO_DSCP: &str = "dscp_egress = \"off\"";

/// The gateway bed with DSCP verify off on lan0, `wan_lines` added to wan0's section, `extra_interfaces` before
/// `[webex]`, a 200 ms poll and the dedicated port ranges on; `prepare` runs on the
/// testbed before the daemon starts.
pub fn launch(
    wan_lines: &str,
    extra_interfaces: &str,
    prepare: impl FnOnce(&Testbed),
) -> GatewayBed {
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

pub fn node() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004)
}

pub fn sink(tb: &Testbed) -> UdpSink {
    tb.wan.run(|| udp_sink(node())).expect("sink")
}

/// Sends `count` datagrams from the LAN host's audio port to the node, `gap` apart.
pub fn send(lan: &Netns, count: u32, gap: Duration) {
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), AUDIO_PORT);
    lan.run(|| send_udp(from, node(), count, PAYLOAD, gap))
        .expect("send");
}

/// The one flow on `interface`/`direction` to the node's port 5004 (several when the
/// interface was created again: then their packet counts, smallest first).
pub fn packets(status: &Value, interface: &str, direction: &str) -> Vec<u64> {
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

pub fn flow<'a>(status: &'a Value, interface: &str, direction: &str) -> &'a Value {
    status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["interface"] == interface && f["direction"] == direction && f["dst_port"] == 5004
        })
        .unwrap_or_else(|| panic!("no {interface} {direction} flow: {status}"))
}

pub fn iface<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no interface {name}: {status}"))
}

/// The open anomaly `id` on `subject`.
pub fn open_anomaly(status: &Value, id: &str, subject: &str) -> bool {
    status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == id && a["subject"] == subject && a["cleared_unix_s"].is_null())
}

pub fn cleared_anomaly(status: &Value, id: &str, subject: &str) -> bool {
    let all: Vec<&Value> = status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == id && a["subject"] == subject)
        .collect();
    !all.is_empty() && all.iter().all(|a| !a["cleared_unix_s"].is_null())
}

/// `monitor status`'s exit status (0 ok, 1 warning, 2 critical).
pub fn status_exit(bed: &GatewayBed) -> i32 {
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
pub fn monitor_in_gw(bed: &GatewayBed, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", bed.tb.gw.path().display()))
        .arg("--")
        .arg(monitor_bin())
        .args(args)
        .output()
        .expect("monitor in the gateway namespace")
}

pub fn has_xdp(bed: &GatewayBed, interface: &str) -> bool {
    let out = bed.tb.gw.ip(&["-d", "link", "show", interface]).unwrap();
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

/// Starts the daemon again on the same config (as `systemctl start` would).
pub fn start(bed: &GatewayBed) -> Daemon {
    Daemon::start(&monitor_bin(), &bed.tb.gw, &bed.config(), &bed.socket()).expect("start")
}

pub fn wait_received(sink: &UdpSink, at_least: u64) -> u64 {
    let got = sink.wait_for(at_least, Duration::from_secs(30));
    assert!(
        got >= at_least,
        "only {got} of {at_least} datagrams arrived"
    );
    got
}

/// Reads from the non-blocking `fd` what `keep` accepts, until `want` came or `wait`
/// passed.
pub fn read_matching(
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

/// A raw packet socket on one interface (AF_PACKET): crafted frames in, every frame out.
pub struct RawLink {
    fd: std::os::fd::OwnedFd,
}

impl RawLink {
    /// Opens it on `name` in the current thread's network namespace.
    pub fn open(name: &str) -> RawLink {
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
        // Room for a few thousand frames should the reader fall behind.
        let size: libc::c_int = 8 << 20;
        // SAFETY: setsockopt(2) with an int option of its size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        RawLink { fd }
    }

    pub fn send(&self, frame: &[u8]) {
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
    pub fn recv_matching(
        &self,
        keep: impl Fn(&[u8]) -> bool,
        want: usize,
        wait: Duration,
    ) -> Vec<Vec<u8>> {
        read_matching(&self.fd, keep, want, wait)
    }
}
