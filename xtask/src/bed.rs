//! The fixture most end-to-end tests start from: a [`Testbed`] with the real monitor
//! daemon running on its gateway, watching `lan0` and `wan0`, with the testbed's
//! documentation ranges as the Webex prefixes. Test helpers here panic with the daemon's
//! log instead of returning errors, as tests do.

use std::{
    path::PathBuf,
    process::ExitStatus,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{Daemon, PinDir, TempDir, Testbed, monitor_bin};

/// Fields drop in order: the daemon first, then the namespaces, then pins and files.
pub struct GatewayBed {
    pub daemon: Option<Daemon>,
    pub tb: Testbed,
    pub pin: PinDir,
    pub dir: TempDir,
}

impl GatewayBed {
    /// A new testbed with the daemon started on its gateway.
    pub fn launch() -> GatewayBed {
        Self::launch_with("", |_| {})
    }

    /// [`launch`](Self::launch) with `prepare` applied to the testbed before the daemon
    /// starts (sysctls, nftables rules) and `extra_toml` appended to the gateway config
    /// (sections the base config does not have).
    pub fn launch_with(extra_toml: &str, prepare: impl FnOnce(&Testbed)) -> GatewayBed {
        let tb = Testbed::new().expect("testbed");
        prepare(&tb);
        let dir = TempDir::new().expect("tempdir");
        let pin = PinDir::new();
        let mut bed = GatewayBed {
            daemon: None,
            tb,
            pin,
            dir,
        };
        let config = format!(
            "{}{extra_toml}",
            crate::config::gateway_config(bed.pin.path(), &bed.socket())
        );
        std::fs::write(bed.config(), config).expect("config");
        bed.start();
        bed
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("monitor.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("monitor.sock")
    }

    /// Starts the daemon (again) with the same config, socket and pins.
    pub fn start(&mut self) {
        let daemon = Daemon::start(&monitor_bin(), &self.tb.gw, &self.config(), &self.socket())
            .expect("daemon start");
        self.daemon = Some(daemon);
    }

    /// Stops the daemon with SIGTERM; it must exit cleanly.
    pub fn stop(&mut self) {
        let d = self.daemon.take().expect("running daemon");
        let log = d.log();
        let status = d.stop();
        assert!(status.success(), "daemon exit {status:?}; log:\n{log}");
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill(&mut self) -> ExitStatus {
        self.daemon.take().expect("running daemon").kill()
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("running daemon")
    }

    /// `monitor status --json`.
    pub fn status(&self) -> Value {
        self.daemon().status_json().expect("status --json")
    }

    /// Polls the status until `done` holds (at most 10 s), or panics with the last one.
    pub fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status();
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; status:\n{}\nlog:\n{}",
                    serde_json::to_string_pretty(&s).unwrap_or_default(),
                    self.daemon().log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
