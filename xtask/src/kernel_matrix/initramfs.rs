//! The guest's root filesystem: static busybox, the kernel test executables with every
//! shared library they load, bpftool (one test drives it), and an `/init` that mounts
//! what the tests need, runs each executable with start/end markers on the serial
//! console, and powers the machine off.

use anyhow::{Context as _, Result, bail};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use xtask::cmd;

use super::console::MARK;
use super::cpio::Cpio;

/// Where the test executables live in the guest.
pub const TESTS_DIR: &str = "tests";
/// Busybox applets `/init` and the tests call (bpftool is copied, not an applet).
const APPLETS: &[&str] = &[
    "sh", "mount", "mkdir", "echo", "cat", "ip", "uname", "poweroff", "sync", "ls", "env",
];

/// What the guest runs and how.
pub struct Plan {
    /// (name, host path) of each test executable, run in this order.
    pub tests: Vec<(String, PathBuf)>,
    /// Environment of every test run (e.g. a smaller fuzz frame count for TCG's speed).
    pub env: Vec<(String, String)>,
    /// Host programs copied to the same path in the guest, with their libraries.
    pub host_programs: Vec<PathBuf>,
}

enum Node {
    Dir,
    File { source: PathBuf, mode: u32 },
    Bytes { data: Vec<u8>, mode: u32 },
    Symlink(String),
}

/// The guest's tree, path (relative, no leading '/') to node; sorted, so a directory is
/// always written before what it holds, and a library needed twice is copied once.
#[derive(Default)]
pub struct Tree(BTreeMap<String, Node>);

impl Tree {
    fn add(&mut self, path: &str, node: Node) {
        let path = path.trim_start_matches('/');
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            self.0.insert(dir.to_string_lossy().into_owned(), Node::Dir);
            parent = dir.parent();
        }
        self.0.insert(path.to_owned(), node);
    }

    pub fn dir(&mut self, path: &str) {
        self.add(path, Node::Dir);
    }

    pub fn file(&mut self, path: &str, source: &Path, mode: u32) {
        let source = source.to_owned();
        self.add(path, Node::File { source, mode });
    }

    pub fn bytes(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        self.add(path, Node::Bytes { data, mode });
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.add(path, Node::Symlink(target.to_owned()));
    }

    /// The paths, in archive order.
    #[cfg(test)]
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Writes the tree as a newc archive (host files are read as they are written).
    pub fn write(&self, out: impl Write) -> Result<()> {
        let mut cpio = Cpio::new(out);
        for (path, node) in &self.0 {
            match node {
                Node::Dir => cpio.dir(path, 0o755)?,
                Node::File { source, mode } => {
                    let data = std::fs::read(source)
                        .with_context(|| format!("reading {}", source.display()))?;
                    cpio.file(path, *mode, &data)?
                }
                Node::Bytes { data, mode } => cpio.file(path, *mode, data)?,
                Node::Symlink(target) => cpio.symlink(path, target)?,
            }
        }
        cpio.finish()?;
        Ok(())
    }
}

/// The guest tree for `plan`: `busybox` is the static busybox's host path; test
/// executables are first stripped of debug info into `staging` (they shrink tenfold and
/// TCG loads them faster; symbols stay, so backtraces still name functions).
pub fn tree(plan: &Plan, busybox: &Path, staging: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    for dir in ["dev", "proc", "sys", "tmp", "run", "root"] {
        tree.dir(dir);
    }
    tree.file("bin/busybox", busybox, 0o755);
    for applet in APPLETS {
        tree.symlink(&format!("bin/{applet}"), "busybox");
    }
    std::fs::create_dir_all(staging).with_context(|| format!("creating {}", staging.display()))?;
    let mut needs_libs = plan.host_programs.clone();
    for (name, exe) in &plan.tests {
        let stripped = staging.join(name);
        cmd::run(
            Command::new("objcopy")
                .arg("--strip-debug")
                .arg(exe)
                .arg(&stripped),
        )?;
        tree.file(&format!("{TESTS_DIR}/{name}"), &stripped, 0o755);
        needs_libs.push(exe.clone());
    }
    for program in &plan.host_programs {
        tree.file(&program.to_string_lossy(), program, 0o755);
    }
    for program in &needs_libs {
        let out = cmd::run(Command::new("ldd").arg(program))?;
        for lib in ldd_paths(&String::from_utf8_lossy(&out.stdout)) {
            // Copied to the path ldd names (contents, not the symlink), which is where
            // the loader looks in the guest too.
            tree.file(&lib.to_string_lossy(), &lib, 0o755);
        }
    }
    let names: Vec<&str> = plan.tests.iter().map(|(n, _)| n.as_str()).collect();
    tree.bytes("init", init_script(&names, &plan.env).into_bytes(), 0o755);
    Ok(tree)
}

/// Writes `tree` gzip-compressed (the kernel's default initramfs compression) to `path`.
pub fn write_gzip(tree: &Tree, path: &Path) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut gzip = Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("cannot run gzip")?;
    let written = tree.write(gzip.stdin.take().expect("piped stdin"));
    let status = gzip.wait()?;
    written?;
    if !status.success() {
        bail!("gzip failed ({status}) writing {}", path.display());
    }
    Ok(())
}

/// The absolute library paths in `ldd` output: "libc.so.6 => /lib/.../libc.so.6 (0x..)"
/// and the loader's own "/lib64/ld-linux-x86-64.so.2 (0x..)"; the vDSO has no file.
pub fn ldd_paths(output: &str) -> Vec<PathBuf> {
    output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The guest's `/init` (busybox sh). Each test executable runs single-threaded (TCG has
/// few vCPUs, and the tests share the kernel's BPF state); its exit status follows its
/// END marker. If the script itself dies, the kernel panics and `panic=-1` plus qemu's
/// `-no-reboot` end the machine: a missing DONE marker tells the report.
pub fn init_script(tests: &[&str], env: &[(String, String)]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         # Written by `cargo xtask kernel-matrix`.\n\
         export PATH=/bin:/usr/sbin:/usr/bin HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mount -t bpf bpf /sys/fs/bpf\n\
         mount -t tmpfs tmpfs /tmp\n\
         mount -t tmpfs tmpfs /run\n\
         ip link set lo up\n",
    );
    for (key, value) in env {
        s += &format!("export {key}='{value}'\n");
    }
    s += &format!("echo \"{MARK} KERNEL $(uname -r)\"\n");
    for test in tests {
        s += &format!(
            "echo \"{MARK} BEGIN {test}\"\n\
             /{TESTS_DIR}/{test} --test-threads=1 --show-output\n\
             echo \"{MARK} END {test} status=$?\"\n"
        );
    }
    s += &format!("echo \"{MARK} DONE\"\nsync\npoweroff -f\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_matrix::cpio;

    #[test]
    fn ldd_output_gives_the_library_files_and_the_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc3b9f2000)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        assert_eq!(
            ldd_paths(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn the_init_script_marks_each_test_and_its_status() {
        let env = [("MONITOR_FUZZ_FRAMES".to_owned(), "100000".to_owned())];
        let s = init_script(&["kernel_a", "kernel_b"], &env);
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        assert!(s.contains("mount -t bpf bpf /sys/fs/bpf\n"));
        assert!(s.contains("export MONITOR_FUZZ_FRAMES='100000'\n"));
        let a = s.find("/tests/kernel_a --test-threads=1").unwrap();
        let b = s.find("/tests/kernel_b --test-threads=1").unwrap();
        assert!(a < b);
        assert!(s.contains("echo \"@@KM END kernel_b status=$?\"\n"));
        assert!(s.ends_with("echo \"@@KM DONE\"\nsync\npoweroff -f\n"));
    }

    #[test]
    fn a_real_executable_comes_with_its_loader_and_libraries() {
        // This test executable stands in for a kernel test (and for busybox).
        let me = std::env::current_exe().unwrap();
        let staging = xtask::TempDir::new().unwrap();
        let plan = Plan {
            tests: vec![("kernel_self".into(), me.clone())],
            env: vec![],
            host_programs: vec![],
        };
        let tree = tree(&plan, &me, staging.path()).unwrap();
        let paths: Vec<&str> = tree.paths().collect();
        for want in [
            "init",
            "bin/busybox",
            "bin/sh",
            "bin/poweroff",
            "tests/kernel_self",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with("lib") && p.ends_with("/libc.so.6")),
            "{paths:?}"
        );
        assert!(
            paths.iter().any(|p| p.contains("ld-linux-x86-64.so.2")),
            "{paths:?}"
        );
        // Stripped of debug info, not of symbols: smaller, still an executable.
        let stripped = std::fs::metadata(staging.path().join("kernel_self")).unwrap();
        assert!(stripped.len() < std::fs::metadata(&me).unwrap().len());
    }

    #[test]
    fn the_tree_adds_parents_first_and_archives_what_it_holds() {
        let mut tree = Tree::default();
        tree.bytes("init", b"#!/bin/busybox sh\n".to_vec(), 0o755);
        tree.symlink("bin/sh", "busybox");
        tree.bytes("lib/x86_64-linux-gnu/libc.so.6", b"elf".to_vec(), 0o755);
        tree.bytes("/lib/x86_64-linux-gnu/libc.so.6", b"elf".to_vec(), 0o755);
        assert_eq!(
            tree.paths().collect::<Vec<_>>(),
            [
                "bin",
                "bin/sh",
                "init",
                "lib",
                "lib/x86_64-linux-gnu",
                "lib/x86_64-linux-gnu/libc.so.6"
            ]
        );
        let mut bytes = Vec::new();
        tree.write(&mut bytes).unwrap();
        let entries = cpio::tests::parse(&bytes);
        assert_eq!(entries.len(), 6);
        assert_eq!(
            entries[1],
            ("bin/sh".into(), 0o120_777, b"busybox".to_vec())
        );
        assert_eq!(entries[2].1, 0o100_755);
    }
}
