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

/// Uploads a crash interrupted on this node: their images go back to `queued`, and each
/// store removes what they left (partial files, incomplete multipart uploads) — except the
/// data of uploads still running (another gateway's, sharing the metadata). Each store is
/// checked on the way: one that refuses glint's credentials stops start-up, naming it; one
/// that cannot be reached now is logged, and `/healthcheck` reports it until it answers.
fn recover(app: &App, driver: runtime::Driver) -> Result<(), StartError> {
    let recovered = app.catalog.recover_interrupted()?;
    // This node's imports a crash interrupted: reverted (images back to queued, tasks failed),
    // and staging files that no finished stage owns removed.
    let imports = crate::tasks::recover(
        &app.imports,
        &app.catalog,
        &app.config,
        &app.stores,
        &app.hash_pool,
    )?;
    if imports > 0 {
        tracing::warn!(imports, "reverted imports interrupted by a crash");
    }
    let outcomes = runtime::block_on(driver, async {
        // What is still receiving data now belongs to other nodes (this node's own were
        // reverted above): its data stays.
        let receiving = meta::ListFilter::all().with(meta::Condition::Text {
            field: meta::TextField::Status,
            values: vec!["saving".into(), "uploading".into(), "importing".into()],
        });
        let in_flight: std::collections::HashSet<meta::ImageId> =
            match app.catalog.list_images(receiving).await {
                Ok(images) => images.into_iter().map(|image| image.id).collect(),
                Err(e) => return Err(StartError::Meta(e)),
            };
        let in_flight = |id| in_flight.contains(&id);
        let mut outcomes = Vec::new();
        for store in app.stores.iter() {
            outcomes.push((store.id().to_owned(), store.recover(&in_flight).await));
        }
        Ok(outcomes)
    })
    .map_err(io("start-up runtime"))??;
    let mut partial = 0;
    for (store, outcome) in outcomes {
        match outcome {
            Ok(done) => partial += done.partial,
            Err(e @ crate::store::StoreError::Denied { .. }) => {
                return Err(StartError::Store(e.to_string()))
            }
            Err(e) => tracing::error!(
                store = %store, error = %e,
                "store not usable at start-up; serving anyway (/healthcheck reports it)"
            ),
        }
    }
    if !recovered.is_empty() || partial > 0 {
        tracing::warn!(
            images = recovered.len(),
            partial_uploads = partial,
            node_id = %app.catalog.node(),
            "recovered uploads interrupted by a crash: images back to queued"
        );
    }
    Ok(())
}
