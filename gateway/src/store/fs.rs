//! The file store: one file per image in a folder (`<data_dir>/images/` by default).
//!
//! An upload writes `<id>.<nonce>.part` (a name of its own, so that a clean-up running late can
//! never remove the next upload's file); only a complete, fdatasync'ed upload is renamed to
//! `<id>`, and the folder is fsync'ed so the rename survives a crash. So a file named `<id>` is
//! always a whole image, and a `.part` file is always garbage after a restart.
//!
//! A whole file is not yet an image: the metadata commit that follows the rename is. A crash
//! between the two (or between a delete's commit and the removal) leaves a file no image owns;
//! [`Store::recover`] settles both directions at start-up (see [`FsStore::reconcile`]).
//!
//! Frames are *moved* into buffered io_uring writes, one write in flight while the next frames
//! arrive (so memory per upload is bounded and a slow disk slows the socket), or — with
//! `direct_io_upload` and a file system that allows it — copied once into aligned buffers
//! written with O_DIRECT (`store/direct.rs`). Reads return a [`FileStream`], which also offers
//! its file and range to the zero-copy download path.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use meta::{ImageId, Location};
use monoio::fs::File;
use monoio::task::JoinHandle;

use super::direct::DirectSink;
use super::file_stream::FileStream;
use super::{
    janitor, BoxStream, Capacity, Inventory, LocalBoxFuture, Recovered, Store, StoreError,
    StoreKind, StoreWriter,
};

/// The id of the store glint serves without a `[stores]` table (and the `store` recorded in
/// locations written then).
pub const STORE_NAME: &str = "file";
const PART_SUFFIX: &str = ".part";
/// A deleted image's file, renamed away at once and removed in the background.
const DELETED_SUFFIX: &str = ".deleted";
/// The file [`FsStore::is_writable`] writes and removes; one left by a crash is removed.
const HEALTHCHECK_PROBE: &str = ".healthcheck";

/// Local-file image store.
#[derive(Debug, Clone)]
pub struct FsStore {
    id: Arc<str>,
    dir: Arc<Path>,
    /// `direct_io_upload`.
    direct_io: bool,
    /// Glance's `filesystem_store_chunk_size`, reported by `/v2/info/stores/detail`.
    chunk_size: u64,
    description: Option<Arc<str>>,
    weight: i64,
}

/// How an [`FsStore`] is set up beyond its folder.
#[derive(Debug, Clone, Default)]
pub struct FsOptions {
    /// Write uploads with O_DIRECT where the file system allows it.
    pub direct_io: bool,
    /// Glance's `filesystem_store_chunk_size` (shown, not used: reads are 256 KiB).
    pub chunk_size: u64,
    /// `description`.
    pub description: Option<String>,
    /// `weight`.
    pub weight: i64,
}

impl FsStore {
    /// Opens (creating if needed) the store folder, as the store named `file`.
    pub fn open(dir: &Path) -> io::Result<FsStore> {
        FsStore::open_named(STORE_NAME, dir, FsOptions::default())
    }

    /// Opens (creating if needed) the folder of the store `id`.
    pub fn open_named(id: &str, dir: &Path, options: FsOptions) -> io::Result<FsStore> {
        fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        Ok(FsStore {
            id: Arc::from(id),
            dir: Arc::from(dir),
            direct_io: options.direct_io,
            chunk_size: if options.chunk_size == 0 {
                64 * 1024
            } else {
                options.chunk_size
            },
            description: options.description.map(Arc::from),
            weight: options.weight,
        })
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where [`FsStore::commit`] expects an upload in progress.
    pub fn part_path(&self, id: ImageId) -> PathBuf {
        self.dir.join(format!("{id}{PART_SUFFIX}"))
    }

    /// A partial file of its own for one upload of `id`.
    fn unique_part_path(&self, id: ImageId) -> PathBuf {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        self.dir.join(format!("{id}.{}{PART_SUFFIX}", &nonce[..12]))
    }

    /// Where a complete image lives.
    pub fn image_path(&self, id: ImageId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn location(&self, path: &Path) -> Location {
        Location {
            url: format!("file://{}", path.display()),
            store: self.id.to_string(),
        }
    }

    /// Makes a finished upload permanent: rename `<id>.part` → `<id>`, then fsync the folder.
    /// Blocking. The caller has already fdatasync'ed the file.
    pub fn commit(&self, id: ImageId) -> io::Result<Location> {
        let path = self.image_path(id);
        fs::rename(self.part_path(id), &path)?;
        fs::File::open(&*self.dir)?.sync_all()?;
        Ok(self.location(&path))
    }

    /// Removes an upload's partial file, if any. Blocking.
    pub fn remove_part(&self, id: ImageId) {
        remove_if_present(&self.part_path(id));
    }

    /// Resolves a location of this store to its file, refusing anything outside the folder.
    pub fn path_of(&self, location: &Location) -> Option<PathBuf> {
        self.path_of_url(&location.url)
    }

    /// [`FsStore::path_of`], or the error for a location this store does not hold.
    fn file_of(&self, location: &Location) -> Result<PathBuf, StoreError> {
        self.path_of(location)
            .ok_or_else(|| StoreError::BadLocation {
                store: self.id.to_string(),
                message: "not a file of this store's folder".into(),
            })
    }

    fn path_of_url(&self, url: &str) -> Option<PathBuf> {
        let path = PathBuf::from(url.strip_prefix("file://")?);
        let name = path.file_name()?.to_str()?;
        let is_image = name.parse::<ImageId>().is_ok();
        (is_image && path.parent() == Some(&*self.dir)).then_some(path)
    }

    /// Deletes an image's data. Blocking.
    pub fn delete(&self, location: &Location) {
        if let Some(path) = self.path_of(location) {
            remove_if_present(&path);
        }
    }

    /// Start-up reconciliation of the folder with the metadata (`inventory`), after this
    /// node's interrupted uploads were reset, before any request is served. Blocking.
    ///
    /// - A file that a live image's location names is kept, and so are `<id>` and the
    ///   `<id>.<nonce>.part` files of an image still receiving data (`saving`, `uploading`,
    ///   `importing`): with shared metadata, an upload another gateway runs.
    /// - Any other `<id>.<nonce>.part` (or `<id>.part`) is removed: an upload cut short; and
    ///   any `*.deleted`: a delete whose background removal a stop cut short.
    /// - Any other `<id>` that [`Inventory::is_orphan`] calls garbage is removed: the crash
    ///   came between the rename and the metadata commit (the image is back to `queued`), or
    ///   between a delete's commit and the removal. It is never adopted: only the metadata
    ///   commit proves the upload complete (size, checksums, quota), the client was never told
    ///   it succeeded, and a retried upload of the `queued` image must find nothing in its way.
    /// - Anything else (an id glint never issued, other names, folders) is left in place with
    ///   a warning: the folder may hold what is not glint's (Glance's files, `lost+found`).
    /// - Every `active` or `deactivated` image whose file here is missing, or shorter or longer
    ///   than its `size`, is logged as an error and listed in `missing_data`. Its metadata is
    ///   kept as it is (its checksum is what restoring the file from a backup is checked
    ///   against); downloads of it fail until then.
    pub fn reconcile(&self, inventory: &Inventory<'_>) -> io::Result<Recovered> {
        let mut report = Recovered::default();
        let mut claimed = HashSet::new();
        for owned in inventory.locations() {
            let Some(path) = self.path_of(&owned.location) else {
                continue; // another store's
            };
            if owned.must_have_data() {
                report.checked += 1;
                let len = fs::metadata(&path).map(|m| m.len());
                let problem = match (&len, owned.size) {
                    (Err(e), _) => Some(e.to_string()),
                    (Ok(len), Some(size)) if *len != size => {
                        Some(format!("{len} bytes on disk, {size} recorded"))
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    tracing::error!(store = %self.id, image_id = %owned.image,
                        status = %owned.status, path = %path.display(), %problem,
                        "image data missing or damaged: downloads of this image fail until \
                         the file is restored (its checksum is in the image record)");
                    report.missing_data.push(owned.image);
                }
            }
            claimed.insert(path);
        }
        let mut removed_any = false;
        for entry in fs::read_dir(&*self.dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let verdict = match classify(&name) {
                _ if claimed.contains(&path) => Verdict::Keep,
                Entry::Probe => Verdict::Remove,
                Entry::Deleted => Verdict::Remove,
                Entry::Part(id) if inventory.is_receiving(id) => Verdict::Keep,
                Entry::Part(_) => Verdict::Remove,
                Entry::Whole(id) if inventory.is_receiving(id) => Verdict::Keep,
                Entry::Whole(id) if inventory.is_orphan(id) => {
                    tracing::warn!(store = %self.id, image_id = %id, path = %path.display(),
                        "removing a data file no image owns (a crash came between writing \
                         it and committing or deleting its image)");
                    Verdict::Remove
                }
                Entry::Whole(_) | Entry::Other => Verdict::Unknown,
            };
            match verdict {
                Verdict::Keep => {}
                Verdict::Remove => {
                    match fs::remove_file(&path) {
                        Ok(()) => removed_any = true,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                    match classify(&name) {
                        Entry::Part(_) => report.partial += 1,
                        Entry::Whole(_) | Entry::Deleted => report.orphans += 1,
                        Entry::Probe | Entry::Other => {}
                    }
                }
                Verdict::Unknown => {
                    tracing::warn!(store = %self.id, path = %path.display(),
                        "the image store folder holds a file that is not glint's; left in place");
                    report.unknown += 1;
                }
            }
        }
        if removed_any {
            fs::File::open(&*self.dir)?.sync_all()?;
        }
        Ok(report)
    }

    /// Whether the store folder accepts new files (for the health check).
    pub fn is_writable(&self) -> bool {
        let probe = self.dir.join(HEALTHCHECK_PROBE);
        let ok = fs::write(&probe, b"ok").is_ok();
        remove_if_present(&probe);
        ok
    }

    fn error(&self, what: impl std::fmt::Display, e: io::Error) -> StoreError {
        StoreError::from_io(&self.id, what, e)
    }
}

/// What a name in the folder is.
enum Entry {
    /// `<id>`: whole data.
    Whole(ImageId),
    /// `<id>.<nonce>.part` or `<id>.part`: an upload's partial data.
    Part(ImageId),
    /// `*.deleted`: a deleted image's data awaiting removal.
    Deleted,
    /// The health check's probe file.
    Probe,
    /// Anything else.
    Other,
}

fn classify(name: &str) -> Entry {
    if name == HEALTHCHECK_PROBE {
        return Entry::Probe;
    }
    if let Some(stem) = name.strip_suffix(DELETED_SUFFIX) {
        // `<id>.<nonce>.deleted`: only glint's own names.
        let id = stem.split('.').next().unwrap_or("");
        if id.parse::<ImageId>().is_ok() {
            return Entry::Deleted;
        }
        return Entry::Other;
    }
    if let Some(stem) = name.strip_suffix(PART_SUFFIX) {
        let mut pieces = stem.split('.');
        let id = pieces.next().and_then(|id| id.parse::<ImageId>().ok());
        let nonce_ok = match (pieces.next(), pieces.next()) {
            (None, _) => true,
            (Some(nonce), None) => {
                !nonce.is_empty() && nonce.bytes().all(|b| b.is_ascii_hexdigit())
            }
            _ => false,
        };
        return match id {
            Some(id) if nonce_ok => Entry::Part(id),
            _ => Entry::Other,
        };
    }
    match name.parse::<ImageId>() {
        // Only the canonical spelling: `path_of` and `image_path` use it.
        Ok(id) if id.to_string() == name => Entry::Whole(id),
        _ => Entry::Other,
    }
}

enum Verdict {
    Keep,
    Remove,
    Unknown,
}

fn remove_if_present(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot remove file"),
    }
}

/// Removes a file on the janitor thread (unlinking a large file can take a while).
struct RemoveFile {
    store: Arc<str>,
    path: PathBuf,
}

impl janitor::Job for RemoveFile {
    fn describe(&self) -> String {
        format!("store {}: remove {}", self.store, self.path.display())
    }

    fn run(&self) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            match fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::from_io(&self.store, self.path.display(), e)),
            }
        })
    }
}

impl Store for FsStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> StoreKind {
        StoreKind::File
    }

    fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    fn weight(&self) -> i64 {
        self.weight
    }

    fn properties(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert("data_dir".into(), self.dir.display().to_string().into());
        map.insert("chunk_size".into(), self.chunk_size.into());
        map.insert("thin_provisioning".into(), false.into());
        map
    }

    fn owns(&self, url: &str) -> bool {
        self.path_of_url(url).is_some()
    }

    fn data_location(&self, id: ImageId) -> Option<Location> {
        Some(self.location(&self.image_path(id)))
    }

    fn is_data_location(&self, url: &str, id: ImageId) -> bool {
        self.path_of_url(url)
            .is_some_and(|p| p == self.image_path(id))
    }

    fn writer(
        &self,
        id: ImageId,
        _size_hint: Option<u64>,
    ) -> LocalBoxFuture<'_, Result<Box<dyn StoreWriter>, StoreError>> {
        Box::pin(async move {
            let path = self.unique_part_path(id);
            let file = File::create(&path)
                .await
                .map_err(|e| self.error(format!("create {}", path.display()), e))?;
            let file = Rc::new(file);
            let sink = Sink::new(&file, self.direct_io);
            Ok(Box::new(FsWriter {
                store: self.clone(),
                image: id,
                path,
                file: Some(file),
                sink: Some(sink),
                size: 0,
                settled: false,
            }) as Box<dyn StoreWriter>)
        })
    }

    fn read<'a>(
        &'a self,
        location: &'a Location,
        range: Range<u64>,
    ) -> LocalBoxFuture<'a, Result<BoxStream, StoreError>> {
        Box::pin(async move {
            let path = self.file_of(location)?;
            let file = File::open(&path)
                .await
                .map_err(|e| self.error(path.display(), e))?;
            Ok(Box::pin(FileStream::new(file, range.start, range.end)) as BoxStream)
        })
    }

    fn size<'a>(&'a self, location: &'a Location) -> LocalBoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let path = self.file_of(location)?;
            fs::metadata(&path)
                .map(|m| m.len())
                .map_err(|e| self.error(path.display(), e))
        })
    }

    fn delete<'a>(&'a self, location: &'a Location) -> LocalBoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let Some(path) = self.path_of(location) else {
                return Ok(());
            };
            // The name goes now (a rename is quick); the blocks are freed off the core
            // (unlinking a large file can take a while).
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            let trash = self.dir.join(format!(
                "{}.{}{DELETED_SUFFIX}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("image"),
                &nonce[..12]
            ));
            match fs::rename(&path, &trash) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(self.error(path.display(), e)),
            }
            janitor::submit(Box::new(RemoveFile {
                store: Arc::clone(&self.id),
                path: trash,
            }));
            Ok(())
        })
    }

    fn check(&self) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.is_writable() {
                Ok(())
            } else {
                Err(StoreError::Unavailable {
                    store: self.id.to_string(),
                    message: "the folder does not accept new files".into(),
                })
            }
        })
    }

    fn capacity(&self) -> Option<Capacity> {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: a NUL-terminated path and a buffer statvfs fills when it returns 0.
        let stat = unsafe {
            if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
                return None;
            }
            stat.assume_init()
        };
        let block = stat.f_frsize;
        Some(Capacity {
            total_bytes: stat.f_blocks.saturating_mul(block),
            free_bytes: stat.f_bavail.saturating_mul(block),
        })
    }

    fn recover<'a>(
        &'a self,
        inventory: &'a Inventory<'a>,
    ) -> LocalBoxFuture<'a, Result<Recovered, StoreError>> {
        Box::pin(async move {
            self.reconcile(inventory)
                .map_err(|e| self.error("reconciling the folder with the metadata", e))
        })
    }
}

/// One upload into an [`FsStore`].
struct FsWriter {
    store: FsStore,
    image: ImageId,
    path: PathBuf,
    file: Option<Rc<File>>,
    sink: Option<Sink>,
    size: u64,
    /// Committed or aborted: nothing left for `Drop`.
    settled: bool,
}

impl FsWriter {
    fn fail(&self, e: io::Error) -> StoreError {
        self.store.error(format!("image {}", self.image), e)
    }

    /// Writes what is queued, syncs, closes, renames into place, syncs the folder.
    async fn finish(&mut self) -> Result<Location, StoreError> {
        if let Some(sink) = self.sink.take() {
            sink.finish(self.size).await.map_err(|e| self.fail(e))?;
        }
        let file = self.file.take().expect("a writer commits once");
        file.sync_data().await.map_err(|e| self.fail(e))?;
        // A write task still holding the file ended above; close when we are last.
        if let Ok(file) = Rc::try_unwrap(file) {
            file.close().await.map_err(|e| self.fail(e))?;
        }
        let target = self.store.image_path(self.image);
        fs::rename(&self.path, &target).map_err(|e| self.fail(e))?;
        let synced = async { File::open(&*self.store.dir).await?.sync_all().await }.await;
        if let Err(e) = synced {
            // Not durable: the caller treats the upload as failed, so the file must go.
            remove_if_present(&target);
            return Err(self.fail(e));
        }
        Ok(self.store.location(&target))
    }
}

impl StoreWriter for FsWriter {
    fn write(&mut self, frame: Bytes) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let offset = self.size;
            self.size += frame.len() as u64;
            let sink = self.sink.as_mut().expect("no write after commit");
            sink.write(frame, offset).await.map_err(|e| self.fail(e))
        })
    }

    fn commit(mut self: Box<Self>) -> LocalBoxFuture<'static, Result<Location, StoreError>> {
        Box::pin(async move {
            let result = self.finish().await;
            if result.is_err() {
                // Waited for, as an abort: the caller answers once the bytes are gone.
                let _ = janitor::run_once(Box::new(RemoveFile {
                    store: Arc::clone(&self.store.id),
                    path: self.path.clone(),
                }))
                .await;
            }
            self.settled = true;
            result
        })
    }

    fn abort(mut self: Box<Self>) -> LocalBoxFuture<'static, ()> {
        Box::pin(async move {
            // Let a write in flight end before the file goes.
            if let Some(sink) = self.sink.take() {
                let _ = sink.finish(self.size).await;
            }
            self.file = None;
            self.settled = true;
            // Waited for: whoever aborts answers only once the bytes are gone.
            let removed = janitor::run_once(Box::new(RemoveFile {
                store: Arc::clone(&self.store.id),
                path: self.path.clone(),
            }))
            .await;
            if let Err(e) = removed {
                tracing::warn!(error = %e, "partial upload not removed yet; retrying");
            }
        })
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if !self.settled {
            janitor::submit(Box::new(RemoveFile {
                store: Arc::clone(&self.store.id),
                path: self.path.clone(),
            }));
        }
    }
}

async fn write_frame(file: Rc<File>, data: Bytes, offset: u64) -> io::Result<()> {
    let (result, _data) = file.write_all_at(data, offset).await;
    result
}

/// Where the frames go: straight from hyper's buffers through the page cache (buffered), or
/// gathered into aligned chunks written with O_DIRECT (no page-cache copy), when the file
/// system allows it. One write is in flight while the next frames arrive.
enum Sink {
    Buffered {
        file: Rc<File>,
        in_flight: Option<JoinHandle<io::Result<()>>>,
    },
    Direct(DirectSink),
}

impl Sink {
    /// With `direct_io`, O_DIRECT when the file system allows it; a refusal is counted
    /// (`glint_direct_io_refused_total`) and logged once, so the path taken is never a guess.
    fn new(file: &Rc<File>, direct_io: bool) -> Sink {
        if direct_io {
            match DirectSink::new(file) {
                Ok(sink) => return Sink::Direct(sink),
                Err(e) => {
                    crate::metrics::direct_io_refused();
                    static WARNED: std::sync::Once = std::sync::Once::new();
                    WARNED.call_once(|| {
                        tracing::warn!(
                            error = %e,
                            "direct_io_upload: the store's file system refuses O_DIRECT; \
                             uploads are written through the page cache"
                        )
                    });
                }
            }
        }
        Sink::Buffered {
            file: Rc::clone(file),
            in_flight: None,
        }
    }

    /// Write `data`, which starts at `offset` (frames arrive in order).
    async fn write(&mut self, data: Bytes, offset: u64) -> io::Result<()> {
        match self {
            Sink::Buffered { file, in_flight } => {
                if let Some(previous) = in_flight.take() {
                    previous.await?;
                }
                *in_flight = Some(monoio::spawn(write_frame(Rc::clone(file), data, offset)));
                Ok(())
            }
            Sink::Direct(sink) => sink.write(&data).await,
        }
    }

    /// Everything written (`size` bytes in all); not yet synced.
    async fn finish(self, size: u64) -> io::Result<()> {
        match self {
            Sink::Buffered { in_flight, .. } => match in_flight {
                Some(last) => last.await,
                None => Ok(()),
            },
            Sink::Direct(sink) => sink.finish(size).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_part_and_delete_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let id: ImageId = "6f1f4a6e-7c8b-4d37-9a59-3f4c1b2a9e10".parse().unwrap();
        fs::write(store.part_path(id), b"data").unwrap();
        let location = store.commit(id).unwrap();
        assert_eq!(store.path_of(&location).unwrap(), store.image_path(id));
        assert_eq!(fs::read(store.image_path(id)).unwrap(), b"data");
        store.delete(&location);
        assert!(!store.image_path(id).exists());
    }

    #[test]
    fn an_image_data_location_is_where_its_writer_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let id: ImageId = "6f1f4a6e-7c8b-4d37-9a59-3f4c1b2a9e10".parse().unwrap();
        let other: ImageId = "7f1f4a6e-7c8b-4d37-9a59-3f4c1b2a9e10".parse().unwrap();
        fs::write(store.part_path(id), b"data").unwrap();
        let committed = store.commit(id).unwrap();
        assert_eq!(Store::data_location(&store, id), Some(committed.clone()));
        assert!(Store::is_data_location(&store, &committed.url, id));
        assert!(!Store::is_data_location(&store, &committed.url, other));
        assert!(!Store::is_data_location(&store, "file:///elsewhere/x", id));
    }

    use meta::{Backend, Image, ImageStatus, Limits, NodeId, RedbBackend, UploadClaim};

    /// A store and a metadata database side by side, as `serve` opens them.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: FsStore,
        meta: RedbBackend,
    }

    /// The node the fixture's gateway runs as.
    fn this_node() -> NodeId {
        "this-node".parse().unwrap()
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = FsStore::open(&dir.path().join("images")).unwrap();
            let meta = RedbBackend::open(&dir.path().join("meta.redb")).unwrap();
            Fixture {
                _dir: dir,
                store,
                meta,
            }
        }

        fn queued(&self) -> ImageId {
            let mut image = Image::new(ImageId::new_v4(), meta::Timestamp::now());
            image.disk_format = Some("raw".into());
            image.container_format = Some("bare".into());
            self.meta.create_image(&image, &Limits::UNLIMITED).unwrap();
            image.id
        }

        /// Claims the upload of `id` (to `saving`) for `node`.
        fn begin_on(&self, id: ImageId, node: NodeId) {
            let claim = UploadClaim {
                to: ImageStatus::Saving,
                node,
                incoming_bytes: None,
            };
            self.meta
                .begin_upload(id, &claim, &Limits::UNLIMITED)
                .unwrap();
        }

        /// This node's start-up recovery, as `serve` runs it before reconciling.
        fn recover(&self) -> Vec<ImageId> {
            self.meta.recover_interrupted(&this_node()).unwrap()
        }

        /// The store's start-up recovery, as `serve` runs it.
        fn reconcile(&self) -> Recovered {
            self.reconcile_in_pages(1000)
        }

        fn reconcile_in_pages(&self, page: usize) -> Recovered {
            let inventory = Inventory::read_in_pages(&self.meta, page).unwrap();
            crate::test_util::block_on(self.store.recover(&inventory)).unwrap()
        }

        /// An image uploaded the way `image_data::upload` does it: `.part`, rename, commit.
        fn active(&self, data: &[u8]) -> ImageId {
            let id = self.queued();
            self.begin_on(id, this_node());
            fs::write(self.store.part_path(id), data).unwrap();
            let location = self.store.commit(id).unwrap();
            let outcome = meta::UploadOutcome {
                size: data.len() as u64,
                checksum: "0".repeat(32),
                os_hash_algo: "sha512".into(),
                os_hash_value: "0".repeat(128),
                virtual_size: None,
                location,
            };
            self.meta
                .complete_upload(id, outcome, &Limits::UNLIMITED)
                .unwrap();
            id
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.store.dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    #[test]
    fn reconcile_keeps_owned_data_and_removes_what_no_image_owns() {
        let f = Fixture::new();
        let kept = f.active(b"kept");
        let deactivated = f.active(b"deactivated");
        f.meta
            .set_status(deactivated, ImageStatus::Deactivated)
            .unwrap();
        // Renamed into place, then the crash before the metadata commit: after recovery the
        // image is queued and its whole file is under its final name.
        let uncommitted = f.queued();
        f.begin_on(uncommitted, this_node());
        fs::write(f.store.part_path(uncommitted), b"whole").unwrap();
        f.store.commit(uncommitted).unwrap();
        assert_eq!(f.recover(), vec![uncommitted]);
        // Deleted in metadata, then the crash before the unlink.
        let deleted = f.active(b"deleted");
        f.meta.delete_image(deleted).unwrap();
        // An upload cut short, and a health probe left by a crash.
        let partial = f.queued();
        fs::write(f.store.part_path(partial), b"half").unwrap();
        fs::write(f.store.dir.join(HEALTHCHECK_PROBE), b"ok").unwrap();

        // A delete whose background removal a stop cut short.
        fs::write(
            f.store.dir.join(format!(
                "{}.0123456789ab{DELETED_SUFFIX}",
                ImageId::new_v4()
            )),
            b"trash",
        )
        .unwrap();

        let report = f.reconcile();
        assert_eq!(
            report,
            Recovered {
                partial: 1,
                orphans: 3,
                unknown: 0,
                checked: 2,
                missing_data: vec![],
            }
        );
        let mut expected = vec![kept.to_string(), deactivated.to_string()];
        expected.sort();
        assert_eq!(f.names(), expected);
        assert_eq!(
            f.meta.get_image(uncommitted).unwrap().status,
            ImageStatus::Queued
        );
        // A second start-up finds nothing more to do.
        let again = f.reconcile();
        assert_eq!((again.partial, again.orphans), (0, 0));
    }

    #[test]
    fn reconcile_leaves_files_that_are_not_glints() {
        let f = Fixture::new();
        let stranger = ImageId::new_v4();
        fs::write(f.store.image_path(stranger), b"a Glance image, say").unwrap();
        fs::write(f.store.dir.join("notes.txt"), b"operator's").unwrap();
        fs::create_dir(f.store.dir.join("lost+found")).unwrap();
        // A name that only looks like a partial upload.
        fs::write(f.store.dir.join(format!("{stranger}.x.y.part")), b"?").unwrap();
        let report = f.reconcile();
        assert_eq!(report.unknown, 4);
        assert_eq!(report.orphans, 0);
        assert_eq!(f.names().len(), 4);
    }

    #[test]
    fn reconcile_keeps_the_files_of_an_upload_still_in_flight() {
        // With shared metadata another gateway may be mid-upload: its image is `saving`, and
        // this node's recovery leaves it so. This node's own cut-short upload is reset and its
        // file removed.
        let f = Fixture::new();
        let receiving = f.queued();
        f.begin_on(receiving, "other-node".parse().unwrap());
        fs::write(f.store.part_path(receiving), b"half").unwrap();
        let renamed = f.queued();
        f.begin_on(renamed, "other-node".parse().unwrap());
        fs::write(f.store.image_path(renamed), b"whole, not yet committed").unwrap();
        let ours = f.queued();
        f.begin_on(ours, this_node());
        fs::write(f.store.part_path(ours), b"cut short").unwrap();
        assert_eq!(f.recover(), vec![ours]);
        let report = f.reconcile();
        assert_eq!(report.partial, 1);
        assert_eq!(report.orphans, 0);
        assert!(f.store.part_path(receiving).exists());
        assert!(f.store.image_path(renamed).exists());
        assert!(!f.store.part_path(ours).exists());
        for id in [receiving, renamed] {
            assert_eq!(f.meta.get_image(id).unwrap().status, ImageStatus::Saving);
        }
    }

    #[test]
    fn reconcile_reports_active_images_without_their_data_and_keeps_their_metadata() {
        let f = Fixture::new();
        let gone = f.active(b"gone");
        let truncated = f.active(b"twelve bytes");
        let fine = f.active(b"fine");
        fs::remove_file(f.store.image_path(gone)).unwrap();
        fs::write(f.store.image_path(truncated), b"twelve").unwrap();
        let report = f.reconcile();
        let mut expected = vec![gone, truncated];
        expected.sort();
        let mut found = report.missing_data.clone();
        found.sort();
        assert_eq!(found, expected);
        assert_eq!(report.checked, 3);
        for id in [gone, truncated, fine] {
            assert_eq!(f.meta.get_image(id).unwrap().status, ImageStatus::Active);
        }
        assert!(
            f.store.image_path(truncated).exists(),
            "damaged data is kept"
        );
    }

    #[test]
    fn reconcile_pages_through_many_images() {
        let f = Fixture::new();
        let mut owned: Vec<String> = (0..5).map(|_| f.active(b"owned").to_string()).collect();
        for _ in 0..3 {
            fs::write(f.store.image_path(f.queued()), b"orphan").unwrap();
        }
        let report = f.reconcile_in_pages(2);
        assert_eq!((report.orphans, report.checked), (3, 5));
        owned.sort();
        assert_eq!(f.names(), owned, "every page's images keep their files");
    }

    #[test]
    fn reconcile_understands_each_uploads_own_part_name() {
        // Every upload writes `<id>.<nonce>.part`: those of an image still receiving stay,
        // the others go, whichever nonce they carry.
        let f = Fixture::new();
        let running = f.queued();
        f.begin_on(running, "other-node".parse().unwrap());
        let crashed = f.queued();
        let running_part = f.store.unique_part_path(running);
        let crashed_parts = [
            f.store.unique_part_path(crashed),
            f.store.unique_part_path(crashed),
        ];
        fs::write(&running_part, b"a").unwrap();
        for part in &crashed_parts {
            fs::write(part, b"b").unwrap();
        }
        let report = f.reconcile();
        assert_eq!(report.partial, 2);
        assert!(running_part.exists());
        assert!(crashed_parts.iter().all(|p| !p.exists()));
    }

    #[test]
    fn foreign_locations_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let outside = Location {
            url: "file:///etc/passwd".into(),
            store: STORE_NAME.into(),
        };
        assert!(store.path_of(&outside).is_none());
        let inside_but_not_an_image = Location {
            url: format!("file://{}/.healthcheck", store.dir().display()),
            store: STORE_NAME.into(),
        };
        assert!(store.path_of(&inside_but_not_an_image).is_none());
        assert!(!store.owns("http://example.com/x"));
    }
}
