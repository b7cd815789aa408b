//! Fills a pinned flow map with synthetic flows for `cargo xtask bench`'s daemon
//! measurements: `bench_fill <pin dir> <count>`.

use aya::maps::{HashMap, Map, MapData};
use monitor_common::{Class, FlowKey, FlowStats};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(count)) = (args.next(), args.next().and_then(|c| c.parse::<u32>().ok()))
    else {
        eprintln!("usage: bench_fill <pin dir> <count>");
        std::process::exit(64);
    };
    let data = MapData::from_pin(format!("{dir}/FLOWS")).unwrap_or_else(|e| {
        eprintln!("cannot open {dir}/FLOWS: {e}");
        std::process::exit(1);
    });
    let mut flows: HashMap<_, FlowKey, FlowStats> =
        HashMap::try_from(Map::LruHashMap(data)).expect("an LRU hash map");
    for i in 0..count {
        // Inner hosts 192.0.2.x, ports spread so every key is distinct.
        let key = FlowKey {
            src_addr: FlowKey::v4_mapped([192, 0, 2, (i % 250) as u8 + 1]),
            dst_addr: FlowKey::v4_mapped([203, 0, 113, 10]),
            ifindex: 2,
            src_port: (i / 250) as u16,
            dst_port: 5004,
            protocol: 17,
            family: 4,
            direction: (i / (250 * 65536)) as u8 & 1,
            _pad: 0,
        };
        let stats = FlowStats {
            packets: 1,
            bytes: 200,
            class: Class::Media as u32,
            ..Default::default()
        };
        flows.insert(key, stats, 0).expect("insert");
    }
}
