//! The file store: one file per image under `<data_dir>/images/`.
//!
//! An upload writes `<id>.part`; only a complete, fdatasync'ed upload is renamed to `<id>`, and
//! the directory is fsync'ed so the rename survives a crash. So a file named `<id>` is always a
//! whole image, and a `.part` file is always garbage after a restart.
//!
//! A whole file is not yet an image: the metadata commit that follows the rename is. A crash
//! between the two (or between a delete's commit and the unlink) leaves a file no image owns;
//! [`FsStore::reconcile`] settles both directions at start-up.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use meta::{Backend, Image, ImageId, ImageStatus, ListFilter, Location};

/// The store name recorded in locations.
pub const STORE_NAME: &str = "file";
const PART_SUFFIX: &str = ".part";

/// Local-file image store.
#[derive(Debug, Clone)]
pub struct FsStore {
    dir: PathBuf,
}

impl FsStore {
    /// Opens (creating if needed) the store folder.
    pub fn open(dir: &Path) -> io::Result<FsStore> {
        fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        Ok(FsStore { dir })
    }

    /// Where an upload in progress is written.
    pub fn part_path(&self, id: ImageId) -> PathBuf {
        self.dir.join(format!("{id}{PART_SUFFIX}"))
    }

    /// Where a complete image lives.
    pub fn image_path(&self, id: ImageId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Makes a finished upload permanent: rename `<id>.part` → `<id>`, then fsync the folder.
    /// Blocking: run it on the writer thread. The caller has already fdatasync'ed the file.
    pub fn commit(&self, id: ImageId) -> io::Result<Location> {
        let path = self.image_path(id);
        fs::rename(self.part_path(id), &path)?;
        fs::File::open(&self.dir)?.sync_all()?;
        Ok(Location {
            url: format!("file://{}", path.display()),
            store: STORE_NAME.to_owned(),
        })
    }

    /// Removes an upload's partial file, if any. Blocking.
    pub fn remove_part(&self, id: ImageId) {
        remove_if_present(&self.part_path(id));
    }

    /// Resolves a location of this store to its file, refusing anything outside the folder.
    pub fn path_of(&self, location: &Location) -> Option<PathBuf> {
        let path = PathBuf::from(location.url.strip_prefix("file://")?);
        (location.store == STORE_NAME && path.parent() == Some(self.dir.as_path())).then_some(path)
    }

    /// Deletes an image's data. Blocking.
    pub fn delete(&self, location: &Location) {
        if let Some(path) = self.path_of(location) {
            remove_if_present(&path);
        }
    }

    /// Start-up reconciliation of the folder with the metadata, after this node's interrupted
    /// uploads were reset (`Backend::recover_interrupted`), before any request is served.
    /// Blocking. `meta` is walked a page at a time, every image (`Scope::Unrestricted`).
    ///
    /// - A file that a live image's location names is kept, and so are `<id>` and `<id>.part`
    ///   of an image still receiving data (`saving`, `uploading`, `importing`): with shared
    ///   metadata, an upload another gateway runs, which this node's recovery left alone.
    /// - Any other `<id>.part` is removed: an upload cut short.
    /// - Any other `<id>` whose image glint knows (a live record, or a deleted image's
    ///   tombstone) is removed: the crash came between the rename and the metadata commit, or
    ///   between a delete's commit and the unlink. It is never adopted: only the metadata
    ///   commit proves the upload complete (size, checksums, quota), the client was never told
    ///   it succeeded, and a retried upload of the `queued` image must find nothing in its way.
    /// - Anything else (an id glint never issued, other names) is left in place with a
    ///   warning: the folder may hold what is not glint's (Glance's files, `lost+found`).
    /// - Every `active` or `deactivated` image whose file here is missing, or shorter or longer
    ///   than its `size`, is logged as an error and counted in `missing_data`. Its metadata is
    ///   kept as it is (its checksum is what restoring the file from a backup is checked
    ///   against); downloads of it answer 503.
    pub fn reconcile(&self, meta: &dyn Backend) -> io::Result<Reconciliation> {
        self.reconcile_in_pages(meta, 1000)
    }

    /// [`FsStore::reconcile`], reading the images `page` at a time.
    fn reconcile_in_pages(&self, meta: &dyn Backend, page: usize) -> io::Result<Reconciliation> {
        let mut claimed = HashSet::new();
        let mut receiving = HashSet::new();
        let mut report = Reconciliation::default();
        let mut marker = None;
        loop {
            let images = meta
                .list_images(&ListFilter::all().after(marker).limit(page))
                .map_err(io::Error::other)?;
            for image in &images {
                self.claim(image, &mut claimed, &mut receiving, &mut report);
            }
            match images.last() {
                Some(last) if images.len() == page => marker = Some(last.id),
                _ => break,
            }
        }
        let mut removed_any = false;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            let (id, partial) = match name.strip_suffix(PART_SUFFIX) {
                Some(stem) => (stem.parse::<ImageId>().ok(), true),
                None => (name.parse::<ImageId>().ok(), false),
            };
            let verdict = match id {
                _ if name == HEALTHCHECK_PROBE => Verdict::Remove,
                Some(id) if receiving.contains(&id) => Verdict::Keep,
                Some(_) if claimed.contains(&path) => Verdict::Keep,
                Some(_) if partial => Verdict::Remove,
                Some(id) => {
                    let known = meta.get_image(id).is_ok()
                        || meta.was_deleted(id).map_err(io::Error::other)?;
                    if known {
                        tracing::warn!(image_id = %id, path = %path.display(),
                            "removing a data file no image owns (a crash came between writing \
                             it and committing or deleting its image)");
                        report.orphans_removed += 1;
                        Verdict::Remove
                    } else {
                        Verdict::Unknown
                    }
                }
                None => Verdict::Unknown,
            };
            match verdict {
                Verdict::Keep => {}
                Verdict::Remove => {
                    fs::remove_file(&path)?;
                    removed_any = true;
                    if partial {
                        report.partials_removed += 1;
                    }
                }
                Verdict::Unknown => {
                    tracing::warn!(path = %path.display(),
                        "the image store folder holds a file that is not glint's; left in place");
                    report.unknown_kept += 1;
                }
            }
        }
        if removed_any {
            fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(report)
    }

    /// Records which files `image` owns, and checks the data of an image that has some.
    fn claim(
        &self,
        image: &Image,
        claimed: &mut HashSet<PathBuf>,
        receiving: &mut HashSet<ImageId>,
        report: &mut Reconciliation,
    ) {
        if matches!(
            image.status,
            ImageStatus::Saving | ImageStatus::Uploading | ImageStatus::Importing
        ) {
            receiving.insert(image.id);
        }
        let has_data = matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated);
        for path in image.locations.iter().filter_map(|l| self.path_of(l)) {
            if has_data {
                report.images_checked += 1;
                let len = fs::metadata(&path).map(|m| m.len());
                let problem = match (&len, image.size) {
                    (Err(e), _) => Some(e.to_string()),
                    (Ok(len), Some(size)) if *len != size => {
                        Some(format!("{len} bytes on disk, {size} recorded"))
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    tracing::error!(image_id = %image.id, status = %image.status,
                        path = %path.display(), %problem,
                        "image data missing or damaged: downloads of this image fail until \
                         the file is restored (its checksum is in the image record)");
                    report.missing_data.push(image.id);
                }
            }
            claimed.insert(path);
        }
    }

    /// Whether the store folder accepts new files (for the health check).
    pub fn is_writable(&self) -> bool {
        let probe = self.dir.join(HEALTHCHECK_PROBE);
        let ok = fs::write(&probe, b"ok").is_ok();
        remove_if_present(&probe);
        ok
    }
}

/// What [`FsStore::reconcile`] found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// `.part` files removed (uploads cut short).
    pub partials_removed: usize,
    /// Whole data files removed because no image owns them.
    pub orphans_removed: usize,
    /// Files left in place because they are not glint's.
    pub unknown_kept: usize,
    /// Data files of `active`/`deactivated` images looked at.
    pub images_checked: usize,
    /// `active`/`deactivated` images whose data file is missing or has the wrong size.
    pub missing_data: Vec<ImageId>,
}

enum Verdict {
    Keep,
    Remove,
    Unknown,
}

/// The file [`FsStore::is_writable`] writes and removes; one left by a crash is removed.
const HEALTHCHECK_PROBE: &str = ".healthcheck";

fn remove_if_present(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot remove file"),
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

    use meta::{Limits, NodeId, RedbBackend, UploadClaim};

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

        fn reconcile(&self) -> Reconciliation {
            self.store.reconcile(&self.meta).unwrap()
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

        let report = f.reconcile();
        assert_eq!(
            report,
            Reconciliation {
                partials_removed: 1,
                orphans_removed: 2,
                unknown_kept: 0,
                images_checked: 2,
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
        assert_eq!((again.partials_removed, again.orphans_removed), (0, 0));
    }

    #[test]
    fn reconcile_leaves_files_that_are_not_glints() {
        let f = Fixture::new();
        let stranger = ImageId::new_v4();
        fs::write(f.store.image_path(stranger), b"a Glance image, say").unwrap();
        fs::write(f.store.dir.join("notes.txt"), b"operator's").unwrap();
        fs::create_dir(f.store.dir.join("lost+found")).unwrap();
        let report = f.reconcile();
        assert_eq!(report.unknown_kept, 3);
        assert_eq!(report.orphans_removed, 0);
        assert_eq!(f.names().len(), 3);
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
        assert_eq!(report.partials_removed, 1);
        assert_eq!(report.orphans_removed, 0);
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
        assert_eq!(report.images_checked, 3);
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
        let report = f.store.reconcile_in_pages(&f.meta, 2).unwrap();
        assert_eq!((report.orphans_removed, report.images_checked), (3, 5));
        owned.sort();
        assert_eq!(f.names(), owned, "every page's images keep their files");
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
    }
}
