//! The file store: one file per image under `<data_dir>/images/`.
//!
//! An upload writes `<id>.part`; only a complete, fdatasync'ed upload is renamed to `<id>`, and
//! the directory is fsync'ed so the rename survives a crash. So a file named `<id>` is always a
//! whole image, and a `.part` file is always garbage after a restart.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use meta::{ImageId, Location};

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

    /// Removes every `.part` file: at start-up no upload is in progress, so they are leftovers
    /// of a crash. Returns how many were removed.
    pub fn remove_stray_parts(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == &PART_SUFFIX[1..]) {
                fs::remove_file(&path)?;
                removed += 1;
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
}

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
    }
}
