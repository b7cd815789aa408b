//! The maps as the daemon reads and re-adopts them: batched reads return every flow
//! exactly, and pinned maps of another layout are refused instead of reused.

mod support;

use std::{collections::HashSet, net::Ipv4Addr, process::Command};

use monitor::kernel::loader;
use support::{Kernel, XDP_PASS, key_v4};
use xtask::{
    PinDir,
    frames::{self, Ipv4, L4},
};

#[test]
fn batched_snapshot_returns_every_flow_exactly_once() {
    const FLOWS: u16 = 3000;
    let mut k = Kernel::load_with("flow_table_size = 8192", "");
    let mut expected = HashSet::new();
    // To UDP 443 (class other_webex): the main table. Media goes to its own.
    for i in 0..FLOWS {
        let port = 20000 + i;
        let ip = Ipv4::new(Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(203, 0, 113, 10));
        assert_eq!(k.xdp(&frames::v4(&ip, &L4::udp(port, 443, 40))), XDP_PASS);
        expected.insert(key_v4([192, 0, 2, 10], port, [203, 0, 113, 10], 443, 17, 0));
    }
    let snap = k.snapshot();
    assert_eq!(snap.flows.len(), FLOWS as usize);
    let got: HashSet<_> = snap.flows.iter().map(|(key, _)| *key).collect();
    assert_eq!(got, expected);
    assert!(
        snap.flows
            .iter()
            .all(|(_, v)| v.packets == 1 && v.bytes == 20 + 8 + 40)
    );
    let fill = snap
        .maps
        .iter()
        .find(|m| m.name == "FLOWS")
        .expect("FLOWS fill");
    assert_eq!((fill.entries, fill.max_entries), (FLOWS as u64, 8192));
}

#[test]
fn a_pinned_flow_map_of_another_layout_is_moved_aside_and_migrated() {
    let pin = PinDir::new();
    std::fs::create_dir_all(pin.path()).unwrap();
    // What an older version with a 56-byte flow value would have left behind.
    let flows = pin.path().join("FLOWS");
    let out = Command::new("bpftool")
        .args(["map", "create"])
        .arg(&flows)
        .args([
            "type", "lru_hash", "key", "44", "value", "56", "entries", "1024", "name", "FLOWS",
        ])
        .output()
        .expect("bpftool");
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cfg = support::config(pin.path(), "", "");
    let loaded = loader::load(&cfg).unwrap_or_else(|e| panic!("loading: {e}"));
    let aside = pin.path().join("replaced").join("FLOWS");
    assert_eq!(loaded.pins.replaced.len(), 1);
    assert_eq!(loaded.pins.replaced[0].aside, aside);
    assert!(aside.exists(), "the old map waits for its migration");
    let fresh = aya::maps::MapInfo::from_pin(&flows).unwrap();
    assert_eq!(
        fresh.value_size() as usize,
        std::mem::size_of::<monitor_common::FlowStats>()
    );
    let migration = monitor::kernel::migrate::Migration::copy(pin.path(), &loaded.pins.replaced);
    let lines = migration.finish();
    assert_eq!(
        lines,
        [format!(
            "FLOWS: layout changed (key/value bytes 44/{} were 44/56); all 0 entries \
             migrated, added bytes start at zero",
            fresh.value_size()
        )]
    );
    assert!(!aside.exists(), "released after the migration");
}

#[test]
fn reloading_with_the_same_pins_continues_the_counters() {
    let pin = PinDir::new();
    let frame = frames::v4(
        &Ipv4::new(Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(203, 0, 113, 10)),
        &L4::udp(40000, 5004, 40),
    );
    let key = key_v4([192, 0, 2, 10], 40000, [203, 0, 113, 10], 5004, 17, 0);
    {
        let mut k = Kernel::load_in(PinDir::at(pin.path()), "", "");
        for _ in 0..3 {
            k.xdp(&frame);
        }
        assert_eq!(k.flow(&key).unwrap().packets, 3);
        std::mem::forget(k.pin); // keep the pins for the second load
    }
    let mut k = Kernel::load_in(PinDir::at(pin.path()), "", "");
    k.xdp(&frame);
    assert_eq!(k.flow(&key).unwrap().packets, 4);
    assert_eq!(k.counters().seen, 4);
}
