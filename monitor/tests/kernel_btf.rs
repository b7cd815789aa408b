//! The object loads with its BTF: every program the daemon loads carries func and line
//! info (what `bpftool prog profile`, `perf` and `bpftool prog dump xlated ... linum`
//! need), and aya logs no rejected-BTF warning. Before `kernel::btf_names` the kernel
//! refused the object's BTF for a union named `MaybeUninit<u8>` and the programs loaded
//! without it.

mod support;

use std::{
    process::Command,
    sync::{Mutex, OnceLock},
};

use log::{Level, Log, Metadata, Record};
use monitor::kernel::loader;
use monitor_common::program_names;
use xtask::PinDir;

/// Every warning logged while the test runs.
fn warnings() -> &'static Mutex<Vec<String>> {
    static W: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    W.get_or_init(|| Mutex::new(Vec::new()))
}

struct Capture;

impl Log for Capture {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= Level::Warn
    }
    fn log(&self, r: &Record) {
        if r.level() <= Level::Warn {
            warnings()
                .lock()
                .unwrap()
                .push(format!("{}: {}", r.target(), r.args()));
        }
    }
    fn flush(&self) {}
}

fn bpftool(args: &[&str]) -> String {
    let out = Command::new("bpftool")
        .args(args)
        .output()
        .expect("bpftool runs");
    assert!(out.status.success(), "bpftool {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_loaded_program_carries_btf_func_and_line_info() {
    static LOGGER: Capture = Capture;
    log::set_logger(&LOGGER).expect("the only logger of this test binary");
    log::set_max_level(log::LevelFilter::Warn);

    let pin = PinDir::new();
    let cfg = support::config(pin.path(), "", "");
    let ebpf = loader::load(&cfg).expect("loading the object").ebpf;

    let warned = warnings().lock().unwrap().clone();
    assert!(
        !warned.iter().any(|w| w.contains("BTF")),
        "a BTF warning was logged: {warned:#?}"
    );

    let mut loaded = 0;
    for (name, prog) in ebpf.programs() {
        // The floor programs are loaded by the bench harness only.
        let Ok(info) = prog.info() else { continue };
        loaded += 1;
        let id = info.id().to_string();
        assert!(
            info.btf_id().is_some_and(|b| b > 0),
            "{name} loaded without BTF"
        );
        let show: serde_json::Value =
            serde_json::from_str(&bpftool(&["-j", "prog", "show", "id", &id])).unwrap();
        assert!(
            show["btf_id"].as_u64().is_some_and(|b| b > 0),
            "bpftool shows no btf_id for {name}: {show}"
        );
        // Func info names the program; line info gives the source lines, as
        // "; <source text> [file <path>:<line> line_num:<n> line_col:<c>]".
        let xlated = bpftool(&["prog", "dump", "xlated", "id", &id, "linum"]);
        assert!(
            xlated.lines().next().is_some_and(|l| l.contains(name)),
            "{name}: no func info in the dump: {}",
            xlated.lines().take(3).collect::<Vec<_>>().join("\n")
        );
        let lines = xlated.lines().filter(|l| l.contains(" line_num:")).count();
        assert!(
            lines >= 10 && xlated.contains("monitor-ebpf/src/"),
            "{name}: {lines} source lines in the dump:\n{}",
            xlated.lines().take(20).collect::<Vec<_>>().join("\n")
        );
    }
    // The two entry programs and the four stages.
    assert!(loaded >= 6, "only {loaded} programs loaded");
    for name in [program_names::XDP, program_names::TC] {
        assert!(
            ebpf.program(name).unwrap().info().is_ok(),
            "{name} not loaded"
        );
    }
}
