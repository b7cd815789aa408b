//! `cargo xtask kernel-matrix`: the kernel test suite (every `monitor/tests/kernel_*.rs`:
//! loading the real object, BPF_PROG_TEST_RUN, the maps) on other kernels than the
//! host's, each booted under qemu from Debian's packaged image with an initramfs that
//! runs the test executables and reports on the serial console.

mod console;
mod cpio;
mod initramfs;
mod kernel;
mod qemu;

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xtask::{interrupt, paths::target_dir, workspace_dir};

pub use qemu::Accel;

/// Packages this task needs on the host, installed on first use (not by `setup`: qemu
/// is large and only this task boots anything).
const PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "binutils"];
/// The static busybox of Debian's busybox-static.
const BUSYBOX: &str = "/bin/busybox";
/// bpftool: kernel_maps creates a pinned map of an older layout with it.
const BPFTOOL: &str = "/usr/sbin/bpftool";
/// Frames of the fuzz test in the guest: its default (1,000,000, the host's suite) takes
/// far too long under TCG; the long campaign is `cargo xtask fuzz` on the host.
const GUEST_FUZZ_FRAMES: u32 = 100_000;
const GUEST_MEMORY_MIB: u32 = 1536;

/// Options of one run.
pub struct Options {
    pub kernels: Vec<String>,
    pub accel: Accel,
    pub timeout: Duration,
    /// The workspace whose kernel tests run (default: this one).
    pub source: Option<PathBuf>,
    /// Only these `kernel_*` test files (all when empty).
    pub only: Vec<String>,
}

pub fn run(opts: &Options) -> Result<()> {
    interrupt::install()?;
    crate::setup::packages(PACKAGES)?;
    let accel = opts.accel.resolve();
    let work = target_dir().join("kernel-matrix");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let source = opts.source.clone().unwrap_or_else(workspace_dir);
    let tests = build_tests(&source, &opts.only)?;
    let names: Vec<&str> = tests.iter().map(|(n, _)| n.as_str()).collect();
    println!("kernel-matrix: test executables: {}", names.join(", "));
    let plan = initramfs::Plan {
        tests: tests.clone(),
        env: vec![("MONITOR_FUZZ_FRAMES".into(), GUEST_FUZZ_FRAMES.to_string())],
        host_programs: vec![PathBuf::from(BPFTOOL)],
    };
    let tree = initramfs::tree(&plan, Path::new(BUSYBOX), &work.join("staging"))?;
    let initrd = work.join("initramfs.cpio.gz");
    initramfs::write_gzip(&tree, &initrd)?;
    println!(
        "kernel-matrix: initramfs {} ({} MiB)",
        initrd.display(),
        std::fs::metadata(&initrd)?.len() >> 20
    );

    let mut failed = Vec::new();
    let mut lines = Vec::new();
    for spec in &opts.kernels {
        interrupt::check()?;
        let package = kernel::resolve(spec)?;
        let vmlinuz = kernel::vmlinuz(&package, &work)?;
        let log = work.join(format!("console-{spec}.log"));
        println!(
            "kernel-matrix: booting {package} ({accel:?}); console in {}",
            log.display()
        );
        let started = Instant::now();
        let qemu = qemu::command(accel, &vmlinuz, &initrd, GUEST_MEMORY_MIB);
        let (capture, timed_out) = qemu::boot(qemu, &log, &format!("  [{spec}] "), opts.timeout)?;
        let elapsed = started.elapsed();
        let boot = console::parse(&capture);
        let ok = !timed_out && boot.ok(&names);
        lines.push(summary(spec, &package, &boot, &names, timed_out, elapsed));
        if !ok {
            failed.push(spec.clone());
        }
    }
    println!("\nkernel-matrix results ({accel:?}):");
    for line in &lines {
        println!("{line}");
    }
    if failed.is_empty() {
        println!("kernel-matrix: PASS on {}", opts.kernels.join(", "));
        Ok(())
    } else {
        bail!("kernel-matrix: FAILED on {}", failed.join(", "))
    }
}

/// The per-kernel report: the guest's kernel, then one line per test executable.
fn summary(
    spec: &str,
    package: &str,
    boot: &console::Boot,
    expected: &[&str],
    timed_out: bool,
    elapsed: Duration,
) -> String {
    let mut s = format!(
        "{spec}: {package} (guest uname -r: {}), {:.0} s{}\n",
        boot.kernel.as_deref().unwrap_or("never reached /init"),
        elapsed.as_secs_f64(),
        if timed_out { ", TIMED OUT" } else { "" }
    );
    for name in expected {
        let line = match boot.binaries.iter().find(|b| b.name == *name) {
            None => "not run".to_owned(),
            Some(b) if b.ok() => format!("ok ({} passed, {} ignored)", b.passed, b.ignored),
            Some(b) => format!(
                "FAILED (exit {}, {} passed, {} failed{}{})",
                b.status
                    .map_or("none: guest died".into(), |s| s.to_string()),
                b.passed,
                b.failed,
                if b.failures.is_empty() { "" } else { ": " },
                b.failures.join(", ")
            ),
        };
        s += &format!("  {name}: {line}\n");
    }
    s += &format!(
        "  => {}",
        if !timed_out && boot.ok(expected) {
            "PASS"
        } else {
            "FAIL"
        }
    );
    s
}

/// Builds (without running) every `monitor/tests/kernel_*.rs` and returns (name,
/// executable) from cargo's JSON messages.
fn build_tests(source: &Path, only: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut names = kernel_test_names(&source.join("monitor/tests"))?;
    if !only.is_empty() {
        let unknown: Vec<_> = only.iter().filter(|o| !names.contains(o)).collect();
        if !unknown.is_empty() {
            bail!(
                "no kernel test file named {unknown:?}; the kernel tests are: {}",
                names.join(", ")
            );
        }
        names.retain(|n| only.contains(n));
    }
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.args([
        "test",
        "--no-run",
        "--package",
        "monitor",
        "--message-format=json",
    ]);
    for name in &names {
        cargo.args(["--test", name]);
    }
    println!("kernel-matrix: building {}", names.join(", "));
    let out = cargo
        .current_dir(source)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !out.status.success() {
        bail!(
            "building the kernel tests failed ({}): see above",
            out.status
        );
    }
    let found = test_executables(&String::from_utf8_lossy(&out.stdout));
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !found.iter().any(|(f, _)| f == *n))
        .collect();
    if !missing.is_empty() {
        bail!("cargo built no executable for {missing:?}");
    }
    Ok(found)
}

/// The `kernel_*` integration tests in `dir`, sorted.
fn kernel_test_names(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".rs")?;
            stem.starts_with("kernel_").then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

/// (test target name, executable) of every test artifact in cargo's JSON messages.
fn test_executables(json: &str) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = json
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"))
        })
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_owned();
            let exe = m["executable"].as_str()?;
            Some((name, PathBuf::from(exe)))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_executables_come_from_cargos_artifact_messages() {
        let json = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"monitor"},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"kernel_parser"},"executable":"/t/debug/deps/kernel_parser-1a"}
{"reason":"build-script-executed","package_id":"x"}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"kernel_maps"},"executable":"/t/debug/deps/kernel_maps-2b"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            test_executables(json),
            vec![
                (
                    "kernel_maps".into(),
                    PathBuf::from("/t/debug/deps/kernel_maps-2b")
                ),
                (
                    "kernel_parser".into(),
                    PathBuf::from("/t/debug/deps/kernel_parser-1a")
                ),
            ]
        );
    }

    #[test]
    fn every_kernel_test_file_is_in_the_matrix() {
        let names = kernel_test_names(&workspace_dir().join("monitor/tests")).unwrap();
        assert!(names.contains(&"kernel_parser".to_owned()), "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("kernel_")));
        assert!(!names.iter().any(|n| n.contains("testbed")));
    }

    #[test]
    fn the_summary_names_each_binary_and_the_verdict() {
        let boot = console::parse(
            "@@KM KERNEL 6.1.0-56-amd64\n@@KM BEGIN kernel_a\ntest result: ok. 3 passed; \
             0 failed; 1 ignored; 0 measured; 0 filtered out\n@@KM END kernel_a status=0\n",
        );
        let s = summary(
            "6.1",
            "linux-image-6.1.0-56-amd64-unsigned",
            &boot,
            &["kernel_a", "kernel_b"],
            false,
            Duration::from_secs(42),
        );
        assert_eq!(
            s,
            "6.1: linux-image-6.1.0-56-amd64-unsigned (guest uname -r: 6.1.0-56-amd64), 42 s\n\
             \x20 kernel_a: ok (3 passed, 1 ignored)\n\
             \x20 kernel_b: not run\n\
             \x20 => FAIL"
        );
    }
}
