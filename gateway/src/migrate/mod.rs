//! `glint migrate-from-glance`: a Glance deployment's images, members, locations and metadata
//! definitions into glint's metadata, with the image data adopted where it lies or copied into a glint store.
//!
//! 1. `glance_db` reads Glance's database in one consistent snapshot, read-only (Glance may
//!    keep serving meanwhile, as long as nothing changes images).
//! 2. [`plan`] turns each Glance image into a [`meta::Adoption`]: the same id, status,
//!    checksums, sizes, properties, tags, visibility, protection, owner, timestamps, members
//!    and locations. A deleted image becomes a tombstone, so its id stays taken.
//! 3. The data: a location in glint's file store folder is adopted in place; with
//!    `--copy-to file` the bytes are copied there (hashed on the way and checked against
//!    Glance's size, `checksum` and `os_hash_value`); `--verify` re-reads every image's data
//!    and checks the same. A location glint cannot read fails that image, and only that one.
//! 4. [`meta::Backend::adopt_image`] writes each image and its members in one transaction.
//! 5. The metadata definitions become the documents of Glance's definition files (owner,
//!    visibility, protection and times kept) and load as `glint metadefs load --merge` would
//!    load them, in one transaction.
//!
//! Idempotent and resumable: data already copied is not copied again, and a record already
//! adopted is `unchanged`; an interrupted run is simply run again. A record that differs from
//! what glint holds (changed in glint, or in Glance since) is reported and left alone unless
//! `--overwrite`. `--dry-run` prints the plan and writes nothing.
//!
//! It opens glint's metadata database itself: glint must not be serving from the same data
//! folder meanwhile (the database refuses a second opener).

mod glance_db;
mod url;

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use meta::{
    Adopted, Adoption, Backend, Image, ImageId, ImageStatus, Location, Member, MemberStatus,
    Visibility,
};

pub use glance_db::{DbError, GlanceData, GlanceImage, GlanceLocation, MetadefNamespaceRow};
pub use url::DatabaseUrl;

use crate::config::{Config, Secret};
use crate::datapath::checksum;
use crate::handlers::metadefs::json::{self as metadef_json, export_timestamp, Source};
use crate::metadefs_admin::DEFAULT_OWNER;
use crate::store::fs::{FsStore, STORE_NAME};

/// What the command was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Glance's database URL (`--database`, else `[database] connection`).
    pub database: Secret,
    /// Copy the data into this glint store instead of adopting it in place.
    pub copy_to: Option<String>,
    /// Re-read every image's data and check its size, md5 and `os_hash_value`.
    pub verify: bool,
    /// Print the plan, write nothing.
    pub dry_run: bool,
    /// Replace records that differ from what glint holds.
    pub overwrite: bool,
}

/// Why the migration could not run at all (one image's failure is reported, not raised).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The database URL is not one glint reads.
    #[error("Glance database URL: {0}")]
    Url(String),
    /// Glance's database could not be read.
    #[error(transparent)]
    Db(#[from] DbError),
    /// glint's metadata database could not be opened or written.
    #[error("glint metadata ({path}): {source}")]
    Meta {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: meta::Error,
    },
    /// glint's metadata database is open in another process (a glint serving from this
    /// data folder).
    #[error("glint metadata {0} is open in another process: stop the glint serving from this data folder first")]
    InUse(PathBuf),
    /// A store named by `--copy-to` that glint does not have.
    #[error("--copy-to {0}: glint has no such store (its store is `{STORE_NAME}`)")]
    UnknownStore(String),
    /// Local I/O (the data folder, the output).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> MigrateError {
    let what = what.into();
    move |source| MigrateError::Io { what, source }
}

/// How the migration went, image by image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Images Glance holds (deleted ones included).
    pub images: usize,
    /// Records written for the first time.
    pub created: usize,
    /// Records glint already held as they are.
    pub unchanged: usize,
    /// Records replaced (`--overwrite`).
    pub replaced: usize,
    /// Of all these, the deleted images (tombstones).
    pub deleted: usize,
    /// Images whose data was copied.
    pub copied: usize,
    /// Images whose data was read again and matched (`--verify`).
    pub verified: usize,
    /// Images that could not be migrated (each reported on its own line), and metadefs when
    /// they could not be loaded (counted as one).
    pub failed: usize,
    /// Metadef namespaces created, updated and left as they were.
    pub namespaces: (usize, usize, usize),
}

/// What to do with one image's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataPlan {
    /// No data (queued, or deleted).
    None,
    /// The file is in glint's file store already: adopted where it lies.
    InPlace(PathBuf),
    /// The file is elsewhere: copied into glint's file store.
    Copy {
        /// Where it is.
        from: PathBuf,
        /// Where it goes.
        to: PathBuf,
    },
}

/// One image's migration.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The record to adopt.
    pub record: Adoption,
    /// Its data.
    pub data: DataPlan,
    /// What was changed on the way (e.g. an upload in progress becoming `queued`).
    pub notes: Vec<String>,
}

/// Why an image cannot be migrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// Glance's location status whose data is live.
const LIVE_LOCATION: &str = "active";

fn parse_member_status(text: &str) -> MemberStatus {
    text.parse().unwrap_or(MemberStatus::Pending)
}

fn non_negative(n: Option<i64>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}

/// The plan for one Glance image. `store_dir` is glint's file store folder (canonical);
/// `copy` whether `--copy-to` asks for the data to be copied there.
pub fn plan(image: &GlanceImage, store_dir: &Path, copy: bool) -> Result<Step, Refusal> {
    let id: ImageId = image.id.parse().map_err(|_| {
        Refusal(format!(
            "id {:?} is not a UUID, which glint's ids are",
            image.id
        ))
    })?;
    let mut notes = Vec::new();
    if image.deleted || image.status == "deleted" {
        let deleted_at = image
            .deleted_at
            .or(image.updated_at)
            .unwrap_or(image.created_at);
        return Ok(Step {
            record: Adoption::Deleted { id, deleted_at },
            data: DataPlan::None,
            notes,
        });
    }
    let mut status: ImageStatus = image
        .status
        .parse()
        .map_err(|_| Refusal(format!("unknown status {:?}", image.status)))?;
    let visibility: Visibility = image
        .visibility
        .parse()
        .map_err(|_| Refusal(format!("unknown visibility {:?}", image.visibility)))?;
    let mut record = Image::new(id, image.created_at);
    record.updated_at = image.updated_at.unwrap_or(image.created_at);
    record.name = image.name.clone();
    record.visibility = visibility;
    record.protected = image.protected;
    record.os_hidden = image.os_hidden;
    record.checksum = image.checksum.clone();
    record.os_hash_algo = image.os_hash_algo.clone();
    record.os_hash_value = image.os_hash_value.clone();
    record.owner = image.owner.clone();
    record.size = non_negative(image.size);
    record.virtual_size = non_negative(image.virtual_size);
    record.min_ram = non_negative(Some(image.min_ram)).unwrap_or(0);
    record.min_disk = non_negative(Some(image.min_disk)).unwrap_or(0);
    record.disk_format = image.disk_format.clone();
    record.container_format = image.container_format.clone();
    record.tags = image.tags.clone();
    record.properties = image.properties.clone();
    if matches!(status, ImageStatus::Saving | ImageStatus::Uploading) {
        // The upload runs in a Glance process: it cannot finish in glint.
        notes.push(format!(
            "was {status} in Glance (an upload in progress there): adopted as queued"
        ));
        status = ImageStatus::Queued;
        record.size = None;
        record.virtual_size = None;
        record.checksum = None;
        record.os_hash_algo = None;
        record.os_hash_value = None;
    }
    record.status = status;
    let mut data = DataPlan::None;
    if status != ImageStatus::Queued {
        let live = image.locations.iter().filter(|l| l.status == LIVE_LOCATION);
        let live_count = live.clone().count();
        if let Some(location) = live.into_iter().next() {
            let Some(path) = location.url.strip_prefix("file://") else {
                return Err(Refusal(format!(
                    "its data is at {}, and glint reads only file locations",
                    scheme_of(&location.url)
                )));
            };
            let from = PathBuf::from(path);
            let in_store = from
                .parent()
                .and_then(|p| p.canonicalize().ok())
                .is_some_and(|p| p == store_dir);
            let target = if in_store {
                data = DataPlan::InPlace(from.clone());
                store_dir.join(from.file_name().unwrap_or_default())
            } else if copy {
                let to = store_dir.join(id.to_string());
                data = DataPlan::Copy {
                    from,
                    to: to.clone(),
                };
                to
            } else {
                return Err(Refusal(format!(
                    "its file {path} is outside glint's file store ({}): serve glint with its \
                     store there, or give --copy-to {STORE_NAME}",
                    store_dir.display()
                )));
            };
            record.locations.push(Location {
                url: format!("file://{}", target.display()),
                store: STORE_NAME.to_owned(),
            });
            // glint serves an image's first location; Glance's others are copies of it.
            if live_count > 1 {
                notes.push(format!(
                    "{live_count} locations in Glance: glint keeps the first"
                ));
            }
        }
    }
    let members = image
        .members
        .iter()
        .map(|m| Member {
            image_id: id,
            member_id: m.member.clone(),
            status: parse_member_status(&m.status),
            created_at: m.created_at,
            updated_at: m.updated_at.unwrap_or(m.created_at),
        })
        .collect();
    Ok(Step {
        record: Adoption::Live {
            image: Box::new(record),
            members,
        },
        data,
        notes,
    })
}

fn scheme_of(url: &str) -> &str {
    url.split_once("://").map_or("an unknown place", |(s, _)| s)
}

/// Bytes, md5 and `algorithm` digest of a file, read in 1 MiB pieces.
fn hash_file(
    path: &Path,
    algorithm: &str,
    mut copy_to: Option<&mut fs::File>,
) -> io::Result<(u64, String, Option<String>)> {
    let mut file = fs::File::open(path)?;
    let mut md5 = checksum::digest("md5").expect("md5 is always available");
    let mut other = checksum::digest(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        md5.update(&buf[..n]);
        if let Some(other) = other.as_mut() {
            other.update(&buf[..n]);
        }
        if let Some(out) = copy_to.as_mut() {
            out.write_all(&buf[..n])?;
        }
    }
    Ok((size, md5.finish_hex(), other.map(|d| d.finish_hex())))
}

/// Checks data read from `path` against the record's size, `checksum` and `os_hash_value`.
fn check_data(
    image: &Image,
    (size, md5, other): &(u64, String, Option<String>),
) -> Result<(), String> {
    if let Some(expected) = image.size {
        if expected != *size {
            return Err(format!("size is {size} bytes, Glance says {expected}"));
        }
    }
    if let Some(expected) = &image.checksum {
        if !expected.eq_ignore_ascii_case(md5) {
            return Err(format!("md5 is {md5}, Glance says {expected}"));
        }
    }
    if let (Some(expected), Some(actual)) = (&image.os_hash_value, other) {
        if !expected.eq_ignore_ascii_case(actual) {
            return Err(format!(
                "{} differs from Glance's os_hash_value",
                image.os_hash_algo.as_deref().unwrap_or("os_hash")
            ));
        }
    }
    Ok(())
}

/// Copies `from` to `to` through `<to>.part` (hashed on the way and checked, fdatasync'ed,
/// renamed, folder fsync'ed), unless `to` already holds the whole image.
fn copy_data(image: &Image, from: &Path, to: &Path) -> Result<bool, String> {
    let algo = image.os_hash_algo.as_deref().unwrap_or("sha512");
    if let (Ok(meta), Some(size)) = (fs::metadata(to), image.size) {
        if meta.len() == size {
            return Ok(false);
        }
    }
    let part = to.with_extension("part");
    let result = (|| {
        let mut out = fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
        let hashed = hash_file(from, algo, Some(&mut out))
            .map_err(|e| format!("copying {}: {e}", from.display()))?;
        check_data(image, &hashed)?;
        out.sync_data()
            .map_err(|e| format!("{}: {e}", part.display()))?;
        fs::rename(&part, to).map_err(|e| format!("{}: {e}", to.display()))?;
        if let Some(dir) = to.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(true)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    result
}

fn describe(record: &Adoption) -> String {
    match record {
        Adoption::Deleted { id, .. } => format!("{id} deleted"),
        Adoption::Live { image, members } => {
            let mut text = format!(
                "{} {} {:?}",
                image.id,
                image.status,
                image.name.as_deref().unwrap_or("")
            );
            if !members.is_empty() {
                text.push_str(&format!(", {} member(s)", members.len()));
            }
            text
        }
    }
}

/// Runs the migration of the Glance database `options.database` into glint as `config`
/// describes it, writing one line per image and a summary to `out`.
pub fn run(
    config: &Config,
    options: &Options,
    out: &mut dyn Write,
) -> Result<Summary, MigrateError> {
    let url = DatabaseUrl::parse(options.database.expose()).map_err(MigrateError::Url)?;
    if let Some(store) = &options.copy_to {
        if store != STORE_NAME {
            return Err(MigrateError::UnknownStore(store.clone()));
        }
    }
    let data = glance_db::read(&url)?;
    let say = |out: &mut dyn Write, line: String| -> Result<(), MigrateError> {
        writeln!(out, "{line}").map_err(io_error("writing the report"))
    };
    say(
        out,
        format!(
            "Glance database {url} (schema {}): {} images, {} metadef namespaces",
            data.schema_version.as_deref().unwrap_or("unknown"),
            data.images.len(),
            data.metadefs.namespaces.len()
        ),
    )?;
    fs::create_dir_all(&config.data_dir)
        .map_err(io_error(format!("create {}", config.data_dir.display())))?;
    let store = if options.dry_run && !config.images_dir().exists() {
        None
    } else {
        Some(FsStore::open(&config.images_dir()).map_err(io_error("open glint's file store"))?)
    };
    let store_dir = store
        .as_ref()
        .and_then(|s| s.image_path(ImageId::new_v4()).parent().map(Path::to_owned))
        .unwrap_or_else(|| config.images_dir());
    let backend: Option<Box<dyn meta::Backend>> = if options.dry_run {
        None
    } else if let Some(database) = &config.database {
        // Several gateways share this database: they may keep serving meanwhile.
        let backend = meta::PgBackend::connect(&database.pg_options()).map_err(|source| {
            MigrateError::Meta {
                path: PathBuf::from(meta::redact_url(&database.connection)),
                source,
            }
        })?;
        Some(Box::new(backend))
    } else {
        Some(Box::new(
            meta::RedbBackend::open(&config.meta_path()).map_err(|source| match source {
                meta::Error::AlreadyOpen => MigrateError::InUse(config.meta_path()),
                source => MigrateError::Meta {
                    path: config.meta_path(),
                    source,
                },
            })?,
        ))
    };
    let mut summary = Summary {
        images: data.images.len(),
        ..Summary::default()
    };
    for image in &data.images {
        let step = match plan(image, &store_dir, options.copy_to.is_some()) {
            Ok(step) => step,
            Err(Refusal(why)) => {
                summary.failed += 1;
                say(out, format!("FAILED {}: {why}", image.id))?;
                continue;
            }
        };
        let what = describe(&step.record);
        for note in &step.notes {
            say(out, format!("  note {}: {note}", image.id))?;
        }
        let Some(backend) = &backend else {
            let data = match &step.data {
                DataPlan::None => String::new(),
                DataPlan::InPlace(path) => format!(", data in place at {}", path.display()),
                DataPlan::Copy { from, to } => {
                    format!(", data copied {} -> {}", from.display(), to.display())
                }
            };
            say(out, format!("would adopt {what}{data}"))?;
            continue;
        };
        match migrate_one(backend.as_ref(), &step, options) {
            Ok((adopted, copied, verified)) => {
                summary.copied += usize::from(copied);
                summary.verified += usize::from(verified);
                if matches!(step.record, Adoption::Deleted { .. }) {
                    summary.deleted += 1;
                }
                let verb = match adopted {
                    Adopted::Created => {
                        summary.created += 1;
                        "adopted"
                    }
                    Adopted::Unchanged => {
                        summary.unchanged += 1;
                        "unchanged"
                    }
                    Adopted::Replaced => {
                        summary.replaced += 1;
                        "replaced"
                    }
                };
                let mut line = format!("{verb} {what}");
                if copied {
                    line.push_str(", data copied");
                }
                if verified {
                    line.push_str(", data verified");
                }
                say(out, line)?;
            }
            Err(why) => {
                summary.failed += 1;
                say(out, format!("FAILED {}: {why}", image.id))?;
            }
        }
    }
    migrate_metadefs(
        backend.as_deref(),
        &data.metadefs.namespaces,
        options.overwrite,
        out,
        &mut summary,
    )?;
    say(
        out,
        format!(
            "{} images: {} adopted, {} unchanged, {} replaced ({} of them deleted ids), {} \
             copied, {} verified, {} failed",
            summary.images,
            summary.created,
            summary.unchanged,
            summary.replaced,
            summary.deleted,
            summary.copied,
            summary.verified,
            summary.failed
        ),
    )?;
    Ok(summary)
}

/// A namespace of Glance's database as the JSON document of Glance's definition files (what
/// `glance-manage db export_metadefs` writes), with its owner and times.
pub fn namespace_json(row: &MetadefNamespaceRow) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut doc = Map::new();
    doc.insert("namespace".into(), json!(row.namespace));
    let mut optional = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            doc.insert(key.into(), value);
        }
    };
    optional("display_name", row.display_name.clone().map(Value::from));
    optional("description", row.description.clone().map(Value::from));
    optional("visibility", row.visibility.clone().map(Value::from));
    optional("protected", row.protected.map(Value::from));
    doc.insert("owner".into(), json!(row.owner));
    doc.insert("created_at".into(), json!(export_timestamp(row.created_at)));
    let updated = row.updated_at.unwrap_or(row.created_at);
    doc.insert("updated_at".into(), json!(export_timestamp(updated)));
    let associations: Vec<Value> = row
        .resource_types
        .iter()
        .map(|(name, prefix, target)| {
            let mut a = Map::new();
            a.insert("name".into(), json!(name));
            if let Some(prefix) = prefix {
                a.insert("prefix".into(), json!(prefix));
            }
            if let Some(target) = target {
                a.insert("properties_target".into(), json!(target));
            }
            Value::Object(a)
        })
        .collect();
    doc.insert(
        "resource_type_associations".into(),
        Value::Array(associations),
    );
    doc.insert(
        "properties".into(),
        Value::Object(row.properties.clone().into_iter().collect()),
    );
    let objects: Vec<Value> = row
        .objects
        .iter()
        .map(|o| {
            let mut object = Map::new();
            object.insert("name".into(), json!(o.name));
            if let Some(description) = &o.description {
                object.insert("description".into(), json!(description));
            }
            if o.required.is_array() {
                object.insert("required".into(), o.required.clone());
            }
            if o.properties.is_object() {
                object.insert("properties".into(), o.properties.clone());
            }
            object.insert("created_at".into(), json!(export_timestamp(o.created_at)));
            let updated = o.updated_at.unwrap_or(o.created_at);
            object.insert("updated_at".into(), json!(export_timestamp(updated)));
            Value::Object(object)
        })
        .collect();
    doc.insert("objects".into(), Value::Array(objects));
    let tags: Vec<Value> = row
        .tags
        .iter()
        .map(|(name, created, updated)| {
            json!({
                "name": name,
                "created_at": export_timestamp(*created),
                "updated_at": export_timestamp(updated.unwrap_or(*created)),
            })
        })
        .collect();
    doc.insert("tags".into(), Value::Array(tags));
    Value::Object(doc)
}

/// Loads Glance's metadefs into glint in one transaction, as `glint metadefs load --merge`
/// (with `--overwrite`: `--merge --prefer-new`) would load them from export files.
fn migrate_metadefs(
    backend: Option<&dyn meta::Backend>,
    rows: &[MetadefNamespaceRow],
    overwrite: bool,
    out: &mut dyn Write,
    summary: &mut Summary,
) -> Result<(), MigrateError> {
    if rows.is_empty() {
        return Ok(());
    }
    let say = |out: &mut dyn Write, line: String| -> Result<(), MigrateError> {
        writeln!(out, "{line}").map_err(io_error("writing the report"))
    };
    let now = meta::Timestamp::now();
    let mut documents = Vec::with_capacity(rows.len());
    for row in rows {
        let document = metadef_json::document_from_json(
            &namespace_json(row),
            Source::File,
            DEFAULT_OWNER,
            now,
        )
        .map_err(|e| e.0)
        .and_then(|d| d.validate().map(|()| d).map_err(|e| e.to_string()));
        match document {
            Ok(document) => documents.push(document),
            Err(why) => {
                summary.failed += 1;
                say(
                    out,
                    format!("FAILED metadef namespace {}: {why}", row.namespace),
                )?;
            }
        }
    }
    let Some(backend) = backend else {
        let names: Vec<&str> = documents
            .iter()
            .map(|d| d.namespace.namespace.as_str())
            .collect();
        return say(
            out,
            format!(
                "would load {} metadef namespaces: {}",
                names.len(),
                names.join(", ")
            ),
        );
    };
    let mode = if overwrite {
        meta::metadefs::LoadMode::MergePreferNew
    } else {
        meta::metadefs::LoadMode::Merge
    };
    match backend.load_metadefs(&documents, mode) {
        Ok(report) => {
            summary.namespaces = (
                report.created.len(),
                report.updated.len(),
                report.unchanged.len(),
            );
            say(
                out,
                format!(
                    "metadef namespaces: {} created, {} updated, {} unchanged",
                    report.created.len(),
                    report.updated.len(),
                    report.unchanged.len()
                ),
            )
        }
        Err(e) => {
            summary.failed += 1;
            say(out, format!("FAILED metadefs: {e}"))
        }
    }
}

/// Data first (copied and checked), then the record: a run interrupted between the two leaves
/// a copied file that the next run finds complete.
fn migrate_one(
    backend: &dyn Backend,
    step: &Step,
    options: &Options,
) -> Result<(Adopted, bool, bool), String> {
    let mut copied = false;
    let mut verified = false;
    if let Adoption::Live { image, .. } = &step.record {
        let path = match &step.data {
            DataPlan::None => None,
            DataPlan::InPlace(path) => Some(path.clone()),
            DataPlan::Copy { from, to } => {
                copied = copy_data(image, from, to)?;
                Some(to.clone())
            }
        };
        if let Some(path) = path {
            let meta = fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if image.size.is_some_and(|size| size != meta.len()) {
                return Err(format!(
                    "{} is {} bytes, Glance says {}",
                    path.display(),
                    meta.len(),
                    image.size.unwrap_or(0)
                ));
            }
            if options.verify {
                let algo = image.os_hash_algo.as_deref().unwrap_or("sha512");
                let hashed = hash_file(&path, algo, None)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                check_data(image, &hashed)?;
                verified = true;
            }
        }
    }
    let adopted = backend
        .adopt_image(&step.record, options.overwrite)
        .map_err(|e| match e {
            meta::Error::AdoptConflict(_) => {
                "glint holds this image with other values (changed since?): left as it is; \
                 --overwrite takes Glance's"
                    .to_owned()
            }
            meta::Error::Duplicate(_) => {
                "glint holds this id as a deleted image: a deleted id is never reused".to_owned()
            }
            other => other.to_string(),
        })?;
    Ok((adopted, copied, verified))
}

/// The time a Glance timestamp column holds, for tests.
#[cfg(test)]
pub(crate) fn timestamp(text: &str) -> meta::Timestamp {
    glance_db::parse_timestamp(text).expect("a valid timestamp")
}

#[cfg(test)]
mod tests;
