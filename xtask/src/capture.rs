//! A tshark capture on one interface of a testbed namespace, for tests whose oracle is
//! the wire: started before the traffic, stopped (SIGINT, waited for) before reading,
//! and on drop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::Netns;

pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
}

impl Capture {
    /// Starts `tshark -i <iface>` in `ns`, writing `<dir>/<iface>.pcap`, and returns once
    /// it captures. Panics (as tests do) when tshark does not start within 15 s.
    pub fn start(ns: &Netns, iface: &str, dir: &Path) -> Capture {
        let file = dir.join(format!("{iface}.pcap"));
        let err = dir.join(format!("tshark-{iface}.err"));
        let child = ns
            .command(&["tshark", "-q", "-i", iface, "-F", "pcap", "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).expect("tshark log"))
            .spawn()
            .expect("tshark");
        let capture = Capture {
            child: Some(child),
            file,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !std::fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("Capturing on")
        {
            assert!(Instant::now() < deadline, "tshark did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        // tshark reports "Capturing on" a moment before dumpcap's socket sees packets.
        std::thread::sleep(Duration::from_secs(1));
        capture
    }

    /// Stops the capture and returns, for each packet matching the display `filter`,
    /// the values of `fields` (empty when a packet has none).
    pub fn fields(mut self, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
        self.stop();
        let mut command = Command::new("tshark");
        command
            .arg("-r")
            .arg(&self.file)
            .args(["-T", "fields", "-E", "separator=,"]);
        for f in fields {
            command.args(["-e", f]);
        }
        let out = command.arg(filter).output().expect("tshark -r");
        assert!(out.status.success(), "tshark -r failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| line.split(',').map(str::to_string).collect())
            .collect()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of the tshark this guard started, not yet reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}
