//! `glint serve`: start-up (state, recovery, listeners, workers), then wait for a stop
//! signal.

use std::io::Write;
use std::sync::Arc;

pub use crate::app::StartError;
use crate::app::{io, App};
use crate::config::Config;
use crate::runtime;

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(config: Config) -> Result<(), StartError> {
    // Before any other thread exists, so that every thread inherits the blocked mask.
    let signals = runtime::signal_thread().map_err(io("signal thread"))?;
    let driver = runtime::choose_driver(config.io_driver);
    let workers = config.worker_count();
    crate::metrics::set_enabled(config.metrics_enabled);
    crate::metrics::set_process_info(driver, workers);
    crate::metrics::set_route_labels(crate::routes::metric_labels());
    let app = App::build(config, workers)?;
    recover(&app)?;
    let listen = app.config.listen;
    let listeners =
        runtime::bind_listeners(listen, workers).map_err(io(format!("bind {listen}")))?;
    let local = listeners
        .first()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(io("local address"))?
        .unwrap_or(listen);
    let app = Arc::new(app);
    // `glint metadefs load/export` reach this server's store through its admin socket.
    if let Err(e) = crate::metadefs_admin::serve(Arc::clone(&app)) {
        tracing::warn!(
            error = %e,
            socket = %crate::metadefs_admin::socket_path(&app.config).display(),
            "admin socket unavailable: `glint metadefs` cannot reach this server"
        );
    }
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

/// Start-up recovery, before any request is served: uploads a crash interrupted on this node
/// go back to `queued`; then the image folder is reconciled with the metadata (partial files
/// and files no image owns removed, images without their data counted; see
/// [`FsStore::reconcile`](crate::store::fs::FsStore::reconcile)).
fn recover(app: &App) -> Result<(), StartError> {
    let recovered = app.catalog.recover_interrupted()?;
    let files = app
        .catalog
        .at_start_up(|meta| app.store.reconcile(meta))
        .map_err(io("reconcile the image store"))?;
    if !recovered.is_empty() || files.partials_removed > 0 || files.orphans_removed > 0 {
        tracing::warn!(
            images = recovered.len(),
            partial_files = files.partials_removed,
            orphan_files = files.orphans_removed,
            node_id = %app.catalog.node(),
            "recovered from a crash: interrupted uploads back to queued, files no image owns removed"
        );
    }
    crate::metrics::set_images_missing_data(files.missing_data.len());
    Ok(())
}
