//! Booting a kernel and initramfs under qemu with the serial console captured, bounded
//! in time.

use anyhow::{Context as _, Result, bail};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xtask::{cmd, interrupt};

/// How qemu runs the guest's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// KVM when the CPU exposes hardware virtualization (vmx/svm), else TCG.
    Auto,
    Kvm,
    /// Software emulation: slow, but runs anywhere.
    Tcg,
}

impl Accel {
    /// Resolves `Auto`. Not qemu's own `accel=kvm:tcg` fallback: a nested or emulated
    /// /dev/kvm without vmx/svm can open and create a VM, then abort on a vCPU MSR
    /// (`-cpu max`/`host`) or hang in early boot (`-cpu qemu64`), and qemu does not fall
    /// back from either.
    pub fn resolve(self) -> Accel {
        match self {
            Accel::Auto => {
                let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
                let kvm = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/kvm")
                    .is_ok();
                if kvm && has_virtualization(&cpuinfo) {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                }
            }
            other => other,
        }
    }
}

/// Whether some "flags" line of /proc/cpuinfo lists vmx (Intel) or svm (AMD).
pub fn has_virtualization(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// The qemu command line (without the console redirection).
pub fn command(accel: Accel, kernel: &Path, initrd: &Path, memory_mib: u32) -> Command {
    let mut qemu = Command::new("qemu-system-x86_64");
    match accel {
        Accel::Kvm => qemu.args(["-machine", "accel=kvm", "-cpu", "host"]),
        _ => qemu.args(["-machine", "accel=tcg", "-cpu", "max"]),
    };
    qemu.args(["-m", &memory_mib.to_string(), "-smp", "2"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        // panic=-1: a dead /init or a kernel fault reboots at once, and -no-reboot turns
        // that into qemu's exit instead of a hang until the timeout.
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .args(["-display", "none", "-vga", "none", "-serial", "stdio"])
        .args(["-monitor", "none", "-no-reboot", "-nodefaults"]);
    qemu
}

/// Runs `qemu` until it exits or `timeout` passes (then kills it), writing the console to
/// `log` and echoing it with `prefix`. Returns the console and whether it timed out.
pub fn boot(
    mut qemu: Command,
    log: &Path,
    prefix: &str,
    timeout: Duration,
) -> Result<(String, bool)> {
    let what = cmd::describe(&qemu);
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run `{what}`"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let prefix = prefix.to_owned();
    let reader = std::thread::spawn(move || {
        let mut console = String::new();
        let mut lines = BufReader::new(stdout);
        let mut buf = Vec::new();
        while lines.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let _ = file.write_all(&buf);
            let line = String::from_utf8_lossy(&buf);
            print!(
                "{prefix}{}",
                line.trim_end_matches(['\r', '\n']).to_owned() + "\n"
            );
            console += &line;
            buf.clear();
        }
        console
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline || interrupt::interrupted() {
            timed_out = !interrupt::interrupted();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let console = reader.join().unwrap_or_default();
    interrupt::check()?;
    if let Some(status) = status
        && !status.success()
    {
        bail!("`{what}` failed ({status}); console in {}", log.display());
    }
    Ok((console, timed_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_needs_vmx_or_svm_in_the_flags() {
        assert!(has_virtualization("flags\t\t: fpu vme de pse vmx sse\n"));
        assert!(has_virtualization("flags\t\t: fpu svm\n"));
        assert!(!has_virtualization(
            "flags\t\t: fpu vme hypervisor\nvmx flags\t: ept\n"
        ));
        assert!(!has_virtualization(""));
    }
}
