//! Image data stores: where an image's bytes live, behind one [`Store`] trait, and the
//! [`Stores`] registry of the named stores an operator configured (Glance's `enabled_backends`).
//!
//! A store can:
//! - take an image's bytes as they arrive ([`Store::writer`] → [`StoreWriter`]: frames in order,
//!   with backpressure; [`StoreWriter::commit`] makes them durable and returns the
//!   [`Location`] that meta records; [`StoreWriter::abort`], or dropping an uncommitted writer,
//!   removes every byte written);
//! - stream a byte range back ([`Store::read`] → a [`DataStream`], the body the download path
//!   sends; a file store's stream also offers its open file and range, so the download can go
//!   out with `splice` instead);
//! - say an object's size, delete it, report its health and capacity, and settle its data
//!   against the metadata after a crash, at start-up ([`Store::recover`] with an
//!   [`Inventory`]).
//!
//! Backends: [`fs`] (local files: tmp + fdatasync + rename + directory fsync), [`s3`] (any S3
//! API: one PUT below `s3_store_large_object_size`, multipart above), [`http`] (read-only: an
//! image whose location is an `http(s)://` URL on some web server).
//!
//! Everything here runs on a worker core: futures are `!Send` and use that core's outbound
//! HTTP client. A store itself is `Send + Sync` (one per process, shared by every core); what
//! belongs to a core (connections) it keeps per core.
//!
//! Nothing here knows HTTP status codes, Glance's JSON or image metadata rules: handlers map a
//! [`StoreError`] to a response, and `datapath::ingest` feeds writers.

mod direct;
mod file_stream;
pub mod fs;
pub mod http;
pub mod janitor;
mod recovery;
mod remote;
pub mod s3;

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use meta::{ImageId, Location};

pub use file_stream::{FileStream, CHUNK_BYTES};
pub use recovery::{Inventory, Owned, Recovered};
pub use remote::ResponseStream;

/// A boxed future that stays on its core.
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The kind of a store, as Glance names it in `enabled_backends` and `/v2/info/stores/detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Local files.
    File,
    /// Read-only web server.
    Http,
    /// S3 API (Ceph RGW, AWS S3, …).
    S3,
}

impl StoreKind {
    /// Glance's name for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::File => "file",
            StoreKind::Http => "http",
            StoreKind::S3 => "s3",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a store operation failed. Every message names the store and never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object (file, key, URL) does not exist.
    #[error("store {store}: {what} not found")]
    NotFound {
        /// The store.
        store: String,
        /// What was missing.
        what: String,
    },
    /// The service behind the store cannot be reached, went away or timed out.
    #[error("store {store} is unavailable: {message}")]
    Unavailable {
        /// The store.
        store: String,
        /// What happened.
        message: String,
    },
    /// The store has no room left.
    #[error("store {store} is full")]
    Full {
        /// The store.
        store: String,
    },
    /// The object would be larger than the store can hold.
    #[error("store {store}: {message}")]
    TooLarge {
        /// The store.
        store: String,
        /// Why.
        message: String,
    },
    /// The store refused our credentials or permissions.
    #[error("store {store} refused access: {message}")]
    Denied {
        /// The store.
        store: String,
        /// Why.
        message: String,
    },
    /// The store cannot take writes (the http store).
    #[error("store {store} is read-only")]
    ReadOnly {
        /// The store.
        store: String,
    },
    /// A location URL that does not belong to this store, or is malformed.
    #[error("store {store}: invalid location: {message}")]
    BadLocation {
        /// The store.
        store: String,
        /// Why.
        message: String,
    },
    /// The remote service answered with an error.
    #[error("store {store}: {message}")]
    Remote {
        /// The store.
        store: String,
        /// The status and what the service said.
        message: String,
    },
    /// Anything else (local I/O, a protocol violation).
    #[error("store {store}: {source}")]
    Io {
        /// The store.
        store: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// The name of the store that failed.
    pub fn store(&self) -> &str {
        match self {
            StoreError::NotFound { store, .. }
            | StoreError::Unavailable { store, .. }
            | StoreError::Full { store }
            | StoreError::TooLarge { store, .. }
            | StoreError::Denied { store, .. }
            | StoreError::ReadOnly { store }
            | StoreError::BadLocation { store, .. }
            | StoreError::Remote { store, .. }
            | StoreError::Io { store, .. } => store,
        }
    }

    /// A local I/O error, classified: no space → [`StoreError::Full`], missing → `NotFound`.
    pub fn from_io(store: &str, what: impl fmt::Display, source: io::Error) -> StoreError {
        match source.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound {
                store: store.to_owned(),
                what: what.to_string(),
            },
            io::ErrorKind::StorageFull => StoreError::Full {
                store: store.to_owned(),
            },
            // EFBIG (a file larger than the file system allows) is full too, as glance_store's
            // file driver reports it (StorageFull, 413).
            _ if matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
            ) =>
            {
                StoreError::Full {
                    store: store.to_owned(),
                }
            }
            io::ErrorKind::PermissionDenied => StoreError::Denied {
                store: store.to_owned(),
                message: format!("{what}: {source}"),
            },
            _ => StoreError::Io {
                store: store.to_owned(),
                source,
            },
        }
    }

    /// This error as an `io::Error`, for a byte stream that fails midway.
    pub fn into_io(self) -> io::Error {
        let kind = match &self {
            StoreError::NotFound { .. } => io::ErrorKind::NotFound,
            StoreError::Unavailable { .. } => io::ErrorKind::ConnectionAborted,
            StoreError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self.to_string())
    }
}

/// Bytes of a store's device (file stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Size of the file system.
    pub total_bytes: u64,
    /// Bytes an unprivileged writer may still use.
    pub free_bytes: u64,
}

/// A byte range of an open local file: what a download sends with `splice` instead of reading.
pub struct FileRange {
    /// The open file.
    pub file: Rc<monoio::fs::File>,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Image bytes coming out of a store, frame by frame, never whole in memory.
///
/// A stream yields exactly the bytes of the range it was asked for: ending early or going on
/// too long is an error, so a download can never be a short `200`.
pub trait DataStream {
    /// The next piece, `None` at the end.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>>;

    /// Bytes still to come.
    fn remaining(&self) -> u64;

    /// The open file and range this stream would read, if it is a local file that has not
    /// started yet (the download path may then `splice` it instead).
    fn file_range(&self) -> Option<FileRange> {
        None
    }
}

impl fmt::Debug for dyn DataStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataStream")
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

/// A store's stream, boxed.
pub type BoxStream = Pin<Box<dyn DataStream>>;

/// Takes an image's bytes as they arrive (see [`Store::writer`]).
///
/// Dropping a writer that was neither committed nor aborted removes what it wrote, in the
/// background (a client that vanished mid-upload).
pub trait StoreWriter {
    /// Takes the next frame (frames arrive in order). Returns when the writer can take
    /// another: a slow store slows the sender.
    fn write(&mut self, frame: Bytes) -> LocalBoxFuture<'_, Result<(), StoreError>>;

    /// Every frame has been written: makes the data durable and returns where it is.
    fn commit(self: Box<Self>) -> LocalBoxFuture<'static, Result<Location, StoreError>>;

    /// Removes every byte written and waits until that is done.
    fn abort(self: Box<Self>) -> LocalBoxFuture<'static, ()>;
}

/// One configured store (see the module docs).
pub trait Store: Send + Sync + 'static {
    /// The store's id (its name in the configuration and in locations' `store`).
    fn id(&self) -> &str;

    /// What kind of store it is.
    fn kind(&self) -> StoreKind;

    /// Its `description` (shown by `/v2/info/stores`).
    fn description(&self) -> Option<&str> {
        None
    }

    /// Its `weight`: locations in stores of higher weight are read first.
    fn weight(&self) -> i64 {
        0
    }

    /// Whether it takes no writes (the http store).
    fn is_read_only(&self) -> bool {
        false
    }

    /// The type-specific properties shown by `/v2/info/stores/detail` (Glance's names).
    fn properties(&self) -> serde_json::Map<String, serde_json::Value>;

    /// Whether `url` is a location of this store (its scheme, and its folder, bucket or host).
    fn owns(&self, url: &str) -> bool;

    /// Starts writing image `id`'s data; `size_hint` is the size the client announced.
    fn writer(
        &self,
        id: ImageId,
        size_hint: Option<u64>,
    ) -> LocalBoxFuture<'_, Result<Box<dyn StoreWriter>, StoreError>>;

    /// Where image `id`'s data is when a writer of this store committed it (writers name the
    /// data after the image, so an import that died before recording its location left its
    /// data there); `None` for a store that does not write.
    fn data_location(&self, _id: ImageId) -> Option<Location> {
        None
    }

    /// Whether `url` names the same data as [`Store::data_location`] of `id` (in any spelling
    /// this store accepts).
    fn is_data_location(&self, url: &str, id: ImageId) -> bool {
        self.data_location(id).is_some_and(|l| l.url == url)
    }

    /// Streams bytes `range` of the data at `location`.
    fn read<'a>(
        &'a self,
        location: &'a Location,
        range: Range<u64>,
    ) -> LocalBoxFuture<'a, Result<BoxStream, StoreError>>;

    /// The size of the data at `location`.
    fn size<'a>(&'a self, location: &'a Location) -> LocalBoxFuture<'a, Result<u64, StoreError>>;

    /// Deletes the data at `location`; data already gone is not an error.
    fn delete<'a>(&'a self, location: &'a Location) -> LocalBoxFuture<'a, Result<(), StoreError>>;

    /// Whether the store works now (for `/healthcheck`).
    fn check(&self) -> LocalBoxFuture<'_, Result<(), StoreError>>;

    /// The room the store has, when it knows (file stores).
    fn capacity(&self) -> Option<Capacity> {
        None
    }

    /// Start-up: checks the store can be used and settles its data against `inventory`:
    /// removes what uploads interrupted by a crash left behind (partial data; whole data no
    /// image owns, where the store can list it) except the data of images still receiving
    /// ([`Inventory::is_receiving`]: another gateway's uploads), and reports `active` or
    /// `deactivated` images whose data here is missing or of the wrong size.
    fn recover<'a>(
        &'a self,
        inventory: &'a Inventory<'a>,
    ) -> LocalBoxFuture<'a, Result<Recovered, StoreError>>;
}

/// The stores a gateway serves, by id, and which one takes uploads by default.
#[derive(Clone)]
pub struct Stores {
    stores: Vec<Arc<dyn Store>>,
    default: usize,
    multi: bool,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores")
            .field(
                "ids",
                &self.stores.iter().map(|s| s.id()).collect::<Vec<_>>(),
            )
            .field("default", &self.default().id())
            .field("multi", &self.multi)
            .finish()
    }
}

/// A registry that cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No store at all.
    #[error("no store is configured")]
    Empty,
    /// Two stores with one id.
    #[error("store {0} is configured twice")]
    Duplicate(String),
    /// The default names no configured store.
    #[error("the default store {0} is not configured")]
    UnknownDefault(String),
    /// The default store cannot take uploads.
    #[error("the default store {0} is read-only")]
    ReadOnlyDefault(String),
}

impl Stores {
    /// A registry of `stores` with `default` taking uploads. `multi` is Glance's
    /// `enabled_backends` being set: the multi-store API (`/v2/info/stores`, `stores`,
    /// `X-Image-Meta-Store`) is served only then.
    pub fn new(
        stores: Vec<Arc<dyn Store>>,
        default: &str,
        multi: bool,
    ) -> Result<Stores, RegistryError> {
        if stores.is_empty() {
            return Err(RegistryError::Empty);
        }
        for (i, store) in stores.iter().enumerate() {
            if stores[..i].iter().any(|s| s.id() == store.id()) {
                return Err(RegistryError::Duplicate(store.id().to_owned()));
            }
        }
        let index = stores
            .iter()
            .position(|s| s.id() == default)
            .ok_or_else(|| RegistryError::UnknownDefault(default.to_owned()))?;
        if stores[index].is_read_only() {
            return Err(RegistryError::ReadOnlyDefault(default.to_owned()));
        }
        Ok(Stores {
            stores,
            default: index,
            multi,
        })
    }

    /// One store, the default (no `[stores]` table: Glance's single-store mode).
    pub fn single(store: Arc<dyn Store>) -> Stores {
        Stores {
            stores: vec![store],
            default: 0,
            multi: false,
        }
    }

    /// Whether several named stores were configured (the multi-store API is on).
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    /// The store that takes uploads without `X-Image-Meta-Store`.
    pub fn default(&self) -> &Arc<dyn Store> {
        &self.stores[self.default]
    }

    /// The store with id `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Store>> {
        self.stores.iter().find(|s| s.id() == id)
    }

    /// Every store, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Store>> {
        self.stores.iter()
    }

    /// The store holding `location`: the one it names, else the one whose URLs it matches
    /// (locations written before the store was renamed, or by Glance).
    pub fn for_location(&self, location: &Location) -> Option<&Arc<dyn Store>> {
        self.get(&location.store)
            .filter(|s| s.owns(&location.url))
            .or_else(|| self.stores.iter().find(|s| s.owns(&location.url)))
    }
}

/// The id of the http store that single-store mode has beside the file store (Glance's
/// default `stores = file,http`): images whose location is a web URL.
pub const SINGLE_STORE_HTTP: &str = "http";

/// A store that cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting cannot work; the message names the key.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The key at fault (`stores.<id>.<key>`).
        key: String,
        /// Why.
        message: String,
    },
    /// A file store's folder cannot be created or opened.
    #[error("store {store}: folder {path}: {source}")]
    Folder {
        /// The store.
        store: String,
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The stores do not make a registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl Stores {
    /// The stores `config` describes: its `[stores]` tables, or — without any — one `file`
    /// store under the data folder, beside a read-only `http` store for web locations
    /// (single-store mode, Glance's defaults).
    pub fn from_config(config: &crate::config::Config) -> Result<Stores, BuildError> {
        use crate::config::StoreType;
        let file_options = |settings: &crate::config::StoreSettings| fs::FsOptions {
            direct_io: config.direct_io_upload,
            chunk_size: settings.filesystem_store_chunk_size.unwrap_or(64 * 1024),
            description: settings.description.clone(),
            weight: settings.weight.unwrap_or(0),
        };
        let open_folder = |id: &str, dir: &std::path::Path, options| {
            fs::FsStore::open_named(id, dir, options).map_err(|source| BuildError::Folder {
                store: id.to_owned(),
                path: dir.to_owned(),
                source,
            })
        };
        let policy =
            crate::net::fetch::FetchPolicy::new(&config.import_filtering_opts).map_err(|e| {
                BuildError::Invalid {
                    key: "import_filtering_opts".into(),
                    message: e.to_string(),
                }
            })?;
        if config.stores.stores.is_empty() {
            // Glance's single-store defaults: `stores = file,http`, `default_store = file`.
            let file = open_folder(
                fs::STORE_NAME,
                &config.images_dir(),
                file_options(&crate::config::StoreSettings::default()),
            )?;
            let web = crate::config::StoreSettings {
                kind: StoreType::Http,
                ..crate::config::StoreSettings::default()
            };
            let web = http::HttpStore::new(SINGLE_STORE_HTTP, &web, &policy);
            let stores: Vec<Arc<dyn Store>> = vec![Arc::new(file), Arc::new(web)];
            return Ok(Stores::new(stores, fs::STORE_NAME, false)?);
        }
        let default = config.stores.default_id().unwrap_or_default().to_owned();
        let mut stores: Vec<Arc<dyn Store>> = Vec::new();
        let mut folders: Vec<(std::path::PathBuf, String)> = Vec::new();
        for (id, settings) in &config.stores.stores {
            let store: Arc<dyn Store> =
                match settings.kind {
                    StoreType::File => {
                        // Unset: the single-store folder for the default store (so images
                        // written before `[stores]` existed stay readable), a folder of its own
                        // for any other.
                        let fallback = if *id == default {
                            config.images_dir()
                        } else {
                            config.data_dir.join(format!("images-{id}"))
                        };
                        let dir = settings.file(fallback).datadir;
                        let store = open_folder(id, &dir, file_options(settings))?;
                        let canonical = store.dir().to_owned();
                        if let Some((_, other)) = folders.iter().find(|(d, _)| *d == canonical) {
                            return Err(BuildError::Invalid {
                                key: format!("stores.{id}.filesystem_store_datadir"),
                                message: format!("store {other} uses the same folder"),
                            });
                        }
                        folders.push((canonical, id.clone()));
                        Arc::new(store)
                    }
                    StoreType::S3 => Arc::new(s3::S3Store::new(id, settings).map_err(|e| {
                        BuildError::Invalid {
                            key: format!("stores.{id}.{}", e.key),
                            message: e.message,
                        }
                    })?),
                    StoreType::Http => Arc::new(http::HttpStore::new(id, settings, &policy)),
                };
            stores.push(store);
        }
        Ok(Stores::new(stores, &default, config.stores.is_multi())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified() {
        let full = StoreError::from_io("local", "x", io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(full, StoreError::Full { .. }), "{full:?}");
        let too_big = StoreError::from_io("local", "x", io::Error::from_raw_os_error(libc::EFBIG));
        assert!(matches!(too_big, StoreError::Full { .. }), "{too_big:?}");
        let missing = StoreError::from_io("local", "x", io::ErrorKind::NotFound.into());
        assert!(matches!(missing, StoreError::NotFound { .. }));
        assert_eq!(missing.store(), "local");
        assert_eq!(missing.to_string(), "store local: x not found");
        let other = StoreError::from_io("local", "x", io::Error::other("boom"));
        assert!(matches!(other, StoreError::Io { .. }));
    }
}
