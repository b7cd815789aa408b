//! An OTLP receiver for tests, built on the official protobuf definitions
//! (`opentelemetry-proto`): gRPC through tonic's generated services, HTTP/protobuf as a
//! small HTTP/1.1 server decoding the same messages. It can start as a black hole that
//! accepts connections and never answers, and be told to answer later.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
    logs_service_server::{LogsService, LogsServiceServer},
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    metrics_service_server::{MetricsService, MetricsServiceServer},
};
use prost::Message as _;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Default, Debug)]
pub struct Received {
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Received>>,
    answer: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().logs.push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves on `listener` (already bound, so the caller knows the port). With
    /// `black_hole`, connections are accepted and held unanswered until [`answer`].
    pub fn start(listener: TcpListener, protocol: Protocol, black_hole: bool) -> Self {
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let answer = Arc::new(AtomicBool::new(!black_hole));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, answer, stop) = (received.clone(), answer.clone(), stop.clone());
            std::thread::spawn(move || {
                listener.set_nonblocking(true).unwrap();
                // Black hole: accept and hold, never read or answer.
                let mut held: Vec<TcpStream> = Vec::new();
                while !answer.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((s, _)) => held.push(s),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                // The hung collector "restarts": its connections close, then it serves.
                drop(held);
                match protocol {
                    Protocol::Grpc => serve_grpc(listener, received, stop),
                    Protocol::Http => serve_http(listener, received, stop),
                }
            })
        };
        Receiver {
            addr,
            received,
            answer,
            stop,
            thread: Some(thread),
        }
    }

    /// Ends the black hole: from now on exports are answered.
    pub fn answer(&self) {
        self.answer.store(true, Ordering::SeqCst);
    }

    /// Waits (bounded) until `pred` holds for what was received.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Received) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.received.lock().unwrap()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_grpc(listener: TcpListener, received: Arc<Mutex<Received>>, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let sink = Sink(received);
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let stopped = async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(sink.clone()))
            .add_service(LogsServiceServer::new(sink))
            .serve_with_incoming_shutdown(incoming, stopped)
            .await
            .unwrap();
    });
}

fn serve_http(listener: TcpListener, received: Arc<Mutex<Received>>, stop: Arc<AtomicBool>) {
    let mut conns = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let (received, stop) = (received.clone(), stop.clone());
                conns.push(std::thread::spawn(move || http_conn(s, received, stop)));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

/// One keep-alive HTTP/1.1 connection: POST /v1/metrics and /v1/logs with protobuf bodies.
fn http_conn(mut s: TcpStream, received: Arc<Mutex<Received>>, stop: Arc<AtomicBool>) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // A whole request in the buffer?
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let response = match path.as_str() {
                    "/v1/metrics" => {
                        let req = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
                        received.lock().unwrap().metrics.push(req);
                        ExportMetricsServiceResponse::default().encode_to_vec()
                    }
                    "/v1/logs" => {
                        let req = ExportLogsServiceRequest::decode(body.as_slice()).unwrap();
                        received.lock().unwrap().logs.push(req);
                        ExportLogsServiceResponse::default().encode_to_vec()
                    }
                    other => panic!("unexpected OTLP/HTTP path {other}"),
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                    response.len()
                );
                if s.write_all(head.as_bytes()).is_err() || s.write_all(&response).is_err() {
                    return;
                }
                continue;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}
