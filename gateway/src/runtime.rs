//! Thread-per-core: one worker thread per core, each with its own monoio runtime and its own
//! `SO_REUSEPORT` listener on the API port, so the kernel spreads connections over cores and a
//! connection never leaves the core that accepted it.
//!
//! The driver is io_uring where the kernel has it, epoll otherwise (or when configured): the
//! choice is made once at start-up and logged. SIGTERM/SIGINT are taken by a dedicated signal
//! thread (blocked everywhere else), which tells every worker to stop.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::thread;

use socket2::{Domain, Protocol, Socket, Type};

use crate::app::App;
use crate::config::IoDriver;

/// The io driver a runtime ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring.
    IoUring,
    /// epoll (the fallback).
    Epoll,
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        })
    }
}

/// Which driver workers will use under `setting`.
pub fn choose_driver(setting: IoDriver) -> Driver {
    match setting {
        IoDriver::Epoll => Driver::Epoll,
        IoDriver::Auto if monoio::utils::detect_uring() => Driver::IoUring,
        IoDriver::Auto => Driver::Epoll,
    }
}

/// Runs `work` to completion on a runtime of `driver` built for it on the calling thread
/// (start-up work that needs I/O before the workers exist: checking remote stores).
pub fn block_on<F: std::future::Future>(driver: Driver, work: F) -> io::Result<F::Output> {
    match driver {
        Driver::IoUring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(work)),
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(work)),
    }
}

/// Binds `count` listeners on one address with `SO_REUSEPORT`. With port 0 the first bind
/// picks the port and the others join it.
pub fn bind_listeners(addr: SocketAddr, count: usize) -> io::Result<Vec<StdListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let listener: StdListener = socket.into();
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and so in threads it starts later)
/// and returns a thread that waits for them: it calls `on_hangup` for each SIGHUP and ends
/// with the first SIGTERM or SIGINT.
pub fn signal_thread(on_hangup: impl Fn() + Send + 'static) -> io::Result<thread::JoinHandle<i32>> {
    // SAFETY: plain libc signal-mask calls on a zero-initialised, then filled, sigset_t.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        set
    };
    thread::Builder::new()
        .name("glint-signals".into())
        .spawn(move || loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: `set` is a valid, initialised signal set; `signal` is writable.
            unsafe { libc::sigwait(&set, &mut signal) };
            if signal == libc::SIGHUP {
                on_hangup();
                continue;
            }
            return signal;
        })
}

/// The running worker threads.
pub struct Workers {
    handles: Vec<thread::JoinHandle<()>>,
    stops: Vec<futures_channel::oneshot::Sender<()>>,
}

impl Workers {
    /// Tells every worker to stop accepting and drain, then waits for them.
    pub fn stop_and_join(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for handle in self.handles {
            let _ = handle.join();
        }
    }
}

/// Starts one worker per listener.
pub fn run_workers(
    app: Arc<App>,
    listeners: Vec<StdListener>,
    driver: Driver,
) -> io::Result<Workers> {
    let mut handles = Vec::new();
    let mut stops = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let (stop_tx, stop_rx) = futures_channel::oneshot::channel::<()>();
        stops.push(stop_tx);
        let app = Arc::clone(&app);
        let handle = thread::Builder::new()
            .name(format!("glint-worker-{index}"))
            .spawn(move || {
                let work = async move {
                    let listener = match monoio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(worker = index, error = %e, "cannot adopt listener");
                            return;
                        }
                    };
                    crate::server::serve(listener, app, async move {
                        let _ = stop_rx.await;
                    })
                    .await;
                };
                let built = match driver {
                    Driver::IoUring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                        .enable_timer()
                        .build()
                        .map(|mut rt| rt.block_on(work)),
                    Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                        .enable_timer()
                        .build()
                        .map(|mut rt| rt.block_on(work)),
                };
                if let Err(e) = built {
                    tracing::error!(worker = index, error = %e, "cannot start runtime");
                }
            })?;
        handles.push(handle);
    }
    Ok(Workers { handles, stops })
}
