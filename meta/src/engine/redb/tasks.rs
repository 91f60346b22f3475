//! The task tables and every [`Tasks`](crate::tasks::Tasks) call of the redb engine.
//!
//! | table            | key                    | value                     |
//! |------------------|------------------------|---------------------------|
//! | `tasks`          | `u128` task id         | `&[u8]` record (below)    |
//! | `tasks_by_image` | `(u128, u128)` image, task | `()`                  |
//!
//! A record is one format byte (`TASK_V1 = 1`) and the postcard encoding of [`TaskRecordV1`];
//! the rules of `record.rs` apply (never reorder or retype a field; a new layout gets a new
//! format byte). Listing reads the whole `tasks` table: tasks expire (48 hours after they end,
//! by default), so it stays small.

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::write::Writer;
use super::StorageResultExt;
use crate::backend::Edit;
use crate::error::{Error, Result};
use crate::tasks::{
    apply_begin, apply_end, check_end_size, end_adds_data, holds_lock, page_tasks, preempt,
    ImportBegun, ImportEnd, ImportStart, Task, TaskFilter, TaskId, TaskRunner, TaskStatus,
    TaskType, IMPORT_TASK_PROPERTY,
};
use crate::types::{Image, ImageId, NodeId, Timestamp};

pub(crate) const TASKS: TableDefinition<u128, &[u8]> = TableDefinition::new("tasks");
pub(crate) const TASKS_BY_IMAGE: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("tasks_by_image");

/// Creates the task tables (schema version 5).
pub(crate) fn create(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(TASKS).storage()?;
    txn.open_table(TASKS_BY_IMAGE).storage()?;
    Ok(())
}

const TASK_V1: u8 = 1;

/// Task record, format 1. Field order is part of the disk format.
#[derive(Serialize, Deserialize)]
struct TaskRecordV1 {
    kind: u8,
    status: u8,
    owner: Option<String>,
    image_id: Option<u128>,
    request_id: Option<String>,
    user_id: Option<String>,
    input: String,
    result: Option<String>,
    message: String,
    expires_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    runner: Option<(String, i64)>,
}

fn encode(task: &Task) -> Vec<u8> {
    let record = TaskRecordV1 {
        kind: task.kind.code(),
        status: task.status.code(),
        owner: task.owner.clone(),
        image_id: task.image_id.map(ImageId::to_key),
        request_id: task.request_id.clone(),
        user_id: task.user_id.clone(),
        input: task.input.clone(),
        result: task.result.clone(),
        message: task.message.clone(),
        expires_at: task.expires_at.map(Timestamp::as_unix_micros),
        created_at: task.created_at.as_unix_micros(),
        updated_at: task.updated_at.as_unix_micros(),
        runner: task
            .runner
            .as_ref()
            .map(|r| (r.node.as_str().to_owned(), r.lease_until.as_unix_micros())),
    };
    let mut bytes = vec![TASK_V1];
    // postcard into a Vec cannot fail for these field types.
    bytes.extend(postcard::to_allocvec(&record).expect("a task record always encodes"));
    bytes
}

fn decode(id: TaskId, bytes: &[u8]) -> Result<Task> {
    let corrupt = |what: &str| Error::Corrupt(format!("task {id}: {what}"));
    let (format, body) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
    if *format != TASK_V1 {
        return Err(corrupt(&format!("unknown record format {format}")));
    }
    let record: TaskRecordV1 =
        postcard::from_bytes(body).map_err(|e| corrupt(&format!("undecodable: {e}")))?;
    let runner = match record.runner {
        None => None,
        Some((node, lease_until)) => Some(TaskRunner {
            node: node
                .parse::<NodeId>()
                .map_err(|_| corrupt("invalid runner node"))?,
            lease_until: Timestamp::from_unix_micros(lease_until),
        }),
    };
    Ok(Task {
        id,
        kind: TaskType::from_code(record.kind).ok_or_else(|| corrupt("unknown type"))?,
        status: TaskStatus::from_code(record.status).ok_or_else(|| corrupt("unknown status"))?,
        owner: record.owner,
        image_id: record.image_id.map(ImageId::from_key),
        request_id: record.request_id,
        user_id: record.user_id,
        input: record.input,
        result: record.result,
        message: record.message,
        expires_at: record.expires_at.map(Timestamp::from_unix_micros),
        created_at: Timestamp::from_unix_micros(record.created_at),
        updated_at: Timestamp::from_unix_micros(record.updated_at),
        runner,
    })
}

fn load(table: &impl ReadableTable<u128, &'static [u8]>, id: TaskId) -> Result<Option<Task>> {
    match table.get(id.to_key()).storage()? {
        Some(guard) => decode(id, guard.value()).map(Some),
        None => Ok(None),
    }
}

fn all(table: &impl ReadableTable<u128, &'static [u8]>) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for entry in table.iter().storage()? {
        let (key, value) = entry.storage()?;
        tasks.push(decode(TaskId::from_key(key.value()), value.value())?);
    }
    Ok(tasks)
}

pub(super) fn get_task(txn: &ReadTransaction, id: TaskId) -> Result<Task> {
    let table = txn.open_table(TASKS).storage()?;
    load(&table, id)?.ok_or(Error::TaskNotFound(id))
}

pub(super) fn list_tasks(txn: &ReadTransaction, filter: &TaskFilter) -> Result<Vec<Task>> {
    let table = txn.open_table(TASKS).storage()?;
    page_tasks(all(&table)?, filter)
}

pub(super) fn image_tasks(txn: &ReadTransaction, image: ImageId) -> Result<Vec<Task>> {
    let table = txn.open_table(TASKS).storage()?;
    let index = txn.open_table(TASKS_BY_IMAGE).storage()?;
    let key = image.to_key();
    let mut tasks = Vec::new();
    for entry in index.range((key, u128::MIN)..=(key, u128::MAX)).storage()? {
        let (entry, _) = entry.storage()?;
        let id = TaskId::from_key(entry.value().1);
        if let Some(task) = load(&table, id)? {
            tasks.push(task);
        }
    }
    tasks.sort_by_key(|t| (t.created_at, t.id));
    Ok(tasks)
}

/// The task tables of one write transaction.
pub(super) struct TaskTables<'txn> {
    tasks: Table<'txn, u128, &'static [u8]>,
    by_image: Table<'txn, (u128, u128), ()>,
}

impl<'txn> TaskTables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<TaskTables<'txn>> {
        Ok(TaskTables {
            tasks: txn.open_table(TASKS).storage()?,
            by_image: txn.open_table(TASKS_BY_IMAGE).storage()?,
        })
    }

    fn get(&self, id: TaskId) -> Result<Option<Task>> {
        load(&self.tasks, id)
    }

    fn require(&self, id: TaskId) -> Result<Task> {
        self.get(id)?.ok_or(Error::TaskNotFound(id))
    }

    fn put(&mut self, task: &Task) -> Result<()> {
        self.tasks
            .insert(task.id.to_key(), encode(task).as_slice())
            .storage()?;
        if let Some(image) = task.image_id {
            self.by_image
                .insert((image.to_key(), task.id.to_key()), ())
                .storage()?;
        }
        Ok(())
    }

    pub(super) fn create(&mut self, task: &Task) -> Result<()> {
        if self.get(task.id)?.is_some() {
            return Err(Error::DuplicateTask(task.id));
        }
        self.put(task)
    }

    pub(super) fn update(
        &mut self,
        id: TaskId,
        now: Timestamp,
        edit: &mut dyn FnMut(&mut Task) -> Result<()>,
    ) -> Result<Task> {
        let old = self.require(id)?;
        let new = old.edited(now, edit)?;
        self.put(&new)?;
        Ok(new)
    }

    pub(super) fn purge_expired(&mut self, now: Timestamp) -> Result<u64> {
        let expired: Vec<Task> = all(&self.tasks)?
            .into_iter()
            .filter(|t| t.expires_at.is_some_and(|at| at < now))
            .collect();
        for task in &expired {
            self.tasks.remove(task.id.to_key()).storage()?;
            if let Some(image) = task.image_id {
                self.by_image
                    .remove((image.to_key(), task.id.to_key()))
                    .storage()?;
            }
        }
        Ok(expired.len() as u64)
    }

    pub(super) fn begin_import(
        &mut self,
        writer: &mut Writer<'_>,
        start: &ImportStart,
    ) -> Result<ImportBegun> {
        let image_id = start
            .task
            .image_id
            .ok_or_else(|| Error::Corrupt("an import task names no image".to_owned()))?;
        let old = writer.require(image_id)?;
        let holder_id = old
            .properties
            .get(IMPORT_TASK_PROPERTY)
            .and_then(|text| text.parse::<TaskId>().ok());
        let holder = match holder_id {
            Some(id) => self.get(id)?,
            None => None,
        };
        let mut new = old.clone();
        apply_begin(&mut new, holder.as_ref(), start, writer.now)?;
        let image = if start.to == old.status {
            writer.update(image_id, &mut |image: &mut Image| {
                *image = new.clone();
                Ok(())
            })?
        } else {
            writer.update_to(image_id, start.to, &mut |image: &mut Image| {
                *image = new.clone();
                Ok(())
            })?
        };
        let taken_over = match holder {
            Some(mut holder) => {
                if preempt(&mut holder, writer.now) {
                    self.put(&holder)?;
                }
                Some(holder)
            }
            None => None,
        };
        self.create(&start.task)?;
        Ok(ImportBegun { image, taken_over })
    }

    pub(super) fn renew_lease(
        &mut self,
        writer: &Writer<'_>,
        image: ImageId,
        task: TaskId,
        until: Timestamp,
    ) -> Result<()> {
        let locked = match writer.require(image) {
            Ok(stored) => holds_lock(&stored, task),
            Err(Error::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        let mut stored = self.require(task)?;
        if !locked || stored.status.is_final() {
            return Err(Error::ImportLockLost(image));
        }
        if let Some(runner) = stored.runner.as_mut() {
            runner.lease_until = until;
        }
        stored.updated_at = writer.now;
        self.put(&stored)
    }

    pub(super) fn end_import(
        &mut self,
        writer: &mut Writer<'_>,
        image: ImageId,
        end: &ImportEnd,
        edit: &mut Edit<'_>,
    ) -> Result<Option<Image>> {
        let mut task = self.require(end.task)?;
        let stored = match writer.require(image) {
            Ok(stored) => Some(stored),
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let image = match stored {
            None => None,
            Some(stored) if !holds_lock(&stored, end.task) => {
                return Err(Error::ImportLockLost(image))
            }
            Some(stored) => {
                // The owner's usage, read in this (single-writer) transaction.
                let usage = match stored.owner.as_deref() {
                    Some(owner) if end_adds_data(&stored, end) => {
                        Some(writer.usage(owner, Some(image))?)
                    }
                    _ => None,
                };
                let mut apply = |image: &mut Image| {
                    edit(image)?;
                    image.properties.remove(IMPORT_TASK_PROPERTY);
                    if let Some(usage) = usage {
                        check_end_size(&stored, image, usage, &end.limits)?;
                    }
                    Ok(())
                };
                match end.to {
                    Some(to) if to != stored.status => {
                        Some(writer.update_to(image, to, &mut apply)?)
                    }
                    _ => Some(writer.update(image, &mut apply)?),
                }
            }
        };
        apply_end(&mut task, end, writer.now);
        self.put(&task)?;
        Ok(image)
    }
}
