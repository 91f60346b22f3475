//! Tasks and the import lock: the records of asynchronous image work (Glance's tasks), and the
//! calls that start, keep alive and end an import of an image.
//!
//! An import holds its image through a lock (Glance's `os_glance_import_task` property, which
//! names the task) and a lease kept on the task: [`TaskRunner::lease_until`]. The node running
//! the import renews the lease while it works ([`Tasks::renew_import_lease`]); a lock whose task
//! is no longer running, or whose lease lapsed (its node died), is taken over by the next
//! [`Tasks::begin_import`], which fails the old task and returns it so that the caller can
//! clean up what it left. A lock whose lease still runs is [`Error::ImportInProgress`].
//!
//! What this module leaves out: running imports (the gateway's task runner), and which image
//! status an import needs (the gateway checks it for its message; `begin_import` re-checks it
//! under the lock).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::backend::Edit;
use crate::error::{Error, Result};
use crate::quota::{self, Limits, Usage};
use crate::types::{Image, ImageId, ImageStatus, NodeId, ParseError, Timestamp};

/// The image property naming the task that holds an image's import lock (Glance's name).
pub const IMPORT_TASK_PROPERTY: &str = "os_glance_import_task";
/// The image property listing the stores an import still has to fill (comma-separated).
pub const IMPORTING_STORES_PROPERTY: &str = "os_glance_importing_to_stores";
/// The image property listing the stores an import failed to fill (comma-separated).
pub const FAILED_STORES_PROPERTY: &str = "os_glance_failed_import";
/// The image property naming the gateway holding an image's staged data (its URL, or its node
/// id when it has none): set when a stage finishes (its presence marks the stage finished),
/// removed when an import starts. Hidden from API responses, as in Glance.
pub const STAGE_HOST_PROPERTY: &str = "os_glance_stage_host";

/// The id of a task: a UUID, shown hyphenated and lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A new random id.
    pub fn new_v4() -> TaskId {
        TaskId(Uuid::new_v4())
    }

    pub(crate) const fn to_key(self) -> u128 {
        self.0.as_u128()
    }

    pub(crate) const fn from_key(key: u128) -> TaskId {
        TaskId(Uuid::from_u128(key))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for TaskId {
    type Err = ParseError;

    /// Accepts what [`ImageId`] accepts: the canonical hyphenated form only.
    fn from_str(text: &str) -> Result<TaskId, ParseError> {
        let image: ImageId = text.parse().map_err(|_| ParseError::new("task id", text))?;
        Ok(TaskId(image.as_uuid()))
    }
}

/// What a task does (Glance's task types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskType {
    /// The legacy `POST /v2/tasks` import.
    Import,
    /// `POST /v2/images/{id}/import`.
    ApiImageImport,
    /// The data of a location added through `POST /v2/images/{id}/locations`.
    LocationImport,
}

impl TaskType {
    /// Every type.
    pub const ALL: [TaskType; 3] = [
        TaskType::Import,
        TaskType::ApiImageImport,
        TaskType::LocationImport,
    ];

    /// Glance's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskType::Import => "import",
            TaskType::ApiImageImport => "api_image_import",
            TaskType::LocationImport => "location_import",
        }
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            TaskType::Import => 1,
            TaskType::ApiImageImport => 2,
            TaskType::LocationImport => 3,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<TaskType> {
        TaskType::ALL.into_iter().find(|t| t.code() == code)
    }
}

impl FromStr for TaskType {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<TaskType, ParseError> {
        TaskType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| ParseError::new("task type", text))
    }
}

/// Where a task is (Glance's task statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Created, not started.
    Pending,
    /// Running.
    Processing,
    /// Done.
    Success,
    /// Failed; the message says why.
    Failure,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 4] = [
        TaskStatus::Pending,
        TaskStatus::Processing,
        TaskStatus::Success,
        TaskStatus::Failure,
    ];

    /// Glance's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Processing => "processing",
            TaskStatus::Success => "success",
            TaskStatus::Failure => "failure",
        }
    }

    /// Whether the task has ended.
    pub const fn is_final(self) -> bool {
        matches!(self, TaskStatus::Success | TaskStatus::Failure)
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            TaskStatus::Pending => 1,
            TaskStatus::Processing => 2,
            TaskStatus::Success => 3,
            TaskStatus::Failure => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl FromStr for TaskStatus {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<TaskStatus, ParseError> {
        TaskStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| ParseError::new("task status", text))
    }
}

/// The node running a task and how long its lease lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRunner {
    /// The node.
    pub node: NodeId,
    /// Until when the task counts as alive without a renewal.
    pub lease_until: Timestamp,
}

/// A task record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its id.
    pub id: TaskId,
    /// What it does.
    pub kind: TaskType,
    /// Where it is.
    pub status: TaskStatus,
    /// The project that asked for it.
    pub owner: Option<String>,
    /// The image it works on.
    pub image_id: Option<ImageId>,
    /// The request that created it.
    pub request_id: Option<String>,
    /// The user that created it.
    pub user_id: Option<String>,
    /// Its input, a JSON document (text).
    pub input: String,
    /// Its result, a JSON document (text), once it has one.
    pub result: Option<String>,
    /// A message for people, usually why it failed; empty otherwise.
    pub message: String,
    /// When it may be removed (set when it ends).
    pub expires_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Who runs it, while it runs.
    pub runner: Option<TaskRunner>,
}

impl Task {
    /// Whether the task counts as running at `now`: not ended, and with a lease that has not
    /// lapsed (a task without a runner has none).
    pub fn is_alive(&self, now: Timestamp) -> bool {
        !self.status.is_final() && self.runner.as_ref().is_some_and(|r| r.lease_until > now)
    }

    /// `self` changed by `edit` at `now`, as both engines' `update_task` store it: what a task
    /// never changes (id, type, image, creation time) kept, `updated_at` set.
    pub(crate) fn edited(
        &self,
        now: Timestamp,
        edit: &mut dyn FnMut(&mut Task) -> crate::Result<()>,
    ) -> crate::Result<Task> {
        let mut new = self.clone();
        edit(&mut new)?;
        new.id = self.id;
        new.kind = self.kind;
        new.created_at = self.created_at;
        new.image_id = self.image_id;
        new.updated_at = now;
        Ok(new)
    }
}

/// Which tasks [`Tasks::list_tasks`] returns, and in which order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only the tasks of this owner (`None`: everyone's).
    pub owner: Option<String>,
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only tasks of this type.
    pub kind: Option<TaskType>,
    /// Start after this task (in the order asked).
    pub marker: Option<TaskId>,
    /// At most this many.
    pub limit: usize,
    /// The order: this key, then `created_at`, then id.
    pub sort_key: TaskSortKey,
    /// Ascending (else descending).
    pub ascending: bool,
}

/// What tasks are sorted by (Glance sorts by any column of its table; these are the ones a
/// task has).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TaskSortKey {
    /// `created_at` (Glance's default).
    #[default]
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `id`.
    Id,
    /// `type`.
    Type,
    /// `status`.
    Status,
}

impl FromStr for TaskSortKey {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<TaskSortKey, ParseError> {
        Ok(match text {
            "created_at" => TaskSortKey::CreatedAt,
            "updated_at" => TaskSortKey::UpdatedAt,
            "id" => TaskSortKey::Id,
            "type" => TaskSortKey::Type,
            "status" => TaskSortKey::Status,
            _ => return Err(ParseError::new("task sort key", text)),
        })
    }
}

/// The start of an import, for [`Tasks::begin_import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportStart {
    /// The task to create (its `image_id` is the image imported into; it should be
    /// `processing`, with a runner and lease).
    pub task: Task,
    /// The status the image must be in.
    pub from: ImageStatus,
    /// The status it moves to (`importing`; `from` itself for a copy, which stays `active`).
    pub to: ImageStatus,
    /// The stores the import fills: added to `os_glance_importing_to_stores`, removed from
    /// `os_glance_failed_import`.
    pub stores: Vec<String>,
}

/// What [`Tasks::begin_import`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportBegun {
    /// The image as stored, holding the lock.
    pub image: Image,
    /// The task whose lock was taken over (its lease had lapsed or it had ended), now
    /// `failure`; its stores were removed from the progress properties.
    pub taken_over: Option<Task>,
}

/// How an import ends, for [`Tasks::end_import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportEnd {
    /// The task.
    pub task: TaskId,
    /// `success` or `failure`.
    pub status: TaskStatus,
    /// The task's result (JSON text).
    pub result: Option<String>,
    /// The task's message.
    pub message: String,
    /// When the task may be removed.
    pub expires_at: Timestamp,
    /// The image's next status (`None`: unchanged).
    pub to: Option<ImageStatus>,
    /// The owner's limits: an import that brings data to an image (it becomes `active` from
    /// another status) is refused with [`Error::QuotaExceeded`] when the data would take the
    /// owner over `image_size_total`, exactly as
    /// [`Backend::complete_upload`](crate::Backend::complete_upload) refuses an upload.
    pub limits: Limits,
}

/// The tasks calls of the metadata API (a supertrait of [`Backend`](crate::Backend)).
pub trait Tasks {
    /// Stores a new task ([`Error::DuplicateTask`] when its id is taken).
    fn create_task(&self, task: &Task) -> Result<()>;

    /// The task `id` ([`Error::TaskNotFound`] when there is none).
    fn get_task(&self, id: TaskId) -> Result<Task>;

    /// Edits task `id` (not its id, type or `created_at`); sets `updated_at`.
    fn update_task(
        &self,
        id: TaskId,
        edit: &mut dyn FnMut(&mut Task) -> Result<()>,
    ) -> Result<Task>;

    /// The tasks `filter` admits, in its order, after its marker ([`Error::TaskNotFound`] when
    /// the marker names no task), at most `filter.limit`.
    fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>>;

    /// The tasks of image `image`, oldest first.
    fn image_tasks(&self, image: ImageId) -> Result<Vec<Task>>;

    /// Removes the tasks whose `expires_at` is before `now`; returns how many.
    fn purge_expired_tasks(&self, now: Timestamp) -> Result<u64>;

    /// Takes the import lock of `start.task.image_id` and starts the import, in one
    /// transaction: the image must be `start.from` ([`Error::InvalidTransition`] otherwise)
    /// and not locked by a task that is alive ([`Error::ImportInProgress`]); a lock held by a
    /// task that ended, lapsed or is gone is taken over. Then the image's lock names the new
    /// task, its progress properties list `start.stores`, `os_glance_stage_host` goes, the
    /// status becomes `start.to`, and the task is stored.
    fn begin_import(&self, start: &ImportStart) -> Result<ImportBegun>;

    /// Renews the lease of task `task` on image `image` until `until`. Fails with
    /// [`Error::ImportLockLost`] when the image's lock no longer names the task (it was taken
    /// over, or the image is gone) or the task has ended: the runner must stop.
    fn renew_import_lease(&self, image: ImageId, task: TaskId, until: Timestamp) -> Result<()>;

    /// Ends the import of task `end.task` on image `image` in one transaction: `edit` changes
    /// the image (as [`Backend::update_image`](crate::Backend::update_image) edits), the lock is
    /// dropped, the image moves to `end.to` (the status rules apply), and the task ends as
    /// `end` says, without a runner. Fails with [`Error::ImportLockLost`] when the image's
    /// lock does not name the task, and with [`Error::QuotaExceeded`] when the import brings
    /// data (the image becomes `active` from another status) that would take the owner over
    /// `end.limits.image_size_total_mib` (its other data and reservations counted, the image's
    /// own earlier size not); either writes nothing. An image deleted meanwhile only ends the
    /// task, and returns `None`.
    fn end_import(
        &self,
        image: ImageId,
        end: &ImportEnd,
        edit: &mut Edit<'_>,
    ) -> Result<Option<Image>>;
}

/// The shared rule of `list_tasks`: of `tasks` (every stored task, in any order), those
/// `filter` admits, in its order, after its marker ([`Error::TaskNotFound`] when the marker is
/// not among them), at most `filter.limit`.
pub(crate) fn page_tasks(mut tasks: Vec<Task>, filter: &TaskFilter) -> Result<Vec<Task>> {
    tasks.retain(|t| {
        filter
            .owner
            .as_ref()
            .is_none_or(|o| t.owner.as_ref() == Some(o))
            && filter.status.is_none_or(|s| t.status == s)
            && filter.kind.is_none_or(|k| t.kind == k)
    });
    let key = |t: &Task| {
        let primary = match filter.sort_key {
            TaskSortKey::CreatedAt => format!("{:020}", t.created_at.as_unix_micros()),
            TaskSortKey::UpdatedAt => format!("{:020}", t.updated_at.as_unix_micros()),
            TaskSortKey::Id => t.id.to_string(),
            TaskSortKey::Type => t.kind.as_str().to_owned(),
            TaskSortKey::Status => t.status.as_str().to_owned(),
        };
        (primary, t.created_at, t.id)
    };
    tasks.sort_by_key(key);
    if !filter.ascending {
        tasks.reverse();
    }
    if let Some(marker) = filter.marker {
        let position = tasks
            .iter()
            .position(|t| t.id == marker)
            .ok_or(Error::TaskNotFound(marker))?;
        tasks.drain(..=position);
    }
    tasks.truncate(filter.limit);
    Ok(tasks)
}

/// The shared rule for the task whose lock `begin_import` took over: one still unfinished
/// fails, without a runner. Returns whether it changed.
pub(crate) fn preempt(holder: &mut Task, now: Timestamp) -> bool {
    if holder.status.is_final() {
        return false;
    }
    holder.status = TaskStatus::Failure;
    holder.message = "Expired lock preempted".to_owned();
    holder.runner = None;
    holder.updated_at = now;
    true
}

/// The shared rule for the task `end_import` ends.
pub(crate) fn apply_end(task: &mut Task, end: &ImportEnd, now: Timestamp) {
    task.status = end.status;
    task.result = end.result.clone();
    task.message = end.message.clone();
    task.expires_at = Some(end.expires_at);
    task.runner = None;
    task.updated_at = now;
}

/// Whether the end of an import brings data to its image `stored` (it becomes `active` from
/// another status): then `end_import` checks the owner's `image_size_total` in its transaction.
pub(crate) fn end_adds_data(stored: &Image, end: &ImportEnd) -> bool {
    end.to == Some(ImageStatus::Active) && stored.status != ImageStatus::Active
}

/// The shared quota rule of `end_import`: `new` (the image as the import leaves it, edited
/// from `stored`) must fit its owner's `image_size_total` given `usage` (read in the same
/// transaction, `stored`'s own size counted in it: a staged image's size is charged already).
pub(crate) fn check_end_size(
    stored: &Image,
    new: &Image,
    usage: Usage,
    limits: &Limits,
) -> Result<()> {
    let (Some(owner), Some(size)) = (new.owner.as_deref(), new.size) else {
        return Ok(());
    };
    let mut usage = usage;
    usage.size_bytes = usage.size_bytes.saturating_sub(stored.size.unwrap_or(0));
    quota::check_size(owner, &usage, limits, size)
}

/// The stores of a comma-separated progress property.
pub fn store_list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Adds (or, with `subtract`, removes) `stores` in the comma-separated list `key` of `image`,
/// as Glance's `merge_store_list` does: the property stays, empty, when nothing is left.
pub fn merge_store_list(image: &mut Image, key: &str, stores: &[String], subtract: bool) {
    let mut list = store_list(image.properties.get(key));
    for store in stores {
        if subtract {
            list.retain(|s| s != store);
        } else if !list.contains(store) {
            list.push(store.clone());
        }
    }
    image.properties.insert(key.to_owned(), list.join(","));
}

/// The shared rule of `begin_import`: checks `image` and the lock holder `holder` (the task its
/// lock names, `None` when that task is gone) at `now`, and applies the start to `image`.
/// Returns whether a lock was taken over.
pub(crate) fn apply_begin(
    image: &mut Image,
    holder: Option<&Task>,
    start: &ImportStart,
    now: Timestamp,
) -> Result<bool> {
    if image.status != start.from {
        return Err(Error::InvalidTransition {
            from: image.status,
            to: start.to,
        });
    }
    let locked = image.properties.contains_key(IMPORT_TASK_PROPERTY);
    if let Some(holder) = holder {
        if holder.is_alive(now) {
            return Err(Error::ImportInProgress(image.id));
        }
        let stale: Vec<String> = holder_stores(holder);
        merge_store_list(image, IMPORTING_STORES_PROPERTY, &stale, true);
        merge_store_list(image, FAILED_STORES_PROPERTY, &stale, true);
    }
    image
        .properties
        .insert(IMPORT_TASK_PROPERTY.to_owned(), start.task.id.to_string());
    merge_store_list(image, IMPORTING_STORES_PROPERTY, &start.stores, false);
    merge_store_list(image, FAILED_STORES_PROPERTY, &start.stores, true);
    image.properties.remove(STAGE_HOST_PROPERTY);
    Ok(locked)
}

/// The stores a task's input names (`"backend": [...]`), read without a JSON parser: the
/// gateway writes the input, with `backend` a list of plain store ids.
fn holder_stores(task: &Task) -> Vec<String> {
    let Some(start) = task.input.find("\"backend\":[") else {
        return Vec::new();
    };
    let rest = &task.input[start + "\"backend\":[".len()..];
    let Some(end) = rest.find(']') else {
        return Vec::new();
    };
    rest[..end]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty() && s != "null")
        .collect()
}

/// Whether `image`'s lock names `task`.
pub(crate) fn holds_lock(image: &Image, task: TaskId) -> bool {
    image.properties.get(IMPORT_TASK_PROPERTY) == Some(&task.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(input: &str) -> Task {
        let now = Timestamp::from_unix_micros(1_000_000);
        Task {
            id: TaskId::new_v4(),
            kind: TaskType::ApiImageImport,
            status: TaskStatus::Processing,
            owner: None,
            image_id: None,
            request_id: None,
            user_id: None,
            input: input.to_owned(),
            result: None,
            message: String::new(),
            expires_at: None,
            created_at: now,
            updated_at: now,
            runner: Some(TaskRunner {
                node: "a".parse().unwrap(),
                lease_until: Timestamp::from_unix_micros(2_000_000),
            }),
        }
    }

    #[test]
    fn reads_the_stores_of_a_task_input() {
        let t = task(r#"{"image_id":"x","import_req":{},"backend":["fast","cheap"]}"#);
        assert_eq!(holder_stores(&t), ["fast", "cheap"]);
        assert!(holder_stores(&task(r#"{"backend":[null]}"#)).is_empty());
        assert!(holder_stores(&task("{}")).is_empty());
    }

    #[test]
    fn a_lease_lapses_at_its_end() {
        let t = task("{}");
        assert!(t.is_alive(Timestamp::from_unix_micros(1_999_999)));
        assert!(!t.is_alive(Timestamp::from_unix_micros(2_000_000)));
        let mut ended = t.clone();
        ended.status = TaskStatus::Success;
        assert!(!ended.is_alive(Timestamp::from_unix_micros(0)));
    }

    #[test]
    fn merging_store_lists_keeps_the_property_empty() {
        let mut image = Image::new(ImageId::new_v4(), Timestamp::from_unix_micros(0));
        let stores = vec!["a".to_owned(), "b".to_owned()];
        merge_store_list(&mut image, IMPORTING_STORES_PROPERTY, &stores, false);
        assert_eq!(image.properties[IMPORTING_STORES_PROPERTY], "a,b");
        merge_store_list(&mut image, IMPORTING_STORES_PROPERTY, &stores[..1], true);
        assert_eq!(image.properties[IMPORTING_STORES_PROPERTY], "b");
        merge_store_list(&mut image, IMPORTING_STORES_PROPERTY, &stores, true);
        assert_eq!(image.properties[IMPORTING_STORES_PROPERTY], "");
    }

    #[test]
    fn task_ids_parse_only_canonical_text() {
        let id = TaskId::new_v4();
        assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
        assert!("not-a-uuid".parse::<TaskId>().is_err());
    }
}
