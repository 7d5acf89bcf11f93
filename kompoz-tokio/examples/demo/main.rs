//! The kompoz demo: a flaky service on loopback, 16 callers, and the stack a
//! user would write around it — a call policy of `limit_named` ∘ breaker ∘
//! timeout ∘ retry, every layer named — with a live timeline tallied from
//! the layers' events, and at the end the metrics as Prometheus scrapes
//! them (from an endpoint the demo serves itself on loopback).
//!
//! ```text
//! cargo run -p kompoz-tokio --example demo
//! ```
//!
//! Colour is used when standard output is a terminal and `NO_COLOR` is unset.

// Shared with `tests/demo_story.rs`, which uses parts the demo does not.
#[allow(dead_code)]
mod scenario;
#[allow(dead_code)]
mod service;

use std::io::IsTerminal;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The application installs the recorder; kompoz only reports to the
    // `metrics` facade (its `metrics` feature).
    let metrics = PrometheusBuilder::new().install_recorder()?;

    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let settings = scenario::Settings::for_schedule(service::Schedule::standard());
    let mut out = std::io::stdout();
    scenario::run(settings, &mut out, color).await?;

    let addr = serve_metrics_once(metrics).await?;
    let body = scrape(addr).await?;
    println!("\nMetrics, as Prometheus scrapes them from http://{addr}/metrics:");
    for line in body.lines().filter(|l| !l.is_empty()) {
        println!("  {line}");
    }
    Ok(())
}

/// Serves one `GET /metrics` on a free loopback port: the text exposition
/// format, rendered from the recorder at the time of the request.
async fn serve_metrics_once(metrics: PrometheusHandle) -> Result<std::net::SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        // The request line and headers end with an empty line.
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let body = metrics.render();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    });
    Ok(addr)
}

/// One scrape, as Prometheus does it: `GET /metrics`, the body returned.
async fn scrape(addr: std::net::SocketAddr) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("no end of headers in the response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("scrape failed: {head}").into());
    }
    Ok(body.to_owned())
}
