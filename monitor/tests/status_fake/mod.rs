//! A stand-in for the daemon's status socket, shared by the `status_*` tests: serves a
//! fixed report the way the daemon does, so the real `monitor` binary can be run
//! against it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use monitor::status::model::StatusReport;
use xtask::TempDir;

/// The fixed report of the view tests: ten active calls (three not ok), two records, two
/// open findings (one of two members with one fix), one cleared.
#[allow(dead_code)]
pub fn ten_calls() -> StatusReport {
    serde_json::from_str(include_str!("../fixtures/status_ten_calls.json"))
        .expect("fixtures/status_ten_calls.json no longer parses as a report")
}

/// Serves `report` on a Unix socket the way the daemon does (one JSON line per
/// `status\n` request) until dropped.
pub struct FakeDaemon {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl FakeDaemon {
    pub fn serve(report: &StatusReport) -> FakeDaemon {
        Self::serve_sequence(std::slice::from_ref(report))
    }

    /// Serves `reports[n]` to the n-th request, the last one to every later request.
    #[allow(dead_code)]
    pub fn serve_sequence(reports: &[StatusReport]) -> FakeDaemon {
        let dir = TempDir::new().unwrap();
        let path = dir.join("monitor.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let lines: Vec<String> = reports
            .iter()
            .map(|r| format!("{}\n", serde_json::to_string(r).unwrap()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut served = 0;
                while !stop.load(Ordering::SeqCst) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut request = String::new();
                    let _ = BufReader::new(&stream).read_line(&mut request);
                    assert_eq!(request, "status\n");
                    let line = &lines[served.min(lines.len() - 1)];
                    served += 1;
                    let _ = (&stream).write_all(line.as_bytes());
                }
            })
        };
        FakeDaemon {
            path,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
