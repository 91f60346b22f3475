//! Every [`Tasks`] call of the PostgreSQL engine, each one transaction.
//!
//! A task is a row of `tasks` (schema version 3) with a row `version`, as images have. The
//! import lock is the image's `os_glance_import_task` property and the lease the task's
//! `lease_until`: starting and ending an import write the image with the engine's
//! compare-and-set (`UPDATE images … WHERE version = $v`), and a take-over fails the old task
//! with its own compare-and-set (`UPDATE tasks … WHERE version = $v`). A renewal that raced
//! with a take-over changed the old task's version, so the take-over retries and finds the
//! task alive; a take-over that came first ended the task, so the renewal's
//! `WHERE status IN ('pending', 'processing')` matches nothing and the runner learns it lost
//! the lock. The rules themselves are the engine-neutral ones of [`crate::tasks`].

use postgres::Row;
use uuid::Uuid;

use super::pool::{Pool, Run};
use super::write::{self, applied, put, Upload};
use super::PgBackend;
use crate::backend::Edit;
use crate::error::{Error, Result};
use crate::rules;
use crate::tasks::{
    apply_begin, apply_end, check_end_size, end_adds_data, holds_lock, page_tasks, preempt,
    ImportBegun, ImportEnd, ImportStart, Task, TaskFilter, TaskId, TaskRunner, Tasks,
    IMPORT_TASK_PROPERTY,
};
use crate::types::{Image, ImageId, NodeId, Timestamp};

const TASK_COLUMNS: &str = "id, kind, status, owner, image_id, request_id, user_id, input, \
     result, message, expires_at, created_at, updated_at, runner_node, lease_until, version";

fn uuid(id: TaskId) -> Uuid {
    Uuid::from_u128(id.to_key())
}

fn corrupt(id: Uuid, what: &str) -> Error {
    Error::Corrupt(format!("task {id}: {what}"))
}

/// A task and its row version.
fn task_from_row(row: &Row) -> Result<(Task, i64)> {
    let id: Uuid = row.get(0);
    let kind: String = row.get(1);
    let status: String = row.get(2);
    let runner_node: Option<String> = row.get(13);
    let lease_until: Option<i64> = row.get(14);
    let runner = match (runner_node, lease_until) {
        (Some(node), Some(until)) => Some(TaskRunner {
            node: node
                .parse::<NodeId>()
                .map_err(|_| corrupt(id, "invalid runner node"))?,
            lease_until: Timestamp::from_unix_micros(until),
        }),
        (None, None) => None,
        _ => return Err(corrupt(id, "runner without lease or lease without runner")),
    };
    let task = Task {
        id: TaskId::from_key(id.as_u128()),
        kind: kind.parse().map_err(|_| corrupt(id, "unknown type"))?,
        status: status.parse().map_err(|_| corrupt(id, "unknown status"))?,
        owner: row.get(3),
        image_id: row.get::<_, Option<Uuid>>(4).map(ImageId::from_uuid),
        request_id: row.get(5),
        user_id: row.get(6),
        input: row.get(7),
        result: row.get(8),
        message: row.get(9),
        expires_at: row
            .get::<_, Option<i64>>(10)
            .map(Timestamp::from_unix_micros),
        created_at: Timestamp::from_unix_micros(row.get(11)),
        updated_at: Timestamp::from_unix_micros(row.get(12)),
        runner,
    };
    Ok((task, row.get(15)))
}

fn load(run: &mut dyn Run, id: TaskId) -> Result<Option<(Task, i64)>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
    run.row(&sql, &[&uuid(id)])?
        .map(|row| task_from_row(&row))
        .transpose()
}

fn insert(run: &mut dyn Run, task: &Task) -> Result<()> {
    let runner_node = task.runner.as_ref().map(|r| r.node.as_str().to_owned());
    let lease_until = task.runner.as_ref().map(|r| r.lease_until.as_unix_micros());
    let inserted = run.execute(
        "INSERT INTO tasks (id, kind, status, owner, image_id, request_id, user_id, input,
             result, message, expires_at, created_at, updated_at, runner_node, lease_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (id) DO NOTHING",
        &[
            &uuid(task.id),
            &task.kind.as_str(),
            &task.status.as_str(),
            &task.owner,
            &task.image_id.map(|i| i.as_uuid()),
            &task.request_id,
            &task.user_id,
            &task.input,
            &task.result,
            &task.message,
            &task.expires_at.map(Timestamp::as_unix_micros),
            &task.created_at.as_unix_micros(),
            &task.updated_at.as_unix_micros(),
            &runner_node,
            &lease_until,
        ],
    )?;
    if inserted == 0 {
        return Err(Error::DuplicateTask(task.id));
    }
    Ok(())
}

/// Stores the changeable fields of `task` if its row is still at `version`; `false` when
/// another write came first.
fn store(run: &mut dyn Run, task: &Task, version: i64) -> Result<bool> {
    let runner_node = task.runner.as_ref().map(|r| r.node.as_str().to_owned());
    let lease_until = task.runner.as_ref().map(|r| r.lease_until.as_unix_micros());
    let changed = run.execute(
        "UPDATE tasks SET version = version + 1, status = $2, owner = $3, request_id = $4,
             user_id = $5, input = $6, result = $7, message = $8, expires_at = $9,
             updated_at = $10, runner_node = $11, lease_until = $12
         WHERE id = $1 AND version = $13",
        &[
            &uuid(task.id),
            &task.status.as_str(),
            &task.owner,
            &task.request_id,
            &task.user_id,
            &task.input,
            &task.result,
            &task.message,
            &task.expires_at.map(Timestamp::as_unix_micros),
            &task.updated_at.as_unix_micros(),
            &runner_node,
            &lease_until,
            &version,
        ],
    )?;
    Ok(changed == 1)
}

fn read<T>(pool: &Pool, op: impl FnOnce(&mut dyn Run) -> Result<T>) -> Result<T> {
    let mut session = pool.get()?;
    op(&mut *session)
}

impl Tasks for PgBackend {
    fn create_task(&self, task: &Task) -> Result<()> {
        write::write(&self.inner.pool, |tx, _| insert(tx, task).map(Some))
    }

    fn get_task(&self, id: TaskId) -> Result<Task> {
        read(&self.inner.pool, |run| {
            Ok(load(run, id)?.ok_or(Error::TaskNotFound(id))?.0)
        })
    }

    fn update_task(
        &self,
        id: TaskId,
        edit: &mut dyn FnMut(&mut Task) -> Result<()>,
    ) -> Result<Task> {
        write::write(&self.inner.pool, |tx, now| {
            let (old, version) = load(tx, id)?.ok_or(Error::TaskNotFound(id))?;
            let new = old.edited(now, edit)?;
            let done = store(tx, &new, version)?;
            Ok(applied(done, new))
        })
    }

    fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        // Tasks expire (48 hours after they end, by default): the table stays small, and the
        // shared rule pages it exactly as the embedded engine does.
        let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks");
        let owner = filter.owner.clone();
        if owner.is_some() {
            sql.push_str(" WHERE owner = $1");
        }
        let tasks = read(&self.inner.pool, |run| {
            let rows = match &owner {
                Some(owner) => run.rows(&sql, &[owner])?,
                None => run.rows(&sql, &[])?,
            };
            rows.iter()
                .map(|row| task_from_row(row).map(|(task, _)| task))
                .collect::<Result<Vec<Task>>>()
        })?;
        page_tasks(tasks, filter)
    }

    fn image_tasks(&self, image: ImageId) -> Result<Vec<Task>> {
        let sql =
            format!("SELECT {TASK_COLUMNS} FROM tasks WHERE image_id = $1 ORDER BY created_at, id");
        read(&self.inner.pool, |run| {
            run.rows(&sql, &[&image.as_uuid()])?
                .iter()
                .map(|row| task_from_row(row).map(|(task, _)| task))
                .collect()
        })
    }

    fn purge_expired_tasks(&self, now: Timestamp) -> Result<u64> {
        write::write(&self.inner.pool, |tx, _| {
            tx.execute(
                "DELETE FROM tasks WHERE expires_at < $1",
                &[&now.as_unix_micros()],
            )
            .map(Some)
        })
    }

    fn begin_import(&self, start: &ImportStart) -> Result<ImportBegun> {
        let image_id = start
            .task
            .image_id
            .ok_or_else(|| Error::Corrupt("an import task names no image".to_owned()))?;
        write::write(&self.inner.pool, |tx, now| {
            let old = write::require(tx, image_id)?;
            let holder_id = old
                .image
                .properties
                .get(IMPORT_TASK_PROPERTY)
                .and_then(|text| text.parse::<TaskId>().ok());
            let holder = match holder_id {
                Some(id) => load(tx, id)?,
                None => None,
            };
            let mut new = old.image.clone();
            apply_begin(&mut new, holder.as_ref().map(|(t, _)| t), start, now)?;
            rules::check_edit(&old.image, &new)?;
            let image = if start.to == old.image.status {
                new.updated_at = now;
                new
            } else {
                rules::transition(&old.image, new, start.to, now)?
            };
            let upload = if start.to == old.image.status {
                Upload::Keep
            } else {
                Upload::Clear
            };
            if !put(tx, &old, &image, upload, now)? {
                return Ok(None);
            }
            let taken_over = match holder {
                Some((mut holder, version)) => {
                    // A renewal since it was read: run again, and find it alive.
                    if preempt(&mut holder, now) && !store(tx, &holder, version)? {
                        return Ok(None);
                    }
                    Some(holder)
                }
                None => None,
            };
            insert(tx, &start.task)?;
            Ok(Some(ImportBegun { image, taken_over }))
        })
    }

    fn renew_import_lease(&self, image: ImageId, task: TaskId, until: Timestamp) -> Result<()> {
        write::write(&self.inner.pool, |tx, now| {
            let locked = match write::load(tx, image, false)? {
                Some(stored) => holds_lock(&stored.image, task),
                None => false,
            };
            let (_, version) = load(tx, task)?.ok_or(Error::TaskNotFound(task))?;
            if !locked {
                return Err(Error::ImportLockLost(image));
            }
            // Only an unfinished task, with a runner, at the version read.
            let changed = tx.execute(
                "UPDATE tasks SET version = version + 1, updated_at = $2,
                     lease_until = CASE WHEN runner_node IS NULL THEN NULL ELSE $3::bigint END
                 WHERE id = $1 AND version = $4 AND status IN ('pending', 'processing')",
                &[
                    &uuid(task),
                    &now.as_unix_micros(),
                    &until.as_unix_micros(),
                    &version,
                ],
            )?;
            if changed == 1 {
                return Ok(Some(()));
            }
            // Ended, or changed since it was read: which one decides.
            match load(tx, task)? {
                Some((stored, _)) if stored.status.is_final() => Err(Error::ImportLockLost(image)),
                Some(_) => Ok(None),
                None => Err(Error::TaskNotFound(task)),
            }
        })
    }

    fn end_import(
        &self,
        image: ImageId,
        end: &ImportEnd,
        edit: &mut Edit<'_>,
    ) -> Result<Option<Image>> {
        write::write(&self.inner.pool, |tx, now| {
            let (mut task, version) = load(tx, end.task)?.ok_or(Error::TaskNotFound(end.task))?;
            let image = match write::load(tx, image, false)? {
                None => None,
                Some(stored) if !holds_lock(&stored.image, end.task) => {
                    return Err(Error::ImportLockLost(image))
                }
                Some(stored) => {
                    let mut new = stored.image.clone();
                    edit(&mut new)?;
                    new.properties.remove(IMPORT_TASK_PROPERTY);
                    rules::check_edit(&stored.image, &new)?;
                    if let Some(owner) = stored.image.owner.as_deref() {
                        if end_adds_data(&stored.image, end) {
                            // Serialised with the owner's other quota-checked writes.
                            write::lock_owner(tx, owner)?;
                            let usage = write::usage(tx, owner, Some(image))?;
                            check_end_size(&stored.image, &new, usage, &end.limits)?;
                        }
                    }
                    let (new, upload) = match end.to {
                        Some(to) if to != stored.image.status => (
                            rules::transition(&stored.image, new, to, now)?,
                            Upload::Clear,
                        ),
                        _ => {
                            new.updated_at = now;
                            (new, Upload::Keep)
                        }
                    };
                    if !put(tx, &stored, &new, upload, now)? {
                        return Ok(None);
                    }
                    Some(new)
                }
            };
            apply_end(&mut task, end, now);
            if !store(tx, &task, version)? {
                return Ok(None);
            }
            Ok(Some(image))
        })
    }
}
