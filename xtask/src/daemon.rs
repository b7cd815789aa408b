//! A guard around one `monitor run` process inside a testbed namespace.

use crate::{Netns, cmd, interrupt};
use anyhow::{Context as _, Result, anyhow, bail};
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the daemon may take to answer on its status socket after start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one `monitor status` query may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of the daemon's log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// A running `monitor run`; dropping it stops the daemon (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    bin: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Starts `nsenter --net=<netns path> <monitor_bin> run --config <config>` and waits
    /// (at most [`READY_TIMEOUT`]) until `monitor status --socket <socket> --json`
    /// answers. stdout and stderr go to `<config dir>/<config stem>.log` (appended, so a
    /// restarted daemon's log follows the first one's).
    ///
    /// nsenter rather than `ip netns exec`: the latter remounts /sys, which hides bpffs
    /// and so the pinned maps.
    pub fn start(
        monitor_bin: &Path,
        netns: &Netns,
        config: &Path,
        socket: &Path,
    ) -> Result<Daemon> {
        let log = log_path(config);
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open the daemon log {}", log.display()))?;
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", netns.path().display()))
            .arg("--")
            .arg(monitor_bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            // Its own process group: a Ctrl-C in the terminal reaches only us, and we stop
            // the daemon in order (SIGTERM, then clean up pins and namespaces).
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", cmd::describe(&command)))?;
        let mut daemon = Daemon {
            child: Some(child),
            bin: monitor_bin.to_owned(),
            socket: socket.to_owned(),
            log,
        };
        if let Err(e) = daemon.wait_ready() {
            // Reap it here, so the guard's Drop does not report the same log again.
            if let Some(child) = daemon.child.take() {
                terminate(child, libc::SIGTERM);
            }
            if interrupt::interrupted() {
                // The user stopped us; the daemon's log says nothing about that.
                return Err(e);
            }
            bail!(
                "daemon `{}` did not become ready: {e:#}\n--- last lines of {} ---\n{}",
                cmd::describe(&command),
                daemon.log.display(),
                daemon.log_tail()
            );
        }
        Ok(daemon)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait()? {
                bail!("it exited early ({status})");
            }
            let last_error = match status_json(&self.bin, &self.socket) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(
                    last_error.context(format!("no status answer within {READY_TIMEOUT:?}"))
                );
            }
            interrupt::sleep(Duration::from_millis(100))?;
        }
    }

    /// The daemon's pid (that of `monitor` itself: nsenter execs it without forking).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the daemon wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// `monitor status --json` from this daemon.
    pub fn status_json(&self) -> Result<serde_json::Value> {
        status_json(&self.bin, &self.socket)
    }

    /// `Some(status)` once the daemon has exited (on its own or killed).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => Err(anyhow!("daemon already stopped")),
        }
    }

    /// SIGTERM, then waits up to [`STOP_TIMEOUT`] before SIGKILL; returns how it ended
    /// (a clean shutdown is exit status 0).
    pub fn stop(mut self) -> ExitStatus {
        let child = self
            .child
            .take()
            .expect("a live Daemon always has its child");
        terminate(child, libc::SIGTERM)
    }

    /// SIGKILL without a chance to clean up, as in a crash; returns how it ended.
    pub fn kill(mut self) -> ExitStatus {
        let child = self
            .child
            .take()
            .expect("a live Daemon always has its child");
        terminate(child, libc::SIGKILL)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let status = terminate(child, libc::SIGTERM);
            if !status.success() {
                eprintln!(
                    "warning: monitor daemon ended with {status}; last lines of {}:\n{}",
                    self.log.display(),
                    self.log_tail()
                );
            }
        }
    }
}

/// Sends `signal` (unless the child already exited), waits up to [`STOP_TIMEOUT`], then
/// SIGKILLs and reaps it.
fn terminate(mut child: Child, signal: libc::c_int) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    // SAFETY: kill(2) on our own child, not yet reaped, so the pid cannot be reused.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    eprintln!(
        "warning: monitor daemon (pid {}) ignored signal {signal} for {STOP_TIMEOUT:?}; killing it",
        child.id()
    );
    let _ = child.kill();
    child
        .wait()
        .unwrap_or_else(|e| panic!("cannot reap the monitor daemon (pid {}): {e}", child.id()))
}

/// Runs `<monitor_bin> detach --config <config>` in `netns` (through nsenter, so bpffs
/// stays visible): removes the XDP and TC links a stopped daemon leaves attached (they are
/// pinned, so the data path outlives the daemon), e.g. before measuring without it.
pub fn detach(monitor_bin: &Path, netns: &Netns, config: &Path) -> Result<()> {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", netns.path().display()))
        .arg("--")
        .arg(monitor_bin)
        .arg("detach")
        .arg("--config")
        .arg(config);
    let output = cmd::output_timeout(&mut command, STATUS_TIMEOUT)?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmd::describe(&command),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `<config dir>/<config stem>.log`.
fn log_path(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map_or_else(|| "monitor".into(), |s| s.to_string_lossy());
    config.with_file_name(format!("{stem}.log"))
}

/// Runs `<monitor_bin> status --socket <socket> --json` and parses its report. Any exit
/// status with a JSON object on stdout counts: `monitor status` reports the health of
/// the calls in its exit status, which is no failure of the query.
pub fn status_json(monitor_bin: &Path, socket: &Path) -> Result<serde_json::Value> {
    let mut command = Command::new(monitor_bin);
    command
        .arg("status")
        .arg("--socket")
        .arg(socket)
        .arg("--json");
    let output = cmd::output_timeout(&mut command, STATUS_TIMEOUT)?;
    match serde_json::from_slice::<serde_json::Value>(&output.stdout) {
        Ok(report) if report.is_object() => Ok(report),
        _ => bail!(
            "`{}` gave no JSON report ({}): {}",
            cmd::describe(&command),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

/// The value of an anomaly's evidence item `name` in a status report's `anomalies[]`
/// entry; panics naming the anomaly when it has none.
pub fn evidence(anomaly: &serde_json::Value, name: &str) -> String {
    anomaly["evidence"]
        .as_array()
        .expect("an anomaly's evidence is an array")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no evidence {name} in {anomaly}"))["value"]
        .as_str()
        .expect("evidence values are strings")
        .to_string()
}
