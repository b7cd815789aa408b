//! The verifier's work per program, read back from the kernel (`verified_insns` of
//! bpf_prog_info). The kernel refuses a program whose verification walks more than
//! 1,000,000 instructions, and how much of that one program needs differs between
//! verifier versions by several times either way: before the programs were split into
//! tail-called stages, 6.18 verified the TC program in 192,270 instructions and 6.1
//! gave up at 1,000,000; after the split the flow stage needs about 100,000 on 6.18 and
//! 31,000 on 6.1, and once the flow stage's `memcpy`/`memset` calls were gone (see
//! `parse::Parsed::copy_addrs`) about 13,000 on 6.18 and 9,000 on 6.1. A program that
//! needs a large share of the limit on one kernel is one verifier change away from not
//! loading on another.
//! This test runs first in `cargo xtask kernel-matrix` (and alone with `--test
//! kernel_budget`): on a kernel that refuses a program it names it and shows the end of
//! the verifier's log.

mod support;

use std::process::Command;

use aya::programs::Program;
use monitor::kernel::loader;
use monitor_common::program_names;
use xtask::PinDir;

/// At most this many verified instructions per program on the kernel under test: a
/// tenth of the kernel's limit (the largest program needs about 22,000 on 6.18).
const BUDGET: u32 = 100_000;

#[test]
fn every_program_loads_well_within_the_verifier_budget() {
    let pin = PinDir::new();
    let cfg = support::config(pin.path(), "", "");
    // Loads the maps and the tail-call targets (they are installed at load).
    let mut ebpf = match loader::load(&cfg) {
        Ok(l) => l.ebpf,
        Err(e) => panic!("loading the object failed: {}", tail_of(&e.to_string())),
    };
    let mut refused = Vec::new();
    for (name, prog) in ebpf.programs_mut() {
        let loaded = match prog {
            Program::Xdp(p) => p.fd().is_ok() || keep_error(name, p.load(), &mut refused),
            Program::SchedClassifier(p) => {
                p.fd().is_ok() || keep_error(name, p.load(), &mut refused)
            }
            other => panic!("unexpected program type {:?} for {name}", other.prog_type()),
        };
        assert!(loaded || refused.iter().any(|(n, _)| n == name));
    }
    assert!(refused.is_empty(), "the kernel refused: {refused:#?}");

    let mut counts: Vec<(String, u32)> = ebpf
        .programs()
        .map(|(name, prog)| {
            let info = prog.info().expect("program info");
            let n = info
                .verified_instruction_count()
                .expect("this kernel reports verified_insns (5.16 and later)");
            (name.to_owned(), n)
        })
        .collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    for (name, n) in &counts {
        println!("{name}: {n} instructions verified");
    }
    assert!(counts.len() >= 6, "{counts:?}");

    // The entry programs run on every frame: no call to a subprogram on their own path.
    // On this target a 16-byte copy or a run of zero stores can become a call to an
    // out-of-line byte loop (`memcpy`/`memset`), which cost ~50 ns per packet and most
    // of the verifier's work before they were removed. The calls allowed are the rare
    // paths kept out of line on purpose: the learning sample's copy (`sample::copy`,
    // only sampling candidates reach it) and the DSCP rewrite (`dscp::rewrite`, only
    // packets that need a new mark); what they call themselves is their business.
    for name in [
        program_names::XDP,
        program_names::TC,
        program_names::TC_INGRESS,
    ] {
        let prog = ebpf.program(name).expect("entry program");
        let id = prog.info().expect("program info").id();
        let out = Command::new("bpftool")
            .args(["prog", "dump", "xlated", "id", &id.to_string()])
            .output()
            .expect("bpftool runs");
        assert!(out.status.success(), "bpftool: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let calls = subprogram_calls(&text);
        // The entry program's own instructions end where the first subprogram begins.
        let own_end = calls.iter().map(|c| c.1).min().unwrap_or(usize::MAX);
        let banned: Vec<&str> = calls
            .iter()
            .filter(|c| c.0 < own_end && !RARE_PATHS.iter().any(|r| c.2.ends_with(r)))
            .map(|c| c.3)
            .collect();
        assert!(banned.is_empty(), "{name} calls subprograms: {banned:#?}");
        assert!(
            text.contains("bpf_tail_call"),
            "{name} hands over to the flow stage"
        );
    }
    let over: Vec<_> = counts.iter().filter(|(_, n)| *n > BUDGET).collect();
    assert!(
        over.is_empty(),
        "over the budget of {BUDGET} verified instructions: {over:?}"
    );
}

/// How the rare paths an entry program may call are named at the end of bpftool's
/// callee names: `sample::copy` (a generic instance, escaped) and `dscp::rewrite`.
const RARE_PATHS: [&str; 3] = [
    "_copy_3C_aya_ebpf_3A__3A_programs_3A__3A_xdp_3A__3A_XdpContext_3E_",
    "_copy_3C_aya_ebpf_3A__3A_programs_3A__3A_tc_3A__3A_TcContext_3E_",
    "_rewrite",
];

/// The BPF-to-BPF calls of an xlated listing: (instruction, target instruction, callee
/// name, line), from lines like ` 1556: (85) call pc+554#bpf_prog_<tag>_<name>`.
fn subprogram_calls(text: &str) -> Vec<(usize, usize, &str, &str)> {
    text.lines()
        .filter_map(|line| {
            let (at, rest) = line.trim().split_once(": ")?;
            let (_, call) = rest.split_once("call pc")?;
            let (offset, callee) = call.split_once('#').unwrap_or((call, ""));
            let at: usize = at.parse().ok()?;
            let offset: isize = offset.trim_start_matches('+').parse().ok()?;
            let target = (at as isize + offset + 1) as usize;
            Some((at, target, callee, line))
        })
        .collect()
}

fn keep_error(
    name: &str,
    r: Result<(), aya::programs::ProgramError>,
    refused: &mut Vec<(String, String)>,
) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => {
            refused.push((name.to_owned(), tail_of(&e.to_string())));
            false
        }
    }
}

/// The last lines of a verifier log: the reason and the instruction count are there.
fn tail_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}
