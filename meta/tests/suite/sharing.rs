//! Members, per-project usage and quotas.

use meta::{
    BackendExt, Error, ImageStatus, Limits, MemberStatus, QuotaResource, UploadClaim, Usage,
    Visibility, MIB,
};

use super::{claim, id, node, outcome, owned, queued, status_of, Engine, Short};

pub fn members_are_added_pending_listed_updated_and_deleted<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create(&owned(1, "owner")).unwrap();
    let added = meta.add_member(id(1), "b", None).unwrap();
    assert_eq!(added.status, MemberStatus::Pending);
    meta.add_member(id(1), "a", None).unwrap();
    let listed: Vec<String> = meta
        .list_members(id(1))
        .unwrap()
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    assert_eq!(listed, ["a", "b"]);
    let accepted = meta
        .update_member(id(1), "b", MemberStatus::Accepted)
        .unwrap();
    assert_eq!(accepted.status, MemberStatus::Accepted);
    assert_eq!(accepted.created_at, added.created_at);
    assert_eq!(
        meta.get_member(id(1), "b").unwrap().unwrap().status,
        MemberStatus::Accepted
    );
    assert_eq!(
        meta.images_shared_with("b").unwrap(),
        vec![(id(1), MemberStatus::Accepted)]
    );
    meta.delete_member(id(1), "b").unwrap();
    assert!(meta.get_member(id(1), "b").unwrap().is_none());
    assert!(meta.images_shared_with("b").unwrap().is_empty());
    assert!(matches!(
        meta.delete_member(id(1), "b"),
        Err(Error::MemberNotFound { .. })
    ));
    assert!(matches!(
        meta.update_member(id(1), "zz", MemberStatus::Accepted),
        Err(Error::MemberNotFound { .. })
    ));
}

pub fn members_need_a_shared_image_and_are_unique_and_limited<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let mut private = owned(1, "owner");
    private.visibility = Visibility::Private;
    meta.create(&private).unwrap();
    assert!(matches!(
        meta.add_member(id(1), "b", None),
        Err(Error::NotShared(_))
    ));
    meta.create(&owned(2, "owner")).unwrap();
    meta.add_member(id(2), "b", Some(2)).unwrap();
    assert!(matches!(
        meta.add_member(id(2), "b", Some(2)),
        Err(Error::DuplicateMember { .. })
    ));
    meta.add_member(id(2), "c", Some(2)).unwrap();
    assert!(matches!(
        meta.add_member(id(2), "d", Some(2)),
        Err(Error::TooManyMembers {
            attempted: 3,
            maximum: 2,
            ..
        })
    ));
    assert!(matches!(
        meta.add_member(id(9), "b", None),
        Err(Error::NotFound(_))
    ));
    // Leaving `shared` keeps the rows but freezes them.
    meta.update_image_with(id(2), |image| {
        image.visibility = Visibility::Private;
        Ok::<(), Error>(())
    })
    .unwrap();
    assert_eq!(meta.list_members(id(2)).unwrap().len(), 2);
    assert!(matches!(
        meta.update_member(id(2), "b", MemberStatus::Accepted),
        Err(Error::NotShared(_))
    ));
}

pub fn deleting_an_image_deletes_its_members<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create(&owned(1, "owner")).unwrap();
    meta.create(&owned(2, "owner")).unwrap();
    meta.add_member(id(1), "b", None).unwrap();
    meta.add_member(id(2), "b", None).unwrap();
    meta.delete_image(id(1)).unwrap();
    assert!(meta.list_members(id(1)).unwrap().is_empty());
    assert_eq!(
        meta.images_shared_with("b").unwrap(),
        vec![(id(2), MemberStatus::Pending)]
    );
}

pub fn usage_follows_create_upload_owner_change_and_delete<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create(&owned(1, "p")).unwrap();
    meta.create(&owned(2, "p")).unwrap();
    meta.create(&queued(3)).unwrap(); // no owner: charged to nobody
    assert_eq!(meta.usage("p").unwrap().image_count, 2);
    meta.begin(id(1), ImageStatus::Saving).unwrap();
    assert_eq!(meta.usage("p").unwrap().uploading_count, 1);
    meta.complete(id(1), outcome(id(1))).unwrap();
    assert_eq!(
        meta.usage("p").unwrap(),
        Usage {
            image_count: 2,
            size_bytes: 1024,
            uploading_count: 0,
            reserved_bytes: 0,
        }
    );
    meta.update_image_with(id(1), |image| {
        image.owner = Some("q".into());
        Ok::<(), Error>(())
    })
    .unwrap();
    assert_eq!(meta.usage("p").unwrap().size_bytes, 0);
    assert_eq!(meta.usage("q").unwrap().size_bytes, 1024);
    meta.delete_image(id(1)).unwrap();
    meta.delete_image(id(2)).unwrap();
    assert_eq!(meta.usage("p").unwrap(), Usage::default());
    assert_eq!(meta.usage("q").unwrap(), Usage::default());
}

pub fn quotas_refuse_inside_the_transaction_and_write_nothing<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let limits = Limits {
        image_count_total: Some(2),
        image_size_total_mib: Some(1),
        image_stage_total_mib: None,
        // Glance's delta 0: one upload under way is already over a limit of 0.
        image_count_uploading: Some(0),
    };
    meta.create_image(&owned(1, "p"), &limits).unwrap();
    meta.create_image(&owned(2, "p"), &limits).unwrap();
    assert!(matches!(
        meta.create_image(&owned(3, "p"), &limits),
        Err(Error::QuotaExceeded {
            resource: QuotaResource::ImageCountTotal,
            limit: 2,
            usage: 2,
            delta: 1,
            ..
        })
    ));
    assert!(matches!(meta.get_image(id(3)), Err(Error::NotFound(_))));
    // Another project has its own count.
    meta.create_image(&owned(4, "other"), &limits).unwrap();

    meta.begin_upload(id(1), &claim(ImageStatus::Saving, node()), &limits)
        .unwrap();
    assert!(matches!(
        meta.begin_upload(id(2), &claim(ImageStatus::Saving, node()), &limits),
        Err(Error::QuotaExceeded {
            resource: QuotaResource::ImageCountUploading,
            limit: 0,
            usage: 1,
            delta: 0,
            ..
        })
    ));
    assert_eq!(status_of(meta, id(2)), ImageStatus::Queued);
    let mut big = outcome(id(1));
    big.size = 2 * MIB;
    assert!(matches!(
        meta.complete_upload(id(1), big, &limits),
        Err(Error::QuotaExceeded {
            resource: QuotaResource::ImageSizeTotal,
            limit: 1,
            usage: 0,
            delta: 2,
            ..
        })
    ));
    assert_eq!(status_of(meta, id(1)), ImageStatus::Saving);
    meta.complete_upload(id(1), outcome(id(1)), &limits)
        .unwrap();
    // An announced size over what is left is refused before any data is received.
    assert!(matches!(
        meta.begin_upload(
            id(2),
            &UploadClaim {
                incoming_bytes: Some(MIB),
                ..claim(ImageStatus::Saving, node())
            },
            &limits
        ),
        Err(Error::QuotaExceeded {
            resource: QuotaResource::ImageSizeTotal,
            ..
        })
    ));
}

/// Issue 14: quotas are hard across gateways. An announced size is reserved when the upload
/// begins, so a second upload that would not fit beside it is refused before any data; the
/// reservation gives way to the data on completion and is released by every other end.
pub fn announced_sizes_are_reserved_until_the_upload_ends<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let limits = Limits {
        image_size_total_mib: Some(10),
        ..Limits::UNLIMITED
    };
    for n in 1..=4 {
        meta.create_image(&owned(n, "p"), &limits).unwrap();
    }
    let announcing = |bytes| UploadClaim {
        incoming_bytes: Some(bytes),
        ..claim(ImageStatus::Saving, node())
    };
    let start = meta
        .begin_upload(id(1), &announcing(6 * MIB), &limits)
        .unwrap();
    assert_eq!(start.size_left, Some(10 * MIB));
    assert_eq!(meta.usage("p").unwrap().reserved_bytes, 6 * MIB);
    // 6 + 6 > 10: refused although no data is held yet.
    assert!(matches!(
        meta.begin_upload(id(2), &announcing(6 * MIB), &limits),
        Err(Error::QuotaExceeded {
            resource: QuotaResource::ImageSizeTotal,
            limit: 10,
            usage: 6,
            delta: 6,
            ..
        })
    ));
    assert_eq!(status_of(meta, id(2)), ImageStatus::Queued);
    // An upload of unknown size may start, and is told what the reservation leaves.
    let start = meta
        .begin_upload(id(3), &claim(ImageStatus::Saving, node()), &limits)
        .unwrap();
    assert_eq!(start.size_left, Some(4 * MIB));
    // Its data must fit beside the reservation when it completes.
    let mut five = outcome(id(3));
    five.size = 5 * MIB;
    assert!(matches!(
        meta.complete_upload(id(3), five, &limits),
        Err(Error::QuotaExceeded { .. })
    ));
    meta.abort_upload(id(3)).unwrap();
    // Completing the reserving upload charges its data instead of its reservation.
    let mut six = outcome(id(1));
    six.size = 6 * MIB;
    meta.complete_upload(id(1), six, &limits).unwrap();
    let usage = meta.usage("p").unwrap();
    assert_eq!((usage.size_bytes, usage.reserved_bytes), (6 * MIB, 0));
    // Abort, recovery and delete release a reservation.
    meta.begin_upload(id(2), &announcing(4 * MIB), &limits)
        .unwrap();
    assert_eq!(meta.usage("p").unwrap().reserved_bytes, 4 * MIB);
    meta.abort_upload(id(2)).unwrap();
    assert_eq!(meta.usage("p").unwrap().reserved_bytes, 0);
    meta.begin_upload(id(2), &announcing(4 * MIB), &limits)
        .unwrap();
    meta.recover_interrupted(&node()).unwrap();
    assert_eq!(meta.usage("p").unwrap().reserved_bytes, 0);
    meta.begin_upload(id(4), &announcing(4 * MIB), &limits)
        .unwrap();
    meta.delete_image(id(4)).unwrap();
    assert_eq!(meta.usage("p").unwrap().reserved_bytes, 0);
    meta.begin_upload(id(2), &announcing(4 * MIB), &limits)
        .unwrap();
}
