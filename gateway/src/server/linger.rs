//! Lingering close: how a connection ends after glint answered a request before its body
//! ended (a refused upload: 413, 415, 409, 401, 403 …; a JSON body too large).
//!
//! What hyper does when a handler drops a request body unread: it tries one cheap read of the
//! rest (what is already buffered), and if the body has not ended it stops reading, marks the
//! response `connection: close`, writes and flushes it, and shuts down the sending side
//! (FIN). If the socket were then closed while the client is still sending, the kernel would
//! answer the unread bytes — those queued, and every later one — with a reset. A client still
//! writing its body (curl, Python's http.client, anything that writes before it reads) then
//! fails its write and never reads the answer, which is sitting in its receive queue.
//!
//! So, as nginx does (`lingering_close`), the connection outlives hyper: what the client still
//! sends is read and discarded until the client closes its side (it has what it needs), stays
//! silent for `lingering_close_idle_ms`, or `lingering_close_time_ms` or
//! `lingering_close_max_bytes` is reached; then the socket is closed. A client that keeps
//! sending is cut off at those bounds (with a reset, long after its answer went out).
//!
//! Discarded bytes are never seen by anyone: `recv(MSG_TRUNC)` has the kernel drop them
//! without copying them to user space (not hashed, inspected or written; not even copied).
//! The alternative — keeping the connection and draining the rest of the body through hyper
//! for the next request — is not used: hyper has already decided to close by then (keep-alive
//! off, `connection: close` sent), and draining through hyper would copy every byte into its
//! read buffer. Connections whose last request body was read to the end (`body::UnreadBody`)
//! close at once, as before.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use monoio::net::tcp::stream_poll::TcpStreamPoll;

use super::Shutdown;
use crate::config::Config;
pub use crate::metrics::LingerEnd as End;

/// Bytes asked of the kernel per `recv`: with `MSG_TRUNC` they are dropped, not copied, so
/// this only sets how many calls a burst takes.
const RECV_BYTES: usize = 256 << 10;
/// A connection that keeps the socket readable lets the other connections of its core run
/// after this many discarded bytes.
const YIELD_EVERY_BYTES: u64 = 1 << 20;

thread_local! {
    /// Where `recv` is pointed. With `MSG_TRUNC` the kernel writes nothing to it; it exists
    /// so that a kernel ignoring the flag would copy into memory we own, never past it.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; RECV_BYTES].into_boxed_slice());
}

/// How long and how much a lingering close may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The longest it lasts from the end of the response (`lingering_close_time_ms`).
    pub time: Duration,
    /// It stops after the client was silent this long (`lingering_close_idle_ms`).
    pub idle: Duration,
    /// It stops after discarding this many bytes (`lingering_close_max_bytes`).
    pub max_bytes: u64,
}

impl Bounds {
    /// The configured bounds; `None` when lingering is switched off (`time` 0).
    pub fn from_config(config: &Config) -> Option<Bounds> {
        (config.lingering_close_time_ms > 0).then(|| Bounds {
            time: Duration::from_millis(config.lingering_close_time_ms),
            idle: Duration::from_millis(config.lingering_close_idle_ms),
            max_bytes: config.lingering_close_max_bytes,
        })
    }
}

/// Discards what the client still sends on `stream`, whose response hyper has flushed and
/// whose sending side it has shut down, within `bounds`; then closes it. Returns why it
/// stopped and how many bytes were discarded.
pub async fn close(stream: TcpStreamPoll, bounds: Bounds, shutdown: &Shutdown) -> (End, u64) {
    // Completion mode: waiting for readability is then one poll request (io_uring) or the
    // driver's readiness (epoll), with no read of our own.
    let stream = match stream.try_into_comp_io() {
        Ok(stream) => stream,
        Err((e, _stream)) => {
            tracing::debug!(error = %e, "lingering close: cannot switch the socket; closing");
            return (End::Closed, 0);
        }
    };
    let fd = stream.as_raw_fd();
    let deadline = Instant::now() + bounds.time;
    let mut discarded: u64 = 0;
    let mut since_yield: u64 = 0;
    let end = loop {
        if discarded >= bounds.max_bytes {
            break End::Bytes;
        }
        let now = Instant::now();
        let Some(left) = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
        else {
            break End::Time;
        };
        let want =
            usize::try_from(bounds.max_bytes - discarded).map_or(RECV_BYTES, |n| n.min(RECV_BYTES));
        match discard(fd, want) {
            Ok(0) => break End::Closed,
            Ok(n) => {
                discarded += n as u64;
                since_yield += n as u64;
                if since_yield >= YIELD_EVERY_BYTES {
                    since_yield = 0;
                    yield_now().await;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let (wait, end) = if bounds.idle < left {
                    (bounds.idle, End::Idle)
                } else {
                    (left, End::Time)
                };
                let readable = monoio::select! {
                    ready = monoio::time::timeout(wait, stream.readable(false)) => Some(ready),
                    _ = shutdown.wait() => None,
                };
                match readable {
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(_))) => break End::Closed,
                    Some(Err(_elapsed)) => break end,
                    None => break End::Shutdown,
                }
            }
            // ECONNRESET and the like: the client is gone.
            Err(_) => break End::Closed,
        }
    };
    crate::metrics::lingered(end, discarded);
    drop(stream);
    (end, discarded)
}

/// One non-blocking `recv` of at most `max` bytes with `MSG_TRUNC`: the kernel drops them
/// instead of copying them out. Returns how many were dropped (0 at the client's EOF).
fn discard(fd: RawFd, max: usize) -> io::Result<usize> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let len = max.min(scratch.len());
        // SAFETY: the pointer and length describe memory we own and borrow exclusively for
        // the call; with MSG_TRUNC a TCP socket writes nothing there, and without it the
        // kernel would write at most `len` bytes.
        let n = unsafe {
            libc::recv(
                fd,
                scratch.as_mut_ptr().cast(),
                len,
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    })
}

/// Lets the other tasks of this core run once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::IntoPollIo;
    use std::io::Write;
    use std::net::TcpStream as StdStream;

    /// Runs `test` on an epoll runtime, and on an io_uring one where the kernel has it.
    fn on_each_driver(test: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("epoll runtime")
            .block_on(test());
        if monoio::utils::detect_uring() {
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()
                .expect("io_uring runtime")
                .block_on(test());
        }
    }

    /// A connected pair: the server end as hyper leaves it (poll mode, sending side shut
    /// down), the client end as a blocking std stream.
    async fn pair() -> (TcpStreamPoll, StdStream) {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = StdStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let server = server.into_poll_io().expect("poll io");
        // SAFETY: shutdown(2) on a socket we own.
        unsafe { libc::shutdown(server.as_raw_fd(), libc::SHUT_WR) };
        (server, client)
    }

    fn bounds(time_ms: u64, idle_ms: u64, max_bytes: u64) -> Bounds {
        Bounds {
            time: Duration::from_millis(time_ms),
            idle: Duration::from_millis(idle_ms),
            max_bytes,
        }
    }

    /// Writes `chunk` over and over until a write fails; returns the bytes written.
    fn send_until_cut(mut client: StdStream) -> std::thread::JoinHandle<u64> {
        std::thread::spawn(move || {
            let chunk = vec![7u8; 64 << 10];
            let mut sent = 0u64;
            while client.write_all(&chunk).is_ok() {
                sent += chunk.len() as u64;
            }
            sent
        })
    }

    /// Waits for the sender to be cut off while the runtime keeps running (with io_uring the
    /// socket is closed by a request the runtime submits when it next waits).
    async fn cut_off(sender: std::thread::JoinHandle<u64>) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sender.is_finished() {
            assert!(Instant::now() < deadline, "the sender was never cut off");
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
        sender.join().expect("sender")
    }

    #[test]
    fn discards_until_the_client_closes() {
        on_each_driver(|| {
            Box::pin(async {
                let (server, mut client) = pair().await;
                client.write_all(&vec![1u8; 3 << 20]).expect("write");
                drop(client);
                let ended = close(
                    server,
                    bounds(60_000, 60_000, 1 << 30),
                    &Shutdown::default(),
                )
                .await;
                assert_eq!(ended, (End::Closed, 3 << 20));
            })
        });
    }

    #[test]
    fn a_client_that_keeps_sending_is_cut_off_at_the_byte_bound() {
        on_each_driver(|| {
            Box::pin(async {
                let (server, client) = pair().await;
                let sender = send_until_cut(client);
                let ended = close(
                    server,
                    bounds(60_000, 60_000, 5 << 20),
                    &Shutdown::default(),
                )
                .await;
                assert_eq!(ended, (End::Bytes, 5 << 20));
                // The socket is closed: the sender's writes fail.
                assert!(cut_off(sender).await >= 5 << 20);
            })
        });
    }

    #[test]
    fn a_client_that_keeps_sending_is_cut_off_at_the_time_bound() {
        on_each_driver(|| {
            Box::pin(async {
                let (server, client) = pair().await;
                let sender = send_until_cut(client);
                let started = Instant::now();
                let (end, discarded) =
                    close(server, bounds(200, 60_000, u64::MAX), &Shutdown::default()).await;
                assert_eq!(end, End::Time);
                assert!(started.elapsed() >= Duration::from_millis(200));
                assert!(discarded > 0);
                cut_off(sender).await;
            })
        });
    }

    #[test]
    fn a_silent_client_is_let_go_at_idle_or_at_shutdown() {
        on_each_driver(|| {
            Box::pin(async {
                let (server, mut client) = pair().await;
                client.write_all(b"a little").expect("write");
                let ended = close(server, bounds(60_000, 50, 1 << 30), &Shutdown::default()).await;
                assert_eq!(ended, (End::Idle, 8));

                let (server, _client) = pair().await;
                let shutdown = Shutdown::default();
                shutdown.fire();
                let ended = close(server, bounds(60_000, 60_000, 1 << 30), &shutdown).await;
                assert_eq!(ended, (End::Shutdown, 0));
            })
        });
    }

    #[test]
    fn bounds_follow_the_config_and_zero_time_switches_lingering_off() {
        let config = Config::default();
        let bounds = Bounds::from_config(&config).unwrap();
        assert_eq!(bounds.time, Duration::from_secs(30));
        assert_eq!(bounds.idle, Duration::from_secs(5));
        assert_eq!(bounds.max_bytes, 1 << 30);
        let off = Config {
            lingering_close_time_ms: 0,
            ..Config::default()
        };
        assert_eq!(Bounds::from_config(&off), None);
    }
}
