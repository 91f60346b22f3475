//! Uploads and the status table: begin, complete, abort, every transition, start-up recovery
//! and which node owns an upload.

use meta::{BackendExt, Error, ImageStatus, Limits};

use super::{
    claim, count_of, id, image_in, node, other_node, outcome, queued, status_of, Engine, Short,
};

pub fn begin_upload_to_saving_needs_both_formats<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    for (n, disk, container) in [
        (1, None, Some("bare")),
        (2, Some("raw"), None),
        (3, None, None),
    ] {
        let mut image = queued(n);
        image.disk_format = disk.map(str::to_owned);
        image.container_format = container.map(str::to_owned);
        meta.create(&image).unwrap();
        assert!(matches!(
            meta.begin(image.id, ImageStatus::Saving),
            Err(Error::FormatsNotSet(failed)) if failed == image.id
        ));
        assert_eq!(status_of(meta, image.id), ImageStatus::Queued);
    }
}

pub fn begin_upload_to_uploading_needs_no_formats<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let mut image = queued(1);
    image.disk_format = None;
    image.container_format = None;
    meta.create(&image).unwrap();
    let staged = meta.begin(image.id, ImageStatus::Uploading).unwrap();
    assert_eq!(staged.status, ImageStatus::Uploading);
    // Importing the staged data does need them.
    assert!(matches!(
        meta.set_status(image.id, ImageStatus::Importing),
        Err(Error::FormatsNotSet(_))
    ));
}

pub fn begin_upload_is_a_compare_and_set_on_queued<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    let saving = meta.begin(image.id, ImageStatus::Saving).unwrap();
    assert_eq!(saving.status, ImageStatus::Saving);
    assert_eq!(meta.get_image(image.id).unwrap(), saving);
    for to in [ImageStatus::Saving, ImageStatus::Uploading] {
        assert!(matches!(
            meta.begin(image.id, to),
            Err(Error::InvalidTransition { from: ImageStatus::Saving, to: t }) if t == to
        ));
    }
}

pub fn begin_upload_only_targets_saving_or_uploading<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create(&queued(1)).unwrap();
    for to in [
        ImageStatus::Active,
        ImageStatus::Importing,
        ImageStatus::Queued,
    ] {
        assert!(matches!(
            meta.begin(id(1), to),
            Err(Error::InvalidTransition {
                from: ImageStatus::Queued,
                ..
            })
        ));
    }
    assert!(matches!(
        meta.begin(id(2), ImageStatus::Saving),
        Err(Error::NotFound(_))
    ));
}

pub fn complete_upload_activates_and_records_the_data<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    meta.begin(image.id, ImageStatus::Saving).unwrap();
    let done = outcome(image.id);
    let active = meta.complete(image.id, done.clone()).unwrap();
    assert_eq!(active.status, ImageStatus::Active);
    assert_eq!(active.size, Some(done.size));
    assert_eq!(active.checksum.as_deref(), Some(done.checksum.as_str()));
    assert_eq!(active.os_hash_algo.as_deref(), Some("sha512"));
    assert_eq!(active.os_hash_value, Some(done.os_hash_value));
    assert_eq!(active.virtual_size, Some(4096));
    assert_eq!(active.locations, vec![done.location]);
    assert_eq!(meta.get_image(image.id).unwrap(), active);
}

pub fn complete_upload_after_delete_is_not_found<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    meta.begin(image.id, ImageStatus::Saving).unwrap();
    meta.delete_image(image.id).unwrap();
    assert!(matches!(
        meta.complete(image.id, outcome(image.id)),
        Err(Error::NotFound(_))
    ));
}

pub fn complete_upload_needs_saving<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let queued_id = image_in(meta, 1, ImageStatus::Queued);
    let uploading_id = image_in(meta, 2, ImageStatus::Uploading);
    for (id, from) in [
        (queued_id, ImageStatus::Queued),
        (uploading_id, ImageStatus::Uploading),
    ] {
        assert!(matches!(
            meta.complete(id, outcome(id)),
            Err(Error::InvalidTransition { from: f, to: ImageStatus::Active }) if f == from
        ));
    }
}

pub fn complete_upload_refuses_data_that_contradicts_known_checksums<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    meta.update_image_with(image.id, |image| {
        image.checksum = Some("ffffffffffffffffffffffffffffffff".into());
        Ok::<(), Error>(())
    })
    .unwrap();
    meta.begin(image.id, ImageStatus::Saving).unwrap();
    assert!(matches!(
        meta.complete(image.id, outcome(image.id)),
        Err(Error::DataMismatch {
            field: "checksum",
            ..
        })
    ));
    assert_eq!(status_of(meta, image.id), ImageStatus::Saving);

    let matching = queued(2);
    meta.create(&matching).unwrap();
    meta.update_image_with(matching.id, |image| {
        image.os_hash_algo = Some("sha512".into());
        image.os_hash_value = Some("8".repeat(128));
        Ok::<(), Error>(())
    })
    .unwrap();
    meta.begin(matching.id, ImageStatus::Saving).unwrap();
    assert!(meta.complete(matching.id, outcome(matching.id)).is_ok());
}

pub fn abort_upload_returns_to_queued_and_clears_sizes<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    for (n, to) in [(1, ImageStatus::Saving), (2, ImageStatus::Uploading)] {
        let mut image = queued(n);
        image.size = Some(10);
        image.virtual_size = Some(20);
        meta.create(&image).unwrap();
        meta.begin(image.id, to).unwrap();
        meta.abort_upload(image.id).unwrap();
        let back = meta.get_image(image.id).unwrap();
        assert_eq!(back.status, ImageStatus::Queued);
        assert_eq!((back.size, back.virtual_size), (None, None));
    }
}

pub fn abort_upload_tolerates_gone_and_queued_images<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = queued(1);
    meta.create(&image).unwrap();
    meta.begin(image.id, ImageStatus::Saving).unwrap();
    meta.delete_image(image.id).unwrap();
    meta.abort_upload(image.id).unwrap();
    meta.abort_upload(id(99)).unwrap();
    let queued_id = image_in(meta, 2, ImageStatus::Queued);
    meta.abort_upload(queued_id).unwrap();
    assert_eq!(status_of(meta, queued_id), ImageStatus::Queued);
}

pub fn abort_upload_refuses_other_statuses<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let active = image_in(meta, 1, ImageStatus::Active);
    assert!(matches!(
        meta.abort_upload(active),
        Err(Error::InvalidTransition {
            from: ImageStatus::Active,
            to: ImageStatus::Queued
        })
    ));
    assert_eq!(status_of(meta, active), ImageStatus::Active);
}

pub fn set_status_allows_exactly_the_spec_table<E: Engine>() {
    use ImageStatus::*;
    let allowed: &[(ImageStatus, &[ImageStatus])] = &[
        (Queued, &[Saving, Uploading, Importing, Active, Deleted]),
        (Saving, &[Active, Killed, Deleted, Queued]),
        (Uploading, &[Importing, Queued, Deleted]),
        (Importing, &[Active, Deleted, Queued]),
        (Active, &[PendingDelete, Deleted, Deactivated]),
        (Killed, &[Deleted]),
        (PendingDelete, &[Deleted, Active]),
        (Deactivated, &[Active, Deleted]),
    ];
    let db = E::create();
    let meta = db.backend();
    let mut n = 0;
    for (from, targets) in allowed {
        for to in ImageStatus::ALL {
            n += 1;
            let id = image_in(meta, n, *from);
            let result = meta.set_status(id, to);
            if targets.contains(&to) {
                let image = result.unwrap_or_else(|err| panic!("{from} -> {to}: {err}"));
                assert_eq!(image.status, to);
                if to == Deleted {
                    assert!(matches!(meta.get_image(id), Err(Error::NotFound(_))));
                } else {
                    assert_eq!(meta.get_image(id).unwrap(), image);
                }
            } else {
                assert!(
                    matches!(result, Err(Error::InvalidTransition { from: f, to: t }) if f == *from && t == to),
                    "{from} -> {to}: {result:?}"
                );
                assert_eq!(status_of(meta, id), *from);
            }
        }
    }
}

pub fn deleted_images_have_no_transitions<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let id = image_in(meta, 1, ImageStatus::Deleted);
    for to in ImageStatus::ALL {
        assert!(matches!(meta.set_status(id, to), Err(Error::NotFound(_))));
    }
}

pub fn leaving_queued_or_uploading_towards_data_needs_formats<E: Engine>() {
    use ImageStatus::*;
    let db = E::create();
    let meta = db.backend();
    let mut n = 0;
    for (from, to) in [
        (Queued, Saving),
        (Queued, Active),
        (Queued, Importing),
        (Uploading, Importing),
    ] {
        n += 1;
        let id = image_in(meta, n, from);
        meta.update_image_with(id, |image| {
            if image.status == Queued {
                image.disk_format = None;
            }
            Ok::<(), Error>(())
        })
        .unwrap();
        if from == Uploading {
            // Formats are locked while uploading; create such an image without them instead.
            let mut bare = queued(100 + n);
            bare.container_format = None;
            meta.create(&bare).unwrap();
            meta.begin(bare.id, Uploading).unwrap();
            assert!(matches!(
                meta.set_status(bare.id, to),
                Err(Error::FormatsNotSet(_))
            ));
            continue;
        }
        assert!(
            matches!(meta.set_status(id, to), Err(Error::FormatsNotSet(_))),
            "{from} -> {to}"
        );
        assert_eq!(status_of(meta, id), from);
    }
    // Transitions that do not head for data need no formats.
    let mut bare = queued(200);
    bare.disk_format = None;
    bare.container_format = None;
    meta.create(&bare).unwrap();
    meta.begin(bare.id, Uploading).unwrap();
    assert!(meta.set_status(bare.id, Queued).is_ok());
    assert!(meta.set_status(bare.id, Deleted).is_ok());
}

pub fn entering_queued_clears_size_and_virtual_size<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let id = image_in(meta, 1, ImageStatus::Importing);
    let back = meta.set_status(id, ImageStatus::Queued).unwrap();
    assert_eq!((back.size, back.virtual_size), (None, None));

    let mut image = queued(2);
    image.size = Some(5);
    image.virtual_size = Some(6);
    meta.create(&image).unwrap();
    meta.set_status(image.id, ImageStatus::Saving).unwrap();
    let back = meta.set_status(image.id, ImageStatus::Queued).unwrap();
    assert_eq!((back.size, back.virtual_size), (None, None));
}

pub fn deactivate_and_reactivate<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let id = image_in(meta, 1, ImageStatus::Active);
    let off = meta.set_status(id, ImageStatus::Deactivated).unwrap();
    assert_eq!(off.status, ImageStatus::Deactivated);
    assert!(matches!(
        meta.set_status(id, ImageStatus::Deactivated),
        Err(Error::InvalidTransition {
            from: ImageStatus::Deactivated,
            to: ImageStatus::Deactivated
        })
    ));
    assert_eq!(
        meta.set_status(id, ImageStatus::Active).unwrap().status,
        ImageStatus::Active
    );
}

pub fn recover_interrupted_requeues_saving_and_uploading<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let saving = image_in(meta, 1, ImageStatus::Saving);
    let uploading = image_in(meta, 2, ImageStatus::Uploading);
    let queued_id = image_in(meta, 3, ImageStatus::Queued);
    let active = image_in(meta, 4, ImageStatus::Active);
    let importing = image_in(meta, 5, ImageStatus::Importing);
    let mut recovered = meta.recover().unwrap();
    recovered.sort();
    let mut expected = vec![saving, uploading];
    expected.sort();
    assert_eq!(recovered, expected);
    for id in [saving, uploading, queued_id] {
        assert_eq!(status_of(meta, id), ImageStatus::Queued);
    }
    assert_eq!(status_of(meta, active), ImageStatus::Active);
    assert_eq!(status_of(meta, importing), ImageStatus::Importing);
    assert!(meta.recover().unwrap().is_empty());
    assert_eq!(count_of(meta, ImageStatus::Saving), 0);
    assert_eq!(count_of(meta, ImageStatus::Queued), 3);
}
pub fn an_upload_records_its_node_until_it_ends<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let unlimited = Limits::UNLIMITED;
    for n in 1..=5 {
        meta.create(&queued(n)).unwrap();
    }
    assert_eq!(meta.upload_state(id(1)).unwrap(), None);
    let before = meta.get_image(id(1)).unwrap().updated_at;
    let start = meta
        .begin_upload(id(1), &claim(ImageStatus::Saving, node()), &unlimited)
        .unwrap();
    let state = meta.upload_state(id(1)).unwrap().unwrap();
    assert_eq!(state.node, node());
    assert_eq!(state.started_at, start.image.updated_at);
    assert!(state.started_at >= before);
    meta.begin_upload(
        id(2),
        &claim(ImageStatus::Uploading, other_node()),
        &unlimited,
    )
    .unwrap();
    assert_eq!(
        meta.upload_state(id(2)).unwrap().unwrap().node,
        other_node()
    );
    // A failed compare-and-set changes no owner.
    assert!(meta
        .begin_upload(id(2), &claim(ImageStatus::Uploading, node()), &unlimited)
        .is_err());
    assert_eq!(
        meta.upload_state(id(2)).unwrap().unwrap().node,
        other_node()
    );
    // Editing an uploading image keeps its owner.
    meta.update_image_with(id(2), |image| {
        image.name = Some("renamed".into());
        Ok::<(), Error>(())
    })
    .unwrap();
    assert_eq!(
        meta.upload_state(id(2)).unwrap().unwrap().node,
        other_node()
    );

    // Every way out of saving/uploading forgets the owner.
    meta.complete(id(1), outcome(id(1))).unwrap();
    meta.abort_upload(id(2)).unwrap();
    meta.begin(id(3), ImageStatus::Saving).unwrap();
    meta.set_status(id(3), ImageStatus::Killed).unwrap();
    meta.begin(id(4), ImageStatus::Uploading).unwrap();
    meta.delete_image(id(4)).unwrap();
    for n in 1..=4 {
        assert_eq!(meta.upload_state(id(n)).unwrap(), None, "image {n}");
    }
    // A status set directly (not through begin_upload) has no owner.
    meta.set_status(id(5), ImageStatus::Saving).unwrap();
    assert_eq!(meta.upload_state(id(5)).unwrap(), None);
}

pub fn recovery_resets_only_this_nodes_uploads<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let unlimited = Limits::UNLIMITED;
    for n in 1..=5 {
        meta.create(&queued(n)).unwrap();
    }
    meta.begin_upload(id(1), &claim(ImageStatus::Saving, node()), &unlimited)
        .unwrap();
    meta.begin_upload(id(2), &claim(ImageStatus::Uploading, node()), &unlimited)
        .unwrap();
    meta.begin_upload(id(3), &claim(ImageStatus::Saving, other_node()), &unlimited)
        .unwrap();
    meta.begin_upload(
        id(4),
        &claim(ImageStatus::Uploading, other_node()),
        &unlimited,
    )
    .unwrap();
    // No recorded owner (set directly): whichever node recovers first resets it.
    meta.set_status(id(5), ImageStatus::Saving).unwrap();

    let mut recovered = meta.recover_interrupted(&node()).unwrap();
    recovered.sort();
    assert_eq!(recovered, vec![id(1), id(2), id(5)]);
    for n in [1, 2, 5] {
        assert_eq!(status_of(meta, id(n)), ImageStatus::Queued, "image {n}");
    }
    assert_eq!(status_of(meta, id(3)), ImageStatus::Saving);
    assert_eq!(status_of(meta, id(4)), ImageStatus::Uploading);
    assert_eq!(
        meta.upload_state(id(3)).unwrap().unwrap().node,
        other_node()
    );
    // The other node's own recovery takes its uploads, and then there is nothing left.
    let mut theirs = meta.recover_interrupted(&other_node()).unwrap();
    theirs.sort();
    assert_eq!(theirs, vec![id(3), id(4)]);
    assert!(meta.recover_interrupted(&node()).unwrap().is_empty());
    assert_eq!(count_of(meta, ImageStatus::Queued), 5);
}
