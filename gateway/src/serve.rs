//! `glint serve`: start-up (state, recovery, listeners, workers), then wait for a stop
//! signal.

use std::io::Write;
use std::sync::Arc;

pub use crate::app::StartError;
use crate::app::{io, App};
use crate::config::Config;
use crate::runtime;
use crate::store::{Inventory, Recovered};

/// Reads the configuration again (the file and the environment, as at start-up), for SIGHUP.
pub type Reload = Box<dyn Fn() -> Result<Config, String> + Send>;

/// Runs the server until SIGTERM or SIGINT. On SIGHUP, `reload` reads the configuration again
/// and the settings that can change while running are applied: the egress caps
/// (`max_concurrent_downloads`, `download_bandwidth_limit`, `download_queue_timeout_ms`).
pub fn serve(config: Config, reload: Option<Reload>) -> Result<(), StartError> {
    // Set once the app exists; the signal thread starts before it.
    let egress: Arc<std::sync::OnceLock<&'static crate::egress::Egress>> = Arc::default();
    let on_hangup = {
        let egress = Arc::clone(&egress);
        move || {
            let (Some(reload), Some(egress)) = (reload.as_ref(), egress.get()) else {
                return;
            };
            match reload() {
                Ok(new) => {
                    egress.set(
                        new.max_concurrent_downloads,
                        new.download_bandwidth_limit,
                        new.download_queue_timeout_ms,
                    );
                    tracing::info!(
                        max_concurrent_downloads = new.max_concurrent_downloads,
                        download_bandwidth_limit = new.download_bandwidth_limit,
                        download_queue_timeout_ms = new.download_queue_timeout_ms,
                        "SIGHUP: configuration reloaded, egress caps applied"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: the configuration cannot be reloaded; nothing changed")
                }
            }
        }
    };
    // Before any other thread exists, so that every thread inherits the blocked mask.
    let signals = runtime::signal_thread(on_hangup).map_err(io("signal thread"))?;
    let driver = runtime::choose_driver(config.io_driver);
    let workers = config.worker_count();
    crate::metrics::set_enabled(config.metrics_enabled);
    crate::metrics::set_process_info(driver, workers);
    crate::metrics::set_route_labels(crate::routes::metric_labels());
    crate::handlers::versions::set_cache_enabled(config.cache_dir().is_some());
    let app = App::build(config, workers)?;
    let _ = egress.set(app.egress);
    let store_ids: Vec<&str> = app.stores.iter().map(|store| store.id()).collect();
    crate::metrics::set_store_labels(&store_ids);
    recover(&app, driver)?;
    if let Some(cache) = &app.cache {
        start_cache_threads(&app, Arc::clone(cache)).map_err(io("image cache threads"))?;
    }
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
    // This node's imports a crash interrupted: reverted (images back to queued, tasks failed),
    // and staging files that no finished stage owns removed (the staging folder is the
    // import's, not a store's: the stores' reconcile below never looks there).
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

/// The image cache's helpers: one thread re-hashes the entries read back from disk before they
/// are served; with a shared database, another watches its change feed and drops the entries
/// of images another gateway deleted (or that left `active`/`deactivated` otherwise).
fn start_cache_threads(app: &App, cache: Arc<crate::cache::Cache>) -> std::io::Result<()> {
    let verifier = Arc::clone(&cache);
    std::thread::Builder::new()
        .name("glint-cache-verify".into())
        .spawn(move || {
            let (checked, removed) = verifier.verify_all(false);
            if checked > 0 {
                tracing::info!(
                    checked,
                    removed,
                    "image cache: entries from before the restart verified"
                );
            }
        })?;
    let feed = match app.catalog.watch_changes() {
        Ok(Some(feed)) => feed,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "image cache: cannot watch the database for deletions");
            return Ok(());
        }
    };
    let backend = app.catalog.backend();
    std::thread::Builder::new()
        .name("glint-cache-watch".into())
        .spawn(move || watch_changes(feed, backend, cache))?;
    Ok(())
}

/// Applies the database's status changes to the cache for as long as the process runs;
/// reconnects (after a pause) when the feed breaks.
fn watch_changes(
    mut feed: Box<dyn meta::ChangeFeed>,
    backend: Arc<dyn meta::Backend>,
    cache: Arc<crate::cache::Cache>,
) {
    use meta::ImageStatus;
    loop {
        match feed.next(std::time::Duration::from_secs(30)) {
            Ok(Some(change)) => {
                let kept = matches!(
                    change.status,
                    ImageStatus::Active | ImageStatus::Deactivated
                );
                if !kept && cache.invalidate(change.id) {
                    tracing::info!(
                        image_id = %change.id,
                        status = %change.status,
                        "image cache: dropped an image changed on another gateway"
                    );
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "image cache: the change feed broke; reconnecting");
                // Changes missed meanwhile cost only space: every hit re-checks the image.
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    match backend.watch_changes() {
                        Ok(Some(again)) => {
                            feed = again;
                            break;
                        }
                        Ok(None) => return,
                        Err(e) => {
                            tracing::debug!(error = %e, "image cache: change feed still down")
                        }
                    }
                }
            }
        }
    }
}
