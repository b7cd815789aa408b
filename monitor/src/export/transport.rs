//! The OTLP transports: both exporters (metrics, logs) for gRPC or HTTP/protobuf, built
//! together so that a failed export can start over on fresh connections; TLS through
//! rustls (`ring`): the system's roots plus a configured CA, an optional client
//! certificate; gzip; and an HTTP client that keeps the cause of a transport error.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use opentelemetry_otlp::{
    Compression, LogExporter, MetricExporter, Protocol, WithExportConfig as _, WithHttpConfig as _,
    WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::LogExporter as _;

use crate::config::export::{OtlpCompression, OtlpProtocol, OtlpSettings, TlsFiles};

/// The two exporters; rebuilt together (fresh connections) after a failed export.
pub struct Exporters {
    pub metrics: MetricExporter,
    /// `None`: no logs endpoint, log records are not exported.
    pub logs: Option<LogExporter>,
    /// The HTTP client's last transport error (HTTP/protobuf only).
    pub http_error: Arc<Mutex<Option<String>>>,
}

/// Builds both exporters on fresh connections.
pub fn exporters(s: &OtlpSettings, resource: &Resource) -> anyhow::Result<Exporters> {
    let http_error: Arc<Mutex<Option<String>>> = Arc::default();
    let gzip = s.compression == OtlpCompression::Gzip;
    let (metrics, logs) = match s.protocol {
        OtlpProtocol::Grpc => {
            let metadata = || {
                let mut map = tonic::metadata::MetadataMap::new();
                for (k, v) in &s.headers {
                    if let (Ok(k), Ok(v)) = (
                        k.to_ascii_lowercase()
                            .parse::<tonic::metadata::MetadataKey<_>>(),
                        v.parse(),
                    ) {
                        map.insert(k, v);
                    }
                }
                map
            };
            let mut m = MetricExporter::builder()
                .with_tonic()
                .with_channel(grpc_channel(s, &s.metrics_url)?)
                .with_protocol(Protocol::Grpc)
                .with_timeout(s.timeout)
                .with_metadata(metadata());
            if gzip {
                m = m.with_compression(Compression::Gzip);
            }
            let l = match &s.logs_url {
                None => None,
                Some(url) => {
                    let mut l = LogExporter::builder()
                        .with_tonic()
                        .with_channel(grpc_channel(s, url)?)
                        .with_protocol(Protocol::Grpc)
                        .with_timeout(s.timeout)
                        .with_metadata(metadata());
                    if gzip {
                        l = l.with_compression(Compression::Gzip);
                    }
                    Some(l.build()?)
                }
            };
            (m.build()?, l)
        }
        OtlpProtocol::HttpProtobuf => {
            let headers: HashMap<String, String> = s.headers.clone().into_iter().collect();
            let client = http_client(s, http_error.clone())?;
            let mut m = MetricExporter::builder()
                .with_http()
                .with_http_client(client.clone())
                .with_endpoint(s.metrics_url.clone())
                .with_protocol(Protocol::HttpBinary)
                .with_timeout(s.timeout)
                .with_headers(headers.clone());
            if gzip {
                m = m.with_compression(Compression::Gzip);
            }
            let l = match &s.logs_url {
                None => None,
                Some(url) => {
                    let mut l = LogExporter::builder()
                        .with_http()
                        .with_http_client(client)
                        .with_endpoint(url.clone())
                        .with_protocol(Protocol::HttpBinary)
                        .with_timeout(s.timeout)
                        .with_headers(headers);
                    if gzip {
                        l = l.with_compression(Compression::Gzip);
                    }
                    Some(l.build()?)
                }
            };
            (m.build()?, l)
        }
    };
    let logs = logs.map(|mut l| {
        l.set_resource(resource);
        l
    });
    Ok(Exporters {
        metrics,
        logs,
        http_error,
    })
}

/// A lazily connecting gRPC channel to `url` (TLS for https://); a new one means a new
/// connection.
fn grpc_channel(s: &OtlpSettings, url: &str) -> anyhow::Result<tonic::transport::Channel> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .with_context(|| format!("\"{url}\" is not a valid gRPC endpoint"))?
        .connect_timeout(s.timeout)
        .timeout(s.timeout);
    if url.starts_with("https://") {
        endpoint = endpoint
            .tls_config(grpc_tls(&s.tls)?)
            .context("setting up TLS for the gRPC endpoint")?;
    }
    Ok(endpoint.connect_lazy())
}

fn read(path: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {path}"))
}

/// The system's root certificates (empty when the system has none, e.g. no
/// ca-certificates package), read once for the HTTP client: exporters are rebuilt after
/// every failed export. (tonic reads them again for each gRPC channel it builds: that
/// is once per failed export, a few milliseconds.)
fn system_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    static ROOTS: std::sync::OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> =
        std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| rustls_native_certs::load_native_certs().certs)
        .clone()
}

fn no_roots_error() -> anyhow::Error {
    anyhow::anyhow!(
        "TLS endpoint but nothing to trust: the system has no root certificates (install \
         ca-certificates) and export.otlp_ca_file (OTEL_EXPORTER_OTLP_CERTIFICATE) is unset"
    )
}

fn grpc_tls(t: &TlsFiles) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut c = ClientTlsConfig::new();
    let system = !system_roots().is_empty();
    if system {
        c = c.with_native_roots();
    }
    match &t.ca_file {
        Some(ca) => c = c.ca_certificate(Certificate::from_pem(read(ca)?)),
        None if !system => return Err(no_roots_error()),
        None => {}
    }
    if let Some((cert, key)) = &t.client {
        c = c.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(c)
}

type HttpsClient = opentelemetry_http::hyper::HyperClient<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

/// The hyper client, keeping the last transport error's whole chain: the SDK reports
/// any of them as "network error" only, which hides an untrusted certificate or a
/// refused connection from status.
#[derive(Debug, Clone)]
struct ExplainingClient {
    inner: HttpsClient,
    last_error: Arc<Mutex<Option<String>>>,
}

impl opentelemetry_http::HttpClient for ExplainingClient {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<
                        opentelemetry_http::Response<opentelemetry_http::Bytes>,
                        opentelemetry_http::HttpError,
                    >,
                > + Send
                + 'b,
        >,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let result = self.inner.send_bytes(request).await;
            if let Err(e) = &result {
                let mut chain = e.to_string();
                let mut source = e.source();
                while let Some(s) = source {
                    let text = s.to_string();
                    if !chain.contains(&text) {
                        chain.push_str(": ");
                        chain.push_str(&text);
                    }
                    source = s.source();
                }
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(chain);
                }
            }
            result
        })
    }
}

/// The SDK's hyper client on a connector that speaks TLS to https:// and plain TCP to
/// http:// endpoints.
fn http_client(
    s: &OtlpSettings,
    last_error: Arc<Mutex<Option<String>>>,
) -> anyhow::Result<ExplainingClient> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(s.timeout));
    let tls = if s.uses_tls() {
        rustls_config(&s.tls)?
    } else {
        // Never used for http:// URLs; an empty trust store keeps it that way.
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(ExplainingClient {
        inner: opentelemetry_http::hyper::HyperClient::new(connector, s.timeout, None),
        last_error,
    })
}

fn rustls_config(t: &TlsFiles) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(system_roots());
    if let Some(ca) = &t.ca_file {
        let certs = CertificateDer::pem_file_iter(Path::new(ca))
            .with_context(|| format!("cannot read {ca}"))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{ca} is not a PEM certificate file"))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        anyhow::ensure!(added > 0, "{ca} holds no usable CA certificate");
    }
    if roots.is_empty() {
        return Err(no_roots_error());
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    Ok(match &t.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(Path::new(cert))
                .with_context(|| format!("cannot read {cert}"))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{cert} is not a PEM certificate file"))?;
            let key = PrivateKeyDer::from_pem_file(Path::new(key))
                .with_context(|| format!("{key} holds no PEM private key"))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("the client certificate and key do not fit together")?
        }
    })
}
