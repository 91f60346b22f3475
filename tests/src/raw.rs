//! Raw HTTP/1.1 over `TcpStream`, for requests an HTTP library won't make: a body on GET,
//! several `Range`s, an upload that stops half-way or is abandoned. It parses just enough of
//! a response (status line, headers, `Content-Length` / chunked / close-delimited body).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use crate::Resp;

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("set read timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        Conn { stream, reader }
    }

    /// Another handle on the socket, for writing from a second thread.
    pub fn writer(&self) -> TcpStream {
        self.stream.try_clone().expect("clone stream")
    }

    /// Write all of `bytes`; panics on error.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
        self.stream.flush().expect("flush");
    }

    /// Write as much of `bytes` as the peer accepts; returns false once a write failed
    /// (the server may answer and close before it has read a whole body).
    pub fn send_lenient(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Close our sending side (the server sees EOF mid-body).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Read one response. `what` is only used in failure messages.
    pub fn read_response(&mut self) -> Resp {
        self.read_response_to("raw request", false)
    }

    /// Read one response to a HEAD request or otherwise: `head` means "no body follows".
    pub fn read_response_to(&mut self, what: &str, head: bool) -> Resp {
        self.try_read_response(what, head)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Like [`Conn::read_response_to`], but a connection error or a malformed or cut-short
    /// response is returned, not a panic (for tests that count lost answers).
    pub fn try_read_response(&mut self, what: &str, head: bool) -> Result<Resp, String> {
        let mut status_line = String::new();
        self.reader
            .read_line(&mut status_line)
            .map_err(|e| format!("reading status line: {e}"))?;
        let mut parts = status_line.split_whitespace();
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(format!("bad status line {status_line:?}"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .map_err(|e| format!("reading headers: {e}"))?;
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("bad header line {line:?}"))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut resp = Resp {
            what: what.to_owned(),
            status,
            headers,
            body: Vec::new(),
        };
        if status == 100 {
            // Interim response; the real one follows.
            return self.try_read_response(what, head);
        }
        if head || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = self.read_chunked()?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad content-length {len:?}"))?;
            let mut body = vec![0; len];
            self.reader
                .read_exact(&mut body)
                .map_err(|e| format!("reading {len} body bytes: {e}"))?;
            resp.body = body;
        } else {
            self.reader
                .read_to_end(&mut resp.body)
                .map_err(|e| format!("reading body to EOF: {e}"))?;
        }
        Ok(resp)
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let mut size_line = String::new();
            self.reader
                .read_line(&mut size_line)
                .map_err(|e| format!("reading chunk size: {e}"))?;
            let size_hex = size_line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| format!("bad chunk size {size_line:?}"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut line = String::new();
                    let n = self.reader.read_line(&mut line).unwrap_or(0);
                    if n == 0 || line.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.reader
                .read_exact(&mut body[start..])
                .map_err(|e| format!("reading chunk: {e}"))?;
            let mut crlf = [0; 2];
            self.reader
                .read_exact(&mut crlf)
                .map_err(|e| format!("reading chunk end: {e}"))?;
        }
    }

    /// True once the server has closed the connection (read returns EOF or an error) within
    /// `timeout`; false if the connection is still open.
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set read timeout");
        let mut buf = [0; 1];
        match self.reader.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

/// Request head bytes: `METHOD path HTTP/1.1`, `Host`, the given headers, blank line.
pub fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A whole request with a `Content-Length` body (and `Connection: close`).
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("Content-Length", &len));
    all.push(("Connection", "close"));
    let mut out = head(method, path, &all);
    out.extend_from_slice(body);
    out
}

/// `body` encoded as chunks of at most `chunk` bytes, with the final zero chunk.
pub fn chunked_body(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk.max(1) * 10 + 5);
    for piece in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
