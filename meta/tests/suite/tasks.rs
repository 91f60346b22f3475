//! Tasks and the import lock (issue 12): task records, listing, expiry, and the lock with its
//! lease — taken once, renewed by its holder, taken over only when the lease lapsed, dropped
//! with the end of the import in one write.

use meta::tasks::{
    ImportEnd, ImportStart, Task, TaskFilter, TaskId, TaskRunner, TaskStatus, TaskType,
    FAILED_STORES_PROPERTY, IMPORTING_STORES_PROPERTY, IMPORT_TASK_PROPERTY,
};
use meta::{BackendExt, Error, Image, ImageId, ImageStatus, Limits, QuotaResource, Timestamp, MIB};

use super::{at, image_in, node, other_node, owned, status_of, Engine, Short};

const SECOND: i64 = 1_000_000;

fn now() -> Timestamp {
    Timestamp::now()
}

fn plus(t: Timestamp, seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(t.as_unix_micros() + seconds * SECOND)
}

/// An import task on `image`, run by `runner` with a lease until `lease_until`.
fn task(image: ImageId, runner: meta::NodeId, lease_until: Timestamp) -> Task {
    let created = now();
    Task {
        id: TaskId::new_v4(),
        kind: TaskType::ApiImageImport,
        status: TaskStatus::Processing,
        owner: Some("project-a".into()),
        image_id: Some(image),
        request_id: Some("req-1".into()),
        user_id: Some("user-1".into()),
        input: format!(r#"{{"image_id":"{image}","import_req":{{}},"backend":["fast"]}}"#),
        result: None,
        message: String::new(),
        expires_at: None,
        created_at: created,
        updated_at: created,
        runner: Some(TaskRunner {
            node: runner,
            lease_until,
        }),
    }
}

fn start(task: Task, from: ImageStatus, to: ImageStatus) -> ImportStart {
    ImportStart {
        task,
        from,
        to,
        stores: vec!["fast".into()],
    }
}

fn end(task: TaskId, status: TaskStatus, to: Option<ImageStatus>) -> ImportEnd {
    ImportEnd {
        task,
        status,
        result: None,
        message: "done".into(),
        expires_at: plus(now(), 3600),
        to,
        limits: Limits::UNLIMITED,
    }
}

fn lock_of(image: &Image) -> Option<&String> {
    image.properties.get(IMPORT_TASK_PROPERTY)
}

pub fn tasks_are_stored_listed_and_expire<E: Engine>() {
    let mut db = E::create();
    let image = image_in(db.backend(), 1, ImageStatus::Queued);
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut t = task(image, node(), plus(now(), 60));
        t.created_at = at(1_700_000_000_000_000 + n * SECOND);
        t.updated_at = t.created_at;
        if n == 2 {
            t.status = TaskStatus::Failure;
            t.expires_at = Some(at(1));
        }
        db.backend().create_task(&t).unwrap();
        ids.push(t.id);
    }
    let duplicate = db.backend().get_task(ids[0]).unwrap();
    assert!(matches!(
        db.backend().create_task(&duplicate),
        Err(Error::DuplicateTask(id)) if id == ids[0]
    ));
    db.reopen();
    let meta = db.backend();
    assert_eq!(
        meta.get_task(ids[1]).unwrap().request_id.as_deref(),
        Some("req-1")
    );
    let newest_first = meta
        .list_tasks(&TaskFilter {
            limit: 10,
            ..TaskFilter::default()
        })
        .unwrap();
    let listed: Vec<TaskId> = newest_first.iter().map(|t| t.id).collect();
    assert_eq!(listed, [ids[2], ids[1], ids[0]]);
    let page = meta
        .list_tasks(&TaskFilter {
            limit: 1,
            marker: Some(ids[2]),
            ..TaskFilter::default()
        })
        .unwrap();
    assert_eq!(page[0].id, ids[1]);
    let failed = meta
        .list_tasks(&TaskFilter {
            limit: 10,
            status: Some(TaskStatus::Failure),
            ..TaskFilter::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert!(matches!(
        meta.list_tasks(&TaskFilter {
            limit: 1,
            marker: Some(TaskId::new_v4()),
            ..TaskFilter::default()
        }),
        Err(Error::TaskNotFound(_))
    ));
    assert_eq!(meta.image_tasks(image).unwrap().len(), 3);
    assert_eq!(meta.purge_expired_tasks(now()).unwrap(), 1);
    assert!(matches!(meta.get_task(ids[2]), Err(Error::TaskNotFound(_))));
    assert_eq!(meta.image_tasks(image).unwrap().len(), 2);
    let edited = meta
        .update_task(ids[0], &mut |t| {
            t.message = "Copied 1 MiB".into();
            Ok(())
        })
        .unwrap();
    assert_eq!(edited.message, "Copied 1 MiB");
}

pub fn begin_import_locks_the_image_and_moves_its_status<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = image_in(meta, 1, ImageStatus::Uploading);
    let first = task(image, node(), plus(now(), 60));
    let begun = meta
        .begin_import(&start(
            first.clone(),
            ImageStatus::Uploading,
            ImageStatus::Importing,
        ))
        .unwrap();
    assert_eq!(begun.image.status, ImageStatus::Importing);
    assert_eq!(lock_of(&begun.image), Some(&first.id.to_string()));
    assert_eq!(begun.image.properties[IMPORTING_STORES_PROPERTY], "fast");
    assert_eq!(begun.image.properties[FAILED_STORES_PROPERTY], "");
    assert!(begun.taken_over.is_none());
    assert_eq!(meta.get_task(first.id).unwrap(), first);

    // A second import while the lease runs: refused, nothing written.
    let second = task(image, other_node(), plus(now(), 60));
    let refused = meta.begin_import(&start(
        second.clone(),
        ImageStatus::Importing,
        ImageStatus::Importing,
    ));
    assert!(matches!(refused, Err(Error::ImportInProgress(id)) if id == image));
    assert!(matches!(
        meta.get_task(second.id),
        Err(Error::TaskNotFound(_))
    ));

    // The wrong status is refused too.
    let other = image_in(meta, 2, ImageStatus::Queued);
    let wrong = meta.begin_import(&start(
        task(other, node(), plus(now(), 60)),
        ImageStatus::Uploading,
        ImageStatus::Importing,
    ));
    assert!(matches!(wrong, Err(Error::InvalidTransition { .. })));
    assert_eq!(status_of(meta, other), ImageStatus::Queued);
}

pub fn a_lapsed_lease_is_taken_over<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = image_in(meta, 1, ImageStatus::Active);
    // A copy whose node died: its lease ended a second ago.
    let dead = task(image, other_node(), plus(now(), -1));
    meta.begin_import(&start(
        dead.clone(),
        ImageStatus::Active,
        ImageStatus::Active,
    ))
    .unwrap();
    // Its holder can no longer renew once taken over; before, it can.
    let next = task(image, node(), plus(now(), 60));
    let begun = meta
        .begin_import(&start(
            next.clone(),
            ImageStatus::Active,
            ImageStatus::Active,
        ))
        .unwrap();
    let old = begun.taken_over.expect("the lapsed lock was taken over");
    assert_eq!(old.id, dead.id);
    assert_eq!(old.status, TaskStatus::Failure);
    assert_eq!(meta.get_task(dead.id).unwrap().status, TaskStatus::Failure);
    assert_eq!(lock_of(&begun.image), Some(&next.id.to_string()));
    assert!(matches!(
        meta.renew_import_lease(image, dead.id, plus(now(), 60)),
        Err(Error::ImportLockLost(_))
    ));
    meta.renew_import_lease(image, next.id, plus(now(), 120))
        .unwrap();
    let renewed = meta.get_task(next.id).unwrap();
    assert!(renewed.runner.unwrap().lease_until > plus(now(), 100));
}

pub fn end_import_commits_or_reverts_in_one_write<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    // Success: active with the data, unlocked, task success.
    let image = image_in(meta, 1, ImageStatus::Uploading);
    let t = task(image, node(), plus(now(), 60));
    meta.begin_import(&start(
        t.clone(),
        ImageStatus::Uploading,
        ImageStatus::Importing,
    ))
    .unwrap();
    let done = meta
        .end_import(
            image,
            &end(t.id, TaskStatus::Success, Some(ImageStatus::Active)),
            &mut |image| {
                image.size = Some(3);
                image.checksum = Some("900150983cd24fb0d6963f7d28e17f72".into());
                image.locations.push(meta::Location {
                    url: "file:///x".into(),
                    store: "fast".into(),
                });
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(done.status, ImageStatus::Active);
    assert!(lock_of(&done).is_none());
    let ended = meta.get_task(t.id).unwrap();
    assert_eq!(ended.status, TaskStatus::Success);
    assert!(ended.runner.is_none() && ended.expires_at.is_some());
    // Ending again: the lock is gone, nothing written.
    assert!(matches!(
        meta.end_import(
            image,
            &end(t.id, TaskStatus::Failure, None),
            &mut |_| Ok(())
        ),
        Err(Error::ImportLockLost(_))
    ));
    assert_eq!(meta.get_task(t.id).unwrap().status, TaskStatus::Success);

    // Failure: back to queued, size gone.
    let other = image_in(meta, 2, ImageStatus::Queued);
    let t = task(other, node(), plus(now(), 60));
    meta.begin_import(&start(
        t.clone(),
        ImageStatus::Queued,
        ImageStatus::Importing,
    ))
    .unwrap();
    meta.update_image_with(other, |image| -> Result<(), Error> {
        image.size = Some(10);
        Ok(())
    })
    .unwrap();
    let reverted = meta
        .end_import(
            other,
            &end(t.id, TaskStatus::Failure, Some(ImageStatus::Queued)),
            &mut |_| Ok(()),
        )
        .unwrap()
        .unwrap();
    assert_eq!(reverted.status, ImageStatus::Queued);
    assert_eq!(reverted.size, None);
    assert_eq!(meta.get_task(t.id).unwrap().message, "done");

    // An image deleted during its import: the task still ends.
    let gone = image_in(meta, 3, ImageStatus::Queued);
    let t = task(gone, node(), plus(now(), 60));
    meta.begin_import(&start(
        t.clone(),
        ImageStatus::Queued,
        ImageStatus::Importing,
    ))
    .unwrap();
    meta.delete_image(gone).unwrap();
    assert!(meta
        .end_import(
            gone,
            &end(t.id, TaskStatus::Failure, Some(ImageStatus::Queued)),
            &mut |_| Ok(())
        )
        .unwrap()
        .is_none());
    assert_eq!(meta.get_task(t.id).unwrap().status, TaskStatus::Failure);
}

pub fn a_finished_stage_survives_recovery<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let staging = image_in(meta, 1, ImageStatus::Queued);
    meta.begin(staging, ImageStatus::Uploading).unwrap();
    let staged = image_in(meta, 2, ImageStatus::Queued);
    meta.begin(staged, ImageStatus::Uploading).unwrap();
    meta.update_image_with(staged, |image| -> Result<(), Error> {
        image.size = Some(12);
        image
            .properties
            .insert(meta::tasks::STAGE_HOST_PROPERTY.into(), "suite-node".into());
        Ok(())
    })
    .unwrap();
    // A size alone does not make a stage finished (an image may be created with one).
    let sized = image_in(meta, 3, ImageStatus::Queued);
    meta.update_image_with(sized, |image| -> Result<(), Error> {
        image.size = Some(0);
        Ok(())
    })
    .unwrap();
    meta.begin(sized, ImageStatus::Uploading).unwrap();
    let mut recovered = meta.recover().unwrap();
    recovered.sort();
    assert_eq!(recovered, vec![staging, sized]);
    assert_eq!(status_of(meta, staged), ImageStatus::Uploading);
    assert_eq!(meta.upload_state(staged).unwrap().unwrap().node, node());
}

/// `end_import` charges the data an import brings exactly as `complete_upload` does: over
/// `image_size_total` (counting the owner's other data) it writes nothing; a staged image's
/// own size is not counted twice; a failure's revert is never refused.
pub fn end_import_checks_the_size_quota<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let limits = Limits {
        image_size_total_mib: Some(2),
        ..Limits::UNLIMITED
    };
    // One MiB held already by another image of the owner.
    let mut held = owned(10, "project-a");
    held.size = Some(MIB);
    meta.create(&held).unwrap();
    let image = owned(11, "project-a");
    meta.create(&image).unwrap();
    let t = task(image.id, node(), plus(now(), 60));
    meta.begin_import(&start(
        t.clone(),
        ImageStatus::Queued,
        ImageStatus::Importing,
    ))
    .unwrap();
    let mut over = end(t.id, TaskStatus::Success, Some(ImageStatus::Active));
    over.limits = limits;
    let refused = meta.end_import(image.id, &over, &mut |image| {
        image.size = Some(MIB + 1);
        Ok(())
    });
    match refused {
        Err(Error::QuotaExceeded {
            resource, limit, ..
        }) => {
            assert_eq!((resource, limit), (QuotaResource::ImageSizeTotal, 2));
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    // Nothing written: still importing, locked, the task running.
    let stored = meta.get_image(image.id).unwrap();
    assert_eq!(stored.status, ImageStatus::Importing);
    assert_eq!(lock_of(&stored), Some(&t.id.to_string()));
    assert_eq!(meta.get_task(t.id).unwrap().status, TaskStatus::Processing);
    // The revert goes through whatever the quota says.
    let mut revert = end(t.id, TaskStatus::Failure, Some(ImageStatus::Queued));
    revert.limits = limits;
    meta.end_import(image.id, &revert, &mut |_| Ok(())).unwrap();
    assert_eq!(status_of(meta, image.id), ImageStatus::Queued);

    // A staged image (its size charged already) that fits exactly: not counted twice.
    let staged = owned(12, "project-a");
    meta.create(&staged).unwrap();
    meta.update_image_with(staged.id, |image| -> Result<(), Error> {
        image.size = Some(MIB);
        Ok(())
    })
    .unwrap();
    let t = task(staged.id, node(), plus(now(), 60));
    meta.begin_import(&start(
        t.clone(),
        ImageStatus::Queued,
        ImageStatus::Importing,
    ))
    .unwrap();
    let mut fits = end(t.id, TaskStatus::Success, Some(ImageStatus::Active));
    fits.limits = limits;
    let done = meta
        .end_import(staged.id, &fits, &mut |image| {
            image.size = Some(MIB);
            image.checksum = Some("900150983cd24fb0d6963f7d28e17f72".into());
            image.locations.push(meta::Location {
                url: "file:///y".into(),
                store: "fast".into(),
            });
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(done.status, ImageStatus::Active);
}
