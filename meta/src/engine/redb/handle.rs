//! [`Handle`]: the redb `Database` behind a [`RedbBackend`](super::RedbBackend), reopened after an I/O failure.
//!
//! redb latches the first failed write, resize or fsync of its file (a full disk, say): from
//! then on every transaction on that `Database` fails with `PreviousIo` until it is closed and
//! opened again, and opening runs redb's repair back to the last committed state. Left alone,
//! one moment of full disk (an upload taking the last bytes while another request commits)
//! would make every later metadata write fail until the process restarts. So a transaction
//! that meets `PreviousIo` closes the handle and opens the file again, then starts over; if
//! the file cannot be opened yet (the disk is still full), it fails with that error. The next
//! write tries again at once (writes run where blocking is allowed, and the one after a failed
//! upload, which has just freed its space, must succeed); the next read only after
//! [`RETRY_INTERVAL`], so that reads on the I/O cores do not each pay for a repair.
//!
//! A failed commit leaves nothing behind that a reopen could expose (redb commits atomically);
//! a reopen happens between transactions, never inside one, and holds the lock that every
//! transaction's start takes for as long as redb's repair runs.

use std::path::Path;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, ReadTransaction, StorageError, TransactionError};
use redb::{ReadableDatabase, WriteTransaction};

/// How long after a failed reopen the next may be tried.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

type Opener = Box<dyn Fn() -> Result<Database, DatabaseError> + Send + Sync>;

/// The database, and how to open it again.
pub(crate) struct Handle {
    open: Opener,
    state: RwLock<State>,
}

struct State {
    /// `None` after a reopen failed.
    db: Option<Database>,
    /// Bumped by every reopen, so that two transactions that met the same failure reopen once.
    generation: u64,
    /// When the last reopen failed.
    failed_at: Option<Instant>,
}

impl Handle {
    /// Opens (creating if needed) the database file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Handle, DatabaseError> {
        let path = path.to_owned();
        Handle::with_opener(Box::new(move || Database::create(&path)))
    }

    /// Opens the database with `open`, which is called again for every reopen.
    pub(crate) fn with_opener(open: Opener) -> Result<Handle, DatabaseError> {
        let db = open()?;
        Ok(Handle {
            open,
            state: RwLock::new(State {
                db: Some(db),
                generation: 0,
                failed_at: None,
            }),
        })
    }

    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, redb::Error> {
        self.begin(Database::begin_read, false)
    }

    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, redb::Error> {
        self.begin(Database::begin_write, true)
    }

    fn begin<T>(
        &self,
        begin: impl Fn(&Database) -> Result<T, TransactionError>,
        retry_now: bool,
    ) -> Result<T, redb::Error> {
        let generation = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            match state.db.as_ref().map(&begin) {
                Some(Err(TransactionError::Storage(StorageError::PreviousIo))) | None => {
                    state.generation
                }
                Some(result) => return result.map_err(Into::into),
            }
        };
        self.reopen(generation, retry_now)?;
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match state.db.as_ref() {
            Some(db) => begin(db).map_err(Into::into),
            None => Err(StorageError::PreviousIo.into()),
        }
    }

    /// Closes the failed database and opens the file again, unless another thread already did
    /// (since `generation`), or, unless `retry_now`, the last attempt failed less than
    /// [`RETRY_INTERVAL`] ago.
    fn reopen(&self, generation: u64, retry_now: bool) -> Result<(), redb::Error> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.generation != generation && state.db.is_some() {
            return Ok(());
        }
        if !retry_now
            && state
                .failed_at
                .is_some_and(|at| at.elapsed() < RETRY_INTERVAL)
        {
            return Err(StorageError::PreviousIo.into());
        }
        if let Some(failed) = state.db.take() {
            // It fails anyway; closing is what releases the file for the new handle.
            let _ = failed.close();
        }
        state.generation += 1;
        match (self.open)() {
            Ok(db) => {
                state.db = Some(db);
                state.failed_at = None;
                Ok(())
            }
            Err(e) => {
                state.failed_at = Some(Instant::now());
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! A file backend that fails on demand, as a full disk does.

    use std::fs::{File, OpenOptions};
    use std::io;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use redb::backends::FileBackend;
    use redb::StorageBackend;

    use super::*;

    /// Writes, resizes and syncs fail with ENOSPC while `full` is set.
    #[derive(Debug)]
    pub(crate) struct FullDisk {
        file: FileBackend,
        full: Arc<AtomicBool>,
    }

    impl FullDisk {
        fn check(&self) -> io::Result<()> {
            if self.full.load(Ordering::SeqCst) {
                Err(io::Error::from_raw_os_error(28))
            } else {
                Ok(())
            }
        }
    }

    impl StorageBackend for FullDisk {
        fn len(&self) -> io::Result<u64> {
            self.file.len()
        }

        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            self.file.read(offset, out)
        }

        fn set_len(&self, len: u64) -> io::Result<()> {
            self.check()?;
            self.file.set_len(len)
        }

        fn sync_data(&self) -> io::Result<()> {
            self.check()?;
            self.file.sync_data()
        }

        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.check()?;
            self.file.write(offset, data)
        }

        fn close(&self) -> io::Result<()> {
            self.file.close()
        }
    }

    fn open_file(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    }

    /// A handle on `path` whose disk is full while the returned flag is set.
    pub(crate) fn full_disk_handle(path: &Path) -> (Handle, Arc<AtomicBool>) {
        let full = Arc::new(AtomicBool::new(false));
        let (path, flag) = (path.to_owned(), Arc::clone(&full));
        let handle = Handle::with_opener(Box::new(move || {
            let file = FileBackend::new(open_file(&path)?)?;
            Database::builder().create_with_backend(FullDisk {
                file,
                full: Arc::clone(&flag),
            })
        }))
        .unwrap();
        (handle, full)
    }
}
