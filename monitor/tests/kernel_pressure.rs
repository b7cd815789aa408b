//! Map pressure: a flow map of 1,000 entries offered 5,000 flows. The kernel's LRU evicts
//! the least recently seen flows, so calls that keep sending stay while one-packet flows
//! go; the daemon reports the evictions (created minus present) and the fill.

mod support;

use std::net::Ipv4Addr;

use monitor::daemon::report::{self, StaticInfo};
use support::{Kernel, XDP_PASS, key_v4};
use xtask::frames::{self, Ipv4, L4};

const TABLE: u32 = 1000;
const OFFERED: u16 = 5000;
const CALLS: u16 = 4;

fn frame(port: u16) -> Vec<u8> {
    frames::v4(
        &Ipv4::new(Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(203, 0, 113, 10)),
        &L4::udp(port, 5004, 160),
    )
}

#[test]
fn active_calls_survive_while_one_packet_flows_are_evicted_and_counted() {
    let mut k = Kernel::load_with(&format!("flow_table_size = {TABLE}"), "");
    let calls: Vec<u16> = (52000..52000 + CALLS).collect();
    let mut call_packets = 0u64;
    for (i, port) in (10000..10000 + OFFERED).enumerate() {
        // The calls send a packet between every 20 new flows: they stay recently used.
        if i % 20 == 0 {
            for c in &calls {
                assert_eq!(k.xdp(&frame(*c)), XDP_PASS);
            }
            call_packets += 1;
        }
        assert_eq!(k.xdp(&frame(port)), XDP_PASS);
    }

    let snap = k.snapshot();
    let c = snap.counters;
    let created = (OFFERED + CALLS) as u64;
    assert_eq!(c.flows_created, created, "every new 5-tuple created a flow");
    assert_eq!(
        c.flow_insert_failed, 0,
        "the LRU makes room instead of failing"
    );
    let present = snap.flows.len() as u64;
    assert!(
        present <= TABLE as u64,
        "{present} flows in a table of {TABLE}"
    );
    for port in &calls {
        let s = k
            .flow(&key_v4(
                [192, 0, 2, 10],
                *port,
                [203, 0, 113, 10],
                5004,
                17,
                0,
            ))
            .unwrap_or_else(|| panic!("active call from port {port} was evicted"));
        assert_eq!(
            s.packets, call_packets,
            "call from port {port} lost no packet"
        );
    }
    // The earliest one-packet flows went first.
    assert!(
        k.flow(&key_v4(
            [192, 0, 2, 10],
            10000,
            [203, 0, 113, 10],
            5004,
            17,
            0
        ))
        .is_none()
    );

    // What status shows: the evictions and a full map.
    let info = StaticInfo {
        pid: 1,
        started_at_unix_s: 0,
        started_mono_ns: 0,
        config_path: String::new(),
        pin_path: String::new(),
        poll_interval_ms: 1000,
        adopted_pinned_maps: false,
        pin_migrations: Vec::new(),
        interfaces: Vec::new(),
        dscp: Default::default(),
        quality: Default::default(),
    };
    let r = report::build(&info, &snap, snap.taken_mono_ns);
    assert_eq!(r.counters.flows_evicted, created - present);
    let fill = r.maps.iter().find(|m| m.name == "FLOWS").unwrap();
    assert_eq!((fill.entries, fill.max_entries), (present, TABLE as u64));
}
