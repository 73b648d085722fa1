//! REST as a dashboard calls it: one HTTP/1.1 request per connection with a bearer token,
//! JSON in and out.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer: status and body (JSON when the body parses as JSON, else a string).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// The API at `addr` as one token holder sees it.
#[derive(Debug, Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: String,
}

impl Api {
    pub fn new(addr: SocketAddr, token: &str) -> Api {
        Api {
            addr,
            token: token.to_string(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, Some(body)).await
    }

    /// A request that must answer `want`; its body.
    pub async fn expect(&self, method: &str, path: &str, body: Option<&Value>, want: u16) -> Value {
        let r = self.request(method, path, body).await;
        assert_eq!(r.status, want, "{method} {path}: {}", r.body);
        r.body
    }

    pub async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .unwrap_or_else(|e| panic!("connect to the API at {}: {e}", self.addr));
        let body = body.map(Value::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\n\r\n",
            addr = self.addr,
            token = self.token,
            len = body.len(),
        );
        stream
            .write_all(format!("{head}{body}").as_bytes())
            .await
            .expect("send the request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read the answer");
        parse(&raw).unwrap_or_else(|why| {
            panic!(
                "{method} {path}: {why}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        })
    }
}

fn parse(raw: &[u8]) -> Result<Reply, &'static str> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let mut body = raw[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body).ok_or("a broken chunked body")?;
    }
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok(Reply { status, body })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let data = rest.get(eol + 2..eol + 2 + size)?;
        out.extend_from_slice(data);
        rest = rest.get(eol + 2 + size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_bodies() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 8\r\n\r\n{\"a\":1}\n";
        let r = parse(plain).unwrap();
        assert_eq!((r.status, r.body["a"].as_i64()), (201, Some(1)));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n";
        let r = parse(chunked).unwrap();
        assert_eq!(r.body, serde_json::json!([1, 2]));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
