//! Times one poll's analysis (report and detectors) in-process on a synthetic snapshot
//! like `bench_fill`'s, without a kernel: `bench_analysis <flows> [polls] [changing]`
//! (`changing`: how many of the flows count a packet more each poll). For
//! profiling the daemon's analysis path (`perf record`); `cargo xtask bench` measures
//! the real daemon.

/// This thread's CPU time in seconds: on a shared machine wall time says little.
fn cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

use monitor::{
    daemon::{analysis, detectors::Detectors, report},
    flows::rows::FlowRows,
    flows::table::FlowTable,
    kernel::snapshot::Snapshot,
    learn::run::View as LearnView,
    quality::tracker::Tracker,
    status::model::InterfaceStatus,
};
use monitor_common::{Class, FlowKey, FlowStats};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(65_536);
    let polls: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let changing: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let iface = |name: &str, ifindex, role: &str| InterfaceStatus {
        name: name.into(),
        ifindex,
        role: role.into(),
        ..Default::default()
    };
    let interfaces = vec![iface("lan0", 2, "lan"), iface("wan0", 3, "wan")];
    let info = report::StaticInfo::for_interfaces(interfaces.clone());
    let flows: FlowTable = (0..n)
        .map(|i| {
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
            (key, stats)
        })
        .collect();
    let mut tracker = Tracker::new();
    let mut detectors = Detectors::new(Default::default());
    let mut rows = FlowRows::new();
    let learn = std::sync::Mutex::new(LearnView::default());
    let mut flows = flows;
    for poll in 0..polls {
        // The busiest `changing` of the flows count a packet more each poll.
        for (_, v) in flows.iter_mut().take(changing) {
            v.packets += 1;
            v.bytes += 200;
        }
        let now = monitor::kernel::snapshot::monotonic_ns();
        let snap = Snapshot {
            taken_mono_ns: now,
            flows: flows.clone(),
            ..Default::default()
        };
        let started = cpu_s();
        let done = analysis::analyse(
            &mut detectors,
            &mut tracker,
            &mut rows,
            snap,
            &info,
            &interfaces,
            &learn,
        );
        let total = cpu_s() - started;
        println!(
            "poll {poll} (CPU time): {:.1} ms ({:.3} µs/flow), {} rows made, {} flows shown",
            total * 1e3,
            total * 1e6 / n.max(1) as f64,
            done.report.scale.rows_made,
            done.report.flows.len(),
        );
    }
}
