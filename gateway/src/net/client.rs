//! An HTTP/1.1 client for a worker core: hyper's client connection over monoio TCP (io_uring or
//! epoll), https through rustls, streaming bodies both ways, and a small keep-alive pool.
//!
//! One [`HttpClient`] per core (it is `!Send`: its pool and connections belong to the core's
//! runtime; clone it freely on that core). A request goes to a [`Target`]: a scheme, the host
//! (sent as `Host`, and checked against the certificate for https) and the port, plus either
//! the addresses to connect to (pinned: [`crate::net::fetch`] connects only to addresses it
//! has checked) or nothing, in which case the host is resolved off the core.
//!
//! Timeouts:
//! - *connect*: TCP connect, and the TLS handshake, each bounded by
//!   [`ClientSettings::connect_timeout`];
//! - *stall*: no progress for [`ClientSettings::stall_timeout`] fails the request with
//!   [`ClientError::Stalled`]. Progress is a request-body frame taken by the connection, or a
//!   response frame received. While the request body's own source has nothing to give (a slow
//!   client uploading to glint), the remote is not stalling and the clock stops. A total time
//!   limit is deliberately absent: an image transfer may take hours and still be healthy.
//!
//! Bodies: a request body is empty, in memory, a list of buffers (one S3 part gathered from
//! upload frames, sent without copying them together), or a stream with a declared length
//! ([`RequestBody::stream`], [`RequestBody::channel`]); S3 needs `Content-Length`, so streams
//! always declare one and sending more or fewer bytes fails the request. A response body is
//! read frame by frame ([`ResponseBody::next`] or the poll form for a download that relays it)
//! and never buffered whole, except by [`ResponseBody::bytes`] for small documents, which takes
//! a limit.
//!
//! Pool: after a response body has been read to its end the connection is kept (per target
//! and address, at most [`ClientSettings::pool_max_idle_per_origin`], for at most
//! [`ClientSettings::pool_idle_timeout`]) and reused by the next request there. A request on a
//! reused connection that the server had closed meanwhile is sent again on a new one when it
//! was not sent at all, or when it is idempotent and its body is in memory.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use monoio::io::IntoPollIo;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::net::io::PollIo;
use crate::net::resolve::{resolve, ResolveError};
use crate::net::tls::{TlsConfigError, TlsSettings};
use crate::net::url::{FetchUrl, Host};

/// The `User-Agent` of outbound requests that set none.
const USER_AGENT_VALUE: &str = concat!("glint/", env!("CARGO_PKG_VERSION"));
/// hyper's read buffer limit for client connections (the largest response frame).
const MAX_BUF_BYTES: usize = 1 << 20;

/// How the client behaves. Every field has a default.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    /// Longest a TCP connect, and separately a TLS handshake, may take.
    pub connect_timeout: Duration,
    /// Longest the remote may go without taking or sending a byte.
    pub stall_timeout: Duration,
    /// How long an idle keep-alive connection is kept for reuse.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per target address.
    pub pool_max_idle_per_origin: usize,
    /// Which TLS roots are trusted.
    pub tls: TlsSettings,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(30),
            pool_max_idle_per_origin: 8,
            tls: TlsSettings::default(),
        }
    }
}

/// http or https.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The scheme's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The scheme's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https`; other schemes give `None`.
    pub fn parse(name: &str) -> Option<Scheme> {
        match name {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// http or https.
    pub scheme: Scheme,
    /// The host: sent as `Host`, and the name the server's certificate must carry.
    pub host: Host,
    /// The port.
    pub port: u16,
    /// Addresses to connect to, tried in order; `None` resolves `host`.
    pub addrs: Option<Vec<SocketAddr>>,
}

impl Target {
    /// A target whose host is resolved when a connection is opened.
    pub fn new(scheme: Scheme, host: Host, port: u16) -> Target {
        Target {
            scheme,
            host,
            port,
            addrs: None,
        }
    }

    /// A target connected only at `addrs`, whatever `host` resolves to.
    pub fn pinned(scheme: Scheme, host: Host, port: u16, addrs: Vec<SocketAddr>) -> Target {
        Target {
            scheme,
            host,
            port,
            addrs: Some(addrs),
        }
    }

    /// The target of a URL (http or https), resolved when connecting.
    pub fn from_url(url: &FetchUrl) -> Option<Target> {
        let scheme = Scheme::parse(url.scheme())?;
        let port = url.port().unwrap_or(scheme.default_port());
        Some(Target::new(scheme, url.host().clone(), port))
    }

    /// `host[:port]` as the `Host` header carries it.
    pub fn host_header(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a request failed. Messages name the host and address, never credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The host did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// TCP connect or TLS handshake took longer than the connect timeout.
    #[error("connecting to {addr} took longer than {timeout:?}")]
    ConnectTimeout {
        /// The address.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error).
    #[error("TLS handshake with {host} ({addr}) failed: {source}")]
    Tls {
        /// The name checked against the certificate.
        host: String,
        /// The address.
        addr: SocketAddr,
        /// rustls's reason.
        #[source]
        source: io::Error,
    },
    /// The TLS settings could not be built (CA file, roots).
    #[error(transparent)]
    TlsConfig(#[from] Arc<TlsConfigError>),
    /// The remote went quiet for longer than the stall timeout.
    #[error("{host} sent or took nothing for {timeout:?} ({phase})")]
    Stalled {
        /// The host.
        host: String,
        /// The stall timeout.
        timeout: Duration,
        /// What the request was waiting for.
        phase: &'static str,
    },
    /// The request body's own source failed, or sent more or fewer bytes than declared.
    #[error("request body: {0}")]
    Body(#[source] io::Error),
    /// The response body is longer than the limit set on it.
    #[error("response body exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The connection failed or the server broke the protocol.
    #[error("HTTP exchange with {host} failed: {source}")]
    Http {
        /// The host.
        host: String,
        /// hyper's reason.
        #[source]
        source: hyper::Error,
    },
    /// The request itself is not valid (a header value, the target's host).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// Whether the remote could not be reached or went away (as opposed to a refusal by
    /// policy, a bad request or a body that failed on our side).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClientError::Resolve(_)
                | ClientError::Connect { .. }
                | ClientError::ConnectTimeout { .. }
                | ClientError::Stalled { .. }
                | ClientError::Http { .. }
        )
    }
}

/// A source of request-body bytes.
pub trait ByteSource {
    /// The next piece, `None` at the end.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>>;
}

struct ChannelSource(futures_channel::mpsc::Receiver<io::Result<Bytes>>);

impl ByteSource for ChannelSource {
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        futures_core::Stream::poll_next(Pin::new(&mut self.get_mut().0), cx)
    }
}

/// The sending half of [`RequestBody::channel`]: push the body's bytes as they come.
pub struct BodySender {
    tx: futures_channel::mpsc::Sender<io::Result<Bytes>>,
}

/// The request the body belonged to has ended (failed, or the server answered early).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request this body belonged to has ended")]
pub struct BodyClosed;

impl BodySender {
    /// Queues `bytes`, waiting while the channel is full (the connection is slower than the
    /// producer).
    pub async fn send(&mut self, bytes: Bytes) -> Result<(), BodyClosed> {
        std::future::poll_fn(|cx| self.tx.poll_ready(cx))
            .await
            .map_err(|_| BodyClosed)?;
        self.tx.start_send(Ok(bytes)).map_err(|_| BodyClosed)
    }

    /// Fails the request with `error` (the producer could not finish the body).
    pub fn abort(mut self, error: io::Error) {
        // A full channel still takes one message per sender.
        let _ = self.tx.try_send(Err(error));
    }
}

/// State shared by one exchange's request body and the task waiting for its response.
struct Exchange {
    last_progress: Cell<Instant>,
    /// The body's source returned `Pending` last time: the wait is ours, not the remote's.
    source_waiting: Cell<bool>,
    body_error: RefCell<Option<io::Error>>,
}

impl Exchange {
    fn new() -> Exchange {
        Exchange {
            last_progress: Cell::new(Instant::now()),
            source_waiting: Cell::new(false),
            body_error: RefCell::new(None),
        }
    }

    fn touch(&self) {
        self.last_progress.set(Instant::now());
    }
}

enum BodyKind {
    Empty,
    Full(Option<Bytes>),
    Chunks(VecDeque<Bytes>),
    Stream(Pin<Box<dyn ByteSource>>),
}

/// A request body (see the module docs).
pub struct RequestBody {
    kind: BodyKind,
    /// Bytes still to send.
    remaining: u64,
    exchange: Option<Rc<Exchange>>,
}

impl RequestBody {
    /// No body.
    pub fn empty() -> RequestBody {
        RequestBody {
            kind: BodyKind::Empty,
            remaining: 0,
            exchange: None,
        }
    }

    /// A body in memory.
    pub fn full(bytes: impl Into<Bytes>) -> RequestBody {
        let bytes = bytes.into();
        RequestBody {
            remaining: bytes.len() as u64,
            kind: BodyKind::Full(Some(bytes)),
            exchange: None,
        }
    }

    /// A body made of buffers already in memory, sent one after another.
    pub fn chunks(chunks: impl IntoIterator<Item = Bytes>) -> RequestBody {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        RequestBody {
            remaining: chunks.iter().map(|c| c.len() as u64).sum(),
            kind: BodyKind::Chunks(chunks),
            exchange: None,
        }
    }

    /// A body of exactly `len` bytes read from `source`; more or fewer fail the request.
    pub fn stream(len: u64, source: impl ByteSource + 'static) -> RequestBody {
        RequestBody {
            kind: BodyKind::Stream(Box::pin(source)),
            remaining: len,
            exchange: None,
        }
    }

    /// A body of exactly `len` bytes pushed through the returned sender; at most `capacity`
    /// pieces wait in between. Dropping the sender ends the body.
    pub fn channel(len: u64, capacity: usize) -> (BodySender, RequestBody) {
        let (tx, rx) = futures_channel::mpsc::channel(capacity);
        (
            BodySender { tx },
            RequestBody::stream(len, ChannelSource(rx)),
        )
    }

    /// The body's length in bytes (what is left of it once sending started).
    pub fn len(&self) -> u64 {
        self.remaining
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// A copy, for bodies held in memory (streams cannot be sent twice).
    fn try_clone(&self) -> Option<RequestBody> {
        let kind = match &self.kind {
            BodyKind::Empty => BodyKind::Empty,
            BodyKind::Full(bytes) => BodyKind::Full(bytes.clone()),
            BodyKind::Chunks(chunks) => BodyKind::Chunks(chunks.clone()),
            BodyKind::Stream(_) => return None,
        };
        Some(RequestBody {
            kind,
            remaining: self.remaining,
            exchange: None,
        })
    }

    fn fail(&mut self, error: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(exchange) = &self.exchange {
            *exchange.body_error.borrow_mut() =
                Some(io::Error::new(error.kind(), error.to_string()));
        }
        self.kind = BodyKind::Empty;
        Poll::Ready(Some(Err(error)))
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let next = match &mut this.kind {
            BodyKind::Empty => None,
            BodyKind::Full(bytes) => bytes.take(),
            BodyKind::Chunks(chunks) => chunks.pop_front(),
            BodyKind::Stream(source) => {
                let polled = source.as_mut().poll_next(cx);
                if let Some(exchange) = &this.exchange {
                    exchange.source_waiting.set(polled.is_pending());
                }
                match polled {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Err(e))) => return this.fail(e),
                    Poll::Ready(Some(Ok(bytes))) if bytes.len() as u64 > this.remaining => {
                        let extra = bytes.len() as u64 - this.remaining;
                        return this.fail(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{extra} bytes more than the declared length"),
                        ));
                    }
                    Poll::Ready(Some(Ok(bytes))) => Some(bytes),
                    Poll::Ready(None) if this.remaining > 0 => {
                        let short = this.remaining;
                        return this.fail(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("ended {short} bytes short of the declared length"),
                        ));
                    }
                    Poll::Ready(None) => None,
                }
            }
        };
        match next {
            Some(bytes) => {
                this.remaining -= bytes.len() as u64;
                if let Some(exchange) = &this.exchange {
                    exchange.touch();
                }
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && !matches!(self.kind, BodyKind::Stream(_))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A response: status, headers and the streaming body.
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, read frame by frame.
    pub body: ResponseBody,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_length", &self.body.content_length())
            .finish_non_exhaustive()
    }
}

/// A connection waiting to go back to the pool when its response body has been read.
struct Checkout {
    pool: Rc<Inner>,
    key: PoolKey,
    sender: SendRequest<RequestBody>,
}

impl Checkout {
    fn give_back(self) {
        self.pool.give_back(self.key, self.sender);
    }
}

/// A response body, read frame by frame with the stall timeout and an optional size limit.
pub struct ResponseBody {
    incoming: Option<Incoming>,
    checkout: Option<Checkout>,
    host: String,
    stall_timeout: Duration,
    last_progress: Instant,
    stall_sleep: Option<Pin<Box<monoio::time::Sleep>>>,
    received: u64,
    content_length: Option<u64>,
    limit: Option<u64>,
}

impl ResponseBody {
    /// The length the server announced, if it did.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Fails the body with [`ClientError::TooLarge`] once more than `max_bytes` arrive.
    pub fn set_limit(&mut self, max_bytes: u64) {
        self.limit = Some(max_bytes);
    }

    /// Whether the body has been read to its end.
    pub fn is_finished(&self) -> bool {
        self.incoming.is_none()
    }

    fn finish(&mut self) {
        self.incoming = None;
        self.stall_sleep = None;
        if let Some(checkout) = self.checkout.take() {
            checkout.give_back();
        }
    }

    /// The next piece of the body; `None` at its end.
    pub fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, ClientError>>> {
        let this = self.get_mut();
        loop {
            let Some(incoming) = this.incoming.as_mut() else {
                return Poll::Ready(None);
            };
            match http_body::Body::poll_frame(Pin::new(incoming), cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.last_progress = Instant::now();
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    if data.is_empty() {
                        continue;
                    }
                    this.received += data.len() as u64;
                    if let Some(limit) = this.limit.filter(|&l| this.received > l) {
                        this.incoming = None;
                        this.checkout = None;
                        return Poll::Ready(Some(Err(ClientError::TooLarge { limit })));
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Poll::Ready(Some(Err(source))) => {
                    this.incoming = None;
                    this.checkout = None;
                    return Poll::Ready(Some(Err(ClientError::Http {
                        host: this.host.clone(),
                        source,
                    })));
                }
                Poll::Ready(None) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
            // Waiting: wake when the stall timeout would pass without progress. The timer
            // is re-armed only when it fires early, not on every frame.
            let deadline = this.last_progress + this.stall_timeout;
            let sleep = this.stall_sleep.get_or_insert_with(|| {
                Box::pin(monoio::time::sleep(
                    deadline.saturating_duration_since(Instant::now()),
                ))
            });
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if now >= deadline {
                this.incoming = None;
                this.checkout = None;
                return Poll::Ready(Some(Err(ClientError::Stalled {
                    host: this.host.clone(),
                    timeout: this.stall_timeout,
                    phase: "reading the response body",
                })));
            }
            this.stall_sleep = Some(Box::pin(monoio::time::sleep(deadline - now)));
        }
    }

    /// The next piece of the body; `None` at its end.
    pub async fn next(&mut self) -> Option<Result<Bytes, ClientError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The whole body, for small documents (XML, JSON); fails with
    /// [`ClientError::TooLarge`] past `limit` bytes.
    pub async fn bytes(mut self, limit: usize) -> Result<Bytes, ClientError> {
        let limit = limit as u64;
        if self.content_length.is_some_and(|len| len > limit) {
            return Err(ClientError::TooLarge { limit });
        }
        self.limit = Some(self.limit.map_or(limit, |l| l.min(limit)));
        let mut out = bytes::BytesMut::new();
        while let Some(piece) = self.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out.freeze())
    }
}

impl Unpin for ResponseBody {}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("host", &self.host)
            .field("content_length", &self.content_length)
            .field("received", &self.received)
            .field("finished", &self.incoming.is_none())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    scheme: Scheme,
    host: Host,
    port: u16,
    addr: SocketAddr,
}

struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

struct Inner {
    settings: ClientSettings,
    tls: RefCell<Option<Arc<rustls::ClientConfig>>>,
    idle: RefCell<HashMap<PoolKey, Vec<Idle>>>,
}

impl Inner {
    fn give_back(&self, key: PoolKey, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() < self.settings.pool_max_idle_per_origin {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// An idle connection to one of `addrs`, newest first, dropping expired and closed ones.
    fn take_idle(&self, target: &Target, addrs: &[SocketAddr]) -> Option<(PoolKey, Idle)> {
        let mut idle = self.idle.borrow_mut();
        let now = Instant::now();
        idle.retain(|_, list| {
            list.retain(|c| {
                !c.sender.is_closed() && now - c.since < self.settings.pool_idle_timeout
            });
            !list.is_empty()
        });
        for addr in addrs {
            let key = PoolKey {
                scheme: target.scheme,
                host: target.host.clone(),
                port: target.port,
                addr: *addr,
            };
            if let Some(conn) = idle.get_mut(&key).and_then(Vec::pop) {
                return Some((key, conn));
            }
        }
        None
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        if let Some(config) = self.tls.borrow().as_ref() {
            return Ok(Arc::clone(config));
        }
        let config = crate::net::tls::client_config(&self.settings.tls).map_err(Arc::new)?;
        *self.tls.borrow_mut() = Some(Arc::clone(&config));
        Ok(config)
    }
}

/// How an exchange on a connection failed.
enum Failed {
    /// The request never left: here it is, to send on another connection.
    NotSent(Box<http::Request<RequestBody>>),
    /// It failed after (maybe) leaving.
    Lost(ClientError),
}

/// The outbound HTTP client of one core (see the module docs).
#[derive(Clone)]
pub struct HttpClient {
    inner: Rc<Inner>,
}

impl HttpClient {
    /// A client with `settings`. TLS roots are loaded on the first https request.
    pub fn new(settings: ClientSettings) -> HttpClient {
        HttpClient {
            inner: Rc::new(Inner {
                settings,
                tls: RefCell::new(None),
                idle: RefCell::new(HashMap::new()),
            }),
        }
    }

    /// A client sharing TLS settings already built (see [`crate::net::tls::client_config`]):
    /// build them once, then make one client per core.
    pub fn with_tls_config(settings: ClientSettings, tls: Arc<rustls::ClientConfig>) -> HttpClient {
        let client = HttpClient::new(settings);
        *client.inner.tls.borrow_mut() = Some(tls);
        client
    }

    /// The client's settings.
    pub fn settings(&self) -> &ClientSettings {
        &self.inner.settings
    }

    /// Idle connections in the pool (for tests and metrics).
    pub fn idle_connections(&self) -> usize {
        self.inner.idle.borrow().values().map(Vec::len).sum()
    }

    /// Sends `request` (its URI is the path and query; `Host` is set from the target when
    /// absent) and returns the response once its headers have arrived.
    pub async fn send(
        &self,
        target: &Target,
        mut request: http::Request<RequestBody>,
    ) -> Result<Response, ClientError> {
        prepare(target, &mut request)?;
        let addrs = self.addresses(target).await?;
        if let Some((key, mut idle)) = self.inner.take_idle(target, &addrs) {
            let replay = replay_copy(&request);
            let ready = self
                .watch(
                    idle.sender.ready(),
                    &Exchange::new(),
                    target,
                    "reusing a connection",
                )
                .await;
            if matches!(ready, Ok(Ok(()))) {
                match self.exchange(target, key, idle.sender, request).await {
                    Ok(response) => return Ok(response),
                    Err(Failed::NotSent(unsent)) => request = *unsent,
                    Err(Failed::Lost(error)) => match replay {
                        Some(copy) if is_stale_connection(&error) => {
                            tracing::debug!(host = %target.host, %error, "kept connection was closed; sending again");
                            request = copy;
                        }
                        _ => return Err(error),
                    },
                }
            }
        }
        let (key, sender) = self.connect(target, &addrs).await?;
        match self.exchange(target, key, sender, request).await {
            Ok(response) => Ok(response),
            Err(Failed::Lost(error)) => Err(error),
            Err(Failed::NotSent(_)) => Err(ClientError::InvalidRequest(
                "a new connection closed before the request could be sent".into(),
            )),
        }
    }

    async fn addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, ClientError> {
        if let Some(addrs) = &target.addrs {
            if addrs.is_empty() {
                return Err(ClientError::InvalidRequest(
                    "no address to connect to".into(),
                ));
            }
            return Ok(addrs.clone());
        }
        match &target.host {
            Host::V4(ip) => Ok(vec![SocketAddr::new(IpAddr::V4(*ip), target.port)]),
            Host::V6(ip) => Ok(vec![SocketAddr::new(IpAddr::V6(*ip), target.port)]),
            Host::Name(name) => {
                Ok(resolve(name, target.port, self.inner.settings.connect_timeout).await?)
            }
        }
    }

    /// Opens a connection to the first of `addrs` that answers.
    async fn connect(
        &self,
        target: &Target,
        addrs: &[SocketAddr],
    ) -> Result<(PoolKey, SendRequest<RequestBody>), ClientError> {
        let mut last_error = None;
        for addr in addrs {
            match self.connect_one(target, *addr).await {
                Ok(sender) => {
                    let key = PoolKey {
                        scheme: target.scheme,
                        host: target.host.clone(),
                        port: target.port,
                        addr: *addr,
                    };
                    return Ok((key, sender));
                }
                Err(error) => {
                    tracing::debug!(%addr, %error, "connect failed");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::InvalidRequest("no address".into())))
    }

    async fn connect_one(
        &self,
        target: &Target,
        addr: SocketAddr,
    ) -> Result<SendRequest<RequestBody>, ClientError> {
        let timeout = self.inner.settings.connect_timeout;
        let stream = match monoio::time::timeout(
            timeout,
            monoio::net::TcpStream::connect_addr(addr),
        )
        .await
        {
            Err(_) => return Err(ClientError::ConnectTimeout { addr, timeout }),
            Ok(Err(source)) => return Err(ClientError::Connect { addr, source }),
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let stream = stream
            .into_poll_io()
            .map_err(|source| ClientError::Connect { addr, source })?;
        let mut builder = hyper::client::conn::http1::Builder::new();
        builder.max_buf_size(MAX_BUF_BYTES);
        let host = target.host.list_name();
        let handshake_error = |source| ClientError::Http {
            host: host.clone(),
            source,
        };
        match target.scheme {
            Scheme::Http => {
                let (sender, conn) = builder
                    .handshake(PollIo(stream))
                    .await
                    .map_err(handshake_error)?;
                monoio::spawn(async move {
                    if let Err(error) = conn.await {
                        tracing::debug!(%error, "outbound connection ended with an error");
                    }
                });
                Ok(sender)
            }
            Scheme::Https => {
                let config = self.inner.tls_config()?;
                let name = server_name(&target.host)?;
                let connector = tokio_rustls::TlsConnector::from(config);
                let tls =
                    match monoio::time::timeout(timeout, connector.connect(name, stream)).await {
                        Err(_) => return Err(ClientError::ConnectTimeout { addr, timeout }),
                        Ok(Err(source)) => {
                            return Err(ClientError::Tls {
                                host: host.clone(),
                                addr,
                                source,
                            })
                        }
                        Ok(Ok(tls)) => tls,
                    };
                let (sender, conn) = builder
                    .handshake(PollIo(tls))
                    .await
                    .map_err(handshake_error)?;
                monoio::spawn(async move {
                    if let Err(error) = conn.await {
                        tracing::debug!(%error, "outbound TLS connection ended with an error");
                    }
                });
                Ok(sender)
            }
        }
    }

    /// Sends `request` on `sender` and waits for the response head under the stall timeout.
    async fn exchange(
        &self,
        target: &Target,
        key: PoolKey,
        mut sender: SendRequest<RequestBody>,
        mut request: http::Request<RequestBody>,
    ) -> Result<Response, Failed> {
        let exchange = Rc::new(Exchange::new());
        request.body_mut().exchange = Some(Rc::clone(&exchange));
        let sent = sender.try_send_request(request);
        let outcome = self
            .watch(sent, &exchange, target, "waiting for the response")
            .await;
        let host = target.host.list_name();
        let response = match outcome {
            Err(stalled) => return Err(Failed::Lost(stalled)),
            Ok(Err(mut error)) => {
                if let Some(unsent) = error.take_message() {
                    return Err(Failed::NotSent(Box::new(unsent)));
                }
                if let Some(body_error) = exchange.body_error.borrow_mut().take() {
                    return Err(Failed::Lost(ClientError::Body(body_error)));
                }
                return Err(Failed::Lost(ClientError::Http {
                    host,
                    source: error.into_error(),
                }));
            }
            Ok(Ok(response)) => response,
        };
        let (parts, incoming) = response.into_parts();
        let content_length = http_body::Body::size_hint(&incoming).exact();
        let mut body = ResponseBody {
            incoming: Some(incoming),
            checkout: Some(Checkout {
                pool: Rc::clone(&self.inner),
                key,
                sender,
            }),
            host,
            stall_timeout: self.inner.settings.stall_timeout,
            last_progress: Instant::now(),
            stall_sleep: None,
            received: 0,
            content_length,
            limit: None,
        };
        if body
            .incoming
            .as_ref()
            .is_some_and(http_body::Body::is_end_stream)
        {
            body.finish();
        }
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Runs `fut` until it ends or the exchange makes no progress for the stall timeout.
    async fn watch<F: Future>(
        &self,
        fut: F,
        exchange: &Exchange,
        target: &Target,
        phase: &'static str,
    ) -> Result<F::Output, ClientError> {
        let stall = self.inner.settings.stall_timeout;
        let mut fut = std::pin::pin!(fut);
        loop {
            let deadline = exchange.last_progress.get() + stall;
            let wait = deadline.saturating_duration_since(Instant::now());
            monoio::select! {
                out = fut.as_mut() => return Ok(out),
                _ = monoio::time::sleep(wait) => {
                    if exchange.source_waiting.get() {
                        // Our own body source is slow, not the remote.
                        exchange.touch();
                    } else if exchange.last_progress.get() + stall <= Instant::now() {
                        return Err(ClientError::Stalled {
                            host: target.host.list_name(),
                            timeout: stall,
                            phase,
                        });
                    }
                }
            }
        }
    }
}

/// Sets `Host`, `User-Agent` and (for methods with bodies) `Content-Length` when absent.
fn prepare(target: &Target, request: &mut http::Request<RequestBody>) -> Result<(), ClientError> {
    let len = request.body().len();
    let needs_length = matches!(
        *request.method(),
        Method::PUT | Method::POST | Method::PATCH
    ) || len > 0;
    let headers = request.headers_mut();
    if !headers.contains_key(HOST) {
        let host = HeaderValue::from_str(&target.host_header())
            .map_err(|_| ClientError::InvalidRequest("host is not a valid header value".into()))?;
        headers.insert(HOST, host);
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    }
    if needs_length && !headers.contains_key(CONTENT_LENGTH) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(())
}

/// A copy of `request` to send again, if it is idempotent and its body is in memory.
fn replay_copy(request: &http::Request<RequestBody>) -> Option<http::Request<RequestBody>> {
    if !request.method().is_idempotent() {
        return None;
    }
    let body = request.body().try_clone()?;
    let mut copy = http::Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// Whether an error on a reused connection means the server had closed it before reading
/// the request (so the request may be sent again).
fn is_stale_connection(error: &ClientError) -> bool {
    match error {
        ClientError::Http { source, .. } => {
            source.is_incomplete_message()
                || source.is_canceled()
                || source.is_closed()
                || std::error::Error::source(source)
                    .and_then(|e| e.downcast_ref::<io::Error>())
                    .is_some_and(|e| {
                        matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                        )
                    })
        }
        _ => false,
    }
}

fn server_name(host: &Host) -> Result<ServerName<'static>, ClientError> {
    match host {
        Host::Name(name) => ServerName::try_from(name.clone()).map_err(|_| {
            ClientError::InvalidRequest(format!("{name} is not a valid TLS server name"))
        }),
        Host::V4(ip) => Ok(ServerName::IpAddress(IpAddr::V4(*ip).into())),
        Host::V6(ip) => Ok(ServerName::IpAddress(IpAddr::V6(*ip).into())),
    }
}

#[cfg(test)]
mod tests;
