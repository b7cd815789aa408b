//! The forwarding benchmark's baseline: the pass-only floor programs (`bench_floor_xdp`,
//! `bench_floor_tc`) attached to the same hooks the monitor uses, so `cargo xtask bench`
//! compares the monitor with the bare cost of running a program there. `xdp`: XDP
//! (native) on ingress and TC on egress, as the daemon attaches by default; `tc`: TC on
//! ingress and egress, as with `xdp_mode = "off"`.
//!
//! The object is loaded as the daemon loads it (maps pinned under the config's
//! `pin_path`). Prints `attached` once the programs run, then holds them until stdin
//! closes; the links are not pinned, so they go with the process.
//!
//! Usage: bench_floor --config PATH (xdp|tc) INTERFACE...

use std::io::{Read as _, Write as _};

use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use monitor::{config, kernel::harness::Harness};
use monitor_common::program_names::{FLOOR_TC, FLOOR_XDP};

fn usage() -> ! {
    eprintln!("usage: bench_floor --config PATH (xdp|tc) INTERFACE...");
    std::process::exit(64);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, mode, interfaces) = match args.as_slice() {
        [flag, path, mode, rest @ ..] if flag == "--config" && !rest.is_empty() => {
            (path, mode.as_str(), rest)
        }
        _ => usage(),
    };
    let xdp_ingress = match mode {
        "xdp" => true,
        "tc" => false,
        _ => usage(),
    };
    let cfg = config::load(std::path::Path::new(config)).unwrap_or_else(|e| {
        eprintln!("bench_floor: {e}");
        std::process::exit(64)
    });
    let mut h = Harness::load(&cfg).unwrap_or_else(|e| {
        eprintln!("bench_floor: {e}");
        std::process::exit(1)
    });
    for name in interfaces {
        let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
            eprintln!("bench_floor: attaching {what} to {name}: {e}");
            std::process::exit(1)
        };
        if xdp_ingress {
            let p: &mut Xdp = h
                .ebpf
                .program_mut(FLOOR_XDP)
                .and_then(|p| p.try_into().ok())
                .expect("the floor XDP program");
            if let Err(e) = p.attach(name, XdpMode::Driver) {
                fail("XDP", &e);
            }
        }
        let p: &mut SchedClassifier = h
            .ebpf
            .program_mut(FLOOR_TC)
            .and_then(|p| p.try_into().ok())
            .expect("the floor TC program");
        if !xdp_ingress && let Err(e) = p.attach(name, TcAttachType::Ingress) {
            fail("TC ingress", &e);
        }
        if let Err(e) = p.attach(name, TcAttachType::Egress) {
            fail("TC egress", &e);
        }
    }
    println!("attached");
    let _ = std::io::stdout().flush();
    // Holds the links until the bench closes stdin (or the process is killed).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
