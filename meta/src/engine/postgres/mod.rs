//! [`PgBackend`]: the networked engine, one PostgreSQL database shared by several gateways.
//!
//! Each [`Backend`] call runs on one pooled connection (the `postgres` crate's synchronous
//! client: the gateway's catalog runs networked calls off its I/O cores). Writes are
//! transactions of compare-and-set statements (`UPDATE images … WHERE id = $1 AND version =
//! $2`): the engine reads the image, the shared rules (`rules.rs`, `quota.rs`) decide, and the
//! write applies only to the row as read; a write that lost a race reads again and retries.
//! Writes that check a quota first take a transaction-scoped advisory lock on the owner, so two
//! gateways cannot both pass a check that only one of them fits (quotas are hard). Reads are
//! single statements.
//!
//! A lost connection makes the call fail with [`Error::Unavailable`] and leaves the pool; the
//! next call connects afresh, so the engine recovers by itself when the database is back.
//! Nothing committed is lost: a write is durable in PostgreSQL when its call returns.
//!
//! - `schema.rs`: the tables, their versioned migrations, the status-change notification;
//! - `row.rs`: an image as a row, and back;
//! - `list.rs`: a [`ListFilter`] as one `SELECT … WHERE … ORDER BY … LIMIT`;
//! - `write.rs`: every write;
//! - `metadefs.rs`: the metadata definitions;
//! - `pool.rs`: connections, prepared statements, reconnecting.

/// The columns of an image row, in the order `row::image_from_row` reads them (then `version`
/// and the upload columns): a macro so that statements can be written with `concat!`.
macro_rules! image_columns {
    () => {
        "id, name, status, visibility, protected, os_hidden, checksum, os_hash_algo, \
         os_hash_value, owner, size, virtual_size, min_ram, min_disk, disk_format, \
         container_format, created_at, updated_at, tags, properties, locations, version, \
         upload_node, upload_started_at, upload_reserved_bytes"
    };
}

mod list;
mod metadefs;
mod pool;
mod row;
mod schema;
mod tasks;
mod write;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::NoTls;

use self::pool::Pool;
use self::row::image_from_row;
use crate::backend::{Adopted, Adoption, Backend, ChangeFeed, Edit, ImageChange, Locality};
use crate::error::{Error, Result, StorageError};
use crate::filter::ListFilter;
use crate::members::{Member, MemberStatus};
use crate::quota::{Limits, Usage};
use crate::types::{
    Image, ImageId, ImageStatus, NodeId, Timestamp, UploadClaim, UploadOutcome, UploadStart,
    UploadState,
};

pub use schema::SyncReport;

/// The schema version this build of the PostgreSQL engine needs.
pub const SCHEMA_VERSION: u32 = schema::CURRENT_VERSION;

/// How to reach the database.
#[derive(Clone)]
pub struct PgOptions {
    /// A libpq-style URL, `postgresql://user@host:port/dbname` (its password, if any, is
    /// overridden by [`PgOptions::password`]). TLS is not offered: keep the database on a
    /// trusted network.
    pub url: String,
    /// The password, kept out of the URL so that it can come from a secret file.
    pub password: Option<String>,
    /// Most idle connections kept open (more are opened while calls overlap).
    pub max_idle: usize,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL's password or the password.
        f.debug_struct("PgOptions")
            .field("url", &redact_url(&self.url))
            .field("max_idle", &self.max_idle)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl PgOptions {
    /// Options for `url`, no separate password, 8 idle connections, 5 s to connect.
    pub fn new(url: impl Into<String>) -> PgOptions {
        PgOptions {
            url: url.into(),
            password: None,
            max_idle: 8,
            connect_timeout: Duration::from_secs(5),
        }
    }

    fn config(&self) -> Result<postgres::Config> {
        let mut config: postgres::Config = self.url.parse().map_err(|e: postgres::Error| {
            Error::Storage(StorageError::new(format!(
                "invalid database URL {}: {e}",
                redact_url(&self.url)
            )))
        })?;
        if let Some(password) = &self.password {
            config.password(password);
        }
        config.connect_timeout(self.connect_timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("glint");
        }
        Ok(config)
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The networked engine: a pool of connections to one PostgreSQL database. Cheap to clone.
#[derive(Clone)]
pub struct PgBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    options: PgOptions,
    schema_version: u32,
}

impl fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBackend")
            .field("options", &self.inner.options)
            .field("schema_version", &self.inner.schema_version)
            .finish()
    }
}

impl PgBackend {
    /// Connects to the database, which must be at [`SCHEMA_VERSION`] ([`Error::SchemaOutdated`]
    /// otherwise: run [`PgBackend::sync`] first; [`Error::SchemaTooNew`] for a newer glint's).
    pub fn connect(options: &PgOptions) -> Result<PgBackend> {
        let pool = Pool::new(options.config()?, options.max_idle);
        let schema_version = {
            let mut session = pool.get()?;
            schema::check_current(session.client())?
        };
        Ok(PgBackend {
            inner: Arc::new(Inner {
                pool,
                options: options.clone(),
                schema_version,
            }),
        })
    }

    /// Brings the database's schema to [`SCHEMA_VERSION`] (`glint db sync`): applies the
    /// missing migrations in order. Safe to run from several gateways at once.
    pub fn sync(options: &PgOptions) -> Result<SyncReport> {
        let mut client = options
            .config()?
            .connect(NoTls)
            .map_err(pool::connect_error)?;
        schema::sync(&mut client)
    }

    /// Deletes every row of every glint table, for tests that share one database.
    #[doc(hidden)]
    pub fn truncate_all(&self) -> Result<()> {
        let mut session = self.inner.pool.get()?;
        session
            .client()
            .batch_execute(
                "TRUNCATE image_members, images, metadef_namespaces, metadef_objects, \
                 metadef_properties, metadef_associations, metadef_tags, \
                 metadef_resource_types",
            )
            .map_err(pg_error)
    }

    /// Inserts many images in one statement per thousand, for benchmarks that need a large
    /// database (no quota checks).
    pub fn insert_many(&self, images: &[Image]) -> Result<()> {
        write::insert_many(&self.inner.pool, images)
    }

    fn query<T>(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
        each: impl FnMut(&postgres::Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut session = self.inner.pool.get()?;
        let rows = pool::Run::rows(&mut *session, sql, params)?;
        rows.iter().map(each).collect()
    }
}

/// Maps a driver error: a connection that failed or broke → [`Error::Unavailable`]; anything
/// else → [`Error::Storage`].
pub(crate) fn pg_error(err: postgres::Error) -> Error {
    if is_connection_error(&err) {
        Error::Unavailable(StorageError::new(err))
    } else {
        Error::Storage(StorageError::new(err))
    }
}

fn is_connection_error(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    if let Some(db) = err.as_db_error() {
        let code = db.code().code();
        // Class 08: connection exceptions; 57P01-03: admin/crash shutdown, cannot connect now;
        // 53300: too many connections.
        return code.starts_with("08") || code.starts_with("57P") || code == "53300";
    }
    // No SQLSTATE: an I/O error, a timeout, a protocol failure of the connection.
    err.code().is_none()
        && std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>())
}

fn i64_of(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::Storage(StorageError::new(format!(
            "{what} {value} is too large for the database"
        )))
    })
}

fn u64_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Backend for PgBackend {
    fn locality(&self) -> Locality {
        Locality::Networked
    }

    fn schema_version(&self) -> u32 {
        self.inner.schema_version
    }

    fn get_image(&self, id: ImageId) -> Result<Image> {
        const SQL: &str = concat!(
            "SELECT ",
            image_columns!(),
            " FROM images WHERE id = $1 AND status <> 'deleted'"
        );
        self.query(SQL, &[&id.as_uuid()], image_from_row)?
            .pop()
            .ok_or(Error::NotFound(id))
    }

    fn was_deleted(&self, id: ImageId) -> Result<bool> {
        // A deleted image stays a row with status `deleted` (its tombstone).
        let found = self.query(
            "SELECT 1 FROM images WHERE id = $1 AND status = 'deleted'",
            &[&id.as_uuid()],
            |_| Ok(()),
        )?;
        Ok(!found.is_empty())
    }

    fn list_images(&self, filter: &ListFilter) -> Result<Vec<Image>> {
        let mut session = self.inner.pool.get()?;
        list::list(&mut session, filter)
    }

    fn count_images(&self) -> Result<u64> {
        let counts = self.images_by_status()?;
        Ok(counts.iter().map(|(_, n)| n).sum())
    }

    fn images_by_status(&self) -> Result<Vec<(ImageStatus, u64)>> {
        let counted = self.query(
            "SELECT status, count(*) FROM images WHERE status <> 'deleted' GROUP BY status",
            &[],
            |row| {
                let status: String = row.get(0);
                let count: i64 = row.get(1);
                Ok((row::status(&status)?, u64_of(count)))
            },
        )?;
        Ok(ImageStatus::ALL
            .into_iter()
            .filter(|status| *status != ImageStatus::Deleted)
            .map(|status| {
                let count = counted
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                (status, count)
            })
            .collect())
    }

    fn usage(&self, project: &str) -> Result<Usage> {
        let mut session = self.inner.pool.get()?;
        write::usage(&mut *session, project, None)
    }

    fn upload_state(&self, id: ImageId) -> Result<Option<UploadState>> {
        let states = self.query(
            "SELECT upload_node, upload_started_at FROM images
             WHERE id = $1 AND status IN ('saving', 'uploading') AND upload_node IS NOT NULL",
            &[&id.as_uuid()],
            |row| {
                let node: String = row.get(0);
                let started: Option<i64> = row.get(1);
                Ok(UploadState {
                    node: node.parse().map_err(|_| {
                        Error::Corrupt(format!("image {id}: upload owner {node:?}"))
                    })?,
                    started_at: Timestamp::from_unix_micros(started.unwrap_or(0)),
                })
            },
        )?;
        Ok(states.into_iter().next())
    }

    fn create_image(&self, image: &Image, limits: &Limits) -> Result<()> {
        write::create(&self.inner.pool, image, limits)
    }

    fn update_image(&self, id: ImageId, edit: &mut Edit<'_>) -> Result<Image> {
        write::update(&self.inner.pool, id, edit)
    }

    fn update_image_to(&self, id: ImageId, to: ImageStatus, edit: &mut Edit<'_>) -> Result<Image> {
        write::update_to(&self.inner.pool, id, to, edit)
    }

    fn begin_upload(
        &self,
        id: ImageId,
        claim: &UploadClaim,
        limits: &Limits,
    ) -> Result<UploadStart> {
        write::begin_upload(&self.inner.pool, id, claim, limits)
    }

    fn complete_upload(
        &self,
        id: ImageId,
        outcome: UploadOutcome,
        limits: &Limits,
    ) -> Result<Image> {
        write::complete_upload(&self.inner.pool, id, outcome, limits)
    }

    fn abort_upload(&self, id: ImageId) -> Result<()> {
        write::abort_upload(&self.inner.pool, id)
    }

    fn set_status(&self, id: ImageId, to: ImageStatus) -> Result<Image> {
        write::set_status(&self.inner.pool, id, to)
    }

    fn delete_image(&self, id: ImageId) -> Result<Image> {
        write::delete(&self.inner.pool, id)
    }

    fn recover_interrupted(&self, node: &NodeId) -> Result<Vec<ImageId>> {
        write::recover_interrupted(&self.inner.pool, node)
    }

    fn adopt_image(&self, record: &Adoption, replace: bool) -> Result<Adopted> {
        write::adopt(&self.inner.pool, record, replace)
    }

    fn get_member(&self, id: ImageId, project: &str) -> Result<Option<Member>> {
        Ok(self
            .query(
                "SELECT image_id, member, status, created_at, updated_at FROM image_members
                 WHERE image_id = $1 AND member = $2",
                &[&id.as_uuid(), &project],
                row::member_from_row,
            )?
            .pop())
    }

    fn list_members(&self, id: ImageId) -> Result<Vec<Member>> {
        self.query(
            "SELECT image_id, member, status, created_at, updated_at FROM image_members
             WHERE image_id = $1 ORDER BY member",
            &[&id.as_uuid()],
            row::member_from_row,
        )
    }

    fn images_shared_with(&self, project: &str) -> Result<Vec<(ImageId, MemberStatus)>> {
        self.query(
            "SELECT image_id, status FROM image_members WHERE member = $1 ORDER BY image_id",
            &[&project],
            |row| {
                let id: uuid::Uuid = row.get(0);
                let status: String = row.get(1);
                Ok((ImageId::from_uuid(id), row::member_status(&status)?))
            },
        )
    }

    fn add_member(&self, id: ImageId, project: &str, max_members: Option<u64>) -> Result<Member> {
        write::add_member(&self.inner.pool, id, project, max_members)
    }

    fn update_member(&self, id: ImageId, project: &str, status: MemberStatus) -> Result<Member> {
        write::update_member(&self.inner.pool, id, project, status)
    }

    fn delete_member(&self, id: ImageId, project: &str) -> Result<()> {
        write::delete_member(&self.inner.pool, id, project)
    }

    fn watch_changes(&self) -> Result<Option<Box<dyn ChangeFeed>>> {
        let mut client = self
            .inner
            .options
            .config()?
            .connect(NoTls)
            .map_err(pool::connect_error)?;
        client
            .batch_execute(&format!("LISTEN {}", schema::CHANGES_CHANNEL))
            .map_err(pg_error)?;
        Ok(Some(Box::new(PgChangeFeed { client })))
    }
}

/// Status changes announced by every gateway, on a connection of its own that `LISTEN`s.
struct PgChangeFeed {
    client: postgres::Client,
}

impl ChangeFeed for PgChangeFeed {
    fn next(&mut self, timeout: Duration) -> Result<Option<ImageChange>> {
        let mut notifications = self.client.notifications();
        let mut waiting = notifications.timeout_iter(timeout);
        loop {
            let Some(note) = waiting.next().map_err(pg_error)? else {
                return Ok(None);
            };
            // `<id> <status>`; anything else on the channel is not ours.
            let parsed = note.payload().split_once(' ').and_then(|(id, status)| {
                Some(ImageChange {
                    id: id.parse().ok()?,
                    status: status.parse().ok()?,
                })
            });
            if let Some(change) = parsed {
                return Ok(Some(change));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redact_url("postgresql://glint:s3cret@db:5432/glint"),
            "postgresql://glint:***@db:5432/glint"
        );
        assert_eq!(
            redact_url("postgresql://glint@db/glint"),
            "postgresql://glint@db/glint"
        );
        let options = PgOptions {
            password: Some("hunter2".into()),
            ..PgOptions::new("postgresql://u:pw@h/d")
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains(":pw@"),
            "{shown}"
        );
    }
}
