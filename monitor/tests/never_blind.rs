//! The data path never goes blind, on the namespace testbed: XDP and TC stay attached
//! (pinned links) across SIGTERM, SIGKILL and the next start, so a stream counts exactly
//! and every packet leaves with its DSCP mark while no daemon runs (a packet socket on the
//! WAN host is the oracle); `monitor detach` removes them; an upgrade across a map layout change
//! migrates the maps or states what it cannot keep.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::gateway::*;
use xtask::testbed::{GW_LAN_IF, GW_WAN_IF, GW_WAN_V4};

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
    // The oracle: the frames the WAN host receives, read by a packet socket (live from
    // its bind, unlike a capture process that needs time to start).
    let wan_host = bed.tb.wan.run(|| RawLink::open("eth0"));
    let gw_wan = GW_WAN_V4.octets();
    let audio_from_gw = |f: &[u8]| {
        f.len() > 38
            && f[12..14] == [0x08, 0x00]
            && f[14 + 9] == 17
            && f[14 + 12..14 + 16] == gw_wan
            && f[14 + 22..14 + 24] == 5004u16.to_be_bytes()
    };

    let (log, wire) = std::thread::scope(|scope| {
        let lan = &bed.tb.lan;
        let sender = scope.spawn(move || send(lan, N, Duration::from_millis(3)));
        let wire = scope
            .spawn(|| wan_host.recv_matching(audio_from_gw, N as usize, Duration::from_secs(120)));

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
        (log, wire.join().expect("wire reader"))
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
    // Every packet on the WAN wire carries EF, the gaps included.
    let marks: Vec<u8> = wire.iter().map(|f| f[14 + 1] >> 2).collect();
    assert_eq!(
        marks.len(),
        N as usize,
        "frames on the WAN host; daemon log:\n{log}"
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
    // values), its RTT map another key, and it kept media flows in the one flow map (no
    // MEDIA_FLOWS). Built from this run's flows, pinned in their place.
    let pins = bed.pin.path().to_path_buf();
    let map = |name: &str| aya::maps::Map::LruHashMap(MapData::from_pin(pins.join(name)).unwrap());
    let main: HashMap<_, FlowKey, FlowStats> = HashMap::try_from(map("FLOWS")).unwrap();
    let media: HashMap<_, FlowKey, monitor_common::MediaFlowStats> =
        HashMap::try_from(map("MEDIA_FLOWS")).unwrap();
    let media_flows = media.iter().count();
    let flows: Vec<(FlowKey, FlowStats)> = main
        .iter()
        .map(Result::unwrap)
        .chain(media.iter().map(|e| e.map(|(k, v)| (k, v.stats)).unwrap()))
        .collect();
    assert!(flows.len() >= 2, "{} flows", flows.len());
    // The stream's flows on both interfaces are media (they go back into MEDIA_FLOWS).
    assert_eq!(media_flows, 2, "{flows:?}");
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
    std::fs::remove_file(pins.join("MEDIA_FLOWS")).unwrap();
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
             all {} entries migrated ({media_flows} media flows into MEDIA_FLOWS), added \
             bytes start at zero",
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
    // The counts continue from the migrated entries, the media ones in MEDIA_FLOWS (one
    // flow each, not a second one started there).
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
