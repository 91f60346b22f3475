//! `glint serve`: start-up (recovery, listeners, workers), then wait for a stop signal.

use std::io::Write;
use std::sync::Arc;

use crate::app::App;
use crate::config::Config;
use crate::datapath::checksum::HashPool;
use crate::runtime;
use crate::store::fs::FsStore;
use crate::timer::ThreadTimer;
use crate::writer::Writer;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data folder or a listener could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The metadata store could not be opened.
    #[error("metadata store: {0}")]
    Meta(#[from] meta::Error),
    /// The auth strategy could not be set up.
    #[error("auth: {0}")]
    Auth(#[from] crate::config::ConfigError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// The format-inspection policy from the configuration.
pub fn format_policy(config: &Config) -> formats::Policy {
    formats::Policy {
        require_format_match: config.require_image_format_match,
        vmdk_allowed_types: config.vmdk_allowed_types.clone(),
        ..formats::Policy::default()
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(config: Config) -> Result<(), StartError> {
    // Before any other thread exists, so that every thread inherits the blocked mask.
    let signals = runtime::signal_thread().map_err(io("signal thread"))?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io(format!("create data dir {}", config.data_dir.display())))?;
    let meta = meta::Meta::open(&config.meta_path())?;
    let store = FsStore::open(&config.images_dir()).map_err(io("open file store"))?;
    let recovered = meta.recover_interrupted()?;
    let files = store
        .reconcile(&meta)
        .map_err(io("reconcile the image store"))?;
    if !recovered.is_empty() || files.partials_removed > 0 || files.orphans_removed > 0 {
        tracing::warn!(
            images = recovered.len(),
            partial_files = files.partials_removed,
            orphan_files = files.orphans_removed,
            "recovered from a crash: interrupted uploads back to queued, files no image owns removed"
        );
    }
    crate::metrics::set_images_missing_data(files.missing_data.len());
    let driver = runtime::choose_driver(config.io_driver);
    let workers = config.worker_count();
    crate::metrics::set_enabled(config.metrics_enabled);
    crate::metrics::set_process_info(driver, workers);
    let listeners = runtime::bind_listeners(config.listen, workers)
        .map_err(io(format!("bind {}", config.listen)))?;
    let local = listeners
        .first()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(io("local address"))?
        .unwrap_or(config.listen);
    let auth = crate::auth::Auth::from_config(&config)?;
    let app = Arc::new(App {
        auth,
        format_policy: format_policy(&config),
        config: Arc::new(config),
        meta,
        store,
        writer: Writer::start().map_err(io("writer thread"))?,
        hash_pool: HashPool::start(workers).map_err(io("hashing threads"))?,
        timer: ThreadTimer::start().map_err(io("timer thread"))?,
    });
    let workers_running =
        runtime::run_workers(Arc::clone(&app), listeners, driver).map_err(io("worker threads"))?;
    tracing::info!(%driver, workers, address = %local, "glint ready");
    println!("listening on http://{local}");
    let _ = std::io::stdout().flush();

    let signal = signals.join().unwrap_or(libc::SIGTERM);
    tracing::info!(signal, "stopping: finishing requests in flight");
    workers_running.stop_and_join();
    tracing::info!("stopped");
    Ok(())
}
