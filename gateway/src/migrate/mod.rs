//! `glint migrate-from-glance`: a Glance deployment's images, members, locations and metadata
//! definitions into glint's metadata, with the image data adopted where it lies or copied into a glint store.
//!
//! 1. `glance_db` reads Glance's database in one consistent snapshot, read-only (Glance may
//!    keep serving meanwhile, as long as nothing changes images).
//! 2. [`plan`] turns each Glance image into a [`meta::Adoption`]: the same id, status,
//!    checksums, sizes, properties, tags, visibility, protection, owner, timestamps, members
//!    and locations. A deleted image becomes a tombstone, so its id stays taken.
//! 3. The data, through glint's stores as configured (`[stores]`, or the `[glance_store]` of
//!    the same glance-api.conf): each live Glance location (`file://`, `s3://`, `http(s)://`)
//!    becomes a location of the store that holds it — the store Glance named (multi-store
//!    `store` metadata) when glint has it, else the store whose folder, endpoint and bucket,
//!    or scheme the URL is in — adopted in place (its size checked with a stat or a HEAD;
//!    S3 objects stay where they are; an s3 URL loses the credentials Glance wrote into it).
//!    With `--copy-to STORE` the bytes are copied into that store through its writer
//!    (hashed on the way and checked against Glance's size, `checksum` and `os_hash_value`
//!    before the write is committed); `--verify` re-reads every location kept, from whatever
//!    store, and checks the same. A location in no store is left out (noted); an image with
//!    none glint can read fails, and only that one.
//! 4. [`meta::Backend::adopt_image`] writes each image and its members in one transaction.
//! 5. The metadata definitions become the documents of Glance's definition files (owner,
//!    visibility, protection and times kept) and load as `glint metadefs load --merge` would
//!    load them, in one transaction.
//!
//! Idempotent and resumable: data already copied (and recorded) is not copied again, and a
//! record already adopted is `unchanged`; an interrupted run is simply run again (an image
//! whose copy was made but not yet recorded is copied again). A record that differs from
//! what glint holds (changed in glint, or in Glance since) is reported and left alone unless
//! `--overwrite`. `--dry-run` prints the plan and writes nothing.
//!
//! It opens glint's metadata database itself: glint must not be serving from the same data
//! folder meanwhile (the database refuses a second opener).

mod glance_db;
mod url;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
use crate::store::fs::{FsOptions, FsStore};
use crate::store::{Store, StoreWriter, Stores};

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
    /// A store named by `--copy-to` that glint does not have (or that takes no writes); the
    /// stores it could be.
    #[error("--copy-to {0}: glint has no such writable store (its stores: {1})")]
    UnknownStore(String, String),
    /// glint's stores cannot be opened as configured.
    #[error("glint's stores: {0}")]
    Stores(String),
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
    /// The data is in glint's stores already: adopted where it lies, at these locations.
    InPlace(Vec<Location>),
    /// The data is copied into store `to` from `from` (a location of a configured store, or
    /// a file in a folder no store has, read as it is).
    Copy {
        /// Where it is.
        from: Location,
        /// The store it goes to.
        to: String,
    },
}

/// One image's migration.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The record to adopt (a live image's locations are set once its data is settled).
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

/// A Glance location URL as glint records it: a file's folder resolved (a symlink or `//` in
/// Glance's `filesystem_store_datadir` still matches the store's folder), and an s3 URL
/// without the `access:secret@` Glance writes into it (glint never keeps a secret in a
/// location; the store signs with its own keys).
pub fn glint_url(url: &str) -> String {
    if let Some(path) = url.strip_prefix("file://") {
        let path = Path::new(path);
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            if let Ok(parent) = parent.canonicalize() {
                return format!("file://{}", parent.join(name).display());
            }
        }
        return url.to_owned();
    }
    match url.split_once("://") {
        Some((scheme @ ("s3" | "s3+http" | "s3+https"), rest)) => {
            // A secret may hold '/': the credentials end at the last '@'.
            let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
            format!("{scheme}://{rest}")
        }
        _ => url.to_owned(),
    }
}

/// A location URL fit to print: without any `user:password@` (Glance's s3 URLs hold the
/// secret key; an http location may hold a password).
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    // For s3 the credentials end at the last '@' of the whole URL (a secret may hold '/').
    if matches!(scheme, "s3" | "s3+http" | "s3+https") {
        if let Some((_, after)) = rest.rsplit_once('@') {
            return format!("{scheme}://{after}");
        }
    }
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => url.to_owned(),
    }
}

/// The glint location of a Glance location: the store Glance named (multi-store metadata
/// `store`) when glint has it and it holds the URL, else the configured store whose folder,
/// bucket or scheme the URL is in.
fn resolve(stores: &Stores, location: &GlanceLocation) -> Option<Location> {
    let named = location
        .metadata
        .get("store")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let candidate = Location {
        url: glint_url(&location.url),
        store: named.to_owned(),
    };
    let store = stores.for_location(&candidate)?;
    Some(Location {
        url: candidate.url,
        store: store.id().to_owned(),
    })
}

/// The plan for one Glance image, with `stores` the stores glint is configured with and
/// `copy_to` the store `--copy-to` names.
pub fn plan(image: &GlanceImage, stores: &Stores, copy_to: Option<&str>) -> Result<Step, Refusal> {
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
    let live: Vec<&GlanceLocation> = image
        .locations
        .iter()
        .filter(|l| l.status == LIVE_LOCATION)
        .collect();
    if status != ImageStatus::Queued && !live.is_empty() {
        let mut found = Vec::new();
        let mut elsewhere = Vec::new();
        for location in &live {
            match resolve(stores, location) {
                Some(location) => found.push(location),
                None => elsewhere.push(*location),
            }
        }
        let ids = || {
            stores
                .iter()
                .map(|s| format!("{} ({})", s.id(), s.kind()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        data = match copy_to {
            Some(to) if found.iter().any(|l| l.store == to) => {
                found.retain(|l| l.store == to);
                DataPlan::InPlace(found)
            }
            Some(to) => {
                // Read from a configured store, else from a file as it lies.
                let from = found.into_iter().next().or_else(|| {
                    elsewhere
                        .iter()
                        .find(|l| l.url.starts_with("file://"))
                        .map(|l| Location {
                            url: glint_url(&l.url),
                            store: String::new(),
                        })
                });
                let Some(from) = from else {
                    return Err(Refusal(format!(
                        "its data is at {}, in none of glint's stores ({}): configure a store \
                         there to copy from",
                        shown_url(&live[0].url),
                        ids()
                    )));
                };
                elsewhere.retain(|l| glint_url(&l.url) != from.url);
                DataPlan::Copy {
                    from,
                    to: to.to_owned(),
                }
            }
            None if found.is_empty() => {
                let hint = if live[0].url.starts_with("file://") {
                    " (serve glint with a file store in that folder, or give --copy-to STORE)"
                } else {
                    ""
                };
                return Err(Refusal(format!(
                    "its data is at {}, in none of glint's stores ({}){hint}",
                    shown_url(&live[0].url),
                    ids()
                )));
            }
            None => DataPlan::InPlace(found),
        };
        for location in elsewhere {
            notes.push(format!(
                "location {} is in none of glint's stores: left out",
                shown_url(&location.url)
            ));
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

/// Size, md5 and `os_hash_algo` digest of bytes as they pass.
struct Hashes {
    size: u64,
    md5: Box<dyn checksum::Digest>,
    other: Option<Box<dyn checksum::Digest>>,
}

impl Hashes {
    fn new(algorithm: &str) -> Hashes {
        Hashes {
            size: 0,
            md5: checksum::digest("md5").expect("md5 is always available"),
            other: checksum::digest(algorithm),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        self.md5.update(bytes);
        if let Some(other) = self.other.as_mut() {
            other.update(bytes);
        }
    }

    fn finish(self) -> (u64, String, Option<String>) {
        (
            self.size,
            self.md5.finish_hex(),
            self.other.map(|d| d.finish_hex()),
        )
    }
}

/// Checks data read against the record's size, `checksum` and `os_hash_value`.
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

/// The store to read `location` from: the configured store holding it, or (a copy's source
/// outside every store) a read-only view of the file's folder.
fn source_store(stores: &Stores, location: &Location) -> Result<Arc<dyn Store>, String> {
    if let Some(store) = stores.for_location(location) {
        return Ok(store.clone());
    }
    let path = location
        .url
        .strip_prefix("file://")
        .map(Path::new)
        .ok_or_else(|| format!("{} is in none of glint's stores", shown_url(&location.url)))?;
    let folder = path
        .parent()
        .filter(|p| p.is_dir())
        .ok_or_else(|| format!("{}: no such folder", path.display()))?;
    let store = FsStore::open_named("glance", folder, FsOptions::default())
        .map_err(|e| format!("{}: {e}", folder.display()))?;
    Ok(Arc::new(store))
}

/// The size of the data at `location` (a stat, a HEAD).
async fn size_at(store: &dyn Store, location: &Location) -> Result<u64, String> {
    store.size(location).await.map_err(|e| e.to_string())
}

/// Reads the whole data at `location` (`size` bytes), hashing it, and hands each frame to
/// `each` (a copy's writer).
async fn read_hashed(
    store: &dyn Store,
    location: &Location,
    size: u64,
    algorithm: &str,
    mut writer: Option<&mut Box<dyn StoreWriter>>,
) -> Result<(u64, String, Option<String>), String> {
    let mut stream = store
        .read(location, 0..size)
        .await
        .map_err(|e| e.to_string())?;
    let mut hashes = Hashes::new(algorithm);
    while let Some(frame) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let frame = frame.map_err(|e| format!("reading {}: {e}", shown_url(&location.url)))?;
        hashes.update(&frame);
        if let Some(writer) = writer.as_mut() {
            writer.write(frame).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(hashes.finish())
}

/// Copies the data at `from` into `target` through a store writer, hashed on the way and
/// checked before it is committed (a mismatch leaves nothing behind).
async fn copy_data(
    stores: &Stores,
    image: &Image,
    from: &Location,
    target: &dyn Store,
) -> Result<Location, String> {
    let source = source_store(stores, from)?;
    let size = match image.size {
        Some(size) => size,
        None => size_at(&*source, from).await?,
    };
    let algorithm = image.os_hash_algo.as_deref().unwrap_or("sha512");
    let mut writer = target
        .writer(image.id, Some(size))
        .await
        .map_err(|e| e.to_string())?;
    let hashed = read_hashed(&*source, from, size, algorithm, Some(&mut writer)).await;
    match hashed.and_then(|hashed| check_data(image, &hashed)) {
        Ok(()) => writer.commit().await.map_err(|e| e.to_string()),
        Err(why) => {
            writer.abort().await;
            Err(why)
        }
    }
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
/// describes it (its stores included), writing one line per image and a summary to `out`.
pub fn run(
    config: &Config,
    options: &Options,
    out: &mut dyn Write,
) -> Result<Summary, MigrateError> {
    let url = DatabaseUrl::parse(options.database.expose()).map_err(MigrateError::Url)?;
    fs::create_dir_all(&config.data_dir)
        .map_err(io_error(format!("create {}", config.data_dir.display())))?;
    let stores = Stores::from_config(config).map_err(|e| MigrateError::Stores(e.to_string()))?;
    if let Some(to) = &options.copy_to {
        let ids = || {
            stores
                .iter()
                .filter(|s| !s.is_read_only())
                .map(|s| s.id().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match stores.get(to) {
            Some(store) if !store.is_read_only() => {}
            _ => return Err(MigrateError::UnknownStore(to.clone(), ids())),
        }
    }
    let data = glance_db::read(&url)?;
    say(
        out,
        format!(
            "Glance database {url} (schema {}): {} images, {} metadef namespaces",
            data.schema_version.as_deref().unwrap_or("unknown"),
            data.images.len(),
            data.metadefs.namespaces.len()
        ),
    )?;
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
    // The stores' clients run on a runtime of this thread (as on a worker core).
    let driver = crate::runtime::choose_driver(config.io_driver);
    crate::runtime::block_on(driver, async {
        for image in &data.images {
            migrate_image(
                &stores,
                backend.as_deref(),
                image,
                options,
                out,
                &mut summary,
            )
            .await?;
        }
        Ok::<_, MigrateError>(())
    })
    .map_err(io_error("start an I/O runtime"))??;
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

fn say(out: &mut dyn Write, line: String) -> Result<(), MigrateError> {
    writeln!(out, "{line}").map_err(io_error("writing the report"))
}

fn data_text(data: &DataPlan) -> String {
    let at = |l: &Location| format!("{} (store {})", shown_url(&l.url), l.store);
    match data {
        DataPlan::None => String::new(),
        DataPlan::InPlace(locations) => format!(
            ", data in place at {}",
            locations.iter().map(at).collect::<Vec<_>>().join(", ")
        ),
        DataPlan::Copy { from, to } => {
            format!(", data copied {} -> store {to}", shown_url(&from.url))
        }
    }
}

/// One image: planned, its data settled, its record written; reported on one line.
async fn migrate_image(
    stores: &Stores,
    backend: Option<&dyn meta::Backend>,
    image: &GlanceImage,
    options: &Options,
    out: &mut dyn Write,
    summary: &mut Summary,
) -> Result<(), MigrateError> {
    let step = match plan(image, stores, options.copy_to.as_deref()) {
        Ok(step) => step,
        Err(Refusal(why)) => {
            summary.failed += 1;
            return say(out, format!("FAILED {}: {why}", image.id));
        }
    };
    let what = describe(&step.record);
    for note in &step.notes {
        say(out, format!("  note {}: {note}", image.id))?;
    }
    let Some(backend) = backend else {
        return say(out, format!("would adopt {what}{}", data_text(&step.data)));
    };
    match migrate_one(stores, backend, step, options).await {
        Ok((adopted, copied, verified, deleted)) => {
            summary.copied += usize::from(copied);
            summary.verified += usize::from(verified);
            summary.deleted += usize::from(deleted);
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
            say(out, line)
        }
        Err(why) => {
            summary.failed += 1;
            say(out, format!("FAILED {}: {why}", image.id))
        }
    }
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

/// Data first (copied and checked), then the record: a run interrupted between the two
/// copies that image again; one interrupted after finds the record and the copy it names.
/// Returns how the record went, and whether data was copied and verified, and whether the
/// image is a deleted one.
async fn migrate_one(
    stores: &Stores,
    backend: &dyn Backend,
    mut step: Step,
    options: &Options,
) -> Result<(Adopted, bool, bool, bool), String> {
    let mut copied = false;
    let mut verified = false;
    let deleted = matches!(step.record, Adoption::Deleted { .. });
    if let Adoption::Live { image, .. } = &mut step.record {
        let locations = match &step.data {
            DataPlan::None => Vec::new(),
            DataPlan::InPlace(locations) => locations.clone(),
            DataPlan::Copy { from, to } => {
                let target = stores
                    .get(to)
                    .ok_or_else(|| format!("no store {to}"))?
                    .clone();
                // Copied by an earlier run: glint's record names the copy, whole.
                let held = backend.get_image(image.id).ok();
                let earlier = held
                    .as_ref()
                    .and_then(|held| held.locations.iter().find(|l| l.store == *to).cloned());
                if let (Some(held), None, false) = (&held, &earlier, options.overwrite) {
                    // The record would differ (its locations): copying would be in vain.
                    let at: Vec<&str> = held.locations.iter().map(|l| l.store.as_str()).collect();
                    return Err(format!(
                        "glint holds this image already (store {}): give --overwrite to copy \
                         it into {to} and record the copy",
                        at.join(", ")
                    ));
                }
                let earlier = match earlier {
                    Some(location) => {
                        let size = size_at(&*target, &location).await.ok();
                        (size.is_some() && size == image.size).then_some(location)
                    }
                    None => None,
                };
                match earlier {
                    Some(location) => vec![location],
                    None => {
                        let location = copy_data(stores, image, from, &*target).await?;
                        copied = true;
                        vec![location]
                    }
                }
            }
        };
        for location in &locations {
            let store = stores.for_location(location).ok_or_else(|| {
                format!("{} is in none of glint's stores", shown_url(&location.url))
            })?;
            let size = size_at(&**store, location).await?;
            if image.size.is_some_and(|expected| expected != size) {
                return Err(format!(
                    "{} is {size} bytes, Glance says {}",
                    shown_url(&location.url),
                    image.size.unwrap_or(0)
                ));
            }
            if options.verify {
                let algorithm = image.os_hash_algo.as_deref().unwrap_or("sha512");
                let hashed = read_hashed(&**store, location, size, algorithm, None).await?;
                check_data(image, &hashed).map_err(|why| {
                    format!("{} (store {}): {why}", shown_url(&location.url), store.id())
                })?;
                verified = true;
            }
        }
        image.locations = locations;
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
    Ok((adopted, copied, verified, deleted))
}

/// The time a Glance timestamp column holds, for tests.
#[cfg(test)]
pub(crate) fn timestamp(text: &str) -> meta::Timestamp {
    glance_db::parse_timestamp(text).expect("a valid timestamp")
}

#[cfg(test)]
mod tests;
