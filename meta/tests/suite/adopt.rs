//! Adopting records from another Image service (`Backend::adopt_image`): as they were there,
//! idempotently, with deleted ids kept taken.

use meta::{
    Adopted, Adoption, Error, Image, ImageStatus, Location, Member, MemberStatus, Visibility,
};

use super::{at, count_of, id, node, owned, queued, Engine, Short};

/// An active, shared image created and updated long ago, with data in a file store.
fn glance_image(n: u128) -> Image {
    let mut image = owned(n, "p-owner");
    image.status = ImageStatus::Active;
    image.visibility = Visibility::Shared;
    image.created_at = at(1_500_000_000_000_000);
    image.updated_at = at(1_500_000_100_000_000);
    image.size = Some(13_287_936);
    image.virtual_size = Some(117_440_512);
    image.checksum = Some("443b7623e27ecf03dc9e01ee93f67afe".into());
    image.os_hash_algo = Some("sha512".into());
    image.os_hash_value = Some("6513f21e".repeat(16));
    image.tags.insert("migrated".into());
    image.properties.insert("os_distro".into(), "cirros".into());
    image.locations.push(Location {
        url: format!("file:///var/lib/glance/images/{}", image.id),
        store: "file".into(),
    });
    image
}

fn member(n: u128, project: &str, status: MemberStatus) -> Member {
    Member {
        image_id: id(n),
        member_id: project.into(),
        status,
        created_at: at(1_500_000_050_000_000),
        updated_at: at(1_500_000_060_000_000),
    }
}

fn live(image: &Image, members: Vec<Member>) -> Adoption {
    Adoption::Live {
        image: Box::new(image.clone()),
        members,
    }
}

pub fn adopt_stores_the_record_and_members_as_they_were<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = glance_image(1);
    let members = vec![
        member(1, "p-b", MemberStatus::Pending),
        member(1, "p-a", MemberStatus::Accepted),
    ];
    assert_eq!(
        meta.adopt_image(&live(&image, members.clone()), false)
            .unwrap(),
        Adopted::Created
    );
    // Status, timestamps and data fields as given: no rule rewrote them.
    assert_eq!(meta.get_image(image.id).unwrap(), image);
    let mut expected = members;
    expected.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    assert_eq!(meta.list_members(image.id).unwrap(), expected);
    assert_eq!(
        meta.images_shared_with("p-a").unwrap(),
        vec![(image.id, MemberStatus::Accepted)]
    );
    // Counts, usage and indexes follow.
    assert_eq!(count_of(meta, ImageStatus::Active), 1);
    let usage = meta.usage("p-owner").unwrap();
    assert_eq!((usage.image_count, usage.size_bytes), (1, 13_287_936));
    assert_eq!(meta.list(&[], None, 10).unwrap(), vec![image.clone()]);
    // Any status can be adopted, e.g. deactivated, with its own counts.
    let mut deactivated = glance_image(2);
    deactivated.status = ImageStatus::Deactivated;
    meta.adopt_image(&live(&deactivated, vec![]), false)
        .unwrap();
    assert_eq!(count_of(meta, ImageStatus::Deactivated), 1);
    assert_eq!(
        meta.set_status(id(2), ImageStatus::Active).unwrap().status,
        ImageStatus::Active
    );
}

pub fn adopting_the_same_record_again_changes_nothing<E: Engine>() {
    let mut db = E::create();
    let image = glance_image(1);
    let record = live(&image, vec![member(1, "p-a", MemberStatus::Rejected)]);
    db.backend().adopt_image(&record, false).unwrap();
    let gone = Adoption::Deleted {
        id: id(2),
        deleted_at: at(1_600_000_000_000_000),
    };
    db.backend().adopt_image(&gone, false).unwrap();
    db.reopen();
    let meta = db.backend();
    assert_eq!(
        meta.adopt_image(&record, false).unwrap(),
        Adopted::Unchanged
    );
    assert_eq!(meta.adopt_image(&gone, false).unwrap(), Adopted::Unchanged);
    assert_eq!(meta.get_image(image.id).unwrap(), image);
    assert_eq!(meta.count_images().unwrap(), 1);
    assert_eq!(meta.usage("p-owner").unwrap().image_count, 1);
}

pub fn a_different_record_conflicts_unless_replaced<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let image = glance_image(1);
    meta.adopt_image(
        &live(&image, vec![member(1, "p-a", MemberStatus::Pending)]),
        false,
    )
    .unwrap();
    let mut changed = image.clone();
    changed.name = Some("renamed".into());
    changed.owner = Some("p-other".into());
    let record = live(&changed, vec![member(1, "p-c", MemberStatus::Accepted)]);
    assert!(matches!(
        meta.adopt_image(&record, false),
        Err(Error::AdoptConflict(conflict)) if conflict == image.id
    ));
    assert_eq!(meta.get_image(image.id).unwrap(), image, "nothing written");
    // Members alone differing is a conflict too.
    let same_image = live(&image, vec![]);
    assert!(matches!(
        meta.adopt_image(&same_image, false),
        Err(Error::AdoptConflict(_))
    ));
    assert_eq!(meta.adopt_image(&record, true).unwrap(), Adopted::Replaced);
    assert_eq!(meta.get_image(image.id).unwrap(), changed);
    let members: Vec<String> = meta
        .list_members(image.id)
        .unwrap()
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    assert_eq!(members, ["p-c"]);
    assert!(meta.images_shared_with("p-a").unwrap().is_empty());
    assert_eq!(meta.usage("p-owner").unwrap().image_count, 0);
    assert_eq!(meta.usage("p-other").unwrap().image_count, 1);
}

pub fn deleted_records_keep_their_ids_taken<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let gone = Adoption::Deleted {
        id: id(1),
        deleted_at: at(1_600_000_000_000_000),
    };
    assert_eq!(meta.adopt_image(&gone, false).unwrap(), Adopted::Created);
    assert!(matches!(meta.get_image(id(1)), Err(Error::NotFound(_))));
    assert!(matches!(meta.create(&queued(1)), Err(Error::Duplicate(_))));
    assert_eq!(meta.count_images().unwrap(), 0);
    // A live record under a deleted id is refused, even when asked to replace.
    for replace in [false, true] {
        assert!(matches!(
            meta.adopt_image(&live(&glance_image(1), vec![]), replace),
            Err(Error::Duplicate(_))
        ));
    }
}

pub fn a_deleted_record_replaces_a_live_one_only_when_asked<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let mut image = glance_image(1);
    image.protected = true;
    meta.adopt_image(
        &live(&image, vec![member(1, "p-a", MemberStatus::Accepted)]),
        false,
    )
    .unwrap();
    let gone = Adoption::Deleted {
        id: image.id,
        deleted_at: at(1_600_000_000_000_000),
    };
    assert!(matches!(
        meta.adopt_image(&gone, false),
        Err(Error::AdoptConflict(_))
    ));
    // Protection is the other service's business: it deleted the image.
    assert_eq!(meta.adopt_image(&gone, true).unwrap(), Adopted::Replaced);
    assert!(matches!(meta.get_image(image.id), Err(Error::NotFound(_))));
    assert!(meta.images_shared_with("p-a").unwrap().is_empty());
    assert_eq!(meta.usage("p-owner").unwrap().image_count, 0);
    assert_eq!(count_of(meta, ImageStatus::Active), 0);
}

pub fn an_adopted_upload_in_progress_is_reset_by_recovery<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let mut image = queued(1);
    image.status = ImageStatus::Saving;
    image.size = Some(5);
    meta.adopt_image(&live(&image, vec![]), false).unwrap();
    // No node runs it here: whichever node recovers resets it.
    assert_eq!(meta.upload_state(image.id).unwrap(), None);
    assert_eq!(meta.recover_interrupted(&node()).unwrap(), vec![image.id]);
    let after = meta.get_image(image.id).unwrap();
    assert_eq!((after.status, after.size), (ImageStatus::Queued, None));
}
