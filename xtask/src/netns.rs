//! A named network namespace (`/run/netns/<name>`, as `ip netns add` makes it) and ways to
//! run code and commands inside it.

use crate::cmd;
use anyhow::{Context as _, Result};
use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Where iproute2 keeps the bind mounts that name namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A handle on a named namespace. It does not own it: [`crate::Testbed`] creates and
/// deletes its namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new(name: impl Into<String>) -> Netns {
        Netns { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, for `nsenter --net=<path>` and setns(2).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_RUN_DIR).join(&self.name)
    }

    /// Runs `f` on a new thread that has entered this namespace and returns its result.
    /// Sockets created in `f` belong to the namespace for their whole life, so they may be
    /// returned and used (or moved to other threads) afterwards; so do child processes
    /// spawned in `f`. A panic in `f` is re-raised here.
    ///
    /// Panics if the namespace cannot be entered; see [`Netns::try_run`].
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.try_run(f)
            .unwrap_or_else(|e| panic!("cannot run in netns {}: {e:#}", self.name))
    }

    /// [`Netns::run`], with failure to enter the namespace as an error.
    pub fn try_run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        // A fresh thread, because setns(2) changes the calling thread only, and the caller's
        // thread must stay where it is.
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| -> Result<T> {
                self.enter()?;
                Ok(f())
            });
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    fn enter(&self) -> Result<()> {
        let path = self.path();
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: a valid open fd; CLONE_NEWNET only switches this thread's network
        // namespace, which is allowed in a multi-threaded process.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("setns({}, CLONE_NEWNET)", path.display()));
        }
        Ok(())
    }

    /// Runs a one-off command (nft, sysctl, ...) in the namespace through
    /// `ip netns exec`; a non-zero exit is an error with the command line and stderr.
    pub fn exec(&self, argv: &[&str]) -> Result<Output> {
        cmd::run(&mut self.command(argv))
    }

    /// `ip netns exec <name> <argv...>`, to adjust (stdin, env) before running.
    /// Note: `ip netns exec` remounts /sys, which hides bpffs from the command; start
    /// programs that pin BPF objects with `nsenter --net=<path>` instead (see [`crate::Daemon`]).
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(argv);
        command
    }

    /// Runs `ip -n <name> <args...>` (iproute2 inside the namespace, without a new mount
    /// namespace, so it is cheaper than [`Netns::exec`]).
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        cmd::run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Writes a sysctl of this namespace (`key` in dotted form, e.g.
    /// `net.ipv4.ip_forward`) through /proc/sys, which follows the writer's namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        self.try_run(|| std::fs::write(&path, value))?
            .with_context(|| format!("cannot set sysctl {key}={value} in netns {}", self.name))
    }

    /// Reads a sysctl of this namespace, trimmed.
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        let value = self
            .try_run(|| std::fs::read_to_string(&path))?
            .with_context(|| format!("cannot read sysctl {key} in netns {}", self.name))?;
        Ok(value.trim().to_owned())
    }
}
