//! A small web server on 127.0.0.1:0, on std threads, for the http store's tests: it serves
//! byte blobs put at paths, with `HEAD`, `Content-Length` and single `Range` requests (206 +
//! `Content-Range`), and can misbehave on purpose.
//!
//! ```no_run
//! let origin = glint_tests::origin::Origin::start();
//! origin.put("/cirros.img", vec![1, 2, 3]);
//! let url = origin.url("/cirros.img");
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How a blob is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// As it should be.
    Normal,
    /// Announces the whole length, sends this many bytes, then closes the connection.
    CutAfter(usize),
    /// Answers `302 Found` with this `Location` (a static string: tests name the target).
    Redirect(&'static str),
    /// Announces the whole length, sends this many bytes, then sends nothing more until the
    /// client goes away (an origin that hangs).
    Stall(usize),
    /// Ignores `Range`: always the whole blob with 200.
    NoRanges,
    /// The whole blob with 200, chunked: no length announced (ignores `Range`).
    Chunked,
}

struct Blob {
    bytes: Arc<Vec<u8>>,
    behaviour: Behaviour,
}

struct Shared {
    blobs: Mutex<HashMap<String, Blob>>,
    stop: AtomicBool,
    gets: AtomicUsize,
    /// Requests (any method) by path.
    hits: Mutex<HashMap<String, usize>>,
}

/// A running origin; stops on drop.
pub struct Origin {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Origin {
    /// Starts an origin with nothing to serve.
    pub fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let shared = Arc::new(Shared {
            blobs: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            gets: AtomicUsize::new(0),
            hits: Mutex::new(HashMap::new()),
        });
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let serving = Arc::clone(&accepting);
                thread::spawn(move || serve(stream, &serving));
            }
        });
        Origin { addr, shared }
    }

    /// Serves `bytes` at `path`.
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.put_with(path, bytes, Behaviour::Normal);
    }

    /// Serves `bytes` at `path`, behaving as `behaviour` says.
    pub fn put_with(&self, path: &str, bytes: Vec<u8>, behaviour: Behaviour) {
        self.shared.blobs.lock().expect("blobs").insert(
            path.to_owned(),
            Blob {
                bytes: Arc::new(bytes),
                behaviour,
            },
        );
    }

    /// Stops serving `path` (404 from now on).
    pub fn remove(&self, path: &str) {
        self.shared.blobs.lock().expect("blobs").remove(path);
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests for `path` so far, whatever their method or answer.
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// `GET` requests served so far.
    pub fn gets(&self) -> usize {
        self.shared.gets.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// `bytes=a-b | a- | -n` against `len`: `(first, last)` inclusive.
fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let range = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (len.checked_sub(n.min(len))?, len.checked_sub(1)?)
        }
        (first, "") => (first.parse().ok()?, len.checked_sub(1)?),
        (first, last) => (first.parse().ok()?, last.parse::<u64>().ok()?.min(len - 1)),
    };
    (range.0 <= range.1 && range.1 < len).then_some(range)
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut range = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("range") {
                    range = Some(value.trim().to_owned());
                }
            }
        }
        *shared
            .hits
            .lock()
            .expect("hits")
            .entry(path.clone())
            .or_default() += 1;
        let blob = shared
            .blobs
            .lock()
            .expect("blobs")
            .get(&path)
            .map(|b| (Arc::clone(&b.bytes), b.behaviour));
        let Some((bytes, behaviour)) = blob else {
            let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        if let Behaviour::Redirect(to) = behaviour {
            let head = format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n");
            let _ = out.write_all(head.as_bytes());
            continue;
        }
        if method == "GET" {
            shared.gets.fetch_add(1, Ordering::SeqCst);
        }
        if behaviour == Behaviour::Chunked {
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: \
                        application/octet-stream\r\n\r\n";
            if out.write_all(head.as_bytes()).is_err() {
                return;
            }
            if method == "HEAD" {
                continue;
            }
            for chunk in bytes.chunks(64 * 1024) {
                let size = format!("{:x}\r\n", chunk.len());
                let sent = out
                    .write_all(size.as_bytes())
                    .and_then(|()| out.write_all(chunk))
                    .and_then(|()| out.write_all(b"\r\n"));
                if sent.is_err() {
                    return;
                }
            }
            if out.write_all(b"0\r\n\r\n").is_err() {
                return;
            }
            continue;
        }
        let len = bytes.len() as u64;
        let asked = range
            .filter(|_| behaviour != Behaviour::NoRanges)
            .map(|r| parse_range(&r, len));
        let (status, first, last) = match asked {
            Some(None) => {
                let head = format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                     Content-Length: 0\r\n\r\n"
                );
                let _ = out.write_all(head.as_bytes());
                continue;
            }
            Some(Some((first, last))) => ("206 Partial Content", first, last),
            None => ("200 OK", 0, len.saturating_sub(1)),
        };
        let body_len = if len == 0 { 0 } else { last - first + 1 };
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {body_len}\r\nContent-Type: \
             application/octet-stream\r\n"
        );
        if status.starts_with("206") {
            head.push_str(&format!("Content-Range: bytes {first}-{last}/{len}\r\n"));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method == "HEAD" || body_len == 0 {
            continue;
        }
        let body = &bytes[first as usize..=last as usize];
        match behaviour {
            Behaviour::CutAfter(n) => {
                let _ = out.write_all(&body[..n.min(body.len())]);
                let _ = out.flush();
                return;
            }
            Behaviour::Stall(n) => {
                let _ = out.write_all(&body[..n.min(body.len())]);
                let _ = out.flush();
                // Blocks until the client closes (or the read timeout).
                let mut rest = Vec::new();
                let _ = std::io::Read::read_to_end(&mut reader, &mut rest);
                return;
            }
            _ => {
                if out.write_all(body).is_err() {
                    return;
                }
            }
        }
    }
}
