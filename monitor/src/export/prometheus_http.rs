//! The Prometheus endpoint's HTTP server: hyper's HTTP/1.1 server, one task per
//! connection, so scrapes are served concurrently and an idle or slow client holds only
//! its own connection. Each connection has deadlines: [`READ_TIMEOUT`] to send a request
//! head (also between keep-alive requests) and [`CONNECTION_DEADLINE`] in all; at most
//! [`MAX_CONNECTIONS`] are open at once (more get `503` and are closed). Scrapes close
//! together share one rendered body ([`BODY_REUSE`]).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::ReportFn;
use super::prometheus::{render, render_calls};
use super::{call_series, series};

/// How long a client may take to send a request head (from connecting, or from the
/// previous response on a kept-alive connection).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection may stay open, whatever it does.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(60);
/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Request heads larger than this are refused (hyper answers 431).
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// One rendered body answers every scrape within this long (scrapers of an HA pair
/// arrive together; each render copies the whole report).
pub const BODY_REUSE: Duration = Duration::from_millis(250);
/// The exposition format served.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What each scrape needs to render the series, and the last body rendered.
struct Scrape {
    report: ReportFn,
    max_call_series: u32,
    resource: Vec<(String, String)>,
    last: Mutex<Option<(Instant, Bytes)>>,
}

impl Scrape {
    /// The series as text, rendered at most once per [`BODY_REUSE`].
    fn body(&self) -> Bytes {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, body)) = last.as_ref()
            && at.elapsed() < BODY_REUSE
        {
            return body.clone();
        }
        let report = (self.report)();
        let mut text = render(
            &series::collect(&report, self.max_call_series),
            &self.resource,
        );
        render_calls(
            &mut text,
            &call_series::collect(&report, self.max_call_series),
            &self.resource,
        );
        let body = Bytes::from(text);
        *last = Some((Instant::now(), body.clone()));
        body
    }
}

/// Serves `GET /metrics` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    report: ReportFn,
    max_call_series: u32,
    resource: Vec<(String, String)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let scrape = Arc::new(Scrape {
        report,
        max_call_series,
        resource,
        last: Mutex::default(),
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // E.g. out of file descriptors: keep serving, but don't spin.
                    log::warn!("prometheus endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Never wait on a client here: best effort, then close.
            let _ = stream.try_write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            continue;
        };
        let scrape = scrape.clone();
        let service = service_fn(move |request| {
            let scrape = scrape.clone();
            async move { Ok::<_, Infallible>(respond(&scrape, &request)) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(READ_TIMEOUT)
            .max_buf_size(MAX_REQUEST_HEAD)
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_DEADLINE, connection).await {
                log::debug!("prometheus endpoint: connection ended: {e}");
            }
            drop(slot);
        });
    }
}

/// The response to one request: the series on `GET /metrics`, 404 on anything else.
fn respond(scrape: &Scrape, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if request.method() == Method::GET && request.uri().path() == "/metrics" {
            (StatusCode::OK, TEXT_FORMAT, scrape.body())
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"only GET /metrics is served\n"),
            )
        };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    if status != StatusCode::OK {
        headers.insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
    }
    response
}
