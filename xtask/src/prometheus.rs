//! A real Prometheus server (Debian `prometheus`) inside a test namespace, scraping the
//! monitor's endpoint every second, and its HTTP query API. Dropping the guard stops it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::Netns;

/// Where the server listens inside its namespace.
pub const SERVER: &str = "127.0.0.1:9090";

/// A Prometheus server in a namespace; dropping it stops it (SIGTERM, then SIGKILL).
pub struct PrometheusServer {
    child: Option<Child>,
    log: PathBuf,
}

impl PrometheusServer {
    /// Scrapes `target` (job "monitor") every second, listens on [`SERVER`] in `ns`,
    /// keeps its data and log in `dir`.
    pub fn start(ns: &Netns, dir: &Path, target: &str) -> Result<Self> {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: monitor\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )?;
        let log = dir.join("prometheus.log");
        let log_file = std::fs::File::create(&log)?;
        let tsdb = dir.join("tsdb");
        // Spawned on a thread inside the namespace: the child lives in it.
        let child = ns.run(|| -> Result<Child> {
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", tsdb.display()))
                .arg(format!("--web.listen-address={SERVER}"))
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .spawn()
                .context("cannot start prometheus (installed by `cargo xtask setup`)")
        })?;
        Ok(PrometheusServer {
            child: Some(child),
            log,
        })
    }

    /// The server's own log (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// RFC 3986 percent-encoding of a query-string value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// HTTP/1.0 GET `path` on `addr` inside `ns`: the body, or `None` if it cannot connect.
pub fn http_get(ns: &Netns, addr: &str, path: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().ok()?;
    let path = path.to_string();
    ns.run(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
    })
}

/// [`query`]'s error when the server cannot be reached (e.g. still starting).
pub const NOT_ANSWERING: &str = "Prometheus did not answer";

/// An instant query: the result vector, or the error ([`NOT_ANSWERING`], or what
/// Prometheus said about the query).
pub fn query(ns: &Netns, promql: &str) -> Result<Vec<Value>, String> {
    let body = http_get(
        ns,
        SERVER,
        &format!("/api/v1/query?query={}", url_encode(promql)),
    )
    .ok_or_else(|| NOT_ANSWERING.to_string())?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}
