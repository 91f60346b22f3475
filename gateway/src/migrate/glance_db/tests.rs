//! The reader against a SQLite database with Glance's schema (the tables and columns of
//! `glance/db/sqlalchemy/models.py` and `models_metadef.py`, as `glance-manage db sync`
//! creates them), filled by hand.

use std::path::Path;

use super::*;

/// Glance's tables, as SQLite holds them after `glance-manage db sync`.
pub(crate) const GLANCE_SCHEMA: &str = "
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('2024_1_expand01');
CREATE TABLE images (
    id VARCHAR(36) NOT NULL PRIMARY KEY, name VARCHAR(255), size INTEGER,
    status VARCHAR(30) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME,
    deleted_at DATETIME, deleted BOOLEAN NOT NULL, disk_format VARCHAR(20),
    container_format VARCHAR(20), checksum VARCHAR(32), owner VARCHAR(255),
    min_disk INTEGER NOT NULL, min_ram INTEGER NOT NULL, protected BOOLEAN DEFAULT 0 NOT NULL,
    virtual_size INTEGER,
    visibility VARCHAR(9) DEFAULT 'shared' NOT NULL,
    os_hidden BOOLEAN DEFAULT 0 NOT NULL, os_hash_algo VARCHAR(64), os_hash_value VARCHAR(128));
CREATE TABLE image_properties (
    id INTEGER NOT NULL PRIMARY KEY, image_id VARCHAR(36) NOT NULL, name VARCHAR(255) NOT NULL,
    value TEXT, created_at DATETIME NOT NULL, updated_at DATETIME, deleted_at DATETIME,
    deleted BOOLEAN NOT NULL);
CREATE TABLE image_tags (
    id INTEGER NOT NULL PRIMARY KEY, image_id VARCHAR(36) NOT NULL, value VARCHAR(255) NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME, deleted_at DATETIME,
    deleted BOOLEAN NOT NULL);
CREATE TABLE image_members (
    id INTEGER NOT NULL PRIMARY KEY, image_id VARCHAR(36) NOT NULL, member VARCHAR(255) NOT NULL,
    can_share BOOLEAN NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME,
    deleted_at DATETIME, deleted BOOLEAN NOT NULL,
    status VARCHAR(20) DEFAULT 'pending' NOT NULL);
CREATE TABLE image_locations (
    id INTEGER NOT NULL PRIMARY KEY, image_id VARCHAR(36) NOT NULL, value TEXT NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME, deleted_at DATETIME,
    deleted BOOLEAN NOT NULL, meta_data TEXT, status VARCHAR(30) DEFAULT 'active' NOT NULL);
CREATE TABLE metadef_namespaces (
    id INTEGER NOT NULL PRIMARY KEY, namespace VARCHAR(80) NOT NULL, display_name VARCHAR(80),
    description TEXT, visibility VARCHAR(32), protected BOOLEAN, owner VARCHAR(255) NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME);
CREATE TABLE metadef_objects (
    id INTEGER NOT NULL PRIMARY KEY, namespace_id INTEGER NOT NULL, name VARCHAR(80) NOT NULL,
    description TEXT, required TEXT, json_schema TEXT NOT NULL, created_at DATETIME NOT NULL,
    updated_at DATETIME);
CREATE TABLE metadef_properties (
    id INTEGER NOT NULL PRIMARY KEY, namespace_id INTEGER NOT NULL, name VARCHAR(80) NOT NULL,
    json_schema TEXT NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME);
CREATE TABLE metadef_resource_types (
    id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(80) NOT NULL, protected BOOLEAN NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME);
CREATE TABLE metadef_namespace_resource_types (
    resource_type_id INTEGER NOT NULL, namespace_id INTEGER NOT NULL,
    properties_target VARCHAR(80), prefix VARCHAR(80), created_at DATETIME NOT NULL,
    updated_at DATETIME, PRIMARY KEY (resource_type_id, namespace_id));
CREATE TABLE metadef_tags (
    id INTEGER NOT NULL PRIMARY KEY, namespace_id INTEGER NOT NULL, name VARCHAR(80) NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME);
";

pub(crate) const ACTIVE: &str = "0c4b6bd1-5a3c-4a4b-9e36-5cdb6e0b1f01";
pub(crate) const DELETED: &str = "0c4b6bd1-5a3c-4a4b-9e36-5cdb6e0b1f02";

/// A Glance database at `path` with Glance's schema and two images: an active, shared one with
/// a file location under `images_dir` (a property, a tag and a member each live and deleted),
/// and a deleted one.
pub(crate) fn glance_sqlite(path: &Path, images_dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(GLANCE_SCHEMA).unwrap();
    let location = format!("file://{}/{ACTIVE}", images_dir.display());
    conn.execute_batch(&format!(
        "INSERT INTO images VALUES ('{ACTIVE}', 'cirros', 11, 'active', \
           '2025-01-02 03:04:05.123456', '2025-01-02 03:05:00.000001', NULL, 0, 'raw', 'bare', \
           '5eb63bbbe01eeed093cb22bb8f5acdc3', 'p-owner', 1, 64, 1, 1024, 'shared', 1, \
           'sha512', '309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f');
         INSERT INTO images VALUES ('{DELETED}', 'gone', NULL, 'deleted', \
           '2024-06-01 00:00:00', '2024-06-02 00:00:00', '2024-06-02 00:00:00', 1, 'qcow2', \
           'bare', NULL, 'p-owner', 0, 0, 0, NULL, 'private', 0, NULL, NULL);
         INSERT INTO image_properties VALUES (1, '{ACTIVE}', 'os_distro', 'cirros', \
           '2025-01-02 03:04:05', NULL, NULL, 0);
         INSERT INTO image_properties VALUES (2, '{ACTIVE}', 'removed', 'x', \
           '2025-01-02 03:04:05', NULL, '2025-01-02 03:04:06', 1);
         INSERT INTO image_tags VALUES (1, '{ACTIVE}', 'web', '2025-01-02 03:04:05', NULL, NULL, 0);
         INSERT INTO image_tags VALUES (2, '{ACTIVE}', 'old', '2025-01-02 03:04:05', NULL, \
           '2025-01-02 03:04:06', 1);
         INSERT INTO image_members VALUES (1, '{ACTIVE}', 'p-member', 0, '2025-01-03 00:00:00', \
           '2025-01-04 00:00:00', NULL, 0, 'accepted');
         INSERT INTO image_members VALUES (2, '{ACTIVE}', 'p-gone', 0, '2025-01-03 00:00:00', \
           NULL, '2025-01-04 00:00:00', 1, 'pending');
         INSERT INTO image_locations VALUES (1, '{ACTIVE}', '{location}', '2025-01-02 03:05:00', \
           NULL, NULL, 0, '{{}}', 'active');
         INSERT INTO metadef_namespaces VALUES (1, 'OS::Compute::Example', 'Example', 'd', \
           'public', 0, 'admin', '2025-01-01 00:00:00', NULL);
         INSERT INTO metadef_properties VALUES (1, 1, 'hw_x', '{{\"type\": \"string\", \"title\": \"X\"}}', \
           '2025-01-01 00:00:00', NULL);
         INSERT INTO metadef_objects VALUES (1, 1, 'obj', 'an object', '[]', \
           '{{\"p\": {{\"type\": \"integer\", \"title\": \"P\"}}}}', '2025-01-01 00:00:00', NULL);
         INSERT INTO metadef_tags VALUES (1, 1, 'tag-a', '2025-01-01 00:00:00', NULL);
         INSERT INTO metadef_resource_types VALUES (1, 'OS::Glance::Image', 1, \
           '2025-01-01 00:00:00', NULL);
         INSERT INTO metadef_namespace_resource_types VALUES (1, 1, NULL, 'hw_', \
           '2025-01-01 00:00:00', NULL);"
    ))
    .unwrap();
    conn
}

#[test]
fn reads_images_with_their_live_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("glance.sqlite");
    glance_sqlite(&db, dir.path());
    let data = read(&DatabaseUrl::Sqlite { path: db }).unwrap();
    assert_eq!(data.schema_version.as_deref(), Some("2024_1_expand01"));
    assert_eq!(data.images.len(), 2);
    // Oldest first.
    let (deleted, active) = (&data.images[0], &data.images[1]);
    assert_eq!(deleted.id, DELETED);
    assert!(deleted.deleted);
    assert_eq!(active.id, ACTIVE);
    assert_eq!(active.size, Some(11));
    assert_eq!(active.virtual_size, Some(1024));
    assert_eq!((active.min_disk, active.min_ram), (1, 64));
    assert!(active.protected && active.os_hidden);
    assert_eq!(active.visibility, "shared");
    assert_eq!(
        active.created_at,
        Timestamp::from_unix_micros(1_735_787_045_123_456)
    );
    assert_eq!(active.properties.len(), 1);
    assert_eq!(active.properties["os_distro"], "cirros");
    assert_eq!(active.tags.iter().collect::<Vec<_>>(), ["web"]);
    assert_eq!(active.members.len(), 1);
    assert_eq!(active.members[0].member, "p-member");
    assert_eq!(active.members[0].status, "accepted");
    assert_eq!(active.locations.len(), 1);
    assert!(active.locations[0].url.ends_with(ACTIVE));
    let ns = &data.metadefs.namespaces[0];
    assert_eq!(ns.namespace, "OS::Compute::Example");
    assert_eq!(ns.properties["hw_x"]["type"], "string");
    assert_eq!(ns.objects[0].name, "obj");
    assert_eq!(ns.objects[0].properties["p"]["type"], "integer");
    assert_eq!(ns.tags[0].0, "tag-a");
    assert_eq!(
        ns.resource_types,
        [("OS::Glance::Image".to_owned(), Some("hw_".to_owned()), None)]
    );
}

#[test]
fn timestamps_as_sqlalchemy_and_mysql_write_them() {
    for (text, micros) in [
        ("1970-01-01 00:00:00", 0),
        ("1970-01-01 00:00:01.5", 1_500_000),
        ("2025-01-02T03:04:05.123456", 1_735_787_045_123_456),
        ("2025-01-02 03:04:05.1234567", 1_735_787_045_123_456),
    ] {
        assert_eq!(
            parse_timestamp(text).unwrap(),
            Timestamp::from_unix_micros(micros),
            "{text}"
        );
    }
    for bad in ["", "2025-13-01 00:00:00", "2025-01-01", "yesterday"] {
        assert!(parse_timestamp(bad).is_err(), "{bad}");
    }
}

#[test]
fn not_a_glance_database_or_too_old_is_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER);")
        .unwrap();
    let err = read(&DatabaseUrl::Sqlite { path: db.clone() }).unwrap_err();
    assert!(err.to_string().contains("not a Glance database"), "{err}");
    let old = dir.path().join("queens.sqlite");
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute_batch(
            "CREATE TABLE images (id VARCHAR(36), name VARCHAR(255), size INTEGER, \
             status VARCHAR(30), created_at DATETIME, deleted BOOLEAN);",
        )
        .unwrap();
    let err = read(&DatabaseUrl::Sqlite { path: old }).unwrap_err();
    assert!(err.to_string().contains("glance-manage db sync"), "{err}");
    let err = read(&DatabaseUrl::Sqlite {
        path: dir.path().join("missing.sqlite"),
    })
    .unwrap_err();
    assert!(err.to_string().contains("is not a file"), "{err}");
}
