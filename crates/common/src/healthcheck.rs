//! The built-in container health probe: `shop-<service> --healthcheck` asks
//! the service's own `/readyz` and exits 0 when it answers 2xx.
//!
//! Runtime images have no shell and no curl, so compose health checks run the
//! service binary itself. The probe reads the same configuration as the
//! service (so `SHOP_HTTP__PORT` moves both), speaks just enough HTTP/1.1 over
//! a tokio [`TcpStream`] to read one status line, and is bounded by
//! [`TIMEOUT`] so a hung service fails its check instead of hanging it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The path probed: ready means the database and required peers answer.
pub const PATH: &str = "/readyz";

/// The whole probe (connect, request, status line) must finish within this;
/// compose's own `timeout` is set above it so our message is what gets logged.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The status line fits in this; the rest of the response is never read.
const MAX_HEAD: usize = 1024;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Connecting, writing or reading failed.
    #[error("{addr}: {source}")]
    Io {
        /// The probed address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No answer within [`TIMEOUT`].
    #[error("{addr}: no answer within {} s", TIMEOUT.as_secs())]
    Timeout {
        /// The probed address.
        addr: SocketAddr,
    },
    /// The answer was not an HTTP status line.
    #[error("{addr}: not an HTTP response")]
    Malformed {
        /// The probed address.
        addr: SocketAddr,
    },
    /// The service answered with a non-2xx status (not ready, draining).
    #[error("{addr}{PATH}: HTTP {status}")]
    NotReady {
        /// The probed address.
        addr: SocketAddr,
        /// The status code received.
        status: u16,
    },
}

/// The address to probe for a listener bound at `bound`: an unspecified
/// host (`0.0.0.0`, `::`) becomes loopback, a specific one is kept.
pub fn target(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// Sends `GET /readyz` to the listener bound at `bound` and returns the
/// status code when it is 2xx.
///
/// # Errors
/// A [`ProbeError`] when the service cannot be reached in time, answers
/// something that is not HTTP, or answers with a non-2xx status.
pub async fn probe(bound: SocketAddr) -> Result<u16, ProbeError> {
    let addr = target(bound);
    match tokio::time::timeout(TIMEOUT, request(addr)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout { addr }),
    }
}

async fn request(addr: SocketAddr) -> Result<u16, ProbeError> {
    let io = |source| ProbeError::Io { addr, source };
    let mut stream = TcpStream::connect(addr).await.map_err(io)?;
    let request = format!(
        "GET {PATH} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: shop-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let status = parse_status(&head).ok_or(ProbeError::Malformed { addr })?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(ProbeError::NotReady { addr, status })
    }
}

/// The status code of an `HTTP/1.x NNN ...` status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_ascii_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// The exit code of `--healthcheck`: probes the listener at `bound` (the
/// service's configured HTTP address, or the error that loading its
/// configuration gave) and prints one line on failure.
///
/// Used from a service's `main`:
/// `return shop_common::healthcheck::exit_code(Settings::load(path).map(|s| s.http.addr())).await;`
pub async fn exit_code<E: fmt::Display>(bound: Result<SocketAddr, E>) -> ExitCode {
    let bound = match bound {
        Ok(bound) => bound,
        Err(err) => {
            eprintln!("healthcheck: {err}");
            return ExitCode::FAILURE;
        }
    };
    match probe(bound).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("healthcheck: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-shot server that answers every connection with `response`.
    async fn serve(response: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(request.starts_with("GET /readyz HTTP/1.1\r\n"), "{request}");
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_2xx_answer_is_healthy() {
        let addr = serve("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        assert_eq!(probe(addr).await.expect("healthy"), 200);
        assert_eq!(exit_code(Ok::<_, String>(addr)).await, ExitCode::SUCCESS);
    }

    #[tokio::test]
    async fn a_503_is_not_ready() {
        let addr = serve("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let err = probe(addr).await.expect_err("not ready");
        assert!(
            matches!(err, ProbeError::NotReady { status: 503, .. }),
            "{err}"
        );
        assert_eq!(exit_code(Ok::<_, String>(addr)).await, ExitCode::FAILURE);
    }

    #[tokio::test]
    async fn garbage_is_malformed() {
        let addr = serve("SSH-2.0-OpenSSH\r\n").await;
        assert!(matches!(
            probe(addr).await,
            Err(ProbeError::Malformed { .. })
        ));
    }

    #[tokio::test]
    async fn nothing_listening_fails_fast() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        assert!(matches!(probe(addr).await, Err(ProbeError::Io { .. })));
    }

    #[tokio::test]
    async fn a_config_error_fails_with_its_message() {
        assert_eq!(
            exit_code(Err::<SocketAddr, _>("invalid configuration: http.port")).await,
            ExitCode::FAILURE
        );
    }

    #[test]
    fn unspecified_hosts_are_probed_on_loopback() {
        let bound: SocketAddr = "0.0.0.0:8081".parse().expect("addr");
        assert_eq!(target(bound).to_string(), "127.0.0.1:8081");
        let bound: SocketAddr = "[::]:8081".parse().expect("addr");
        assert_eq!(target(bound).to_string(), "[::1]:8081");
        let bound: SocketAddr = "10.0.0.7:8081".parse().expect("addr");
        assert_eq!(target(bound), bound);
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status(b"HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/2 200\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }
}
