//! The PostgreSQL layout and its versioned migrations.
//!
//! Tables (schema version 1; versions 2 and 3 below):
//!
//! | table                      | holds                                                        |
//! |----------------------------|--------------------------------------------------------------|
//! | `glint_schema_migrations`  | one row per applied migration: `version`, `description`, `applied_at` |
//! | `images`                   | one row per image, live or deleted (a tombstone keeps its id) |
//! | `image_members`            | `(image_id, member)` → status and times                      |
//!
//! `images` keeps a deleted image as a row with status `deleted` and its data fields cleared:
//! the primary key alone then keeps deleted ids taken, with no race between a delete and a
//! create of the same id. Every index is partial (`WHERE status <> 'deleted'`), so tombstones
//! cost listings nothing. `version` grows by one on every write of a row: writes are
//! compare-and-set `UPDATE … WHERE id = $1 AND version = $2` statements. The upload owner
//! (`upload_node`, `upload_started_at`) and its reservation (`upload_reserved_bytes`) are
//! columns of the image, set only while it is `saving` or `uploading`.
//!
//! Text columns use the `"C"` collation, so that text order is byte order, as in the redb
//! engine and the reference semantics (`sort.rs`). Sort indexes are on the same expressions
//! the listing orders by (`COALESCE(name, '')`, …) followed by `created_at, id`.
//!
//! A trigger announces every status change with `NOTIFY glint_image_changes, '<id> <status>'`
//! on commit: other gateways drop what they cache of the image (see `ChangeFeed`).
//!
//! Schema version 2 adds the metadata definitions: `metadef_namespaces`, `metadef_objects`,
//! `metadef_properties`, `metadef_associations` (one encoded record per row, the redb engine's
//! format), `metadef_tags`, `metadef_resource_types` and the sequence `metadef_seq` (creation
//! order); see `metadefs.rs`.
//!
//! Schema version 3 adds `tasks` (Glance's tasks, one row per task with a row `version` for
//! compare-and-set writes, its runner and lease in `runner_node`, `lease_until`), indexed by
//! image and by expiry; the import lock itself is the image's `os_glance_import_task`
//! property (see `tasks.rs`).
//!
//! Migrations run only when asked ([`sync`], `glint db sync` or the start-up option), each in
//! its own transaction, under an advisory lock so that gateways starting together do not race.
//! Adding a version: append a step to [`MIGRATIONS`]; never edit an applied one.

use postgres::Client;

use super::pg_error;
use crate::error::{Error, Result};

/// The schema version this build needs.
pub(crate) const CURRENT_VERSION: u32 = 3;

/// The channel status changes are announced on.
pub(crate) const CHANGES_CHANNEL: &str = "glint_image_changes";

/// Advisory lock key held while migrating ("glintmig" in ASCII).
const MIGRATION_LOCK: i64 = 0x676c_696e_746d_6967;

/// `(version, description, SQL)`: step `i` brings version `i` to `i + 1`.
const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "images, members, sort indexes, the status-change notification",
        r#"
CREATE TABLE images (
    id uuid PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0,
    status text COLLATE "C" NOT NULL,
    name text COLLATE "C",
    visibility text COLLATE "C" NOT NULL,
    protected boolean NOT NULL,
    os_hidden boolean NOT NULL,
    checksum text COLLATE "C",
    os_hash_algo text COLLATE "C",
    os_hash_value text COLLATE "C",
    owner text COLLATE "C",
    size bigint,
    virtual_size bigint,
    min_ram bigint NOT NULL,
    min_disk bigint NOT NULL,
    disk_format text COLLATE "C",
    container_format text COLLATE "C",
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    deleted_at bigint,
    tags text[] COLLATE "C" NOT NULL DEFAULT '{}',
    properties jsonb NOT NULL DEFAULT '{}',
    locations jsonb NOT NULL DEFAULT '[]',
    upload_node text COLLATE "C",
    upload_started_at bigint,
    upload_reserved_bytes bigint
);
CREATE INDEX images_by_created_at ON images (created_at, id) WHERE status <> 'deleted';
CREATE INDEX images_by_updated_at ON images (updated_at, created_at, id)
    WHERE status <> 'deleted';
CREATE INDEX images_by_name ON images ((COALESCE(name, '')), created_at, id)
    WHERE status <> 'deleted';
CREATE INDEX images_by_status ON images (status, created_at, id) WHERE status <> 'deleted';
CREATE INDEX images_by_disk_format ON images ((COALESCE(disk_format, '')), created_at, id)
    WHERE status <> 'deleted';
CREATE INDEX images_by_container_format
    ON images ((COALESCE(container_format, '')), created_at, id) WHERE status <> 'deleted';
CREATE INDEX images_by_size ON images ((COALESCE(size, 0)), created_at, id)
    WHERE status <> 'deleted';
CREATE INDEX images_by_owner ON images (owner) WHERE status <> 'deleted';
CREATE INDEX images_receiving ON images (upload_node)
    WHERE status IN ('saving', 'uploading');

CREATE TABLE image_members (
    image_id uuid NOT NULL REFERENCES images (id),
    member text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (image_id, member)
);
CREATE INDEX image_members_by_member ON image_members (member, image_id);

CREATE FUNCTION glint_image_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('glint_image_changes', NEW.id::text || ' ' || NEW.status);
    RETURN NULL;
END
$$;
CREATE TRIGGER images_status_changed AFTER UPDATE OF status ON images
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION glint_image_changed();
"#,
    ),
    (
        2,
        "metadata definitions (metadefs)",
        r#"
CREATE SEQUENCE metadef_seq MINVALUE 0 START WITH 0;
CREATE TABLE metadef_namespaces (
    name text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);
CREATE TABLE metadef_objects (
    namespace text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE metadef_properties (
    namespace text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE metadef_associations (
    namespace text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE metadef_tags (
    namespace text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE metadef_resource_types (
    name text COLLATE "C" PRIMARY KEY,
    seq bigint NOT NULL,
    protected boolean NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
"#,
    ),
    (
        3,
        "tasks and the import lease",
        r#"
CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0,
    kind text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    owner text COLLATE "C",
    image_id uuid,
    request_id text COLLATE "C",
    user_id text COLLATE "C",
    input text NOT NULL,
    result text,
    message text NOT NULL,
    expires_at bigint,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    runner_node text COLLATE "C",
    lease_until bigint
);
CREATE INDEX tasks_by_image ON tasks (image_id, created_at, id) WHERE image_id IS NOT NULL;
CREATE INDEX tasks_by_expiry ON tasks (expires_at) WHERE expires_at IS NOT NULL;
"#,
    ),
];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS glint_schema_migrations (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// The version the database records (0: never migrated).
pub(crate) fn recorded_version(client: &mut Client) -> Result<u32> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('glint_schema_migrations') IS NOT NULL",
            &[],
        )
        .map_err(pg_error)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM glint_schema_migrations", &[])
        .map_err(pg_error)?
        .get(0);
    Ok(version.map_or(0, |v| u32::try_from(v).unwrap_or(0)))
}

/// Checks that the database is at [`CURRENT_VERSION`].
pub(crate) fn check_current(client: &mut Client) -> Result<u32> {
    match recorded_version(client)? {
        found if found > CURRENT_VERSION => Err(Error::SchemaTooNew {
            found,
            supported: CURRENT_VERSION,
        }),
        found if found < CURRENT_VERSION => Err(Error::SchemaOutdated {
            found,
            required: CURRENT_VERSION,
        }),
        found => Ok(found),
    }
}

/// What [`PgBackend::sync`](crate::PgBackend::sync) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// The version found before.
    pub from: u32,
    /// The version now recorded.
    pub to: u32,
}

/// Brings the database to [`CURRENT_VERSION`]: applies every missing migration, each in one
/// transaction, holding an advisory lock meanwhile. Refuses a newer database.
pub(crate) fn sync(client: &mut Client) -> Result<SyncReport> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_error)?;
    let outcome = sync_locked(client);
    // The lock is the session's: released here, or when the connection closes.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    outcome
}

fn sync_locked(client: &mut Client) -> Result<SyncReport> {
    client
        .batch_execute(CREATE_MIGRATIONS_TABLE)
        .map_err(pg_error)?;
    let from = recorded_version(client)?;
    if from > CURRENT_VERSION {
        return Err(Error::SchemaTooNew {
            found: from,
            supported: CURRENT_VERSION,
        });
    }
    for &(version, description, sql) in MIGRATIONS.iter().filter(|(v, ..)| *v > from) {
        let mut txn = client.transaction().map_err(pg_error)?;
        txn.batch_execute(sql).map_err(pg_error)?;
        let version_column = i32::try_from(version).expect("migration versions are small");
        txn.execute(
            "INSERT INTO glint_schema_migrations (version, description) VALUES ($1, $2)",
            &[&version_column, &description],
        )
        .map_err(pg_error)?;
        txn.commit().map_err(pg_error)?;
    }
    Ok(SyncReport {
        from,
        to: CURRENT_VERSION,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, (version, description, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, i + 1);
            assert!(!description.is_empty() && !sql.trim().is_empty());
        }
        assert_eq!(MIGRATIONS.len(), CURRENT_VERSION as usize);
        assert!(MIGRATIONS[0].2.contains(CHANGES_CHANNEL));
    }
}
