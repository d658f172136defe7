//! `--prometheus ADDR:PORT`: a /metrics endpoint in the Prometheus text
//! format, rendered when scraped from the state the samples update. Served
//! by its own thread (tiny_http: a small synchronous HTTP server; messer
//! needs nothing more), so a slow scraper never delays sampling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("--prometheus {0}: give ADDR:PORT or PORT (e.g. 127.0.0.1:9464 or 9464)")]
    Address(String),
    #[error("--prometheus {addr}: cannot listen ({reason}); choose another port")]
    Bind { addr: SocketAddr, reason: String },
}

/// Parses ADDR:PORT, or a bare PORT on loopback.
pub fn parse_addr(text: &str) -> Result<SocketAddr, PrometheusError> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|_| PrometheusError::Address(text.to_string()))
}

/// Renders the exposition at a scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The running endpoint.
pub struct Endpoint {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Serves what `render` returns at every scrape.
    pub fn start(addr: SocketAddr, render: Render) -> Result<Self, PrometheusError> {
        let server =
            tiny_http::Server::http(addr).map_err(|e| PrometheusError::Bind { addr, reason: e.to_string() })?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let s = server.clone();
        let thread = std::thread::Builder::new()
            .name("messer-prometheus".into())
            .spawn(move || serve(&s, &*render))
            .map_err(|e| PrometheusError::Bind { addr, reason: e.to_string() })?;
        Ok(Endpoint { server, thread: Some(thread), addr })
    }
}

fn serve(server: &tiny_http::Server, render: &(dyn Fn() -> String + Send + Sync)) {
    let content_type = tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4; charset=utf-8").ok();
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("");
        let resp = if path == "/metrics" {
            let body = render();
            let mut r = tiny_http::Response::from_string(body);
            if let Some(h) = content_type.clone() {
                r.add_header(h);
            }
            r
        } else {
            tiny_http::Response::from_string("messer: see /metrics\n").with_status_code(404)
        };
        if let Err(e) = req.respond(resp) {
            log::debug!("prometheus: answering a scrape failed: {e}");
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_unless_an_address_is_given() {
        assert_eq!(parse_addr("9464").unwrap(), "127.0.0.1:9464".parse().unwrap());
        assert_eq!(parse_addr("0.0.0.0:1").unwrap(), "0.0.0.0:1".parse().unwrap());
        assert!(parse_addr("localhost").is_err());
    }

    #[test]
    fn serves_what_was_published() {
        let e = Endpoint::start(parse_addr("127.0.0.1:0").unwrap(), Arc::new(|| "m 1\n".to_string())).unwrap();
        let mut s = std::net::TcpStream::connect(e.addr).unwrap();
        use std::io::{Read, Write};
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.ends_with("m 1\n"), "{body}");
    }
}
