//! A real Prometheus server (Debian `prometheus`, installed by `cargo xtask setup`) in a
//! testbed namespace, and the HTTP helpers to query it.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use xtask::Netns;

/// Where the Prometheus server listens, inside the namespace.
pub const PROMETHEUS_SERVER: &str = "127.0.0.1:9090";

/// A Prometheus server in a namespace; dropping it kills it.
pub struct PrometheusServer {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl PrometheusServer {
    /// Scrapes `target` every second; listens on [`PROMETHEUS_SERVER`]; data in `dir`.
    pub fn start(ns: &Netns, dir: &Path, target: &str) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: monitor\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let tsdb = dir.join("tsdb");
        // Spawned on a thread inside the namespace: the child lives in it.
        let child = ns.run(|| {
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", tsdb.display()))
                .arg(format!("--web.listen-address={PROMETHEUS_SERVER}"))
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("prometheus (installed by `cargo xtask setup`)")
        });
        PrometheusServer {
            child: Some(child),
            log,
        }
    }

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

/// HTTP/1.0 GET `path` on `addr` inside `ns`; the body, or `None` if it cannot connect.
pub fn http_get(ns: &Netns, addr: &str, path: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().unwrap();
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

/// Prometheus instant query: the value of the single resulting series, if exactly one.
pub fn prom_query(ns: &Netns, query: &str) -> Option<String> {
    let body = http_get(
        ns,
        PROMETHEUS_SERVER,
        &format!("/api/v1/query?query={}", url_encode(query)),
    )?;
    let v: Json = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    match result.as_slice() {
        [one] => one["value"][1].as_str().map(str::to_string),
        _ => None,
    }
}
