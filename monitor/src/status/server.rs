//! The daemon's status socket: a root-only Unix socket that answers `status\n` with the
//! [`StatusReport`] as one line of JSON, then closes.
//!
//! Every connection runs in its own task, with its own deadlines: [`REQUEST_TIMEOUT`] to
//! send the request, [`REPLY_TIMEOUT`] to take the reply. At most [`MAX_CLIENTS`] are
//! held at once. When all slots are taken, the oldest connection that has stayed silent
//! for [`IDLE_EVICT_AFTER`] is closed to admit the new one; only when every slot holds a
//! client that already asked is the new one told "busy" (and `monitor status` retries).
//! A client that does not read blocks nobody: each write is its own task's, and the
//! reply bytes are shared, built at most once per [`REPLY_REUSE`] for all clients.

use super::model::StatusReport;
use crate::report::scale::StatusSocket;
use std::collections::BTreeMap;
use std::fs::{DirBuilder, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};

/// The only request: the word `status` and a newline.
pub const REQUEST: &str = "status";
/// Longest request accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 1024;
/// How long a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client has to take the reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections held at once. Each costs a task and a file descriptor; the reply bytes
/// are shared, so a non-reading client holds no copy of its own.
pub const MAX_CLIENTS: usize = 512;
/// A connection silent this long may be closed to admit a new one when all slots are
/// taken (a real client sends its request right after connecting).
pub const IDLE_EVICT_AFTER: Duration = Duration::from_millis(250);
/// One built reply answers every request within this long (bounds the cost of many
/// clients at once to a few report encodings a second).
pub const REPLY_REUSE: Duration = Duration::from_millis(100);
/// The reply to a client turned away; `monitor status` retries on [`BUSY_PREFIX`].
pub const BUSY: &str = "busy: too many status clients at once, try again";
pub const BUSY_PREFIX: &str = "busy:";
/// Open files the daemon asks for, so [`MAX_CLIENTS`] connections fit beside its maps.
const WANT_OPEN_FILES: libc::rlim_t = 4096;

/// The status socket cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("another monitor daemon is already serving status on {}", .0.display())]
    InUse(PathBuf),
    #[error(
        "{} exists and is not a socket; remove it or set another daemon.status_socket",
        .0.display()
    )]
    NotASocket(PathBuf),
    #[error("cannot create the status socket directory {}: {error}", path.display())]
    CreateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot check whether {} is in use: {error}", path.display())]
    Probe {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot remove the stale status socket {}: {error}", path.display())]
    RemoveStale {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot listen on the status socket {}: {error}", path.display())]
    Bind {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot make the status socket {} root-only (mode 0600): {error}", path.display())]
    Chmod {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Binds the status socket at `path` (inside a tokio runtime).
///
/// Creates the parent directory (mode 0700) when missing; refuses when another daemon
/// answers on `path`; replaces a stale socket left by a daemon that died; makes the
/// socket mode 0600.
pub fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let missing_parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.exists());
    if let Some(parent) = missing_parent {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|error| ServerError::CreateDir {
                path: parent.to_path_buf(),
                error,
            })?;
    }
    remove_if_stale(path)?;
    let listener = UnixListener::bind(path).map_err(|error| ServerError::Bind {
        path: path.to_path_buf(),
        error,
    })?;
    std::fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(|error| {
        ServerError::Chmod {
            path: path.to_path_buf(),
            error,
        }
    })?;
    Ok(listener)
}

/// Removes `path` if it is a socket nobody answers on; errors if someone does.
fn remove_if_stale(path: &Path) -> Result<(), ServerError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(ServerError::Probe {
                path: path.to_path_buf(),
                error,
            });
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(ServerError::NotASocket(path.to_path_buf()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ServerError::InUse(path.to_path_buf())),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) => {
            match std::fs::remove_file(path) {
                Err(error) if error.kind() != ErrorKind::NotFound => {
                    Err(ServerError::RemoveStale {
                        path: path.to_path_buf(),
                        error,
                    })
                }
                _ => Ok(()),
            }
        }
        Err(error) => Err(ServerError::Probe {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// Who may read status: root and the daemon's own user.
#[derive(Clone, Copy, Debug)]
struct Access {
    daemon_euid: u32,
}

impl Access {
    fn permits(self, uid: u32) -> bool {
        uid == 0 || uid == self.daemon_euid
    }
}

/// The socket's limits; the daemon uses the constants above, tests smaller ones.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_clients: usize,
    idle_evict_after: Duration,
    request_timeout: Duration,
    reply_timeout: Duration,
}

const LIMITS: Limits = Limits {
    max_clients: MAX_CLIENTS,
    idle_evict_after: IDLE_EVICT_AFTER,
    request_timeout: REQUEST_TIMEOUT,
    reply_timeout: REPLY_TIMEOUT,
};

/// What the socket has done, for the status report. Cheap to clone (shared counters).
#[derive(Clone, Debug, Default)]
pub struct Stats(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    clients: AtomicU64,
    peak_clients: AtomicU64,
    served: AtomicU64,
    refused_busy: AtomicU64,
    closed_idle: AtomicU64,
    request_timeouts: AtomicU64,
    reply_timeouts: AtomicU64,
}

impl Stats {
    /// The counters as the report shows them.
    pub fn get(&self) -> StatusSocket {
        let c = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatusSocket {
            max_clients: MAX_CLIENTS as u64,
            clients: load(&c.clients),
            peak_clients: load(&c.peak_clients),
            served: load(&c.served),
            refused_busy: load(&c.refused_busy),
            closed_idle: load(&c.closed_idle),
            request_timeouts: load(&c.request_timeouts),
            reply_timeouts: load(&c.reply_timeouts),
            request_timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
            reply_timeout_ms: REPLY_TIMEOUT.as_millis() as u64,
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The connections held, and which of them still wait for their request (oldest
/// first, by admission number), each with the switch that closes it.
struct Slots {
    limits: Limits,
    stats: Stats,
    inner: Mutex<SlotsInner>,
}

#[derive(Default)]
struct SlotsInner {
    held: usize,
    next: u64,
    silent: BTreeMap<u64, (Instant, oneshot::Sender<()>)>,
}

/// One admitted connection; dropping it frees the slot.
struct Ticket {
    slots: Arc<Slots>,
    number: u64,
    evicted: oneshot::Receiver<()>,
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection: into a free slot, else in place of the oldest silent
    /// one (closed), else not at all.
    fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let mut inner = self.lock();
        if inner.held >= self.limits.max_clients {
            let oldest = inner
                .silent
                .first_key_value()
                .map(|(&n, &(since, _))| (n, since));
            match oldest {
                Some((n, since)) if since.elapsed() >= self.limits.idle_evict_after => {
                    if let Some((_, close)) = inner.silent.remove(&n) {
                        // Its task answers and frees the slot; until then one slot is
                        // over the cap (bounded: each eviction takes one silent entry).
                        let _ = close.send(());
                    }
                }
                _ => return None,
            }
        }
        let number = inner.next;
        inner.next += 1;
        inner.held += 1;
        let (close, evicted) = oneshot::channel();
        inner.silent.insert(number, (Instant::now(), close));
        let held = inner.held as u64;
        drop(inner);
        self.stats.0.clients.store(held, Ordering::Relaxed);
        self.stats.0.peak_clients.fetch_max(held, Ordering::Relaxed);
        Some(Ticket {
            slots: self.clone(),
            number,
            evicted,
        })
    }
}

impl Ticket {
    /// The request is in: this connection can no longer be evicted as silent.
    fn asked(&self) {
        self.slots.lock().silent.remove(&self.number);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.silent.remove(&self.number);
        inner.held -= 1;
        let held = inner.held as u64;
        drop(inner);
        self.slots.stats.0.clients.store(held, Ordering::Relaxed);
    }
}

/// Builds the reply and shares it: one encoding serves every request within
/// [`REPLY_REUSE`].
struct Replies {
    report: Arc<dyn Fn() -> StatusReport + Send + Sync>,
    last: Mutex<Option<(Instant, Arc<[u8]>)>>,
}

impl Replies {
    fn get(&self) -> Arc<[u8]> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built, bytes)) = last.as_ref()
            && built.elapsed() < REPLY_REUSE
        {
            return bytes.clone();
        }
        let bytes: Arc<[u8]> = report_line(&*self.report).into();
        *last = Some((Instant::now(), bytes.clone()));
        bytes
    }
}

/// Serves status on `listener` until `shutdown` turns true (or its sender is dropped),
/// then removes the socket file. `report` builds the report for each request; `stats`
/// counts what the socket does.
pub async fn serve(
    listener: UnixListener,
    report: Arc<dyn Fn() -> StatusReport + Send + Sync>,
    stats: Stats,
    shutdown: watch::Receiver<bool>,
) {
    raise_open_files_limit();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let daemon_euid = unsafe { libc::geteuid() };
    serve_with(
        listener,
        report,
        shutdown,
        Access { daemon_euid },
        LIMITS,
        stats,
    )
    .await;
}

/// Runs [`serve`] on a thread of its own ("monitor-status") with its own runtime: the
/// daemon's loop reads the maps synchronously (half a second at a million flows) and a
/// status request must not wait for that. Returns once the thread runs; join it after
/// `shutdown` turns true.
pub fn spawn_thread(
    listener: UnixListener,
    report: Arc<dyn Fn() -> StatusReport + Send + Sync>,
    stats: Stats,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // The listener leaves the caller's runtime and registers with the thread's own.
    let listener = listener.into_std()?;
    std::thread::Builder::new()
        .name("monitor-status".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    log::error!(
                        "status socket: cannot start its runtime: {e}; status is not served"
                    );
                    return;
                }
            };
            runtime.block_on(async move {
                match UnixListener::from_std(listener) {
                    Ok(listener) => serve(listener, report, stats, shutdown).await,
                    Err(e) => log::error!("status socket: cannot serve: {e}"),
                }
            });
        })
}

/// Raises the soft limit of open files towards [`WANT_OPEN_FILES`] (never above the
/// hard limit): a default of 1024 would run out before [`MAX_CLIENTS`] plus the maps.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let want = WANT_OPEN_FILES.min(limit.rlim_max);
        if limit.rlim_cur < want {
            limit.rlim_cur = want;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                log::warn!(
                    "status socket: cannot raise the open-files limit to {want}; fewer \
                     concurrent status clients fit"
                );
            }
        }
    }
}

async fn serve_with(
    listener: UnixListener,
    report: Arc<dyn Fn() -> StatusReport + Send + Sync>,
    mut shutdown: watch::Receiver<bool>,
    access: Access,
    limits: Limits,
    stats: Stats,
) {
    let slots = Arc::new(Slots {
        limits,
        stats: stats.clone(),
        inner: Mutex::default(),
    });
    let replies = Arc::new(Replies {
        report,
        last: Mutex::default(),
    });
    while !*shutdown.borrow_and_update() {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match slots.admit() {
                    Some(ticket) => {
                        let replies = replies.clone();
                        let stats = stats.clone();
                        tokio::spawn(async move {
                            handle(stream, ticket, &replies, access, limits, &stats).await;
                        });
                    }
                    None => {
                        Stats::bump(&stats.0.refused_busy);
                        // Never wait on a client here: best effort, then close.
                        let _ = stream.try_write(&error_line(BUSY));
                    }
                },
                Err(e) => {
                    // E.g. out of file descriptors: keep serving, but don't spin.
                    log::warn!("status socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    if let Some(path) = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(PathBuf::from))
    {
        let _ = std::fs::remove_file(path);
    }
}

/// Serves one connection: reads the request, answers (an error line when the peer is
/// not allowed or the request is bad), and closes. The ticket frees the slot on return.
async fn handle(
    mut stream: UnixStream,
    mut ticket: Ticket,
    replies: &Replies,
    access: Access,
    limits: Limits,
    stats: &Stats,
) {
    let peer = stream.peer_cred();
    let request = tokio::select! {
        r = read_request(&mut stream, limits.request_timeout) => r,
        _ = &mut ticket.evicted => {
            Stats::bump(&stats.0.closed_idle);
            // Silent so far: it may not read either, so never wait on it.
            let _ = stream.try_write(&error_line(&format!(
                "{BUSY} (this connection sent nothing for {} ms while others waited)",
                limits.idle_evict_after.as_millis()
            )));
            return;
        }
    };
    ticket.asked();
    if matches!(&request, Err(Problem::Timeout(_))) {
        Stats::bump(&stats.0.request_timeouts);
    }
    let is_report = matches!((&peer, &request), (Ok(cred), Ok(())) if access.permits(cred.uid()));
    let reply: Arc<[u8]> = match (peer, request) {
        (Err(e), _) => error_line(&format!(
            "permission denied: cannot identify the client: {e}"
        ))
        .into(),
        (Ok(cred), _) if !access.permits(cred.uid()) => {
            error_line("permission denied: status is root-only").into()
        }
        (Ok(_), Err(problem)) => error_line(&problem.to_string()).into(),
        (Ok(_), Ok(())) => replies.get(),
    };
    match tokio::time::timeout(limits.reply_timeout, stream.write_all(&reply)).await {
        Ok(Ok(())) => {
            if is_report {
                Stats::bump(&stats.0.served);
            }
            let _ = stream.shutdown().await;
            // Unread input would turn the client's end of file into ECONNRESET.
            let mut sink = [0u8; 1024];
            for _ in 0..64 {
                if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                    break;
                }
            }
        }
        Ok(Err(e)) => log::debug!("status socket: reply not delivered: {e}"),
        Err(_) => {
            Stats::bump(&stats.0.reply_timeouts);
            log::debug!("status socket: client did not take the reply in time");
        }
    }
}

/// The report as one JSON line, or an error line if building it failed.
fn report_line(report: &(dyn Fn() -> StatusReport + Send + Sync)) -> Vec<u8> {
    match std::panic::catch_unwind(AssertUnwindSafe(report)) {
        Ok(r) => match serde_json::to_vec(&r) {
            Ok(mut json) => {
                json.push(b'\n');
                json
            }
            Err(e) => error_line(&format!("cannot encode the status report: {e}")),
        },
        Err(_) => error_line("internal error while building the status report"),
    }
}

/// Why a request was not accepted; the text is sent back.
#[derive(Debug)]
enum Problem {
    Timeout(Duration),
    Bad(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Timeout(t) => write!(
                f,
                "no request within {} s; send \"{REQUEST}\" and a newline",
                t.as_secs_f64()
            ),
            Problem::Bad(text) => f.write_str(text),
        }
    }
}

/// Reads one request line; `Err` is the message to send back.
async fn read_request(stream: &mut UnixStream, timeout: Duration) -> Result<(), Problem> {
    let too_long = || {
        Problem::Bad(format!(
            "request longer than {MAX_REQUEST_BYTES} bytes; send \"{REQUEST}\" and a newline"
        ))
    };
    let mut request = Vec::with_capacity(64);
    let read = async {
        let mut chunk = [0u8; 256];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| Problem::Bad(e.to_string()))?;
            if n == 0 {
                return Ok(false); // EOF ends the request too
            }
            request.extend_from_slice(&chunk[..n]);
            if request.contains(&b'\n') {
                return Ok(true);
            }
            if request.len() > MAX_REQUEST_BYTES {
                return Err(too_long());
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => return Err(Problem::Timeout(timeout)),
        Ok(Err(problem)) => return Err(problem),
        Ok(Ok(_)) => {}
    }
    let line = match request.iter().position(|&b| b == b'\n') {
        Some(end) => &request[..end],
        None => &request[..],
    };
    if line.len() > MAX_REQUEST_BYTES {
        return Err(too_long());
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(Problem::Bad(format!(
            "request is not UTF-8 text; send \"{REQUEST}\" and a newline"
        )));
    };
    let text = text.trim();
    if text == REQUEST {
        Ok(())
    } else {
        let shown: String = text.chars().take(40).collect();
        Err(Problem::Bad(format!(
            "unknown request \"{shown}\"; send \"{REQUEST}\" and a newline"
        )))
    }
}

/// `{"error": "..."}` and a newline.
fn error_line(message: &str) -> Vec<u8> {
    let mut line = serde_json::json!({ "error": message })
        .to_string()
        .into_bytes();
    line.push(b'\n');
    line
}

/// A real server on a socket in a fresh temporary directory, run on its own thread,
/// for the server and client tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) struct TestServer {
        pub dir: PathBuf,
        pub path: PathBuf,
        shutdown: Option<watch::Sender<bool>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    /// A unique, empty directory under the system temp dir.
    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("monitor-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    impl TestServer {
        pub(crate) fn start(report: StatusReport) -> Self {
            // SAFETY: geteuid cannot fail.
            let daemon_euid = unsafe { libc::geteuid() };
            Self::start_with(report, daemon_euid)
        }

        /// With `daemon_euid` as the daemon's user for the peer check.
        pub(crate) fn start_with(report: StatusReport, daemon_euid: u32) -> Self {
            Self::start_limited(report, daemon_euid, LIMITS).0
        }

        /// With `limits` instead of the daemon's; also returns the socket's counters.
        pub(super) fn start_limited(
            report: StatusReport,
            daemon_euid: u32,
            limits: Limits,
        ) -> (Self, Stats) {
            let stats = Stats::default();
            let served_stats = stats.clone();
            let dir = temp_dir("status");
            let path = dir.join("sub").join("monitor.sock");
            let (tx, rx) = watch::channel(false);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let bind_path = path.clone();
            let thread = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = bind(&bind_path).unwrap();
                    ready_tx.send(()).unwrap();
                    let report = Arc::new(move || report.clone());
                    let access = Access { daemon_euid };
                    serve_with(listener, report, rx, access, limits, served_stats).await;
                });
            });
            ready_rx.recv().unwrap();
            let server = TestServer {
                dir,
                path,
                shutdown: Some(tx),
                thread: Some(thread),
            };
            (server, stats)
        }

        /// Stops the server and waits for it.
        pub(crate) fn stop(&mut self) {
            if let Some(tx) = self.shutdown.take() {
                tx.send(true).unwrap();
            }
            if let Some(thread) = self.thread.take() {
                thread.join().unwrap();
            }
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{TestServer, temp_dir};
    use super::*;
    use crate::status::render::tests::sample_report;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream as StdStream;
    use std::time::Instant;

    /// Sends `request` (if any), half-closes when asked, and returns the whole reply.
    fn exchange(path: &Path, request: &[u8], half_close: bool) -> String {
        let mut s = StdStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // A server that refuses (busy) may close before reading: as the real client
        // does, a failed send still reads what it said.
        if !request.is_empty() && s.write_all(request).is_err() {
            return read_all(&mut s);
        }
        if half_close {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        read_all(&mut s)
    }

    /// Everything the server sent. A server that closes with input unread makes the
    /// end a reset instead of end-of-file; what it sent before is still delivered.
    fn read_all(s: &mut StdStream) -> String {
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("reading the reply: {e}"),
            }
        }
        String::from_utf8(reply).unwrap()
    }

    fn error_reply(message: &str) -> String {
        format!("{}\n", serde_json::json!({ "error": message }))
    }

    #[test]
    fn answers_status_with_the_report_as_one_json_line() {
        let server = TestServer::start(sample_report());
        let reply = exchange(&server.path, b"status\n", false);
        assert!(reply.ends_with('\n'));
        assert_eq!(reply.matches('\n').count(), 1);
        let report: StatusReport = serde_json::from_str(&reply).unwrap();
        assert_eq!(report, sample_report());
        // CRLF and a request closed by EOF are accepted too.
        let reply = exchange(&server.path, b"status\r\n", false);
        assert_eq!(
            serde_json::from_str::<StatusReport>(&reply).unwrap(),
            sample_report()
        );
        let reply = exchange(&server.path, b"status", true);
        assert_eq!(
            serde_json::from_str::<StatusReport>(&reply).unwrap(),
            sample_report()
        );
    }

    #[test]
    fn socket_is_root_only_in_a_private_directory() {
        let server = TestServer::start(sample_report());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&server.path), 0o600);
        assert_eq!(mode(server.path.parent().unwrap()), 0o700);
        assert!(
            std::fs::symlink_metadata(&server.path)
                .unwrap()
                .file_type()
                .is_socket()
        );
    }

    #[test]
    fn bad_requests_get_a_one_line_error() {
        let server = TestServer::start(sample_report());
        let p = &server.path;
        assert_eq!(
            exchange(p, b"stats\n", false),
            error_reply("unknown request \"stats\"; send \"status\" and a newline")
        );
        assert_eq!(
            exchange(p, b"", true),
            error_reply("unknown request \"\"; send \"status\" and a newline")
        );
        assert_eq!(
            exchange(p, b"\xff\xfe\n", false),
            error_reply("request is not UTF-8 text; send \"status\" and a newline")
        );
        assert_eq!(
            exchange(p, &[b'a'; 2000], false),
            error_reply("request longer than 1024 bytes; send \"status\" and a newline")
        );
        let long = format!("{}\n", "x".repeat(1025));
        assert_eq!(
            exchange(p, long.as_bytes(), false),
            error_reply("request longer than 1024 bytes; send \"status\" and a newline")
        );
    }

    #[test]
    fn a_silent_client_times_out_without_blocking_others() {
        let server = TestServer::start(sample_report());
        let started = Instant::now();
        let mut silent = StdStream::connect(&server.path).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Others are served at once while the silent one waits.
        for _ in 0..3 {
            let reply = exchange(&server.path, b"status\n", false);
            assert_eq!(
                serde_json::from_str::<StatusReport>(&reply).unwrap(),
                sample_report()
            );
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let reply = read_all(&mut silent);
        assert_eq!(
            reply,
            error_reply("no request within 2 s; send \"status\" and a newline")
        );
        assert!(started.elapsed() >= REQUEST_TIMEOUT);
    }

    /// Small limits, so tests fill every slot.
    const SMALL: Limits = Limits {
        max_clients: 4,
        idle_evict_after: Duration::from_millis(200),
        request_timeout: Duration::from_secs(10),
        reply_timeout: Duration::from_secs(1),
    };

    fn me() -> u32 {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() }
    }

    /// Waits (bounded) until `done` holds for the socket's counters.
    fn wait_stats(stats: &Stats, what: &str, done: impl Fn(&StatusSocket) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(&stats.get()) {
            assert!(Instant::now() < deadline, "{what}: {:?}", stats.get());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_silent_client_is_closed_to_make_room_for_a_new_one() {
        let (server, stats) = TestServer::start_limited(sample_report(), me(), SMALL);
        let mut silent: Vec<StdStream> = (0..SMALL.max_clients)
            .map(|_| StdStream::connect(&server.path).unwrap())
            .collect();
        wait_stats(&stats, "all slots held", |s| s.clients == 4);
        std::thread::sleep(SMALL.idle_evict_after);
        // Every slot is taken by a silent client: the oldest makes room.
        let reply = exchange(&server.path, b"status\n", false);
        assert_eq!(
            serde_json::from_str::<StatusReport>(&reply).unwrap(),
            sample_report()
        );
        silent[0]
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(
            read_all(&mut silent[0]),
            error_reply(
                "busy: too many status clients at once, try again (this connection sent \
                 nothing for 200 ms while others waited)"
            )
        );
        let s = stats.get();
        assert_eq!((s.closed_idle, s.refused_busy, s.served), (1, 0, 1));
        // The other three still hold their slots and are answered when they ask.
        for s in &mut silent[1..] {
            s.write_all(b"status\n").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let reply = read_all(s);
            assert_eq!(
                serde_json::from_str::<StatusReport>(&reply).unwrap(),
                sample_report()
            );
        }
        wait_stats(&stats, "slots freed", |s| s.clients == 0 && s.served == 4);
        assert_eq!(stats.get().peak_clients, 5);
    }

    #[test]
    fn clients_that_asked_are_kept_and_a_new_one_is_told_busy() {
        // A reply far larger than a socket buffer: clients that do not read hold a slot.
        let mut big = sample_report();
        let flow = big.flows[0].clone();
        big.flows = vec![flow; 4000];
        let (server, stats) = TestServer::start_limited(big.clone(), me(), SMALL);
        let started = Instant::now();
        let non_readers: Vec<StdStream> = (0..SMALL.max_clients)
            .map(|_| {
                let mut s = StdStream::connect(&server.path).unwrap();
                s.write_all(b"status\n").unwrap();
                s
            })
            .collect();
        wait_stats(&stats, "all slots asked", |s| s.clients == 4);
        std::thread::sleep(SMALL.idle_evict_after);
        assert_eq!(
            exchange(&server.path, b"status\n", false),
            error_reply(BUSY)
        );
        assert_eq!(stats.get().refused_busy, 1);
        // Their reply deadline frees the slots; nobody else was held up meanwhile.
        wait_stats(&stats, "reply deadlines", |s| s.reply_timeouts == 4);
        assert!(started.elapsed() >= SMALL.reply_timeout);
        let reply = exchange(&server.path, b"status\n", false);
        assert_eq!(serde_json::from_str::<StatusReport>(&reply).unwrap(), big);
        let s = stats.get();
        assert_eq!((s.closed_idle, s.refused_busy, s.served), (0, 1, 1));
        drop(non_readers);
    }

    #[test]
    fn one_encoding_is_shared_by_requests_close_together() {
        use std::sync::atomic::AtomicUsize;
        let built = Arc::new(AtomicUsize::new(0));
        let counted = built.clone();
        let replies = Replies {
            report: Arc::new(move || {
                counted.fetch_add(1, Ordering::Relaxed);
                sample_report()
            }),
            last: Mutex::default(),
        };
        let first = replies.get();
        let second = replies.get();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(built.load(Ordering::Relaxed), 1);
        std::thread::sleep(REPLY_REUSE);
        let third = replies.get();
        assert_eq!(built.load(Ordering::Relaxed), 2);
        assert_eq!(first, third);
    }

    #[test]
    fn a_second_daemon_is_refused_and_a_stale_socket_replaced() {
        let mut server = TestServer::start(sample_report());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(async { bind(&server.path).unwrap_err() });
        assert_eq!(
            err.to_string(),
            format!(
                "another monitor daemon is already serving status on {}",
                server.path.display()
            )
        );
        // Shutdown removes the socket.
        server.stop();
        assert!(!server.path.exists());

        // A socket left behind by a dead process is replaced.
        let dir = temp_dir("stale");
        let path = dir.join("monitor.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        rt.block_on(async {
            let listener = bind(&path).unwrap();
            let client = tokio::net::UnixStream::connect(&path).await.unwrap();
            let (_accepted, _) = listener.accept().await.unwrap();
            drop(client);
        });

        // A regular file is never deleted.
        let file = dir.join("file");
        std::fs::write(&file, "keep").unwrap();
        let err = rt.block_on(async { bind(&file).unwrap_err() });
        assert_eq!(
            err.to_string(),
            format!(
                "{} exists and is not a socket; remove it or set another daemon.status_socket",
                file.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn access_is_root_or_the_daemon_user() {
        let access = Access { daemon_euid: 1000 };
        assert!(access.permits(0));
        assert!(access.permits(1000));
        assert!(!access.permits(1001));
        assert!(!access.permits(65534));
    }

    #[test]
    fn other_users_are_denied_by_peer_credentials() {
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        let denied = error_reply("permission denied: status is root-only");
        if me == 0 {
            // Root: a real client running as nobody, past a socket opened up to all.
            let server = TestServer::start(sample_report());
            std::fs::set_permissions(&server.dir, Permissions::from_mode(0o755)).unwrap();
            let sub = server.path.parent().unwrap();
            std::fs::set_permissions(sub, Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&server.path, Permissions::from_mode(0o666)).unwrap();
            assert_eq!(request_as_user(&server.path, 65534), denied);
        } else {
            // Not root: this user is not the (pretend) daemon user.
            let server = TestServer::start_with(sample_report(), me + 1);
            assert_eq!(exchange(&server.path, b"status\n", false), denied);
        }
    }

    /// Sends `status\n` from a forked child running as `uid` and returns its reply. The
    /// child only makes system calls (no allocation) between fork and exit.
    fn request_as_user(path: &Path, uid: u32) -> String {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain C structs and system calls; every buffer outlives its use, and
        // the child calls only async-signal-safe functions before _exit.
        unsafe {
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = path.as_os_str().as_bytes();
            assert!(bytes.len() < addr.sun_path.len());
            for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
                *d = *s as libc::c_char;
            }
            let addr_len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            let mut pipe = [0; 2];
            assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::close(pipe[0]);
                if libc::setgid(uid) != 0 || libc::setuid(uid) != 0 {
                    libc::_exit(2);
                }
                let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if s < 0 || libc::connect(s, (&raw const addr).cast(), addr_len) != 0 {
                    libc::_exit(3);
                }
                let request = b"status\n";
                libc::write(s, request.as_ptr().cast(), request.len());
                let mut buf = [0u8; 512];
                loop {
                    let n = libc::read(s, buf.as_mut_ptr().cast(), buf.len());
                    if n <= 0 {
                        break;
                    }
                    libc::write(pipe[1], buf.as_ptr().cast(), n as usize);
                }
                libc::_exit(0);
            }
            libc::close(pipe[1]);
            let mut reply = String::new();
            let mut reader = <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(pipe[0]);
            reader.read_to_string(&mut reply).unwrap();
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFEXITED(status));
            assert_eq!(libc::WEXITSTATUS(status), 0, "child failed");
            reply
        }
    }
}
