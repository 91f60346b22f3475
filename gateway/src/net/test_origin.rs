//! A small HTTP/1.1 origin on 127.0.0.1:0 for the client and fetch tests, on plain std
//! threads (so it shares nothing with the runtime under test), optionally behind TLS with a
//! certificate from a CA made for the test.
//!
//! Routes (n is a byte count; bodies are [`pattern`] bytes, so any range can be checked):
//! - `GET|HEAD /bytes/n`: n bytes, honouring `Range` (206 + `Content-Range`, 416 when
//!   unsatisfiable);
//! - `GET /chunked/n`: n bytes with `Transfer-Encoding: chunked`;
//! - `GET /close/n`: n bytes, then the connection is closed (`Connection: close`);
//! - `GET /quiet-close/n`: n bytes announced as keep-alive, then the connection is closed;
//! - `GET /redirect/CODE?to=URL`: status CODE with `Location: URL` (URL taken verbatim);
//! - `GET /loop`: a redirect to itself;
//! - `GET /status/CODE`: status CODE, empty body;
//! - `GET /stall-head`: never answers; `GET /stall-body/n`: announces 2n bytes, sends n, and
//!   goes quiet;
//! - `PUT|POST /echo`: reads the body (`Content-Length`) and answers `len=N md5=HEX`;
//! - `PUT /no-read`: never reads the body nor answers.
//!
//! Quiet connections stay open until the origin is dropped. Every request is recorded
//! (method, path, `Host`, `Authorization` and `X-Test-Token` presence) so tests can tell what
//! reached the origin.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use openssl::ssl::{SslAcceptor, SslMethod};

/// Byte `i` of every body the origin sends.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(7) % 251) as u8
}

/// `len` pattern bytes starting at `offset`.
pub fn pattern_bytes(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len).map(pattern).collect()
}

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `X-Test-Token` header.
    pub token: Option<String>,
}

struct Shared {
    stop: AtomicBool,
    connections: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

/// A running origin; stops on drop.
pub struct TestOrigin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The CA file that signs its certificate (TLS origins).
    pub ca_file: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl TestOrigin {
    /// A plain HTTP origin.
    pub fn start() -> TestOrigin {
        TestOrigin::start_with(None)
    }

    /// An https origin whose certificate names `localhost` and 127.0.0.1, signed by a CA
    /// written to [`TestOrigin::ca_file`].
    pub fn start_tls() -> TestOrigin {
        let dir = tempfile::tempdir().expect("temp dir");
        let (acceptor, ca_pem) = tls_acceptor();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write CA file");
        let mut origin = TestOrigin::start_with(Some(acceptor));
        origin.ca_file = Some(ca_file);
        origin._dir = Some(dir);
        origin
    }

    fn start_with(tls: Option<SslAcceptor>) -> TestOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test origin");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let tls = tls.map(Arc::new);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accept_shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(&accept_shared);
                let tls = tls.clone();
                thread::spawn(move || {
                    let _ = stream.set_nodelay(true);
                    match tls {
                        None => serve(stream, &shared),
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream) {
                                serve(stream, &shared);
                            }
                        }
                    }
                });
            }
        });
        TestOrigin {
            addr,
            shared,
            ca_file: None,
            _dir: None,
        }
    }

    /// The origin's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The origin's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("seen lock").clone()
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_request<R: BufRead>(reader: &mut R) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    Ok(Some(Request {
        method,
        path,
        headers,
    }))
}

fn wait_for_stop(shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(20));
    }
}

fn serve<S: Read + Write>(stream: S, shared: &Shared) {
    let mut reader = BufReader::new(stream);
    while let Ok(Some(request)) = read_request(&mut reader) {
        shared.seen.lock().expect("seen lock").push(Seen {
            method: request.method.clone(),
            path: request.path.clone(),
            host: request.header("host").unwrap_or_default().to_owned(),
            authorization: request.header("authorization").map(str::to_owned),
            token: request.header("x-test-token").map(str::to_owned),
        });
        match respond(&mut reader, &request, shared) {
            Ok(true) => continue,
            _ => return,
        }
    }
}

/// Answers one request; `Ok(false)` closes the connection.
fn respond<S: Read + Write>(
    reader: &mut BufReader<S>,
    request: &Request,
    shared: &Shared,
) -> io::Result<bool> {
    let (route, rest) = match request.path[1..].split_once('/') {
        Some((route, rest)) => (route, rest),
        None => (&request.path[1..], ""),
    };
    let number = |text: &str| {
        text.split('?')
            .next()
            .unwrap_or("")
            .parse::<u64>()
            .unwrap_or(0)
    };
    let head = request.method == "HEAD";
    match (request.method.as_str(), route) {
        ("GET" | "HEAD", "bytes") => {
            let total = number(rest);
            let (status, first, len, extra) = match request.header("range") {
                None => ("200 OK", 0, total, String::new()),
                Some(range) => match parse_range(range, total) {
                    Some((first, last)) => (
                        "206 Partial Content",
                        first,
                        last - first + 1,
                        format!("Content-Range: bytes {first}-{last}/{total}\r\n"),
                    ),
                    None => {
                        let header = format!(
                            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\n\r\n"
                        );
                        reader.get_mut().write_all(header.as_bytes())?;
                        return Ok(true);
                    }
                },
            };
            let header = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\n{extra}\r\n"
            );
            reader.get_mut().write_all(header.as_bytes())?;
            if !head {
                send_pattern(reader.get_mut(), first, len)?;
            }
            Ok(true)
        }
        ("GET", "close") => {
            let len = number(rest);
            let header =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
            reader.get_mut().write_all(header.as_bytes())?;
            send_pattern(reader.get_mut(), 0, len)?;
            Ok(false)
        }
        ("GET", "quiet-close") => {
            // A keep-alive answer, then the socket closes without a word: the client's pool
            // holds a connection the server has already given up.
            let len = number(rest);
            let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            reader.get_mut().write_all(header.as_bytes())?;
            send_pattern(reader.get_mut(), 0, len)?;
            Ok(false)
        }
        ("GET", "chunked") => {
            let len = number(rest);
            let stream = reader.get_mut();
            stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            let mut offset = 0;
            while offset < len {
                let piece = (len - offset).min(10_000);
                write!(stream, "{piece:x}\r\n")?;
                stream.write_all(&pattern_bytes(offset, piece))?;
                stream.write_all(b"\r\n")?;
                offset += piece;
            }
            stream.write_all(b"0\r\n\r\n")?;
            Ok(true)
        }
        ("GET" | "HEAD", "redirect") => {
            let code = number(rest);
            let to = request.path.split_once("?to=").map_or("", |(_, to)| to);
            let header =
                format!("HTTP/1.1 {code} Moved\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n");
            reader.get_mut().write_all(header.as_bytes())?;
            Ok(true)
        }
        ("GET" | "HEAD", "loop") => {
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")?;
            Ok(true)
        }
        ("GET" | "HEAD", "status") => {
            let code = number(rest);
            let header = format!("HTTP/1.1 {code} Status\r\nContent-Length: 0\r\n\r\n");
            reader.get_mut().write_all(header.as_bytes())?;
            Ok(true)
        }
        ("GET", "stall-head") => {
            wait_for_stop(shared);
            Ok(false)
        }
        ("GET", "stall-body") => {
            let len = number(rest);
            let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 2 * len);
            reader.get_mut().write_all(header.as_bytes())?;
            send_pattern(reader.get_mut(), 0, len)?;
            reader.get_mut().flush()?;
            wait_for_stop(shared);
            Ok(false)
        }
        ("PUT" | "POST", "echo") => {
            let len: u64 = request
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut hasher = openssl::hash::Hasher::new(openssl::hash::MessageDigest::md5())
                .map_err(io::Error::other)?;
            let mut left = len;
            let mut buf = vec![0u8; 64 * 1024];
            while left > 0 {
                let want = buf.len().min(left as usize);
                let got = reader.read(&mut buf[..want])?;
                if got == 0 {
                    return Ok(false);
                }
                hasher.update(&buf[..got]).map_err(io::Error::other)?;
                left -= got as u64;
            }
            let digest = hasher.finish().map_err(io::Error::other)?;
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            let body = format!("len={len} md5={hex}");
            let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            reader.get_mut().write_all(header.as_bytes())?;
            reader.get_mut().write_all(body.as_bytes())?;
            Ok(true)
        }
        ("PUT", "no-read") => {
            wait_for_stop(shared);
            Ok(false)
        }
        _ => {
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            Ok(true)
        }
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against `total` → inclusive (first, last).
fn parse_range(value: &str, total: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || total == 0 {
            return None;
        }
        return Some((total.saturating_sub(suffix), total - 1));
    }
    let first: u64 = first.parse().ok()?;
    let last = if last.is_empty() {
        total.checked_sub(1)?
    } else {
        last.parse::<u64>().ok()?.min(total.checked_sub(1)?)
    };
    (first <= last && first < total).then_some((first, last))
}

fn send_pattern<W: Write>(stream: &mut W, first: u64, len: u64) -> io::Result<()> {
    let mut offset = first;
    let end = first + len;
    while offset < end {
        let piece = (end - offset).min(64 * 1024);
        stream.write_all(&pattern_bytes(offset, piece))?;
        offset += piece;
    }
    stream.flush()
}

/// A TLS acceptor with a leaf certificate for `localhost` and 127.0.0.1, and the PEM of
/// the CA that signed it.
fn tls_acceptor() -> (SslAcceptor, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{
        BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    };
    use openssl::x509::{X509Builder, X509NameBuilder};

    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
    let new_key = || PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey");
    let name = |cn: &str| {
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", cn).expect("cn");
        name.build()
    };

    let ca_key = new_key();
    let ca_name = name("glint test CA");
    let mut ca = X509Builder::new().expect("ca builder");
    ca.set_version(2).expect("version");
    ca.set_serial_number(
        &BigNum::from_u32(1)
            .expect("bn")
            .to_asn1_integer()
            .expect("serial"),
    )
    .expect("serial");
    ca.set_subject_name(&ca_name).expect("subject");
    ca.set_issuer_name(&ca_name).expect("issuer");
    ca.set_pubkey(&ca_key).expect("pubkey");
    ca.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("nb");
    ca.set_not_after(&Asn1Time::days_from_now(2).expect("time"))
        .expect("na");
    ca.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
        .expect("bc");
    ca.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    ca.sign(&ca_key, MessageDigest::sha256()).expect("sign ca");
    let ca = ca.build();

    let leaf_key = new_key();
    let mut leaf = X509Builder::new().expect("leaf builder");
    leaf.set_version(2).expect("version");
    leaf.set_serial_number(
        &BigNum::from_u32(2)
            .expect("bn")
            .to_asn1_integer()
            .expect("serial"),
    )
    .expect("serial");
    leaf.set_subject_name(&name("localhost")).expect("subject");
    leaf.set_issuer_name(&ca_name).expect("issuer");
    leaf.set_pubkey(&leaf_key).expect("pubkey");
    leaf.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("nb");
    leaf.set_not_after(&Asn1Time::days_from_now(2).expect("time"))
        .expect("na");
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&leaf.x509v3_context(Some(&ca), None))
        .expect("san");
    leaf.append_extension(san).expect("san");
    leaf.append_extension(BasicConstraints::new().build().expect("bc"))
        .expect("bc");
    leaf.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    leaf.append_extension(ExtendedKeyUsage::new().server_auth().build().expect("eku"))
        .expect("eku");
    leaf.sign(&ca_key, MessageDigest::sha256())
        .expect("sign leaf");
    let leaf = leaf.build();

    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
    acceptor.set_private_key(&leaf_key).expect("key");
    acceptor.set_certificate(&leaf).expect("cert");
    acceptor.add_extra_chain_cert(ca.clone()).expect("chain");
    (acceptor.build(), ca.to_pem().expect("ca pem"))
}

/// Runs `test` on a fresh monoio runtime of each driver this machine has: io_uring (when the
/// kernel offers it) and epoll.
pub fn on_each_driver<F, Fut>(test: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if monoio::utils::detect_uring() {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .expect("io_uring runtime")
            .block_on(test());
    }
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("epoll runtime")
        .block_on(test());
}
