//! One worker's server: accept connections on its own listener, serve each with hyper's
//! HTTP/1.1 (keep-alive; chunked and Content-Length bodies), shut down gracefully.
//!
//! A connection lives on the core that accepted it until it closes: no locks, no hand-off.
//! On shutdown the worker stops accepting, asks every open connection to finish its current
//! request and close (idle keep-alive connections close at once), and waits for them, up to a
//! deadline after which the process exits anyway (a restart recovers any upload cut short).

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use monoio::io::IntoPollIo;
use monoio::net::TcpListener;

use crate::app::App;
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
    waiters: RefCell<Vec<Waker>>,
}

impl Shutdown {
    /// Fires the signal, waking every waiter.
    pub fn fire(&self) {
        self.0.fired.set(true);
        for waker in self.0.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        self.0.fired.get()
    }

    /// Resolves once the signal fires.
    pub fn wait(&self) -> impl Future<Output = ()> + 'static {
        let this = self.clone();
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            if this.is_fired() {
                Poll::Ready(())
            } else {
                this.0.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
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
    let service = service_fn(move |request| {
        let app = Arc::clone(&app);
        let queue = queue.clone();
        async move {
            let queue = zero_copy.then_some(&queue);
            Ok::<_, Infallible>(app.handle(request, queue).await)
        }
    });
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let finished = monoio::select! {
        result = conn.as_mut() => Some(result),
        _ = shutdown.wait() => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
