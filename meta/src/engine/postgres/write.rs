//! Every write of the PostgreSQL engine, as a transaction of compare-and-set statements.
//!
//! A write reads the image with its row `version`, lets the shared rules decide (`rules.rs`,
//! `quota.rs`), and stores the result with `UPDATE images … WHERE id = $1 AND version = $v`:
//! a status transition is that one statement, and it changes nothing if another gateway wrote
//! the row since it was read. Then the transaction is rolled back and the whole write runs
//! again on what is now there (an edit closure may so run more than once, as the trait allows).
//!
//! Quota checks first take `pg_advisory_xact_lock` on the owner: every write that could take
//! an owner over a limit holds it while it reads the owner's usage and writes, so concurrent
//! writes for one owner are checked one after the other, whichever gateway runs them, and a
//! limit is never exceeded. The lock ends with the transaction.
//!
//! Member writes lock the image row (`FOR UPDATE`) instead: they change no image field, and the
//! lock orders them with the image's other writes.

use super::pool::{Pool, Run, Tx};
use super::row::{self, image_from_row, Columns};
use super::{i64_of, u64_of};
use crate::backend::{Adopted, Adoption, Edit};
use crate::error::{Error, Result, StorageError};
use crate::members::{Member, MemberStatus};
use crate::quota::{self, Limits, Usage};
use crate::rules;
use crate::types::{
    Image, ImageId, ImageStatus, NodeId, Timestamp, UploadClaim, UploadOutcome, UploadStart,
};

/// Attempts of a write that keeps losing compare-and-set races before it gives up.
const MAX_ATTEMPTS: usize = 64;

/// An image as read for a write: its row version and upload columns too.
pub(super) struct Loaded {
    pub(super) image: Image,
    version: i64,
    upload: (Option<String>, Option<i64>, Option<i64>),
}

/// What a write does to the upload columns.
pub(super) enum Upload<'a> {
    /// Leave them (an edit that does not change the status).
    Keep,
    /// Record a new upload's owner and reservation.
    Begin {
        node: &'a NodeId,
        reserved_bytes: Option<i64>,
    },
    /// Clear them (the image leaves, or never was in, `saving`/`uploading`).
    Clear,
}

/// Runs `op` in a transaction until it commits (`Some`), fails, or loses too many races
/// (`None`: a compare-and-set changed nothing).
pub(super) fn write<T>(
    pool: &Pool,
    mut op: impl FnMut(&mut Tx<'_>, Timestamp) -> Result<Option<T>>,
) -> Result<T> {
    let mut lease = pool.get()?;
    for _ in 0..MAX_ATTEMPTS {
        let now = Timestamp::now();
        let mut tx = lease.transaction()?;
        // On error or conflict `tx` is dropped, which rolls it back.
        if let Some(value) = op(&mut tx, now)? {
            tx.commit()?;
            return Ok(value);
        }
    }
    Err(Error::Storage(StorageError::new(
        "a write kept losing to concurrent writes of the same rows",
    )))
}

pub(super) fn load(tx: &mut dyn Run, id: ImageId, for_update: bool) -> Result<Option<Loaded>> {
    let sql = if for_update { LOAD_FOR_UPDATE } else { LOAD };
    match tx.row(sql, &[&id.as_uuid()])? {
        Some(row) => Ok(Some(Loaded {
            image: image_from_row(&row)?,
            version: row::version_of(&row),
            upload: row::upload_of(&row),
        })),
        None => Ok(None),
    }
}

const LOAD: &str = concat!(
    "SELECT ",
    image_columns!(),
    " FROM images WHERE id = $1 AND status <> 'deleted'"
);
const LOAD_FOR_UPDATE: &str = concat!(
    "SELECT ",
    image_columns!(),
    " FROM images WHERE id = $1 AND status <> 'deleted' FOR UPDATE"
);

pub(super) fn require(tx: &mut dyn Run, id: ImageId) -> Result<Loaded> {
    load(tx, id, false)?.ok_or(Error::NotFound(id))
}

/// Serialises the quota-checked writes of `owner` until the transaction ends.
pub(super) fn lock_owner(tx: &mut dyn Run, owner: &str) -> Result<()> {
    tx.rows(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
        &[&owner],
    )?;
    Ok(())
}

/// `project`'s usage: its live images, their bytes, its uploads, and the reservations of its
/// uploads under way but `except`'s.
pub(super) fn usage(run: &mut dyn Run, project: &str, except: Option<ImageId>) -> Result<Usage> {
    let except = except.map(|id| id.as_uuid());
    let row = run
        .row(
            "SELECT count(*),
                    COALESCE(sum(size), 0)::bigint,
                    count(*) FILTER (WHERE status IN ('saving', 'uploading', 'importing')),
                    COALESCE(sum(upload_reserved_bytes) FILTER (
                        WHERE status IN ('saving', 'uploading') AND id IS DISTINCT FROM $2
                    ), 0)::bigint
             FROM images WHERE owner = $1 AND status <> 'deleted'",
            &[&project, &except],
        )?
        .ok_or_else(|| Error::Corrupt("usage query returned no row".into()))?;
    Ok(Usage {
        image_count: u64_of(row.get(0)),
        size_bytes: u64_of(row.get(1)),
        uploading_count: u64_of(row.get(2)),
        reserved_bytes: u64_of(row.get(3)),
    })
}

/// Stores `new` over `old` if the row is still at `old.version`; `false` when another write
/// came first.
pub(super) fn put(
    tx: &mut dyn Run,
    old: &Loaded,
    new: &Image,
    upload: Upload<'_>,
    now: Timestamp,
) -> Result<bool> {
    let columns = Columns::of(new)?;
    let (node, started, reserved): (Option<String>, Option<i64>, Option<i64>) = match upload {
        Upload::Keep if rules::receiving(new.status) => old.upload.clone(),
        Upload::Keep | Upload::Clear => (None, None, None),
        Upload::Begin {
            node,
            reserved_bytes,
        } => (
            Some(node.as_str().to_owned()),
            Some(now.as_unix_micros()),
            reserved_bytes,
        ),
    };
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = columns.params().to_vec();
    params.extend([
        &node as &(dyn postgres::types::ToSql + Sync),
        &started,
        &reserved,
        &old.version,
    ]);
    let changed = tx.execute(
        "UPDATE images SET version = version + 1, name = $2, status = $3, visibility = $4,
             protected = $5, os_hidden = $6, checksum = $7, os_hash_algo = $8,
             os_hash_value = $9, owner = $10, size = $11, virtual_size = $12, min_ram = $13,
             min_disk = $14, disk_format = $15, container_format = $16, created_at = $17,
             updated_at = $18, tags = $19, properties = $20, locations = $21,
             upload_node = $22, upload_started_at = $23, upload_reserved_bytes = $24
         WHERE id = $1 AND version = $25",
        &params,
    )?;
    Ok(changed == 1)
}

/// `Some(value)` when the compare-and-set applied, `None` to retry.
pub(super) fn applied<T>(done: bool, value: T) -> Option<T> {
    done.then_some(value)
}

const INSERT: &str = "INSERT INTO images (id, name, status, visibility, protected, os_hidden,
         checksum, os_hash_algo, os_hash_value, owner, size, virtual_size, min_ram, min_disk,
         disk_format, container_format, created_at, updated_at, tags, properties, locations)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
         $19, $20, $21)
     ON CONFLICT (id) DO NOTHING";

pub(super) fn create(pool: &Pool, image: &Image, limits: &Limits) -> Result<()> {
    rules::check_new(image)?;
    let columns = Columns::of(image)?;
    write(pool, |tx, _| {
        if let Some(owner) = &image.owner {
            lock_owner(tx, owner)?;
            quota::check_create(owner, &usage(tx, owner, None)?, limits)?;
        }
        // A live image or a tombstone holds the id: the primary key refuses both.
        if tx.execute(INSERT, &columns.params())? == 0 {
            return Err(Error::Duplicate(image.id));
        }
        Ok(Some(()))
    })
}

pub(super) fn insert_many(pool: &Pool, images: &[Image]) -> Result<()> {
    let mut lease = pool.get()?;
    for chunk in images.chunks(1000) {
        let mut tx = lease.transaction()?;
        for image in chunk {
            tx.execute(INSERT, &Columns::of(image)?.params())?;
        }
        tx.commit()?;
    }
    Ok(())
}

pub(super) fn update(pool: &Pool, id: ImageId, edit: &mut Edit<'_>) -> Result<Image> {
    write(pool, |tx, now| {
        let old = require(tx, id)?;
        let mut new = old.image.clone();
        edit(&mut new)?;
        rules::check_edit(&old.image, &new)?;
        new.updated_at = now;
        let done = put(tx, &old, &new, Upload::Keep, now)?;
        Ok(applied(done, new))
    })
}

pub(super) fn begin_upload(
    pool: &Pool,
    id: ImageId,
    claim: &UploadClaim,
    limits: &Limits,
) -> Result<UploadStart> {
    write(pool, |tx, now| {
        let old = require(tx, id)?;
        rules::check_begin(&old.image, claim.to)?;
        let mut size_left = None;
        let mut reserved_bytes = None;
        if let Some(owner) = &old.image.owner {
            lock_owner(tx, owner)?;
            let usage = usage(tx, owner, None)?;
            quota::check_begin_upload(owner, &usage, limits, claim.incoming_bytes)?;
            size_left = quota::size_left(&usage, limits);
            reserved_bytes = claim
                .incoming_bytes
                .map(|bytes| i64_of(bytes, "announced size"))
                .transpose()?;
        }
        let image = rules::transition(&old.image, old.image.clone(), claim.to, now)?;
        let upload = Upload::Begin {
            node: &claim.node,
            reserved_bytes,
        };
        let done = put(tx, &old, &image, upload, now)?;
        Ok(applied(done, UploadStart { image, size_left }))
    })
}

pub(super) fn complete_upload(
    pool: &Pool,
    id: ImageId,
    outcome: UploadOutcome,
    limits: &Limits,
) -> Result<Image> {
    write(pool, |tx, now| {
        let old = require(tx, id)?;
        rules::check_complete(&old.image, &outcome)?;
        if let Some(owner) = &old.image.owner {
            lock_owner(tx, owner)?;
            // Its own reservation gives way to its data.
            quota::check_size(owner, &usage(tx, owner, Some(id))?, limits, outcome.size)?;
        }
        let filled = rules::filled(&old.image, outcome.clone());
        let new = rules::transition(&old.image, filled, ImageStatus::Active, now)?;
        let done = put(tx, &old, &new, Upload::Clear, now)?;
        Ok(applied(done, new))
    })
}

pub(super) fn abort_upload(pool: &Pool, id: ImageId) -> Result<()> {
    write(pool, |tx, now| {
        let Some(old) = load(tx, id, false)? else {
            return Ok(Some(()));
        };
        if !rules::abort_requeues(old.image.status)? {
            return Ok(Some(()));
        }
        let new = rules::transition(&old.image, old.image.clone(), ImageStatus::Queued, now)?;
        let done = put(tx, &old, &new, Upload::Clear, now)?;
        Ok(applied(done, ()))
    })
}

pub(super) fn set_status(pool: &Pool, id: ImageId, to: ImageStatus) -> Result<Image> {
    if to == ImageStatus::Deleted {
        return write(pool, |tx, now| {
            let old = require(tx, id)?;
            Ok(mark_deleted(tx, &old, now)?.map(|mut deleted| {
                deleted.status = ImageStatus::Deleted;
                deleted.updated_at = now;
                deleted
            }))
        });
    }
    write(pool, |tx, now| {
        let old = require(tx, id)?;
        let new = rules::transition(&old.image, old.image.clone(), to, now)?;
        // An image moved to `saving`/`uploading` here has no upload owner.
        let done = put(tx, &old, &new, Upload::Clear, now)?;
        Ok(applied(done, new))
    })
}

pub(super) fn delete(pool: &Pool, id: ImageId) -> Result<Image> {
    write(pool, |tx, now| {
        let old = require(tx, id)?;
        mark_deleted(tx, &old, now)
    })
}

/// Turns the row into a tombstone (status `deleted`, data fields cleared) and removes the
/// image's members; returns the image as it was, or `None` when the row changed meanwhile.
fn mark_deleted(tx: &mut dyn Run, old: &Loaded, now: Timestamp) -> Result<Option<Image>> {
    rules::check_delete(&old.image)?;
    Ok(tombstone(tx, old, now)?.then(|| old.image.clone()))
}

/// A finished stage (`uploading`, naming the node that holds its data in
/// `os_glance_stage_host`) is data waiting for its import, not an interrupted upload: it stays.
pub(super) fn recover_interrupted(pool: &Pool, node: &NodeId) -> Result<Vec<ImageId>> {
    write(pool, |tx, now| {
        let rows = tx.rows(
            "SELECT id FROM images
             WHERE status IN ('saving', 'uploading')
               AND (upload_node = $1 OR upload_node IS NULL)
               AND NOT (status = 'uploading' AND properties ? 'os_glance_stage_host')
             ORDER BY status = 'saving' DESC, created_at, id",
            &[&node.as_str()],
        )?;
        let ids: Vec<ImageId> = rows
            .iter()
            .map(|row| ImageId::from_uuid(row.get(0)))
            .collect();
        for id in &ids {
            let old = require(tx, *id)?;
            let new = rules::transition(&old.image, old.image.clone(), ImageStatus::Queued, now)?;
            if !put(tx, &old, &new, Upload::Clear, now)? {
                return Ok(None);
            }
        }
        Ok(Some(ids))
    })
}

// ---- members

fn member_of(tx: &mut dyn Run, id: ImageId, project: &str) -> Result<Option<Member>> {
    tx.row(
        "SELECT image_id, member, status, created_at, updated_at FROM image_members
         WHERE image_id = $1 AND member = $2",
        &[&id.as_uuid(), &project],
    )?
    .map(|row| row::member_from_row(&row))
    .transpose()
}

/// The image, locked for the member write, which must be `shared`.
fn shared_image(tx: &mut dyn Run, id: ImageId) -> Result<Image> {
    let loaded = load(tx, id, true)?.ok_or(Error::NotFound(id))?;
    rules::check_shared(&loaded.image)?;
    Ok(loaded.image)
}

fn require_member(tx: &mut dyn Run, id: ImageId, project: &str) -> Result<Member> {
    member_of(tx, id, project)?.ok_or_else(|| Error::MemberNotFound {
        image: id,
        member: project.to_owned(),
    })
}

pub(super) fn add_member(
    pool: &Pool,
    id: ImageId,
    project: &str,
    max_members: Option<u64>,
) -> Result<Member> {
    write(pool, |tx, now| {
        shared_image(tx, id)?;
        if member_of(tx, id, project)?.is_some() {
            return Err(Error::DuplicateMember {
                image: id,
                member: project.to_owned(),
            });
        }
        if let Some(maximum) = max_members {
            let count: i64 = tx
                .row(
                    "SELECT count(*) FROM image_members WHERE image_id = $1",
                    &[&id.as_uuid()],
                )?
                .map_or(0, |row| row.get(0));
            let attempted = u64_of(count) + 1;
            if attempted > maximum {
                return Err(Error::TooManyMembers {
                    image: id,
                    attempted,
                    maximum,
                });
            }
        }
        let micros = now.as_unix_micros();
        tx.execute(
            "INSERT INTO image_members (image_id, member, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)",
            &[
                &id.as_uuid(),
                &project,
                &MemberStatus::Pending.as_str(),
                &micros,
            ],
        )?;
        Ok(Some(Member {
            image_id: id,
            member_id: project.to_owned(),
            status: MemberStatus::Pending,
            created_at: now,
            updated_at: now,
        }))
    })
}

pub(super) fn update_member(
    pool: &Pool,
    id: ImageId,
    project: &str,
    status: MemberStatus,
) -> Result<Member> {
    write(pool, |tx, now| {
        shared_image(tx, id)?;
        let mut member = require_member(tx, id, project)?;
        member.status = status;
        member.updated_at = now;
        tx.execute(
            "UPDATE image_members SET status = $3, updated_at = $4
             WHERE image_id = $1 AND member = $2",
            &[
                &id.as_uuid(),
                &project,
                &status.as_str(),
                &now.as_unix_micros(),
            ],
        )?;
        Ok(Some(member))
    })
}

pub(super) fn delete_member(pool: &Pool, id: ImageId, project: &str) -> Result<()> {
    write(pool, |tx, _| {
        shared_image(tx, id)?;
        require_member(tx, id, project)?;
        tx.execute(
            "DELETE FROM image_members WHERE image_id = $1 AND member = $2",
            &[&id.as_uuid(), &project],
        )?;
        Ok(Some(()))
    })
}

pub(super) fn update_to(
    pool: &Pool,
    id: ImageId,
    to: ImageStatus,
    edit: &mut Edit<'_>,
) -> Result<Image> {
    write(pool, |tx, now| {
        let old = require(tx, id)?;
        let mut new = old.image.clone();
        edit(&mut new)?;
        rules::check_edit(&old.image, &new)?;
        let new = rules::transition(&old.image, new, to, now)?;
        // Data that arrives without an upload: no upload owner.
        let done = put(tx, &old, &new, Upload::Clear, now)?;
        Ok(applied(done, new))
    })
}

// ---- adoption (`glint migrate-from-glance`)

/// Whether the row of `id` is a tombstone.
fn is_tombstone(tx: &mut dyn Run, id: ImageId) -> Result<bool> {
    Ok(tx
        .row(
            "SELECT 1 FROM images WHERE id = $1 AND status = 'deleted'",
            &[&id.as_uuid()],
        )?
        .is_some())
}

fn members_of(tx: &mut dyn Run, id: ImageId) -> Result<Vec<Member>> {
    tx.rows(
        "SELECT image_id, member, status, created_at, updated_at FROM image_members
         WHERE image_id = $1 ORDER BY member",
        &[&id.as_uuid()],
    )?
    .iter()
    .map(row::member_from_row)
    .collect()
}

fn put_members(tx: &mut dyn Run, id: ImageId, members: &[Member]) -> Result<()> {
    tx.execute(
        "DELETE FROM image_members WHERE image_id = $1",
        &[&id.as_uuid()],
    )?;
    for member in members {
        tx.execute(
            "INSERT INTO image_members (image_id, member, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &id.as_uuid(),
                &member.member_id,
                &member.status.as_str(),
                &member.created_at.as_unix_micros(),
                &member.updated_at.as_unix_micros(),
            ],
        )?;
    }
    Ok(())
}

/// Makes the row of `old` a tombstone dated `deleted_at` (whatever its protection) and removes
/// its members; `false` when the row changed meanwhile.
fn tombstone(tx: &mut dyn Run, old: &Loaded, deleted_at: Timestamp) -> Result<bool> {
    let id = old.image.id.as_uuid();
    let micros = deleted_at.as_unix_micros();
    let changed = tx.execute(
        "UPDATE images SET version = version + 1, status = 'deleted', deleted_at = $2,
             updated_at = $2, name = NULL, checksum = NULL, os_hash_algo = NULL,
             os_hash_value = NULL, owner = NULL, size = NULL, virtual_size = NULL,
             disk_format = NULL, container_format = NULL, tags = '{}', properties = '{}',
             locations = '[]', upload_node = NULL, upload_started_at = NULL,
             upload_reserved_bytes = NULL
         WHERE id = $1 AND version = $3",
        &[&id, &micros, &old.version],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    tx.execute("DELETE FROM image_members WHERE image_id = $1", &[&id])?;
    Ok(true)
}

pub(super) fn adopt(pool: &Pool, record: &Adoption, replace: bool) -> Result<Adopted> {
    let id = record.id();
    write(pool, |tx, now| {
        // The row, live or not, is locked for the whole decision.
        tx.rows(
            "SELECT 1 FROM images WHERE id = $1 FOR UPDATE",
            &[&id.as_uuid()],
        )?;
        let deleted = is_tombstone(tx, id)?;
        let live = load(tx, id, true)?;
        match record {
            Adoption::Deleted { deleted_at, .. } => match live {
                None if deleted => Ok(Some(Adopted::Unchanged)),
                None => {
                    let micros = deleted_at.as_unix_micros();
                    // A tombstone: a row with status `deleted` and no data fields.
                    let inserted = tx.execute(
                        "INSERT INTO images (id, status, visibility, protected, os_hidden,
                             min_ram, min_disk, created_at, updated_at, deleted_at)
                         VALUES ($1, 'deleted', 'private', false, false, 0, 0, $2, $2, $2)
                         ON CONFLICT (id) DO NOTHING",
                        &[&id.as_uuid(), &micros],
                    )?;
                    Ok(applied(inserted == 1, Adopted::Created))
                }
                Some(_) if !replace => Err(Error::AdoptConflict(id)),
                Some(old) => Ok(applied(
                    tombstone(tx, &old, *deleted_at)?,
                    Adopted::Replaced,
                )),
            },
            Adoption::Live { image, members } => {
                if deleted {
                    return Err(Error::Duplicate(id));
                }
                let members = Adoption::sorted_members(id, members)?;
                let outcome = match live {
                    None => {
                        if tx.execute(INSERT, &Columns::of(image)?.params())? == 0 {
                            // Created by someone else since the lock was asked: again.
                            return Ok(None);
                        }
                        Adopted::Created
                    }
                    Some(old) => {
                        if old.image == **image && members_of(tx, id)? == members {
                            return Ok(Some(Adopted::Unchanged));
                        }
                        if !replace {
                            return Err(Error::AdoptConflict(id));
                        }
                        // As it was there: no rule, no owner of an upload (recovery requeues
                        // an adopted upload in progress).
                        if !put(tx, &old, image, Upload::Clear, now)? {
                            return Ok(None);
                        }
                        Adopted::Replaced
                    }
                };
                put_members(tx, id, &members)?;
                Ok(Some(outcome))
            }
        }
    })
}
