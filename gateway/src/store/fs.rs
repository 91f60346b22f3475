//! The file store: one file per image in a folder (`<data_dir>/images/` by default).
//!
//! An upload writes `<id>.<nonce>.part` (a name of its own, so that a clean-up running late can
//! never remove the next upload's file); only a complete, fdatasync'ed upload is renamed to
//! `<id>`, and the folder is fsync'ed so the rename survives a crash. So a file named `<id>` is
//! always a whole image, and a `.part` file is always garbage after a restart.
//!
//! Frames are *moved* into buffered io_uring writes, one write in flight while the next frames
//! arrive (so memory per upload is bounded and a slow disk slows the socket), or — with
//! `direct_io_upload` and a file system that allows it — copied once into aligned buffers
//! written with O_DIRECT (`store/direct.rs`). Reads return a [`FileStream`], which also offers
//! its file and range to the zero-copy download path.

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
    janitor, BoxStream, Capacity, LocalBoxFuture, Recovered, Store, StoreError, StoreKind,
    StoreWriter,
};

/// The id of the store glint serves without a `[stores]` table (and the `store` recorded in
/// locations written then).
pub const STORE_NAME: &str = "file";
const PART_SUFFIX: &str = ".part";
/// A deleted image's file, renamed away at once and removed in the background.
const DELETED_SUFFIX: &str = ".deleted";

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

    /// Removes every `.part` file: at start-up no upload is in progress, so they are leftovers
    /// of a crash. Returns how many were removed.
    pub fn remove_stray_parts(&self) -> io::Result<usize> {
        self.remove_parts_except(&|_| false)
    }

    /// Removes the `.part` files of images for which `in_flight` is false.
    fn remove_parts_except(&self, in_flight: &dyn Fn(ImageId) -> bool) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&*self.dir)? {
            let path = entry?.path();
            let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
                continue;
            };
            if extension == &DELETED_SUFFIX[1..] {
                // A delete whose background removal a stop cut short.
                remove_if_present(&path);
                continue;
            }
            if extension != &PART_SUFFIX[1..] {
                continue;
            }
            let image = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('.').next())
                .and_then(|id| id.parse::<ImageId>().ok());
            if image.is_some_and(in_flight) {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Whether the store folder accepts new files (for the health check).
    pub fn is_writable(&self) -> bool {
        let probe = self.dir.join(".healthcheck");
        let ok = fs::write(&probe, b"ok").is_ok();
        remove_if_present(&probe);
        ok
    }

    fn error(&self, what: impl std::fmt::Display, e: io::Error) -> StoreError {
        StoreError::from_io(&self.id, what, e)
    }
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
            let path = self
                .path_of(location)
                .ok_or_else(|| StoreError::BadLocation {
                    store: self.id.to_string(),
                    message: "not a file of this store's folder".into(),
                })?;
            let file = File::open(&path)
                .await
                .map_err(|e| self.error(path.display(), e))?;
            Ok(Box::pin(FileStream::new(file, range.start, range.end)) as BoxStream)
        })
    }

    fn size<'a>(&'a self, location: &'a Location) -> LocalBoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let path = self
                .path_of(location)
                .ok_or_else(|| StoreError::BadLocation {
                    store: self.id.to_string(),
                    message: "not a file of this store's folder".into(),
                })?;
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
        in_flight: &'a dyn Fn(ImageId) -> bool,
    ) -> LocalBoxFuture<'a, Result<Recovered, StoreError>> {
        Box::pin(async move {
            let partial = self
                .remove_parts_except(in_flight)
                .map_err(|e| self.error("removing partial uploads", e))?;
            Ok(Recovered { partial })
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
    fn commit_renames_part_and_strays_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let id: ImageId = "6f1f4a6e-7c8b-4d37-9a59-3f4c1b2a9e10".parse().unwrap();
        fs::write(store.part_path(id), b"data").unwrap();
        let location = store.commit(id).unwrap();
        assert_eq!(store.path_of(&location).unwrap(), store.image_path(id));
        assert_eq!(fs::read(store.image_path(id)).unwrap(), b"data");
        fs::write(store.part_path(id), b"half").unwrap();
        assert_eq!(store.remove_stray_parts().unwrap(), 1);
        assert!(!store.part_path(id).exists());
        store.delete(&location);
        assert!(!store.image_path(id).exists());
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

    #[test]
    fn recovery_keeps_the_parts_of_uploads_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let running = ImageId::new_v4();
        let crashed = ImageId::new_v4();
        let running_part = store.unique_part_path(running);
        let crashed_part = store.unique_part_path(crashed);
        fs::write(&running_part, b"a").unwrap();
        fs::write(&crashed_part, b"b").unwrap();
        let recovered = crate::test_util::block_on(store.recover(&|id| id == running)).unwrap();
        assert_eq!(recovered.partial, 1);
        assert!(running_part.exists());
        assert!(!crashed_part.exists());
    }
}
