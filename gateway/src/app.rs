//! `App`: what every request needs — configuration, the metadata catalog, stores, writer,
//! hashing threads, timer, auth — built in one place ([`App::build`]) for the server and the tests alike.
//! How a request is answered with it is `dispatch`'s business (and `App::base_url`, a
//! handler helper, lives with the handlers).

use std::sync::Arc;

use crate::auth::{Auth, AuthError};
use crate::cache::Cache;
use crate::catalog::Catalog;
use crate::config::{Config, ConfigError};
use crate::datapath::checksum::HashPool;
use crate::egress::Egress;
use crate::store::{BuildError, Stores};
use crate::timer::ThreadTimer;
use crate::writer::Writer;

/// Shared state of the gateway; one per process, shared by every core.
pub struct App {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Image metadata, through the async facade (shared with background work such as a
    /// location's hashing).
    pub catalog: Arc<Catalog>,
    /// Where image data lives: the configured stores.
    pub stores: Stores,
    /// Where blocking work runs.
    pub writer: Writer,
    /// How uploads are inspected.
    pub format_policy: formats::Policy,
    /// Where uploads are hashed.
    pub hash_pool: Arc<HashPool>,
    /// Connection timeouts.
    pub timer: ThreadTimer,
    /// Who is asking.
    pub auth: Auth,
    /// The image cache, when `image_cache_max_size` is above 0.
    pub cache: Option<Arc<Cache>>,
    /// The download caps (one per process: leaked, so that streams can hold it).
    pub egress: &'static Egress,
    /// Image imports: the staging area and the import thread.
    pub imports: crate::tasks::Imports,
}

/// Why the gateway's state could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data folder, a listener or a thread could not be set up.
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
    Auth(#[from] AuthError),
    /// A store could not be set up (its settings, its folder, or — at start-up — the service
    /// behind it refused glint's credentials).
    #[error("{0}")]
    Store(String),
}

impl From<BuildError> for StartError {
    fn from(e: BuildError) -> StartError {
        StartError::Store(e.to_string())
    }
}

/// The metadata engine `config` names: PostgreSQL with a `[database]` table (its schema
/// brought up to date first when `sync_on_start`), else the redb file in the data folder.
pub fn open_backend(config: &Config) -> Result<Arc<dyn meta::Backend>, StartError> {
    let Some(database) = &config.database else {
        return Ok(Arc::new(meta::RedbBackend::open(&config.meta_path())?));
    };
    let options = database.pg_options();
    let shown = meta::redact_url(&database.connection);
    if database.sync_on_start {
        let report = meta::PgBackend::sync(&options)?;
        if report.from != report.to {
            tracing::info!(from = report.from, to = report.to, database = %shown, "database schema migrated");
        }
    }
    let backend = meta::PgBackend::connect(&options)?;
    tracing::info!(database = %shown, schema_version = meta::Backend::schema_version(&backend), "metadata on PostgreSQL");
    Ok(Arc::new(backend))
}

/// Maps an I/O error to [`StartError::Io`], saying what was being done.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

impl App {
    /// Checks `config`, opens the data folder (metadata), sets up the stores (nothing is sent
    /// to a remote store yet: `serve` checks them at start-up) and starts the threads
    /// requests need: the writer, `hash_threads` hashing threads, the timer, and the auth
    /// strategy's. Recovering from a crash is the caller's (`serve`).
    pub fn build(config: Config, hash_threads: usize) -> Result<App, StartError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(io(format!("create data dir {}", config.data_dir.display())))?;
        let backend = open_backend(&config)?;
        let node = crate::catalog::node_id(&config).map_err(io("node id"))?;
        let writer = Writer::start().map_err(io("writer thread"))?;
        let catalog =
            Catalog::new(backend, node, writer.clone()).map_err(io("metadata catalog"))?;
        let stores = Stores::from_config(&config)?;
        let auth = Auth::start(config.auth.strategy, config.keystone_authtoken.as_ref())?;
        let cache = match config.cache_dir() {
            Some(dir) => Some(
                Cache::open(
                    &dir,
                    config.image_cache_max_size,
                    config.image_cache_prefetch_concurrency,
                )
                .map_err(io(format!("open image cache {}", dir.display())))?,
            ),
            None => None,
        };
        let egress: &'static Egress = Box::leak(Box::new(Egress::new(
            config.max_concurrent_downloads,
            config.download_bandwidth_limit,
            config.download_queue_timeout_ms,
        )));
        let config = Arc::new(config);
        let catalog = Arc::new(catalog);
        let hash_pool = Arc::new(HashPool::start(hash_threads).map_err(io("hashing threads"))?);
        let imports = crate::tasks::Imports::start(
            Arc::clone(&config),
            Arc::clone(&catalog),
            stores.clone(),
            Arc::clone(&hash_pool),
            auth.catalog_source(),
        )
        .map_err(io("import thread and staging folder"))?;
        Ok(App {
            imports,
            auth,
            cache,
            egress,
            format_policy: config.format_policy(),
            catalog,
            stores,
            writer,
            hash_pool,
            timer: ThreadTimer::start().map_err(io("timer thread"))?,
            config,
        })
    }
}
