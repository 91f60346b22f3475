//! Image records: create, get, edit, delete, counts, persistence.

use std::collections::BTreeSet;

use meta::{Backend, BackendExt, Error, Image, ImageStatus, Location, Visibility};

use super::{at, count_of, id, image_in, outcome, queued, Engine, Short};

pub fn images_and_tombstones_survive_reopen<E: Engine>() {
    let mut db = E::create();
    let meta = db.backend();
    let kept = queued(1);
    meta.create(&kept).unwrap();
    meta.begin(kept.id, ImageStatus::Saving).unwrap();
    let active = meta.complete(kept.id, outcome(kept.id)).unwrap();
    meta.create(&queued(2)).unwrap();
    meta.delete_image(id(2)).unwrap();

    db.reopen();
    let meta = db.backend();
    assert_eq!(meta.get_image(kept.id).unwrap(), active);
    assert!(matches!(meta.get_image(id(2)), Err(Error::NotFound(_))));
    assert!(matches!(meta.create(&queued(2)), Err(Error::Duplicate(_))));
    assert_eq!(meta.count_images().unwrap(), 1);
}

/// A backend is one handle shared by every thread: writes on one are seen by reads on another.
pub fn a_backend_is_shareable_across_threads<E: Engine>() {
    fn shareable<T: Send + Sync + ?Sized>() {}
    shareable::<dyn Backend>();
    let db = E::create();
    let meta = db.backend();
    std::thread::scope(|scope| {
        scope.spawn(|| meta.create(&queued(1)).unwrap());
    });
    assert_eq!(meta.get_image(id(1)).unwrap().id, id(1));
}

pub fn create_stores_the_image_as_given<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let mut image = queued(1);
    image.visibility = Visibility::Community;
    image.protected = true;
    image.owner = Some("bab7d5c60cd041a0a36f7c4b6e1dd978".into());
    image.tags = BTreeSet::from(["a".to_string(), "b".to_string()]);
    image.properties.insert("os_distro".into(), "cirros".into());
    image.min_ram = 64;
    meta.create(&image).unwrap();
    assert_eq!(meta.get_image(image.id).unwrap(), image);
}

pub fn create_refuses_a_live_duplicate<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create(&queued(1)).unwrap();
    let mut again = queued(1);
    again.name = Some("other".into());
    assert!(matches!(meta.create(&again), Err(Error::Duplicate(dup)) if dup == id(1)));
    assert_eq!(
        meta.get_image(id(1)).unwrap().name.as_deref(),
        Some("image-1")
    );
}

pub fn create_refuses_the_id_of_a_deleted_image<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create(&queued(1)).unwrap();
    meta.delete_image(id(1)).unwrap();
    assert!(matches!(meta.create(&queued(1)), Err(Error::Duplicate(_))));
    assert!(matches!(meta.get_image(id(1)), Err(Error::NotFound(_))));
}

pub fn was_deleted_is_true_only_for_tombstoned_ids<E: Engine>() {
    let mut db = E::create();
    let meta = db.backend();
    meta.create(&queued(1)).unwrap();
    meta.create(&queued(2)).unwrap();
    meta.delete_image(id(1)).unwrap();
    assert!(meta.was_deleted(id(1)).unwrap());
    assert!(!meta.was_deleted(id(2)).unwrap(), "live");
    assert!(!meta.was_deleted(id(3)).unwrap(), "never created");
    db.reopen();
    let meta = db.backend();
    assert!(meta.was_deleted(id(1)).unwrap(), "tombstones are durable");
    assert!(!meta.was_deleted(id(2)).unwrap());
}

pub fn create_requires_queued<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let mut image = queued(1);
    image.status = ImageStatus::Active;
    assert!(matches!(
        meta.create(&image),
        Err(Error::NewImageNotQueued {
            status: ImageStatus::Active,
            ..
        })
    ));
    assert_eq!(meta.count_images().unwrap(), 0);
}

pub fn get_of_unknown_id_is_not_found<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    assert!(matches!(meta.get_image(id(7)), Err(Error::NotFound(missing)) if missing == id(7)));
}

pub fn update_edits_fields_and_sets_updated_at<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    let updated = meta
        .update_image_with(image.id, |image| {
            image.name = Some("renamed".into());
            image.visibility = Visibility::Private;
            image.tags.insert("new".into());
            image
                .properties
                .insert("hw_disk_bus".into(), "virtio".into());
            image.disk_format = Some("raw".into());
            Ok::<(), Error>(())
        })
        .unwrap();
    assert_eq!(updated.name.as_deref(), Some("renamed"));
    assert_eq!(updated.disk_format.as_deref(), Some("raw"));
    assert!(updated.updated_at > image.updated_at);
    assert_eq!(updated.created_at, image.created_at);
    assert_eq!(meta.get_image(image.id).unwrap(), updated);
}
#[derive(Debug)]
enum EditError {
    Meta(Error),
    Refused,
}

impl From<Error> for EditError {
    fn from(err: Error) -> EditError {
        EditError::Meta(err)
    }
}

pub fn update_writes_nothing_when_the_edit_fails<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    let result = meta.update_image_with(image.id, |image| {
        image.name = Some("half-done".into());
        Err(EditError::Refused)
    });
    assert!(matches!(result, Err(EditError::Refused)));
    assert_eq!(meta.get_image(image.id).unwrap(), image);
}

pub fn update_of_unknown_image_is_not_found<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let result = meta.update_image_with(id(9), |_| -> Result<(), EditError> {
        panic!("the edit must not run for a missing image")
    });
    assert!(matches!(result, Err(EditError::Meta(Error::NotFound(_)))));
}

pub fn update_cannot_change_read_only_fields<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    type Edit = fn(&mut Image);
    let edits: [(&str, Edit); 3] = [
        ("id", |image| image.id = id(2)),
        ("status", |image| image.status = ImageStatus::Active),
        ("created_at", |image| image.created_at = at(5)),
    ];
    for (name, edit) in edits {
        let result = meta.update_image_with(image.id, |image| {
            edit(image);
            Ok::<(), Error>(())
        });
        assert!(
            matches!(result, Err(Error::ReadOnlyField { field, .. }) if field == name),
            "{name}: {result:?}"
        );
    }
    assert_eq!(meta.get_image(image.id).unwrap(), image);
    assert!(matches!(meta.get_image(id(2)), Err(Error::NotFound(_))));
}

pub fn formats_change_only_while_queued_or_importing<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let set_disk = |meta: &dyn Backend, id, format: &str| {
        meta.update_image_with(id, |image| {
            image.disk_format = Some(format.to_owned());
            Ok::<(), Error>(())
        })
    };
    let importing = image_in(meta, 1, ImageStatus::Importing);
    assert!(set_disk(meta, importing, "raw").is_ok());
    for (n, status) in [
        (2, ImageStatus::Saving),
        (3, ImageStatus::Uploading),
        (4, ImageStatus::Active),
        (5, ImageStatus::Deactivated),
    ] {
        let id = image_in(meta, n, status);
        assert!(
            matches!(set_disk(meta, id, "raw"), Err(Error::FormatsLocked { status: s, .. }) if s == status),
            "{status}"
        );
        // Writing the same value back is not a change.
        assert!(set_disk(meta, id, "qcow2").is_ok(), "{status}");
        let cleared = meta.update_image_with(id, |image| {
            image.container_format = None;
            Ok::<(), Error>(())
        });
        assert!(
            matches!(cleared, Err(Error::FormatsLocked { .. })),
            "{status}"
        );
    }
}

pub fn delete_returns_the_image_as_it_was<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    meta.begin(image.id, ImageStatus::Saving).unwrap();
    let active = meta.complete(image.id, outcome(image.id)).unwrap();
    assert_eq!(meta.delete_image(image.id).unwrap(), active);
    assert!(matches!(meta.get_image(image.id), Err(Error::NotFound(_))));
    assert!(matches!(
        meta.delete_image(image.id),
        Err(Error::NotFound(_))
    ));
    assert_eq!(meta.count_images().unwrap(), 0);
    assert!(meta.list(&[], None, 10).unwrap().is_empty());
}

pub fn protected_images_cannot_be_deleted<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let mut image = queued(1);
    image.protected = true;
    meta.create(&image).unwrap();
    assert!(matches!(meta.delete_image(image.id), Err(Error::Protected(p)) if p == image.id));
    assert!(matches!(
        meta.set_status(image.id, ImageStatus::Deleted),
        Err(Error::Protected(_))
    ));
    assert_eq!(meta.get_image(image.id).unwrap(), image);
    meta.update_image_with(image.id, |image| {
        image.protected = false;
        Ok::<(), Error>(())
    })
    .unwrap();
    meta.delete_image(image.id).unwrap();
}

pub fn counts_follow_every_write<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    assert!(meta
        .images_by_status()
        .unwrap()
        .iter()
        .all(|(_, n)| *n == 0));
    assert_eq!(
        meta.images_by_status().unwrap().len(),
        ImageStatus::ALL.len() - 1
    );
    image_in(meta, 1, ImageStatus::Active);
    image_in(meta, 2, ImageStatus::Active);
    image_in(meta, 3, ImageStatus::Saving);
    image_in(meta, 4, ImageStatus::Deleted);
    assert_eq!(meta.count_images().unwrap(), 3);
    assert_eq!(count_of(meta, ImageStatus::Active), 2);
    assert_eq!(count_of(meta, ImageStatus::Saving), 1);
    assert_eq!(count_of(meta, ImageStatus::Queued), 0);
    meta.delete_image(id(1)).unwrap();
    assert_eq!(count_of(meta, ImageStatus::Active), 1);
    assert_eq!(meta.count_images().unwrap(), 2);
}

/// A location added to a queued image makes it active with its size in one write; a refused
/// transition or edit writes nothing; entering queued clears the size.
pub fn update_to_edits_and_moves_status_in_one_write<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    let location = Location {
        url: "http://example.com/cirros.img".into(),
        store: "web".into(),
    };
    let at_location = |image: &mut Image| {
        image.locations.push(location.clone());
        image.size = Some(1234);
        Ok::<(), Error>(())
    };
    let active = meta
        .update_image_to_with(image.id, ImageStatus::Active, at_location)
        .unwrap();
    assert_eq!(active.status, ImageStatus::Active);
    assert_eq!(active.size, Some(1234));
    assert_eq!(active.locations, vec![location.clone()]);
    assert_eq!(meta.get_image(image.id).unwrap(), active);
    assert_eq!(count_of(meta, ImageStatus::Active), 1);
    // Active cannot become importing: nothing written.
    let refused = meta.update_image_to_with(image.id, ImageStatus::Importing, |image| {
        image.name = Some("not written".into());
        Ok::<(), Error>(())
    });
    assert!(
        matches!(refused, Err(Error::InvalidTransition { .. })),
        "{refused:?}"
    );
    assert_eq!(meta.get_image(image.id).unwrap(), active);
    // The edit's own limits still hold.
    let mut other = queued(2);
    other.disk_format = None;
    meta.create(&other).unwrap();
    let no_formats = meta.update_image_to_with(other.id, ImageStatus::Active, |image| {
        image.size = Some(1);
        Ok::<(), Error>(())
    });
    assert!(
        matches!(no_formats, Err(Error::FormatsNotSet(_))),
        "{no_formats:?}"
    );
    let status_edit = meta.update_image_to_with(other.id, ImageStatus::Importing, |image| {
        image.status = ImageStatus::Killed;
        Ok::<(), Error>(())
    });
    assert!(matches!(status_edit, Err(Error::ReadOnlyField { .. })));
    // Importing and back: entering queued clears the size.
    let mut third = queued(3);
    third.size = None;
    meta.create(&third).unwrap();
    let importing = meta
        .update_image_to_with(third.id, ImageStatus::Importing, |image| {
            image.size = Some(99);
            Ok::<(), Error>(())
        })
        .unwrap();
    assert_eq!(importing.status, ImageStatus::Importing);
    let back = meta
        .update_image_to_with(third.id, ImageStatus::Queued, |image| {
            image.locations.clear();
            Ok::<(), Error>(())
        })
        .unwrap();
    assert_eq!(back.status, ImageStatus::Queued);
    assert_eq!(back.size, None);
}
