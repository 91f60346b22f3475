//! Reading a Glance database: its images with their properties, tags, members and locations,
//! and its metadata definitions — every table as `glance/db/sqlalchemy/models.py` and
//! `models_metadef.py` define it (schema of Rocky or later: `os_hidden`, `os_hash_algo`).
//!
//! Read-only and consistent while Glance keeps running: SQLite is opened read-only and read
//! in one transaction (one snapshot); MySQL/MariaDB in one `START TRANSACTION WITH CONSISTENT
//! SNAPSHOT` (InnoDB). Blocking clients, no async runtime: this is an offline admin command.
//!
//! Glance soft-deletes rows (`deleted = 1`): deleted properties, tags, members and locations
//! are skipped; deleted images are kept (glint keeps their ids taken). Timestamps are UTC
//! without a zone, as Glance writes them.

use std::collections::{BTreeMap, BTreeSet};

use meta::Timestamp;

use super::url::DatabaseUrl;

/// Why the database could not be read. Messages never hold the connection's password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// Connecting or querying failed.
    #[error("Glance database {url}: {message}")]
    Query {
        /// The database (password redacted).
        url: String,
        /// What failed.
        message: String,
    },
    /// The schema is not one glint reads.
    #[error("Glance database {url}: {message}")]
    Schema {
        /// The database (password redacted).
        url: String,
        /// What is missing.
        message: String,
    },
}

/// One image row of Glance, with its live properties, tags, members and locations.
#[derive(Debug, Clone, PartialEq)]
pub struct GlanceImage {
    /// `images.id` (a UUID for every image Glance v2 made).
    pub id: String,
    /// `name`.
    pub name: Option<String>,
    /// `disk_format`.
    pub disk_format: Option<String>,
    /// `container_format`.
    pub container_format: Option<String>,
    /// `size`.
    pub size: Option<i64>,
    /// `virtual_size`.
    pub virtual_size: Option<i64>,
    /// `status`.
    pub status: String,
    /// `visibility`.
    pub visibility: String,
    /// `checksum` (md5).
    pub checksum: Option<String>,
    /// `os_hash_algo`.
    pub os_hash_algo: Option<String>,
    /// `os_hash_value`.
    pub os_hash_value: Option<String>,
    /// `min_disk`.
    pub min_disk: i64,
    /// `min_ram`.
    pub min_ram: i64,
    /// `owner`.
    pub owner: Option<String>,
    /// `protected`.
    pub protected: bool,
    /// `os_hidden`.
    pub os_hidden: bool,
    /// `created_at`.
    pub created_at: Timestamp,
    /// `updated_at` (nullable in Glance's schema).
    pub updated_at: Option<Timestamp>,
    /// `deleted_at`.
    pub deleted_at: Option<Timestamp>,
    /// `deleted`: soft-deleted (Glance answers 404 for it).
    pub deleted: bool,
    /// Live rows of `image_properties`.
    pub properties: BTreeMap<String, String>,
    /// Live rows of `image_tags`.
    pub tags: BTreeSet<String>,
    /// Live rows of `image_members`.
    pub members: Vec<GlanceMember>,
    /// Live rows of `image_locations`, in insertion order.
    pub locations: Vec<GlanceLocation>,
}

/// A live row of `image_members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlanceMember {
    /// `member`: the project.
    pub member: String,
    /// `status`: pending, accepted, rejected.
    pub status: String,
    /// `created_at`.
    pub created_at: Timestamp,
    /// `updated_at`.
    pub updated_at: Option<Timestamp>,
}

/// A live row of `image_locations`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlanceLocation {
    /// `value`: the URL (`file:///…`, `s3://…`, `http://…`).
    pub url: String,
    /// `meta_data`: a JSON object (`{"store": "fs"}` with multiple stores).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `status`: active, pending_delete, deleted.
    pub status: String,
}

/// The metadata definitions, as rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GlanceMetadefs {
    /// `metadef_namespaces` with their objects, properties, tags and resource types.
    pub namespaces: Vec<MetadefNamespaceRow>,
}

/// A namespace and everything in it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadefNamespaceRow {
    /// `namespace`.
    pub namespace: String,
    /// `display_name`.
    pub display_name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `visibility`.
    pub visibility: Option<String>,
    /// `protected`.
    pub protected: Option<bool>,
    /// `owner`.
    pub owner: String,
    /// `created_at`.
    pub created_at: Timestamp,
    /// `updated_at`.
    pub updated_at: Option<Timestamp>,
    /// `metadef_properties`: name → JSON schema.
    pub properties: BTreeMap<String, serde_json::Value>,
    /// `metadef_objects`.
    pub objects: Vec<MetadefObjectRow>,
    /// `metadef_tags`: names and times.
    pub tags: Vec<(String, Timestamp, Option<Timestamp>)>,
    /// `metadef_namespace_resource_types` joined with `metadef_resource_types`: name, prefix,
    /// properties_target.
    pub resource_types: Vec<(String, Option<String>, Option<String>)>,
}

/// A row of `metadef_objects`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadefObjectRow {
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `required`: a JSON list of property names.
    pub required: serde_json::Value,
    /// `json_schema`: the object's properties.
    pub properties: serde_json::Value,
    /// `created_at`.
    pub created_at: Timestamp,
    /// `updated_at`.
    pub updated_at: Option<Timestamp>,
}

/// Everything glint takes from a Glance database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GlanceData {
    /// `alembic_version.version_num`, when the table exists.
    pub schema_version: Option<String>,
    /// Every image row, deleted ones included, oldest first.
    pub images: Vec<GlanceImage>,
    /// The metadata definitions.
    pub metadefs: GlanceMetadefs,
}

/// A value of a result row, whichever client read it.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Cell {
    fn text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Int(n) => Some(n.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            Cell::Text(t) => Some(t.clone()),
        }
    }

    fn int(&self) -> Result<Option<i64>, String> {
        match self {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(*n)),
            Cell::Float(f) => Ok(Some(*f as i64)),
            Cell::Text(t) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| "an integer column holds text".to_owned()),
        }
    }

    fn boolean(&self) -> Result<Option<bool>, String> {
        Ok(self.int()?.map(|n| n != 0))
    }

    fn time(&self) -> Result<Option<Timestamp>, String> {
        match self {
            Cell::Null => Ok(None),
            Cell::Text(t) => parse_timestamp(t).map(Some),
            _ => Err("a date column holds a number".to_owned()),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with `T`), UTC, as SQLAlchemy and MySQL write it.
pub(crate) fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    let bad = || "a date column holds something else than a date".to_owned();
    let text = text.trim();
    let (date, time) = text.split_once([' ', 'T']).ok_or_else(bad)?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) = (d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    let time = time.trim_end_matches('Z');
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>());
    let (Some(Ok(hour)), Some(Ok(minute)), Some(Ok(second))) = (t.next(), t.next(), t.next())
    else {
        return Err(bad());
    };
    let micros = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().take(6).collect();
        let scale = 10i64.pow(6 - digits.len() as u32);
        digits.parse::<i64>().map_err(|_| bad())? * scale
    };
    let month = u8::try_from(month).map_err(|_| bad())?;
    let month = time::Month::try_from(month).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(
        i32::try_from(year).map_err(|_| bad())?,
        month,
        u8::try_from(day).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let clock = time::Time::from_hms(
        u8::try_from(hour).map_err(|_| bad())?,
        u8::try_from(minute).map_err(|_| bad())?,
        u8::try_from(second).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let seconds = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    Ok(Timestamp::from_unix_micros(seconds * 1_000_000 + micros))
}

/// A connection, read inside one snapshot.
enum Connection {
    Sqlite(rusqlite::Connection),
    Mysql(Box<mysql::Conn>),
}

impl Connection {
    fn open(url: &DatabaseUrl) -> Result<Connection, String> {
        match url {
            DatabaseUrl::Sqlite { path } => {
                if !path.is_file() {
                    return Err(format!("{} is not a file", path.display()));
                }
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = rusqlite::Connection::open_with_flags(path, flags)
                    .map_err(|e| e.to_string())?;
                conn.busy_timeout(std::time::Duration::from_secs(30))
                    .map_err(|e| e.to_string())?;
                // One read transaction: every query sees the same snapshot.
                conn.execute_batch("BEGIN").map_err(|e| e.to_string())?;
                Ok(Connection::Sqlite(conn))
            }
            DatabaseUrl::Mysql {
                user,
                password,
                host,
                port,
                database,
                socket,
            } => {
                let mut opts = mysql::OptsBuilder::new()
                    .user(Some(user.as_str()))
                    .db_name(Some(database.as_str()))
                    .ip_or_hostname(Some(host.as_str()))
                    .tcp_port(*port)
                    .prefer_socket(false)
                    .socket(socket.as_ref().map(|s| s.display().to_string()));
                if !password.is_empty() {
                    opts = opts.pass(Some(password.expose()));
                }
                let mut conn = mysql::Conn::new(opts).map_err(|e| e.to_string())?;
                use mysql::prelude::Queryable;
                conn.query_drop("SET NAMES utf8mb4")
                    .and_then(|()| conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT"))
                    .map_err(|e| e.to_string())?;
                Ok(Connection::Mysql(Box::new(conn)))
            }
        }
    }

    fn query(&mut self, sql: &str) -> Result<Vec<Vec<Cell>>, String> {
        match self {
            Connection::Sqlite(conn) => {
                let mut statement = conn.prepare(sql).map_err(|e| e.to_string())?;
                let columns = statement.column_count();
                let mut rows = statement.query([]).map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(|e| e.to_string())? {
                    let mut cells = Vec::with_capacity(columns);
                    for i in 0..columns {
                        use rusqlite::types::ValueRef;
                        let value = row.get_ref(i).map_err(|e| e.to_string())?;
                        cells.push(match value {
                            ValueRef::Null => Cell::Null,
                            ValueRef::Integer(n) => Cell::Int(n),
                            ValueRef::Real(f) => Cell::Float(f),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                Cell::Text(String::from_utf8_lossy(t).into_owned())
                            }
                        });
                    }
                    out.push(cells);
                }
                Ok(out)
            }
            Connection::Mysql(conn) => {
                use mysql::prelude::Queryable;
                let rows: Vec<mysql::Row> = conn.query(sql).map_err(|e| e.to_string())?;
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        row.unwrap()
                            .into_iter()
                            .map(|value| match value {
                                mysql::Value::NULL => Cell::Null,
                                mysql::Value::Int(n) => Cell::Int(n),
                                mysql::Value::UInt(n) => Cell::Int(n as i64),
                                mysql::Value::Float(f) => Cell::Float(f64::from(f)),
                                mysql::Value::Double(f) => Cell::Float(f),
                                mysql::Value::Bytes(b) => {
                                    Cell::Text(String::from_utf8_lossy(&b).into_owned())
                                }
                                mysql::Value::Date(y, mo, d, h, mi, s, us) => Cell::Text(format!(
                                    "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
                                )),
                                other => Cell::Text(other.as_sql(true)),
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }

    fn has_table(&mut self, table: &str) -> Result<bool, String> {
        let sql = match self {
            Connection::Sqlite(_) => {
                format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{table}'")
            }
            Connection::Mysql(_) => format!(
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ),
        };
        Ok(!self.query(&sql)?.is_empty())
    }
}

/// Reads every image (with properties, tags, members, locations) and every metadata
/// definition of the Glance database at `url`.
pub fn read(url: &DatabaseUrl) -> Result<GlanceData, DbError> {
    let shown = url.to_string();
    let query_error = |message: String| DbError::Query {
        url: shown.clone(),
        message,
    };
    let mut conn = Connection::open(url).map_err(query_error)?;
    if !conn.has_table("images").map_err(query_error)? {
        return Err(DbError::Schema {
            url: shown,
            message: "no `images` table: not a Glance database (or `glance-manage db sync` \
                      never ran)"
                .into(),
        });
    }
    let schema_version = if conn.has_table("alembic_version").map_err(query_error)? {
        conn.query("SELECT version_num FROM alembic_version")
            .map_err(query_error)?
            .first()
            .and_then(|row| row.first())
            .and_then(Cell::text)
    } else {
        None
    };
    let images = read_images(&mut conn).map_err(|message| {
        if message.contains("no such column") || message.contains("Unknown column") {
            DbError::Schema {
                url: shown.clone(),
                message: format!(
                    "{message}: the schema predates Glance Rocky; upgrade it with \
                     `glance-manage db sync` first"
                ),
            }
        } else {
            query_error(message)
        }
    })?;
    let metadefs = if conn.has_table("metadef_namespaces").map_err(query_error)? {
        read_metadefs(&mut conn).map_err(query_error)?
    } else {
        GlanceMetadefs::default()
    };
    Ok(GlanceData {
        schema_version,
        images,
        metadefs,
    })
}

fn read_images(conn: &mut Connection) -> Result<Vec<GlanceImage>, String> {
    let rows = conn.query(
        "SELECT id, name, disk_format, container_format, size, virtual_size, status, \
         visibility, checksum, os_hash_algo, os_hash_value, min_disk, min_ram, owner, \
         protected, os_hidden, created_at, updated_at, deleted_at, deleted \
         FROM images ORDER BY created_at, id",
    )?;
    let mut images = Vec::with_capacity(rows.len());
    let mut by_id = BTreeMap::new();
    for row in rows {
        let id = row[0].text().ok_or("an image without an id")?;
        let image = GlanceImage {
            name: row[1].text(),
            disk_format: row[2].text(),
            container_format: row[3].text(),
            size: row[4].int()?,
            virtual_size: row[5].int()?,
            status: row[6].text().unwrap_or_default(),
            visibility: row[7].text().unwrap_or_else(|| "shared".into()),
            checksum: row[8].text(),
            os_hash_algo: row[9].text(),
            os_hash_value: row[10].text(),
            min_disk: row[11].int()?.unwrap_or(0),
            min_ram: row[12].int()?.unwrap_or(0),
            owner: row[13].text(),
            protected: row[14].boolean()?.unwrap_or(false),
            os_hidden: row[15].boolean()?.unwrap_or(false),
            created_at: row[16].time()?.ok_or("an image without created_at")?,
            updated_at: row[17].time()?,
            deleted_at: row[18].time()?,
            deleted: row[19].boolean()?.unwrap_or(false),
            properties: BTreeMap::new(),
            tags: BTreeSet::new(),
            members: Vec::new(),
            locations: Vec::new(),
            id: id.clone(),
        };
        by_id.insert(id, images.len());
        images.push(image);
    }
    let index = |id: Option<String>| id.and_then(|id| by_id.get(&id).copied());
    for row in conn
        .query("SELECT image_id, name, value FROM image_properties WHERE deleted = 0 ORDER BY id")?
    {
        if let (Some(i), Some(name)) = (index(row[0].text()), row[1].text()) {
            images[i]
                .properties
                .insert(name, row[2].text().unwrap_or_default());
        }
    }
    for row in conn.query("SELECT image_id, value FROM image_tags WHERE deleted = 0 ORDER BY id")? {
        if let (Some(i), Some(tag)) = (index(row[0].text()), row[1].text()) {
            images[i].tags.insert(tag);
        }
    }
    for row in conn.query(
        "SELECT image_id, member, status, created_at, updated_at FROM image_members \
         WHERE deleted = 0 ORDER BY id",
    )? {
        if let (Some(i), Some(member)) = (index(row[0].text()), row[1].text()) {
            images[i].members.push(GlanceMember {
                member,
                status: row[2].text().unwrap_or_else(|| "pending".into()),
                created_at: row[3].time()?.ok_or("a member without created_at")?,
                updated_at: row[4].time()?,
            });
        }
    }
    for row in conn.query(
        "SELECT image_id, value, meta_data, status FROM image_locations \
         WHERE deleted = 0 ORDER BY id",
    )? {
        if let (Some(i), Some(url)) = (index(row[0].text()), row[1].text()) {
            let metadata = match row[2].text() {
                Some(text) if !text.trim().is_empty() => {
                    match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(serde_json::Value::Object(map)) => map,
                        _ => serde_json::Map::new(),
                    }
                }
                _ => serde_json::Map::new(),
            };
            images[i].locations.push(GlanceLocation {
                url,
                metadata,
                status: row[3].text().unwrap_or_else(|| "active".into()),
            });
        }
    }
    Ok(images)
}

fn json(cell: &Cell) -> serde_json::Value {
    cell.text()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn read_metadefs(conn: &mut Connection) -> Result<GlanceMetadefs, String> {
    let mut namespaces = Vec::new();
    let mut by_id = BTreeMap::new();
    for row in conn.query(
        "SELECT id, namespace, display_name, description, visibility, protected, owner, \
         created_at, updated_at FROM metadef_namespaces ORDER BY id",
    )? {
        let id = row[0].int()?.ok_or("a namespace without an id")?;
        by_id.insert(id, namespaces.len());
        namespaces.push(MetadefNamespaceRow {
            namespace: row[1].text().unwrap_or_default(),
            display_name: row[2].text(),
            description: row[3].text(),
            visibility: row[4].text(),
            protected: row[5].boolean()?,
            owner: row[6].text().unwrap_or_default(),
            created_at: row[7].time()?.ok_or("a namespace without created_at")?,
            updated_at: row[8].time()?,
            properties: BTreeMap::new(),
            objects: Vec::new(),
            tags: Vec::new(),
            resource_types: Vec::new(),
        });
    }
    let index = |cell: &Cell| -> Result<Option<usize>, String> {
        Ok(cell.int()?.and_then(|id| by_id.get(&id).copied()))
    };
    let found = |sql: &str, conn: &mut Connection| conn.query(sql);
    for row in found(
        "SELECT namespace_id, name, json_schema FROM metadef_properties ORDER BY id",
        conn,
    )? {
        if let (Some(i), Some(name)) = (index(&row[0])?, row[1].text()) {
            namespaces[i].properties.insert(name, json(&row[2]));
        }
    }
    for row in found(
        "SELECT namespace_id, name, description, required, json_schema, created_at, \
         updated_at FROM metadef_objects ORDER BY id",
        conn,
    )? {
        if let (Some(i), Some(name)) = (index(&row[0])?, row[1].text()) {
            namespaces[i].objects.push(MetadefObjectRow {
                name,
                description: row[2].text(),
                required: json(&row[3]),
                properties: json(&row[4]),
                created_at: row[5].time()?.ok_or("an object without created_at")?,
                updated_at: row[6].time()?,
            });
        }
    }
    for row in found(
        "SELECT namespace_id, name, created_at, updated_at FROM metadef_tags ORDER BY id",
        conn,
    )? {
        if let (Some(i), Some(name)) = (index(&row[0])?, row[1].text()) {
            let created = row[2].time()?.ok_or("a tag without created_at")?;
            namespaces[i].tags.push((name, created, row[3].time()?));
        }
    }
    for row in found(
        "SELECT a.namespace_id, r.name, a.prefix, a.properties_target \
         FROM metadef_namespace_resource_types a \
         JOIN metadef_resource_types r ON r.id = a.resource_type_id \
         ORDER BY a.namespace_id, r.name",
        conn,
    )? {
        if let (Some(i), Some(name)) = (index(&row[0])?, row[1].text()) {
            namespaces[i]
                .resource_types
                .push((name, row[2].text(), row[3].text()));
        }
    }
    Ok(GlanceMetadefs { namespaces })
}

#[cfg(test)]
pub(crate) mod tests;
