//! A minimal HTTP/1.1 GET over a fresh TCP connection: what `curl http://…` checks, without a
//! process per request (the rollout test sends many).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET http://<addr><path>` (`addr` as `ip:port`), with `Connection: close`, in at most `timeout`.
pub async fn get_with_timeout(addr: &str, path: &str, timeout: Duration) -> Result<Response> {
    tokio::time::timeout(timeout, get_inner(addr, path))
        .await
        .with_context(|| format!("GET http://{addr}{path}: no answer in {timeout:?}"))?
}

/// `GET http://<addr><path>` with a 5 s timeout.
pub async fn get(addr: &str, path: &str) -> Result<Response> {
    get_with_timeout(addr, path, Duration::from_secs(5)).await
}

/// [`get`], failing unless the status is 200; answers the body.
pub async fn get_ok(addr: &str, path: &str) -> Result<String> {
    let r = get(addr, path).await?;
    if r.status != 200 {
        bail!("GET http://{addr}{path}: status {} ({})", r.status, r.body);
    }
    Ok(r.body)
}

async fn get_inner(addr: &str, path: &str) -> Result<Response> {
    let mut s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let host = addr.split(':').next().unwrap_or(addr);
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: niwa-e2e\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .await
        .with_context(|| format!("reading from {addr}"))?;
    parse(&raw).with_context(|| format!("GET http://{addr}{path}"))
}

/// Status line and body (chunked bodies de-chunked).
fn parse(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no complete response: {text:?}"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line: {head:?}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response { status, body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nfoo").expect("plain");
        assert_eq!((r.status, r.body.as_str()), (200, "foo"));
        let r = parse(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n4\r\nbarz\r\n0\r\n\r\n")
            .expect("chunked");
        assert_eq!((r.status, r.body.as_str()), (404, "foobarz"));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
