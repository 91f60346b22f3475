//! One worker's server: accept connections on its own listener, serve each with hyper's
//! HTTP/1.1 (keep-alive; chunked and Content-Length bodies), close with a lingering close when
//! the last answer went out before its request body ended (`linger`), shut down gracefully.
//!
//! A connection lives on the core that accepted it until it closes: no locks, no hand-off.
//! On shutdown the worker stops accepting, asks every open connection to finish its current
//! request and close (idle keep-alive connections close at once), and waits for them, up to a
//! deadline after which the process exits anyway (a restart recovers any upload cut short).

pub mod linger;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use monoio::io::IntoPollIo;
use monoio::net::TcpListener;

use crate::app::App;
use crate::body::UnreadBody;
use crate::datapath::splice::{SpliceQueue, Splicer};
use crate::hyper_io::HyperIo;

/// How long in-flight requests may run after shutdown was asked for.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// hyper's read buffer limit: also the largest upload frame.
const MAX_BUF_BYTES: usize = 1 << 20;
/// The largest request head (request line and headers): 431 beyond. Glance's reference uWSGI
/// deployment reads a request head into a `buffer-size = 65535` buffer; without this cap a
/// slow client could make each connection hold a 1 MiB head buffer.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// A one-way, single-thread "stop now" signal shared by a worker's tasks.
#[derive(Clone, Default)]
pub struct Shutdown(Rc<ShutdownState>);

#[derive(Default)]
struct ShutdownState {
    fired: Cell<bool>,
    /// One waker per pending [`Shutdown::wait`], replaced when it is polled again and removed
    /// when it is dropped: a `select!` polls every branch on each wake-up, and a connection
    /// wakes thousands of times, so pushing a waker per poll would grow without bound.
    waiters: RefCell<HashMap<u64, Waker>>,
    next_key: Cell<u64>,
}

impl Shutdown {
    /// Fires the signal, waking every waiter.
    pub fn fire(&self) {
        self.0.fired.set(true);
        let waiters = std::mem::take(&mut *self.0.waiters.borrow_mut());
        for waker in waiters.into_values() {
            waker.wake();
        }
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        self.0.fired.get()
    }

    /// Resolves once the signal fires.
    pub fn wait(&self) -> impl Future<Output = ()> + 'static {
        let key = self.0.next_key.get();
        self.0.next_key.set(key + 1);
        Wait {
            shutdown: self.clone(),
            key,
        }
    }
}

/// A pending [`Shutdown::wait`].
struct Wait {
    shutdown: Shutdown,
    key: u64,
}

impl Future for Wait {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = &self.shutdown.0;
        if state.fired.get() {
            return Poll::Ready(());
        }
        let mut waiters = state.waiters.borrow_mut();
        match waiters.get_mut(&self.key) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                waiters.insert(self.key, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.shutdown.0.waiters.borrow_mut().remove(&self.key);
    }
}

/// Accepts and serves connections until `stop` resolves, then drains.
pub async fn serve(listener: TcpListener, app: Arc<App>, stop: impl Future<Output = ()>) {
    let shutdown = Shutdown::default();
    let open = Rc::new(Cell::new(0usize));
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = monoio::select! {
            accepted = listener.accept() => Some(accepted),
            _ = &mut stop => None,
        };
        match accepted {
            None => break,
            Some(Ok((stream, _peer))) => {
                let _ = stream.set_nodelay(true);
                open.set(open.get() + 1);
                let (app, shutdown, open) = (Arc::clone(&app), shutdown.clone(), Rc::clone(&open));
                monoio::spawn(async move {
                    let _counted = crate::metrics::connection_opened();
                    serve_connection(stream, app, shutdown).await;
                    open.set(open.get() - 1);
                });
            }
            Some(Err(e)) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    shutdown.fire();
    let deadline = monoio::time::Instant::now() + DRAIN_DEADLINE;
    while open.get() > 0 && monoio::time::Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    if open.get() > 0 {
        tracing::warn!(
            connections = open.get(),
            "shutdown deadline passed; closing anyway"
        );
    }
}

async fn serve_connection(stream: monoio::net::TcpStream, app: Arc<App>, shutdown: Shutdown) {
    let socket = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let io = match stream.into_poll_io() {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!(error = %e, "cannot switch connection to poll mode");
            return;
        }
    };
    // Zero-copy downloads: the queue links the bodies this connection sends with its I/O.
    let queue = SpliceQueue::default();
    let splicer = if app.config.zero_copy_download {
        Splicer::new(socket, queue.clone())
    } else {
        None
    };
    let zero_copy = splicer.is_some();
    let io = HyperIo(io, splicer);
    let lingering = linger::Bounds::from_config(&app.config);
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .max_buf_size(MAX_BUF_BYTES)
        .max_header_size(MAX_HEADER_BYTES);
    if let Some(timeout) = app.config.client_socket_timeout() {
        builder
            .timer(app.timer.clone())
            .header_read_timeout(timeout);
    }
    // Whether the request being served has body bytes nobody read (see `linger`).
    let unread = UnreadBody::default();
    let service = {
        let unread = unread.clone();
        service_fn(move |request: Request<Incoming>| {
            let app = Arc::clone(&app);
            let queue = queue.clone();
            let request = request.map(|body| unread.watch(body));
            async move {
                let queue = zero_copy.then_some(&queue);
                Ok::<_, Infallible>(crate::dispatch::handle(&app, request, queue).await)
            }
        })
    };
    // `Connection` is `Unpin`: polled by reference, it can give its socket back at the end.
    let mut conn = builder.serve_connection(io, service);
    let finished = monoio::select! {
        result = &mut conn => Some(result),
        _ = shutdown.wait() => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            std::pin::Pin::new(&mut conn).graceful_shutdown();
            (&mut conn).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
        return;
    }
    // hyper has flushed the last response and shut down our sending side. If it answered
    // before that request's body ended, the client may still be sending: linger.
    if let (true, Some(bounds)) = (unread.get(), lingering) {
        let HyperIo(stream, _splicer) = conn.into_parts().io;
        let (end, discarded_bytes) = linger::close(stream, bounds, &shutdown).await;
        tracing::debug!(end = end.label(), discarded_bytes, "lingering close");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_waiters_do_not_pile_up_and_all_wake_when_it_fires() {
        let shutdown = Shutdown::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = std::pin::pin!(shutdown.wait());
        let mut second = std::pin::pin!(shutdown.wait());
        for _ in 0..1000 {
            assert!(first.as_mut().poll(&mut cx).is_pending());
        }
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert_eq!(shutdown.0.waiters.borrow().len(), 2);
        {
            let mut dropped = std::pin::pin!(shutdown.wait());
            assert!(dropped.as_mut().poll(&mut cx).is_pending());
            assert_eq!(shutdown.0.waiters.borrow().len(), 3);
        }
        assert_eq!(shutdown.0.waiters.borrow().len(), 2);
        shutdown.fire();
        assert!(shutdown.0.waiters.borrow().is_empty());
        assert!(first.as_mut().poll(&mut cx).is_ready());
        assert!(second.as_mut().poll(&mut cx).is_ready());
        assert!(std::pin::pin!(shutdown.wait()).poll(&mut cx).is_ready());
    }
}
