//! The backend conformance suite: every behaviour of [`meta::Backend`], written against the
//! trait alone, so that each engine runs the same tests unchanged.
//!
//! An engine joins by implementing [`Engine`] (a fresh database, and a way to reopen it) and
//! instantiating the suite in its own test file:
//!
//! ```ignore
//! #[macro_use]
//! mod suite;
//! backend_tests!(suite::RedbEngine);
//! ```
//!
//! and the model test with `suite::model::run::<MyEngine>` (see `tests/model.rs`). Engine
//! internals (index costs, file formats, migrations) are tested beside the engine instead.

// Each test binary uses part of the suite; helpers here are not `#[test]` functions, which
// clippy's allow-unwrap-in-tests exempts, and a panic is how a test helper reports failure.
#![allow(dead_code, unused_macros, clippy::unwrap_used)]

pub mod adopt;
pub mod images;
pub mod listing;
pub mod metadefs;
pub mod metadefs_model;
pub mod model;
pub mod sharing;
pub mod tasks;
pub mod uploads;

use std::path::PathBuf;

use meta::{
    Backend, Image, ImageId, ImageStatus, Limits, ListFilter, Location, NodeId, PgBackend,
    PgOptions, RedbBackend, Result, SortDir, SortKey, Timestamp, UploadClaim, UploadOutcome,
};

/// A database the suite can run on.
pub trait Engine: Sized {
    /// A new, empty database.
    fn create() -> Self;
    /// The backend on it.
    fn backend(&self) -> &dyn Backend;
    /// Closes the database and opens it again (what a restart does).
    fn reopen(&mut self);
}

/// The embedded engine, on a file in a temporary folder.
pub struct RedbEngine {
    _dir: tempfile::TempDir,
    path: PathBuf,
    backend: Option<RedbBackend>,
}

impl Engine for RedbEngine {
    fn create() -> RedbEngine {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let backend = Some(RedbBackend::open(&path).unwrap());
        RedbEngine {
            _dir: dir,
            path,
            backend,
        }
    }

    fn backend(&self) -> &dyn Backend {
        self.backend.as_ref().unwrap()
    }

    fn reopen(&mut self) {
        self.backend = None;
        self.backend = Some(RedbBackend::open(&self.path).unwrap());
    }
}

/// The PostgreSQL engine, on a schema of its own in the database at `GLINT_PG_TEST_URL` (a
/// private cluster that `tests/e2e/pg.sh` starts), dropped at the end.
pub struct PgEngine {
    options: PgOptions,
    schema: String,
    admin: postgres::Client,
    backend: Option<PgBackend>,
}

/// The test database's URL, or `None` (then the PostgreSQL tests say so and pass, unless
/// `GLINT_REQUIRE_PG` is set, when they fail).
pub fn pg_url() -> Option<String> {
    match std::env::var("GLINT_PG_TEST_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("GLINT_REQUIRE_PG").is_none(),
                "GLINT_REQUIRE_PG is set but GLINT_PG_TEST_URL is not"
            );
            eprintln!("GLINT_PG_TEST_URL is not set: PostgreSQL test skipped (tests/e2e/pg.sh)");
            None
        }
    }
}

/// Whether the PostgreSQL tests can run.
pub fn pg_ready() -> bool {
    pg_url().is_some()
}

impl PgEngine {
    /// The options of this engine's database (its own schema first on the search path).
    pub fn options(&self) -> &PgOptions {
        &self.options
    }
}

impl Engine for PgEngine {
    fn create() -> PgEngine {
        let url = pg_url().expect("the PostgreSQL tests run only with GLINT_PG_TEST_URL");
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let mut options = PgOptions::new(format!(
            "{url}{}options=-csearch_path%3D{schema}",
            if url.contains('?') { "&" } else { "?" }
        ));
        options.max_idle = 2;
        let report = PgBackend::sync(&options).unwrap();
        assert_eq!(report.to, meta::PG_SCHEMA_VERSION);
        let backend = Some(PgBackend::connect(&options).unwrap());
        PgEngine {
            options,
            schema,
            admin,
            backend,
        }
    }

    fn backend(&self) -> &dyn Backend {
        self.backend.as_ref().unwrap()
    }

    fn reopen(&mut self) {
        self.backend = None;
        self.backend = Some(PgBackend::connect(&self.options).unwrap());
    }
}

impl Drop for PgEngine {
    fn drop(&mut self) {
        self.backend = None;
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema));
    }
}

/// One `#[test]` per suite test, run on `$engine`; with `if $ready`, a test returns at once
/// when `$ready()` is false (an engine whose server is not there).
macro_rules! backend_tests {
    ($engine:ty) => {
        backend_tests!($engine, if (|| true));
    };
    ($engine:ty, if $ready:expr) => {
        backend_tests!(@each $engine, $ready;
            images::images_and_tombstones_survive_reopen,
            images::a_backend_is_shareable_across_threads,
            images::create_stores_the_image_as_given,
            images::create_refuses_a_live_duplicate,
            images::create_refuses_the_id_of_a_deleted_image,
            images::was_deleted_is_true_only_for_tombstoned_ids,
            images::create_requires_queued,
            images::get_of_unknown_id_is_not_found,
            images::update_edits_fields_and_sets_updated_at,
            images::update_writes_nothing_when_the_edit_fails,
            images::update_of_unknown_image_is_not_found,
            images::update_cannot_change_read_only_fields,
            images::formats_change_only_while_queued_or_importing,
            images::update_to_edits_and_moves_status_in_one_write,
            images::delete_returns_the_image_as_it_was,
            images::protected_images_cannot_be_deleted,
            images::counts_follow_every_write,
            uploads::begin_upload_to_saving_needs_both_formats,
            uploads::begin_upload_to_uploading_needs_no_formats,
            uploads::begin_upload_is_a_compare_and_set_on_queued,
            uploads::begin_upload_only_targets_saving_or_uploading,
            uploads::complete_upload_activates_and_records_the_data,
            uploads::complete_upload_after_delete_is_not_found,
            uploads::complete_upload_needs_saving,
            uploads::complete_upload_refuses_data_that_contradicts_known_checksums,
            uploads::abort_upload_returns_to_queued_and_clears_sizes,
            uploads::abort_upload_tolerates_gone_and_queued_images,
            uploads::abort_upload_refuses_other_statuses,
            uploads::set_status_allows_exactly_the_spec_table,
            uploads::deleted_images_have_no_transitions,
            uploads::leaving_queued_or_uploading_towards_data_needs_formats,
            uploads::entering_queued_clears_size_and_virtual_size,
            uploads::deactivate_and_reactivate,
            uploads::recover_interrupted_requeues_saving_and_uploading,
            uploads::an_upload_records_its_node_until_it_ends,
            uploads::recovery_resets_only_this_nodes_uploads,
            listing::default_listing_is_newest_first_and_pages_by_marker,
            listing::equal_created_at_ties_break_on_id_desc,
            listing::keep_filters_without_shortening_pages,
            listing::marker_must_be_a_live_image,
            listing::deleted_images_are_never_listed,
            listing::every_sort_key_orders_like_a_full_sort,
            listing::text_conditions_match_set_values_only,
            listing::number_time_and_flag_conditions,
            listing::tags_and_properties_must_all_match,
            listing::viewers_see_what_spec_5_4_lists,
            listing::member_status_decides_which_shared_images_are_listed,
            metadefs::creates_a_namespace_with_its_content_and_reads_it_back,
            metadefs::duplicate_and_invalid_namespaces_write_nothing,
            metadefs::protected_namespaces_refuse_every_delete,
            metadefs::renaming_a_namespace_moves_its_content,
            metadefs::objects_and_properties_are_created_renamed_and_deleted,
            metadefs::tags_replace_append_rename_and_page,
            metadefs::associations_create_resource_types_that_outlive_them,
            metadefs::listing_filters_sorts_and_pages,
            metadefs::load_modes_follow_glance_manage,
            metadefs::a_failing_load_writes_nothing,
            metadefs::export_lists_everything_oldest_first,
            metadefs::metadefs_survive_reopening,
            listing::a_marker_may_be_invisible_to_the_viewer,
            sharing::members_are_added_pending_listed_updated_and_deleted,
            sharing::members_need_a_shared_image_and_are_unique_and_limited,
            sharing::deleting_an_image_deletes_its_members,
            sharing::usage_follows_create_upload_owner_change_and_delete,
            sharing::quotas_refuse_inside_the_transaction_and_write_nothing,
            sharing::announced_sizes_are_reserved_until_the_upload_ends,
            adopt::adopt_stores_the_record_and_members_as_they_were,
            adopt::adopting_the_same_record_again_changes_nothing,
            adopt::a_different_record_conflicts_unless_replaced,
            adopt::deleted_records_keep_their_ids_taken,
            adopt::a_deleted_record_replaces_a_live_one_only_when_asked,
            adopt::an_adopted_upload_in_progress_is_reset_by_recovery,
            tasks::tasks_are_stored_listed_and_expire,
            tasks::begin_import_locks_the_image_and_moves_its_status,
            tasks::a_lapsed_lease_is_taken_over,
            tasks::end_import_commits_or_reverts_in_one_write,
            tasks::a_finished_stage_survives_recovery,
            tasks::end_import_checks_the_size_quota,
        );
    };
    (@each $engine:ty, $ready:expr; $($module:ident :: $name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                if !($ready)() {
                    return;
                }
                suite::$module::$name::<$engine>();
            }
        )+
    };
}

/// Calls with Glance's defaults (no limits, the suite's own node), returning what the old
/// one-engine API returned, so that tests read as the behaviour they check.
pub trait Short: Backend {
    /// `create_image` without limits.
    fn create(&self, image: &Image) -> Result<()> {
        self.create_image(image, &Limits::UNLIMITED)
    }

    /// `begin_upload` to `to` by [`node`], nothing announced, no limits: the image.
    fn begin(&self, id: ImageId, to: ImageStatus) -> Result<Image> {
        self.begin_upload(id, &claim(to, node()), &Limits::UNLIMITED)
            .map(|start| start.image)
    }

    /// `complete_upload` without limits.
    fn complete(&self, id: ImageId, outcome: UploadOutcome) -> Result<Image> {
        self.complete_upload(id, outcome, &Limits::UNLIMITED)
    }

    /// `recover_interrupted` of [`node`].
    fn recover(&self) -> Result<Vec<ImageId>> {
        self.recover_interrupted(&node())
    }

    /// A page of every live image: sorted, after `marker`, at most `limit`.
    fn list(
        &self,
        sort: &[(SortKey, SortDir)],
        marker: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<Image>> {
        self.list_images(&ListFilter::all().sorted(sort).after(marker).limit(limit))
    }
}

impl<B: Backend + ?Sized> Short for B {}

/// The node the suite's uploads run on.
pub fn node() -> NodeId {
    "suite-node".parse().unwrap()
}

/// Another node.
pub fn other_node() -> NodeId {
    "other-node".parse().unwrap()
}

/// A claim for an upload to `to` by `node`, nothing announced.
pub fn claim(to: ImageStatus, node: NodeId) -> UploadClaim {
    UploadClaim {
        to,
        node,
        incoming_bytes: None,
    }
}

pub fn id(n: u128) -> ImageId {
    // Version-4-shaped ids with a readable counter in the low bits.
    ImageId::from_uuid(uuid::Uuid::from_u128(
        0x1000_0000_0000_4000_8000_0000_0000_0000 | n,
    ))
}

pub fn at(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros)
}

/// A queued image with both formats set, created at `n` seconds.
pub fn queued(n: u128) -> Image {
    let mut image = Image::new(id(n), at(1_700_000_000_000_000 + n as i64 * 1_000_000));
    image.name = Some(format!("image-{n}"));
    image.disk_format = Some("qcow2".into());
    image.container_format = Some("bare".into());
    image
}

/// [`queued`], owned by `owner`.
pub fn owned(n: u128, owner: &str) -> Image {
    let mut image = queued(n);
    image.owner = Some(owner.into());
    image
}

pub fn outcome(id: ImageId) -> UploadOutcome {
    UploadOutcome {
        size: 1024,
        checksum: "0f343b0931126a20f133d67c2b018a3b".into(),
        os_hash_algo: "sha512".into(),
        os_hash_value: "8".repeat(128),
        virtual_size: Some(4096),
        location: Location {
            url: format!("file:///data/images/{id}"),
            store: "file".into(),
        },
    }
}

/// Creates image `n` and drives it into `status` through allowed transitions.
pub fn image_in(meta: &dyn Backend, n: u128, status: ImageStatus) -> ImageId {
    use ImageStatus::*;
    let image = queued(n);
    meta.create(&image).unwrap();
    let path: &[ImageStatus] = match status {
        Queued => &[],
        Saving => &[Saving],
        Uploading => &[Uploading],
        Importing => &[Importing],
        Active => &[Active],
        Killed => &[Saving, Killed],
        PendingDelete => &[Active, PendingDelete],
        Deactivated => &[Active, Deactivated],
        Deleted => &[Deleted],
    };
    for to in path {
        meta.set_status(image.id, *to).unwrap();
    }
    image.id
}

pub fn status_of(meta: &dyn Backend, id: ImageId) -> ImageStatus {
    meta.get_image(id).unwrap().status
}

pub fn count_of(meta: &dyn Backend, status: ImageStatus) -> u64 {
    meta.images_by_status()
        .unwrap()
        .into_iter()
        .find(|(counted, _)| *counted == status)
        .map_or(0, |(_, count)| count)
}

pub fn ids(images: &[Image]) -> Vec<ImageId> {
    images.iter().map(|image| image.id).collect()
}
