//! Scratch locations that clean up after themselves: a temporary directory for configs,
//! sockets and logs, and a bpffs pin directory for one daemon's maps.

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where bpffs is mounted; test pin directories live directly below it.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Name prefix of [`PinDir::new`] directories, followed by `<pid>-<n>`.
pub const PIN_DIR_PREFIX: &str = "monitor-test-";
/// Name prefix of `cargo xtask demo`'s pin directory, followed by `<pid>`.
pub const DEMO_PIN_DIR_PREFIX: &str = "monitor-demo-";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh number per call in this process, to make names unique across tests that run
/// in parallel threads.
fn next() -> u32 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A new empty directory under the system temp dir, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> Result<TempDir> {
        let base = std::env::temp_dir();
        loop {
            let path = base.join(format!("monitor-xtask-{}-{}", std::process::id(), next()));
            // create_dir (not _all) fails on an existing path, so a leftover with the same
            // name from a recycled pid is skipped rather than reused.
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()));
                }
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

/// A pin path under bpffs reserved for one daemon; it is not created (the daemon does
/// that) and is removed recursively on drop, together with any maps pinned in it.
#[derive(Debug)]
pub struct PinDir {
    path: PathBuf,
}

impl PinDir {
    /// A unique `/sys/fs/bpf/monitor-test-<pid>-<n>`.
    pub fn new() -> PinDir {
        PinDir::at(Path::new(BPFFS).join(format!(
            "{PIN_DIR_PREFIX}{}-{}",
            std::process::id(),
            next()
        )))
    }

    /// Takes charge of an explicit path (e.g. the demo's `/sys/fs/bpf/monitor-demo-<pid>`).
    pub fn at(path: impl Into<PathBuf>) -> PinDir {
        PinDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes `/sys/fs/bpf/monitor-test-*` and `monitor-demo-*` directories left by
    /// test or demo processes that no longer run. Returns the paths removed.
    pub fn cleanup_stale() -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(BPFFS) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if [PIN_DIR_PREFIX, DEMO_PIN_DIR_PREFIX]
                .iter()
                .any(|prefix| crate::stale::is_stale(&name, prefix, '-'))
            {
                let path = entry.path();
                remove_tree(&path);
                removed.push(path);
            }
        }
        removed
    }
}

impl Default for PinDir {
    /// Same as [`PinDir::new`].
    fn default() -> PinDir {
        PinDir::new()
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

/// Best-effort recursive removal for Drop: a missing path is fine, anything else is
/// reported on stderr (a guard must not panic while a test is already unwinding).
fn remove_tree(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("warning: cannot remove {}: {e}", path.display()),
    }
}
