//! The daemon under its own clients (issue 16), on the namespace testbed: hundreds of
//! concurrent status requests past hundreds of idle and non-reading connections, and a
//! real Prometheus scrape past idle TCP connections. Counts are exact: the test knows
//! every connection it made.

mod prometheus_server;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use monitor::report::scale::StatusSocket;
use monitor::status::client;
use monitor::status::server::REQUEST_TIMEOUT;
use prometheus_server::{PrometheusServer, http_get, prom_query};
use xtask::{TempDir, bed::GatewayBed};

const CONCURRENT: usize = 200;
const IDLE: usize = 200;
const NON_READERS: usize = 20;
/// Every normal status request answers within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// The daemon's resident memory may grow at most this much under the clients.
const RSS_GROWTH_MAX_KIB: u64 = 16 * 1024;
const PROMETHEUS_ENDPOINT: &str = "127.0.0.1:9464";

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("daemon /proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The status socket's counters, fetched with the client `monitor status` uses.
fn socket_stats(bed: &GatewayBed) -> StatusSocket {
    client::fetch(&bed.socket(), Duration::from_secs(5))
        .expect("status")
        .scale
        .status_socket
}

#[test]
fn status_answers_many_clients_past_idle_and_non_reading_ones() {
    let bed = GatewayBed::launch();
    let pid = bed.daemon().pid();
    let socket = bed.socket();
    // Past the reply reuse window of the daemon's readiness checks: a fresh count.
    std::thread::sleep(Duration::from_millis(250));
    let before = socket_stats(&bed);
    let rss_before = vm_rss_kib(pid);

    // Connections that never send anything, and ones that ask but never read.
    let idle: Vec<UnixStream> = (0..IDLE)
        .map(|_| UnixStream::connect(&socket).expect("idle connection"))
        .collect();
    let non_readers: Vec<UnixStream> = (0..NON_READERS)
        .map(|_| {
            let mut s = UnixStream::connect(&socket).expect("non-reading connection");
            s.write_all(b"status\n").expect("request");
            s
        })
        .collect();
    let opened = Instant::now();

    // All at once, each timed from its own connect to the whole reply.
    let start = Arc::new(Barrier::new(CONCURRENT));
    let clients: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let (start, socket) = (start.clone(), socket.clone());
            std::thread::spawn(move || {
                start.wait();
                let t = Instant::now();
                let report = client::fetch(&socket, Duration::from_secs(5));
                (t.elapsed(), report.map(|r| r.daemon.pid))
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for c in clients {
        let (took, pid_seen) = c.join().expect("client thread");
        assert_eq!(pid_seen.expect("status answered"), pid);
        slowest = slowest.max(took);
    }
    assert!(
        opened.elapsed() < REQUEST_TIMEOUT,
        "the idle connections must still be open while the clients ask"
    );
    assert!(
        slowest < ANSWER_WITHIN,
        "slowest status answer took {slowest:?}"
    );

    // The idle ones are closed by their deadline; nobody was turned away.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut polls = 0;
    let after = loop {
        let s = socket_stats(&bed);
        polls += 1;
        // Each poll's report counts what was delivered before it (`before` itself, the
        // clients, the non-readers whose small reply fit their socket buffer, and the
        // earlier polls), once the idle connections' deadline has passed.
        let expected = before.served + 1 + (CONCURRENT + NON_READERS) as u64 + polls - 1;
        if s.request_timeouts == before.request_timeouts + IDLE as u64 && s.served == expected {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "counters never settled: {s:?}; served {} before, {expected} expected at poll {polls}",
            before.served
        );
        // Past the reply reuse window, so the next poll's report is built afresh.
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(after.refused_busy, before.refused_busy);
    assert_eq!(after.closed_idle, before.closed_idle);
    assert_eq!(after.reply_timeouts, before.reply_timeouts);
    assert!(
        after.peak_clients > (IDLE + NON_READERS) as u64,
        "peak {} with {} connections held",
        after.peak_clients,
        IDLE + NON_READERS
    );
    assert_eq!(after.max_clients, 512);
    // Only the poll itself is held now.
    assert_eq!(after.clients, 1);
    let rss_after = vm_rss_kib(pid);
    eprintln!(
        "slowest of {CONCURRENT} status answers: {slowest:?}; daemon RSS {rss_before} -> \
         {rss_after} KiB; peak {} connections",
        after.peak_clients
    );
    assert!(
        rss_after < rss_before + RSS_GROWTH_MAX_KIB,
        "daemon RSS grew from {rss_before} to {rss_after} KiB"
    );
    drop((idle, non_readers));
}

#[test]
fn prometheus_scrape_succeeds_past_three_idle_connections() {
    let bed = GatewayBed::launch_with(
        &format!("\n[export]\nprometheus = true\nprometheus_listen = \"{PROMETHEUS_ENDPOINT}\"\n"),
        |_| {},
    );
    let addr: SocketAddr = PROMETHEUS_ENDPOINT.parse().unwrap();
    // A real Prometheus server, scraping every second with a 1 s scrape timeout.
    let dir = TempDir::new().expect("tempdir");
    let prometheus = PrometheusServer::start(&bed.tb.gw, dir.path(), PROMETHEUS_ENDPOINT);
    let up = "up{job=\"monitor\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while prom_query(&bed.tb.gw, up).as_deref() != Some("1") {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the endpoint; log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Three clients that connect and say nothing, held open through what follows.
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| {
            bed.tb
                .gw
                .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
                .expect("idle connection")
        })
        .collect();
    let opened = unix_now();
    let t = Instant::now();
    let body = http_get(&bed.tb.gw, PROMETHEUS_ENDPOINT, "/metrics").expect("scrape");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(body.contains("\n# TYPE monitor_packets_seen_total counter\n"));

    // Prometheus' own next scrapes succeed, within its 1 s timeout, while the idle
    // connections are still open (the endpoint closes them after its 5 s read timeout).
    let scraped_at = |q: &str| -> Option<f64> {
        prom_query(&bed.tb.gw, &format!("timestamp({q})"))?
            .parse()
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let at = scraped_at(up);
        if at.is_some_and(|at| at > opened + 1.0) {
            let at = at.unwrap();
            assert!(
                at < opened + 4.0,
                "first scrape after the idle connections at +{} s",
                at - opened
            );
            assert_eq!(prom_query(&bed.tb.gw, up).as_deref(), Some("1"));
            let took: f64 = prom_query(&bed.tb.gw, "scrape_duration_seconds{job=\"monitor\"}")
                .expect("scrape_duration_seconds")
                .parse()
                .unwrap();
            assert!(took < 1.0, "scrape took {took} s");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Prometheus scrape after the idle connections; last at {at:?}, opened at {opened}\n\
             prometheus log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(idle);
}
