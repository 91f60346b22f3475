//! `glint serve`: start-up (state, recovery, listeners, workers), then wait for a stop
//! signal.

use std::io::Write;
use std::sync::Arc;

pub use crate::app::StartError;
use crate::app::{io, App};
use crate::config::Config;
use crate::runtime;
use crate::store::{Inventory, Recovered};

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
    recover(&app, driver)?;
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

/// Start-up recovery, before any request is served. Uploads a crash interrupted on this node
/// go back to `queued`; then each store settles its data against the metadata (an
/// [`Inventory`] read once): what interrupted uploads left (partial files, incomplete
/// multipart uploads) and whole data no image owns are removed — except the data of uploads
/// still running (another gateway's, sharing the metadata) — and `active` images without
/// their data are logged and counted (`glint_images_missing_data`). Each store is checked on
/// the way: one that refuses glint's credentials stops start-up, naming it; one that cannot be
/// reached now is logged, and `/healthcheck` reports it until it answers.
fn recover(app: &App, driver: runtime::Driver) -> Result<(), StartError> {
    let recovered = app.catalog.recover_interrupted()?;
    // The metadata is read on this thread, directly: nothing else runs yet.
    let outcomes = app.catalog.at_start_up(|meta| {
        let inventory = Inventory::read(meta)?;
        runtime::block_on(driver, async {
            let mut outcomes = Vec::new();
            for store in app.stores.iter() {
                outcomes.push((store.id().to_owned(), store.recover(&inventory).await));
            }
            outcomes
        })
        .map_err(io("start-up runtime"))
    })?;
    let mut done = Recovered::default();
    for (store, outcome) in outcomes {
        match outcome {
            Ok(found) => {
                done.partial += found.partial;
                done.orphans += found.orphans;
                done.unknown += found.unknown;
                done.missing_data.extend(found.missing_data);
            }
            Err(e @ crate::store::StoreError::Denied { .. }) => {
                return Err(StartError::Store(e.to_string()))
            }
            Err(e) => tracing::error!(
                store = %store, error = %e,
                "store not usable at start-up; serving anyway (/healthcheck reports it)"
            ),
        }
    }
    if !recovered.is_empty() || done.partial > 0 || done.orphans > 0 {
        tracing::warn!(
            images = recovered.len(),
            partial_uploads = done.partial,
            orphan_data = done.orphans,
            node_id = %app.catalog.node(),
            "recovered from a crash: interrupted uploads back to queued, data no image owns removed"
        );
    }
    crate::metrics::set_images_missing_data(done.missing_data.len());
    Ok(())
}
