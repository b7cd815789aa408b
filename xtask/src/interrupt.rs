//! Ctrl-C / SIGTERM handling for long-running tasks (`cargo xtask demo`).
//!
//! The handler only raises a flag; the task polls it ([`check`], [`sleep`]) and returns an
//! error, so the stack unwinds through the RAII guards (daemon, namespaces, pin and temp
//! directories) and nothing is left behind. A second signal exits at once, for the user
//! whose teardown itself hangs. Without [`install`] (as in `cargo test`) the flag never
//! rises and the default signal behaviour is kept.

use anyhow::{Result, bail};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the SIGINT/SIGTERM handlers. Idempotent enough: installing twice only adds a
/// second handler doing the same thing.
pub fn install() -> Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the action is async-signal-safe: an atomic swap and, on the second
        // signal, _exit(2).
        unsafe {
            signal_hook_registry::register(signal, move || {
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    // 128 + signal, as a shell reports a process killed by it.
                    libc::_exit(128 + signal);
                }
            })
        }
        .map_err(|e| anyhow::anyhow!("cannot install the handler for signal {signal}: {e}"))?;
    }
    Ok(())
}

/// True once SIGINT or SIGTERM arrived (after [`install`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An error if the user asked to stop, so `?` unwinds through the guards.
pub fn check() -> Result<()> {
    if interrupted() {
        bail!("interrupted; cleaning up");
    }
    Ok(())
}

/// Sleeps for `duration`, waking early with an error when interrupted.
pub fn sleep(duration: Duration) -> Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        check()?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}
