//! What a start writes to the journal (the daemon's stderr): one line per step, and no
//! dump of the kernel's BTF verifier log when the kernel rejects the object's BTF —
//! at most the one line of monitor::logging.

use xtask::bed::GatewayBed;

#[test]
fn a_start_writes_a_few_lines_and_no_btf_dump() {
    let bed = GatewayBed::launch();
    bed.wait_status("the first poll", |s| s["daemon"]["uptime_s"].is_u64());
    let log = bed.daemon().log();
    println!("{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        !log.contains("object BTF couldn't be loaded"),
        "aya's BTF dump reached the journal"
    );
    let btf_lines = lines.iter().filter(|l| l.contains("BTF")).count();
    assert!(btf_lines <= 1, "{btf_lines} lines about BTF");
    assert!(lines.len() <= 25, "{} lines at start:\n{log}", lines.len());
    assert!(
        lines.iter().all(|l| l.len() <= 400),
        "a line longer than 400 characters"
    );
}
