//! An OTLP receiver for tests, built on the official protobuf definitions
//! (`opentelemetry-proto`): gRPC through tonic's generated services, HTTP/protobuf as a
//! small HTTP/1.1 server decoding the same messages. It can start as a black hole that
//! accepts connections and never answers, and be told to answer later; serve TLS (a
//! test CA's server certificate, optionally requiring a client certificate); and it
//! counts gzip-compressed requests. [`SilencingProxy`] stands in front of it to make the
//! open connections go silent while new ones are still answered (a half-open
//! connection).

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
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
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
    /// Requests that came gzip-compressed (gRPC `grpc-encoding`, HTTP `Content-Encoding`).
    pub gzip_requests: usize,
}

/// TLS for the receiver: PEM files of its certificate chain and key, and, to require
/// client certificates, the CA that signs them.
#[derive(Clone, Debug)]
pub struct Tls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub client_ca: Option<std::path::PathBuf>,
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
        let gzip = is_gzip(request.metadata());
        let mut r = self.0.lock().unwrap();
        r.gzip_requests += usize::from(gzip);
        r.metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let gzip = is_gzip(request.metadata());
        let mut r = self.0.lock().unwrap();
        r.gzip_requests += usize::from(gzip);
        r.logs.push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

fn is_gzip(m: &tonic::metadata::MetadataMap) -> bool {
    m.get("grpc-encoding").and_then(|v| v.to_str().ok()) == Some("gzip")
}

impl Receiver {
    /// Serves on `listener` (already bound, so the caller knows the port). With
    /// `black_hole`, connections are accepted and held unanswered until [`answer`].
    pub fn start(listener: TcpListener, protocol: Protocol, black_hole: bool) -> Self {
        Self::start_with(listener, protocol, black_hole, None)
    }

    /// [`Receiver::start`] over TLS.
    pub fn start_tls(listener: TcpListener, protocol: Protocol, tls: Tls) -> Self {
        Self::start_with(listener, protocol, false, Some(tls))
    }

    fn start_with(
        listener: TcpListener,
        protocol: Protocol,
        black_hole: bool,
        tls: Option<Tls>,
    ) -> Self {
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
                    Protocol::Grpc => serve_grpc(listener, received, stop, tls),
                    Protocol::Http => serve_http(listener, received, stop, tls),
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

fn serve_grpc(
    listener: TcpListener,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    tls: Option<Tls>,
) {
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
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            use tonic::transport::{Certificate, Identity, ServerTlsConfig};
            let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
                std::fs::read(&tls.cert).unwrap(),
                std::fs::read(&tls.key).unwrap(),
            ));
            if let Some(ca) = &tls.client_ca {
                config = config.client_ca_root(Certificate::from_pem(std::fs::read(ca).unwrap()));
            }
            builder = builder.tls_config(config).unwrap();
        }
        let gzip = tonic::codec::CompressionEncoding::Gzip;
        builder
            .add_service(MetricsServiceServer::new(sink.clone()).accept_compressed(gzip))
            .add_service(LogsServiceServer::new(sink).accept_compressed(gzip))
            .serve_with_incoming_shutdown(incoming, stopped)
            .await
            .unwrap();
    });
}

fn server_tls_config(tls: &Tls) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&tls.key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}

fn serve_http(
    listener: TcpListener,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    tls: Option<Tls>,
) {
    let tls = tls.as_ref().map(server_tls_config);
    let mut conns = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let (received, stop) = (received.clone(), stop.clone());
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                match &tls {
                    None => conns.push(std::thread::spawn(move || http_conn(s, received, stop))),
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                        let s = rustls::StreamOwned::new(conn, s);
                        conns.push(std::thread::spawn(move || http_conn(s, received, stop)));
                    }
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

/// One keep-alive HTTP/1.1 connection: POST /v1/metrics and /v1/logs with protobuf
/// bodies, gzip-compressed or not. The stream has a short read timeout.
fn http_conn(
    mut s: impl std::io::Read + std::io::Write,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
) {
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
                let mut body = buf[end + 4..end + 4 + len].to_vec();
                let gzip = head.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("content-encoding") && v.trim() == "gzip"
                    })
                });
                if gzip {
                    let mut plain = Vec::new();
                    flate2::read::GzDecoder::new(body.as_slice())
                        .read_to_end(&mut plain)
                        .unwrap();
                    body = plain;
                    received.lock().unwrap().gzip_requests += 1;
                }
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

/// A TCP proxy to `target` whose open connections can be silenced: after [`silence`],
/// the connections open at that moment stay open but carry nothing either way (a
/// half-open path: a NAT that lost its state, a hung peer), while new connections are
/// proxied as usual.
pub struct SilencingProxy {
    pub addr: SocketAddr,
    generation: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilencingProxy {
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (generation, stop) = (generation.clone(), stop.clone());
            std::thread::spawn(move || {
                listener.set_nonblocking(true).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    let Ok((client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    // Live while the generation it was opened in is current.
                    let born = generation.load(Ordering::SeqCst);
                    for (from, to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        let (generation, stop) = (generation.clone(), stop.clone());
                        std::thread::spawn(move || pump(from, to, born, &generation, &stop));
                    }
                }
            })
        };
        SilencingProxy {
            addr,
            generation,
            stop,
            thread: Some(thread),
        }
    }

    /// From now on, the connections open so far carry nothing.
    pub fn silence(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    born: u64,
    generation: &std::sync::atomic::AtomicU64,
    stop: &AtomicBool,
) {
    from.set_nonblocking(false).unwrap();
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match from.read(&mut buf) {
            Ok(0) => return,
            // Silenced: swallow what arrives, answer nothing, keep the socket open.
            Ok(_) if generation.load(Ordering::SeqCst) != born => {}
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for SilencingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Certificates made by `openssl` for a TLS test: a CA, a server certificate for
/// 127.0.0.1 and a client certificate both signed by it, and an unrelated CA.
pub struct TestPki {
    pub ca: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
    pub wrong_ca: std::path::PathBuf,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (installed by `cargo xtask setup`)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestPki {
    pub fn create(dir: &std::path::Path) -> TestPki {
        let ca = |name: &str| {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={name}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            )
        };
        ca("test-ca");
        ca("wrong-ca");
        let leaf = |name: &str, ext: &str| {
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-subj",
                    &format!("/CN={name}"),
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "test-ca.pem",
                    "-CAkey",
                    "test-ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        };
        leaf(
            "server",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        leaf(
            "client",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        );
        TestPki {
            ca: dir.join("test-ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            wrong_ca: dir.join("wrong-ca.pem"),
        }
    }

    /// The receiver's side: the server certificate, client certificates required.
    pub fn server(&self) -> Tls {
        Tls {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: Some(self.ca.clone()),
        }
    }
}

/// The string attribute `key`, if present and a string.
pub fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// The integer attribute `key`, if present and an integer.
pub fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        any_value::Value::IntValue(i) => Some(*i),
        _ => None,
    }
}
