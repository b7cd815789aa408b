//! Client side of the status socket: asks the running daemon for its [`StatusReport`].

use super::model::StatusReport;
use super::server::{BUSY_PREFIX, MAX_REQUEST_BYTES, REQUEST};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long [`fetch`] keeps retrying while the daemon says it is busy.
pub const BUSY_RETRY_FOR: Duration = Duration::from_secs(3);
/// The first wait before a retry; each further wait doubles, up to [`BUSY_BACKOFF_MAX`].
const BUSY_BACKOFF: Duration = Duration::from_millis(20);
const BUSY_BACKOFF_MAX: Duration = Duration::from_millis(400);

/// Why no report could be had. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the monitor daemon is not running: no status socket at {} (start it with `systemctl \
         start monitor`, or pass --socket)",
        .0.display()
    )]
    NotRunning(PathBuf),
    #[error(
        "the monitor daemon is not running: {} is a stale socket nobody answers on (start it \
         with `systemctl start monitor`)",
        .0.display()
    )]
    Stale(PathBuf),
    #[error("permission denied on {}: status is root-only, run with sudo", .0.display())]
    PermissionDenied(PathBuf),
    #[error("no reply from the monitor daemon on {} within {:.1} s", path.display(), timeout.as_secs_f64())]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("cannot talk to the monitor daemon on {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The daemon answered with `{"error": "..."}`.
    #[error("the monitor daemon refused: {0}")]
    Server(String),
    /// Every try within [`BUSY_RETRY_FOR`] was answered "busy".
    #[error(
        "the monitor daemon is busy: too many status clients at once; gave up after {tries} \
         tries in {:.1} s (try again in a moment)",
        waited.as_secs_f64()
    )]
    Busy { tries: u32, waited: Duration },
    #[error("unexpected reply from {} (is it a monitor daemon of the same version?): {detail}", path.display())]
    BadReply { path: PathBuf, detail: String },
}

/// Longest reply accepted (the report of a full flow table is large, but not this).
const MAX_REPLY_BYTES: u64 = 256 * 1024 * 1024;

/// Fetches the report from the daemon's socket at `path`, waiting at most `timeout` for
/// each step (connect, send, each read). While the daemon answers "busy" it tries again
/// (backing off) for up to [`BUSY_RETRY_FOR`], then says it gave up.
pub fn fetch(path: &Path, timeout: Duration) -> Result<StatusReport, ClientError> {
    fetch_retrying(path, timeout, BUSY_RETRY_FOR)
}

fn fetch_retrying(
    path: &Path,
    timeout: Duration,
    retry_for: Duration,
) -> Result<StatusReport, ClientError> {
    let started = Instant::now();
    let mut backoff = BUSY_BACKOFF;
    let mut tries = 0;
    loop {
        tries += 1;
        match fetch_once(path, timeout) {
            Err(ClientError::Server(message)) if is_busy(&message) => {
                let waited = started.elapsed();
                if waited + backoff > retry_for {
                    return Err(ClientError::Busy { tries, waited });
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BUSY_BACKOFF_MAX);
            }
            other => return other,
        }
    }
}

/// The daemon's "busy" reply.
fn is_busy(message: &str) -> bool {
    message.starts_with(BUSY_PREFIX)
}

/// One try: connect, ask, read the reply.
fn fetch_once(path: &Path, timeout: Duration) -> Result<StatusReport, ClientError> {
    let io = |error: std::io::Error| classify(path, timeout, error);
    let mut stream = UnixStream::connect(path).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!("{REQUEST}\n");
    debug_assert!(request.len() <= MAX_REQUEST_BYTES);
    // A daemon that refuses may close before reading: still read what it said.
    let sent = stream.write_all(request.as_bytes());
    let mut reply = Vec::new();
    let read = (&mut stream).take(MAX_REPLY_BYTES).read_to_end(&mut reply);
    let line_complete = reply.ends_with(b"\n");
    match (sent, read) {
        (_, Ok(_)) => {}
        // The daemon closed with our request unread: the reply is whole if it ended.
        (_, Err(_)) if line_complete => {}
        (Err(e), Err(_)) | (Ok(()), Err(e)) => return Err(io(e)),
    }
    parse_reply(path, &reply)
}

fn parse_reply(path: &Path, reply: &[u8]) -> Result<StatusReport, ClientError> {
    let bad = |detail: String| ClientError::BadReply {
        path: path.to_path_buf(),
        detail,
    };
    if reply.is_empty() {
        return Err(bad("the connection closed without a reply".into()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(reply).map_err(|e| bad(format!("not JSON: {e}")))?;
    if let Some(message) = value.get("error") {
        let message = message
            .as_str()
            .map_or_else(|| message.to_string(), str::to_string);
        return Err(ClientError::Server(message));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("not a status report: {e}")))
}

fn classify(path: &Path, timeout: Duration, error: std::io::Error) -> ClientError {
    let path = path.to_path_buf();
    match error.kind() {
        ErrorKind::NotFound => ClientError::NotRunning(path),
        ErrorKind::ConnectionRefused => ClientError::Stale(path),
        ErrorKind::PermissionDenied => ClientError::PermissionDenied(path),
        ErrorKind::WouldBlock | ErrorKind::TimedOut => ClientError::Timeout { path, timeout },
        _ => ClientError::Io { path, error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::render::tests::sample_report;
    use crate::status::server::testing::{TestServer, temp_dir};
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn fetches_the_report_from_a_real_server() {
        let server = TestServer::start(sample_report());
        assert_eq!(fetch(&server.path, T).unwrap(), sample_report());
    }

    #[test]
    fn missing_socket_means_not_running() {
        let dir = temp_dir("client-missing");
        let path = dir.join("monitor.sock");
        let err = fetch(&path, T).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            err,
            format!(
                "the monitor daemon is not running: no status socket at {} (start it with \
                 `systemctl start monitor`, or pass --socket)",
                path.display()
            )
        );
    }

    #[test]
    fn stopped_server_leaves_no_socket_and_a_stale_one_is_named() {
        let mut server = TestServer::start(sample_report());
        server.stop();
        assert!(matches!(
            fetch(&server.path, T),
            Err(ClientError::NotRunning(_))
        ));

        let dir = temp_dir("client-stale");
        let path = dir.join("monitor.sock");
        drop(UnixListener::bind(&path).unwrap());
        let err = fetch(&path, T).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            err,
            format!(
                "the monitor daemon is not running: {} is a stale socket nobody answers on \
                 (start it with `systemctl start monitor`)",
                path.display()
            )
        );
    }

    #[test]
    fn permission_denied_says_run_with_sudo() {
        let err = classify(
            Path::new("/run/monitor/monitor.sock"),
            T,
            std::io::Error::from(ErrorKind::PermissionDenied),
        );
        assert_eq!(
            err.to_string(),
            "permission denied on /run/monitor/monitor.sock: status is root-only, run with sudo"
        );
    }

    #[test]
    fn server_errors_are_passed_on() {
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if me != 0 {
            let server = TestServer::start_with(sample_report(), me + 1);
            let err = fetch(&server.path, T).unwrap_err().to_string();
            assert_eq!(
                err,
                "the monitor daemon refused: permission denied: status is root-only"
            );
        }
        let err = fake_server(b"{\"error\":\"out of order\"}\n", T);
        assert_eq!(err, "the monitor daemon refused: out of order");
    }

    #[test]
    fn garbage_and_silence_are_unexpected() {
        let err = fake_server(b"hello\n", T);
        assert!(
            err.starts_with("unexpected reply from ")
                && err.ends_with(
                    "(is it a monitor daemon of the same version?): not JSON: expected value at \
                     line 1 column 1"
                ),
            "{err}"
        );
        let err = fake_server(b"{\"schema_version\": 1}\n", T);
        assert!(
            err.ends_with(": not a status report: missing field `daemon`"),
            "{err}"
        );
        let err = fake_server(b"", T);
        assert!(
            err.ends_with(": the connection closed without a reply"),
            "{err}"
        );
        let err = fake_server(b"WAIT", Duration::from_millis(200));
        assert!(
            err.starts_with("no reply from the monitor daemon on "),
            "{err}"
        );
        assert!(err.ends_with(" within 0.2 s"), "{err}");
    }

    /// Answers "busy" `busy` times, then the report (or "busy" forever when `None`).
    fn busy_server(busy: Option<usize>) -> (PathBuf, std::thread::JoinHandle<usize>) {
        let dir = temp_dir("client-busy");
        let path = dir.join("busy.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || {
            let mut answered = 0;
            let idle_until = |t: std::time::Instant| t + Duration::from_millis(1000);
            let mut last = std::time::Instant::now();
            while std::time::Instant::now() < idle_until(last) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut line = String::new();
                std::io::BufReader::new(&stream)
                    .read_line(&mut line)
                    .unwrap();
                let reply = if busy.is_none_or(|b| answered < b) {
                    format!(
                        "{}\n",
                        serde_json::json!({ "error": crate::status::server::BUSY })
                    )
                } else {
                    format!("{}\n", serde_json::to_string(&sample_report()).unwrap())
                };
                stream.write_all(reply.as_bytes()).unwrap();
                answered += 1;
                last = std::time::Instant::now();
            }
            std::fs::remove_dir_all(&dir).unwrap();
            answered
        });
        (path, thread)
    }

    #[test]
    fn busy_is_retried_and_giving_up_is_said() {
        let (path, server) = busy_server(Some(3));
        assert_eq!(fetch(&path, T).unwrap(), sample_report());
        assert_eq!(server.join().unwrap(), 4);

        let (path, server) = busy_server(None);
        let started = Instant::now();
        let err = fetch_retrying(&path, T, Duration::from_millis(250)).unwrap_err();
        let elapsed = started.elapsed();
        let tries = server.join().unwrap();
        // Waits of 20, 40 and 80 ms fit in 250 ms; the next (160) does not.
        assert_eq!(tries, 4);
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
        let ClientError::Busy { tries: said, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(*said, 4);
        let text = err.to_string();
        assert!(
            text.starts_with(
                "the monitor daemon is busy: too many status clients at once; gave up after 4 \
                 tries in 0."
            ) && text.ends_with(" s (try again in a moment)"),
            "{text}"
        );
    }

    /// Serves one connection with `reply` (and keeps it open after "WAIT") and returns
    /// the client's error message.
    fn fake_server(reply: &'static [u8], timeout: Duration) -> String {
        let dir = temp_dir("client-fake");
        let path = dir.join("fake.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "status\n");
            let mut stream = reader.into_inner();
            if reply == b"WAIT" {
                std::thread::sleep(timeout * 3);
            } else {
                stream.write_all(reply).unwrap();
            }
        });
        let err = fetch(&path, timeout).unwrap_err().to_string();
        thread.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        err
    }
}
