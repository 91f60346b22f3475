//! Unit tests of the redb engine itself: the file (schema version, a second open, newer files),
//! the handle (and its reopening after a full disk), and what a listing page costs in index
//! entries and decoded records. Behaviour every engine shares is tested by the conformance
//! suite, `meta/tests/suite`.

use tempfile::TempDir;

use super::list::tests::index_entries_read;
use super::record::tests::decoded_records;
use super::*;
use crate::filter::{Condition, Scope, Viewer, VisibilityFilter};
use crate::sort::{SortDir, SortKey};
use crate::types::{Timestamp, Visibility};

fn open_temp() -> (TempDir, RedbBackend) {
    let dir = tempfile::tempdir().unwrap();
    let meta = RedbBackend::open(&dir.path().join("meta.redb")).unwrap();
    (dir, meta)
}

fn id(n: u128) -> ImageId {
    // Version-4-shaped ids with a readable counter in the low bits.
    ImageId::from_uuid(uuid::Uuid::from_u128(
        0x1000_0000_0000_4000_8000_0000_0000_0000 | n,
    ))
}

/// A queued image with both formats set, created at `n` seconds.
fn queued(n: u128) -> Image {
    let mut image = Image::new(
        id(n),
        Timestamp::from_unix_micros(1_700_000_000_000_000 + n as i64 * 1_000_000),
    );
    image.name = Some(format!("image-{n}"));
    image.disk_format = Some("qcow2".into());
    image.container_format = Some("bare".into());
    image
}

fn owned(n: u128, owner: &str) -> Image {
    let mut image = queued(n);
    image.owner = Some(owner.into());
    image
}

#[test]
fn new_database_has_current_schema_version() {
    let (_dir, meta) = open_temp();
    assert_eq!(meta.schema_version(), schema::CURRENT_VERSION);
    assert_eq!(meta.count_images().unwrap(), 0);
}

#[test]
fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let meta = RedbBackend::open(&path).unwrap();
    let txn = meta.database().begin_write().unwrap();
    schema::tests::force_version(&txn, 99);
    txn.commit().unwrap();
    drop(meta);
    assert!(matches!(
        RedbBackend::open(&path),
        Err(Error::SchemaTooNew {
            found: 99,
            supported: schema::CURRENT_VERSION
        })
    ));
}

#[test]
fn second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let _meta = RedbBackend::open(&path).unwrap();
    assert!(matches!(RedbBackend::open(&path), Err(Error::AlreadyOpen)));
}

#[test]
fn meta_is_a_shareable_handle() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<RedbBackend>();
}

#[test]
fn clones_share_the_database_across_threads() {
    let (_dir, meta) = open_temp();
    let writer = meta.clone();
    std::thread::spawn(move || writer.create_image(&queued(1), &Limits::UNLIMITED).unwrap())
        .join()
        .unwrap();
    assert_eq!(meta.get_image(id(1)).unwrap().id, id(1));
}

// ---- a full disk

#[test]
fn writes_work_again_once_a_full_disk_has_room() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, full) = RedbBackend::open_on_full_disk(&dir.path().join("meta.redb")).unwrap();
    let create = |n| meta.create_image(&queued(n), &Limits::UNLIMITED);
    create(1).unwrap();
    full.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(create(2), Err(Error::Storage(_))));
    // While it is full, writes keep failing, cleanly.
    assert!(create(3).is_err());
    // The reopen that write tried failed too, and reads wait out its retry interval.
    assert!(meta.get_image(id(1)).is_err());
    full.store(false, std::sync::atomic::Ordering::SeqCst);
    // The first write once there is room again reopens the database and succeeds.
    create(4).unwrap();
    assert_eq!(meta.get_image(id(1)).unwrap().status, ImageStatus::Queued);
    assert!(
        matches!(meta.get_image(id(2)), Err(Error::NotFound(_))),
        "not half written"
    );
    assert!(matches!(meta.get_image(id(3)), Err(Error::NotFound(_))));
    assert_eq!(meta.count_images().unwrap(), 2);
    // And the file opens as it was left.
    drop(meta);
    let meta = RedbBackend::open(&dir.path().join("meta.redb")).unwrap();
    assert_eq!(meta.count_images().unwrap(), 2);
}

/// Reads counted while listing one page: (index entries, records decoded).
fn page_cost(
    meta: &RedbBackend,
    sort: &[(SortKey, SortDir)],
    marker: Option<ImageId>,
) -> (u64, u64) {
    page_cost_of(meta, &ListFilter::all().sorted(sort).after(marker))
}

/// Reads counted while listing one page of 25 with `filter`.
fn page_cost_of(meta: &RedbBackend, filter: &ListFilter) -> (u64, u64) {
    let (entries, records) = (index_entries_read(), decoded_records());
    let page = meta.list_images(&filter.clone().limit(25)).unwrap();
    assert_eq!(page.len(), 25);
    (index_entries_read() - entries, decoded_records() - records)
}

#[test]
fn a_page_reads_about_limit_records_not_the_whole_table() {
    const IMAGES: u128 = 20_000;
    let (_dir, meta) = open_temp();
    let images: Vec<Image> = (0..IMAGES)
        .map(|n| {
            let mut image = queued(n);
            // Many equal names and sizes: groups of 1,000 images.
            image.name = Some(format!("name-{}", n % 20));
            image.size = Some((n % 20) as u64);
            image
        })
        .collect();
    meta.insert_many(&images).unwrap();
    assert_eq!(meta.count_images().unwrap(), IMAGES as u64);

    let middle = Some(id(IMAGES / 2));
    // The marker costs one extra record; the walk reads exactly the page.
    assert_eq!(page_cost(&meta, &[], None), (25, 25));
    assert_eq!(page_cost(&meta, &[], middle), (25, 26));
    for sort in [
        vec![(SortKey::Name, SortDir::Asc)],
        vec![(SortKey::Name, SortDir::Desc)],
        vec![(SortKey::Size, SortDir::Asc)],
        vec![(SortKey::Status, SortDir::Asc)],
        vec![(SortKey::Id, SortDir::Desc)],
        vec![(SortKey::UpdatedAt, SortDir::Asc)],
    ] {
        assert_eq!(page_cost(&meta, &sort, None), (25, 25), "{sort:?}");
        assert_eq!(page_cost(&meta, &sort, middle), (25, 26), "{sort:?}");
    }
    // A second key other than created_at sorts each group in memory: the documented cost.
    let (entries, _) = page_cost(
        &meta,
        &[(SortKey::Name, SortDir::Asc), (SortKey::Size, SortDir::Asc)],
        None,
    );
    assert_eq!(entries, 1_000);
}

#[test]
fn a_viewer_page_reads_about_limit_records_too() {
    const IMAGES: u128 = 20_000;
    let (_dir, meta) = open_temp();
    let images: Vec<Image> = (0..IMAGES)
        .map(|n| {
            // Half the caller's own, half public images of others.
            let mut image = owned(n, if n % 2 == 0 { "p" } else { "q" });
            if n % 2 == 1 {
                image.visibility = Visibility::Public;
            }
            image
        })
        .collect();
    meta.insert_many(&images).unwrap();
    // The caller is a member of a few of q's (public) images: read once per page, not per image.
    for n in [1, 3, 5] {
        meta.write(|writer| {
            writer.update(id(n), &mut |image| {
                image.visibility = Visibility::Shared;
                Ok(())
            })
        })
        .unwrap();
        meta.add_member(id(n), "p", None).unwrap();
    }
    // What the gateway asks for by default: §5.4's scope, not hidden, no deleted-like status.
    let viewer = |project: &str, admin| {
        ListFilter::all()
            .scope(Scope::Viewer(Viewer {
                project: Some(project.to_owned()),
                admin,
                visibility: VisibilityFilter::Default,
                member_status: Some(MemberStatus::Accepted),
            }))
            .with(Condition::OsHidden(false))
            .with(Condition::StatusNotIn(vec![
                ImageStatus::PendingDelete,
                ImageStatus::Killed,
            ]))
    };
    assert_eq!(page_cost_of(&meta, &viewer("p", false)), (25, 25));
    assert_eq!(page_cost_of(&meta, &viewer("a", true)), (25, 25));
    let by_name = viewer("p", false).sorted(&[(SortKey::Name, SortDir::Desc)]);
    assert_eq!(page_cost_of(&meta, &by_name), (25, 25));
    // Ascending, "image-1" comes second: shared with p but not accepted, it is read and
    // left out, and the walk reads one more.
    let by_name = viewer("p", false).sorted(&[(SortKey::Name, SortDir::Asc)]);
    assert_eq!(page_cost_of(&meta, &by_name), (26, 26));
}

/// Not a pass/fail test: prints page times for the listing shapes of spec §5.4 on 100,000
/// images (100 projects; 10% public, 10% private, 80% shared; the caller's project is an
/// accepted member of 50 other projects' images). Run with
/// `cargo test -p meta --release -- --ignored --nocapture list_timing_100k`.
#[test]
#[ignore = "measurement; run by hand in release mode"]
fn list_timing_100k() {
    use std::time::Instant;
    const IMAGES: u128 = 100_000;
    let (_dir, meta) = open_temp();
    let images: Vec<Image> = (0..IMAGES)
        .map(|n| {
            let mut image = owned(n, &format!("p{}", n % 100));
            image.visibility = match n % 10 {
                0 => Visibility::Public,
                1 => Visibility::Private,
                _ => Visibility::Shared,
            };
            image
        })
        .collect();
    meta.insert_many(&images).unwrap();
    let caller = "p7";
    for n in (0..50u128).map(|k| k * 1_000 + 3) {
        meta.add_member(id(n), caller, None).unwrap();
        meta.update_member(id(n), caller, MemberStatus::Accepted)
            .unwrap();
    }
    let page = |visibility: VisibilityFilter, admin: bool| {
        let started = Instant::now();
        let filter = ListFilter::all()
            .scope(Scope::Viewer(Viewer {
                project: Some(caller.to_owned()),
                admin,
                visibility,
                member_status: Some(MemberStatus::Accepted),
            }))
            .with(Condition::OsHidden(false))
            .limit(25);
        let got = meta.list_images(&filter).unwrap();
        assert_eq!(got.len(), 25);
        started.elapsed()
    };
    for (name, visibility, admin) in [
        ("admin default", VisibilityFilter::Default, true),
        ("member default", VisibilityFilter::Default, false),
        (
            "member visibility=shared",
            VisibilityFilter::Only(Visibility::Shared),
            false,
        ),
    ] {
        let mut times: Vec<_> = (0..200).map(|_| page(visibility, admin)).collect();
        times.sort();
        println!(
            "{name}: p50 {:?} p99 {:?} max {:?}",
            times[100], times[198], times[199]
        );
    }
}
