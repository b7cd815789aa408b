//! Map pressure: flow tables offered five times what they hold. Media flows have their
//! own table, so a flood of other new flows cannot evict a call however idle it is;
//! within a table the kernel's LRU evicts the least recently seen flows, so calls that
//! keep sending stay while one-packet media flows go. The daemon reports the evictions
//! (created minus present) and the fill of each table.

mod support;

use std::net::Ipv4Addr;

use monitor::daemon::report::{self, StaticInfo};
use support::{Kernel, XDP_PASS, key_v4};
use xtask::frames::{self, Ipv4, L4};

const TABLE: u32 = 1000;
const OFFERED: u16 = 5000;
const CALLS: u16 = 4;

/// Media (to UDP 5004) from `port`.
fn frame(port: u16) -> Vec<u8> {
    to(port, 5004)
}

fn to(port: u16, dst_port: u16) -> Vec<u8> {
    frames::v4(
        &Ipv4::new(Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(203, 0, 113, 10)),
        &L4::udp(port, dst_port, 160),
    )
}

/// The media table of a main table of [`TABLE`] entries.
const MEDIA_TABLE: u64 = monitor_common::flow::MEDIA_TABLE_MIN as u64;

fn info() -> StaticInfo {
    StaticInfo::for_interfaces(Vec::new())
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
        present <= MEDIA_TABLE,
        "{present} media flows in a table of {MEDIA_TABLE}"
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

    // What status shows: the evictions and a full map, all in the media table.
    let r = report::build(&info(), &snap, snap.taken_mono_ns);
    assert_eq!(r.counters.flows_evicted, created - present);
    let fill = r.maps.iter().find(|m| m.name == "MEDIA_FLOWS").unwrap();
    assert_eq!((fill.entries, fill.max_entries), (present, MEDIA_TABLE));
    let t = &r.scale.flow_tables;
    assert_eq!(
        (t.media.created, t.media.evicted),
        (created, created - present)
    );
    assert_eq!(
        (t.other.created, t.other.evicted, t.other.entries),
        (0, 0, 0)
    );
}

#[test]
fn a_flood_of_other_flows_never_evicts_an_idle_call() {
    let mut k = Kernel::load_with(&format!("flow_table_size = {TABLE}"), "");
    let calls: Vec<u16> = (52000..52000 + CALLS).collect();
    // One packet per call, then a flood of one-packet flows to UDP 443 (other_webex)
    // five times the main table, then one more packet per call: the calls were the
    // least recently seen flows of all, and still nothing of theirs is lost.
    for c in &calls {
        assert_eq!(k.xdp(&frame(*c)), XDP_PASS);
    }
    for port in 10000..10000 + OFFERED {
        assert_eq!(k.xdp(&to(port, 443)), XDP_PASS);
    }
    for c in &calls {
        assert_eq!(k.xdp(&frame(*c)), XDP_PASS);
    }
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
            .unwrap_or_else(|| panic!("the call from port {port} was evicted by the flood"));
        assert_eq!(s.packets, 2, "call from port {port} lost no packet");
    }

    let snap = k.snapshot();
    let r = report::build(&info(), &snap, snap.taken_mono_ns);
    let t = &r.scale.flow_tables;
    assert_eq!(
        (t.media.entries, t.media.created, t.media.evicted),
        (CALLS as u64, CALLS as u64, 0)
    );
    assert_eq!(t.other.created, OFFERED as u64);
    assert!(t.other.entries <= TABLE as u64, "{t:?}");
    assert_eq!(t.other.evicted, OFFERED as u64 - t.other.entries);
    assert_eq!(t.other.max_entries, TABLE as u64);
    assert_eq!(
        r.counters.flows_evicted,
        OFFERED as u64 - t.other.entries,
        "every eviction was of the flood"
    );
}
