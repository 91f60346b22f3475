//! Listing: order, keyset pages after a marker, and every part of a [`ListFilter`] — the
//! viewer's visibility rules and each condition.

use std::cmp::Ordering;

use meta::{
    full_order, Backend, BackendExt, Cmp, Condition, Error, Image, ImageId, ImageStatus,
    ListFilter, MemberStatus, NumberField, Scope, SortDir, SortKey, TextField, TimeField, Viewer,
    Visibility, VisibilityFilter,
};

use super::{at, id, ids, owned, queued, Engine, Short};

/// Where `a` comes relative to `b` when sorted by `sort`, restated from the spec (§5.2): the
/// full order, unset values as `""` or 0, `status` and `id` as text.
fn compare(sort: &[(SortKey, SortDir)], a: &Image, b: &Image) -> Ordering {
    fn text(value: &Option<String>) -> String {
        value.clone().unwrap_or_default()
    }
    full_order(sort)
        .into_iter()
        .map(|(key, dir)| {
            let ordering = match key {
                SortKey::Name => text(&a.name).cmp(&text(&b.name)),
                SortKey::Status => a.status.to_string().cmp(&b.status.to_string()),
                SortKey::ContainerFormat => {
                    text(&a.container_format).cmp(&text(&b.container_format))
                }
                SortKey::DiskFormat => text(&a.disk_format).cmp(&text(&b.disk_format)),
                SortKey::Size => a.size.unwrap_or(0).cmp(&b.size.unwrap_or(0)),
                SortKey::Id => a.id.to_string().cmp(&b.id.to_string()),
                SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
                SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            };
            match dir {
                SortDir::Asc => ordering,
                SortDir::Desc => ordering.reverse(),
            }
        })
        .find(|ordering| ordering.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// The ids `filter` lists, in order.
fn listed(meta: &dyn Backend, filter: ListFilter) -> Vec<ImageId> {
    ids(&meta.list_images(&filter).unwrap())
}

/// The ids `filter` lists, sorted by id: for tests about which images, not their order.
fn listed_set(meta: &dyn Backend, filter: ListFilter) -> Vec<ImageId> {
    let mut ids = listed(meta, filter);
    ids.sort();
    ids
}

pub fn default_listing_is_newest_first_and_pages_by_marker<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    for n in 1..=5 {
        meta.create(&queued(n)).unwrap();
    }
    let first = meta.list(&[], None, 2).unwrap();
    assert_eq!(ids(&first), vec![id(5), id(4)]);
    let second = meta.list(&[], Some(id(4)), 2).unwrap();
    assert_eq!(ids(&second), vec![id(3), id(2)]);
    let last = meta.list(&[], Some(id(2)), 2).unwrap();
    assert_eq!(ids(&last), vec![id(1)]);
    assert!(meta.list(&[], Some(id(1)), 2).unwrap().is_empty());
    assert!(meta.list(&[], None, 0).unwrap().is_empty());
}

pub fn equal_created_at_ties_break_on_id_desc<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    for n in [3, 1, 2] {
        let mut image = queued(n);
        image.created_at = at(1);
        meta.create(&image).unwrap();
    }
    let page = meta.list(&[], None, 10).unwrap();
    assert_eq!(ids(&page), vec![id(3), id(2), id(1)]);
    let by_name = meta
        .list(&[(SortKey::Name, SortDir::Asc)], Some(id(1)), 10)
        .unwrap();
    assert_eq!(ids(&by_name), vec![id(2), id(3)]);
}

pub fn keep_filters_without_shortening_pages<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    for n in 1..=10 {
        meta.create(&queued(n)).unwrap();
    }
    let even = Condition::Text {
        field: TextField::Id,
        values: (1..=10)
            .map(id)
            .filter(|image| image.as_uuid().as_u128().is_multiple_of(2))
            .map(|image| image.to_string())
            .collect(),
    };
    let page = meta
        .list_images(&ListFilter::all().with(even.clone()).limit(3))
        .unwrap();
    assert_eq!(ids(&page), vec![id(10), id(8), id(6)]);
    let next = meta
        .list_images(&ListFilter::all().with(even).after(Some(id(6))).limit(3))
        .unwrap();
    assert_eq!(ids(&next), vec![id(4), id(2)]);
}

pub fn marker_must_be_a_live_image<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    meta.create(&queued(1)).unwrap();
    meta.create(&queued(2)).unwrap();
    meta.delete_image(id(2)).unwrap();
    for marker in [id(2), id(3)] {
        assert!(matches!(
            meta.list(&[], Some(marker), 5),
            Err(Error::MarkerNotFound(m)) if m == marker
        ));
    }
}

pub fn deleted_images_are_never_listed<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    for n in 1..=4 {
        meta.create(&queued(n)).unwrap();
    }
    meta.delete_image(id(2)).unwrap();
    for key in SortKey::ALL {
        for dir in [SortDir::Asc, SortDir::Desc] {
            let page = meta.list(&[(key, dir)], None, 10).unwrap();
            assert_eq!(page.len(), 3, "{key} {dir}");
            assert!(!ids(&page).contains(&id(2)));
        }
    }
}

pub fn every_sort_key_orders_like_a_full_sort<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let names = [None, Some("b"), Some("a"), Some(""), Some("b")];
    for n in 0..40u128 {
        let mut image = queued(n);
        image.name = names[n as usize % names.len()].map(str::to_owned);
        image.created_at = at((n % 7) as i64);
        image.disk_format = Some(["raw", "qcow2", "iso"][n as usize % 3].into());
        image.container_format =
            [None, Some("bare"), Some("ovf")][n as usize % 5 % 3].map(str::to_owned);
        if n % 4 == 0 {
            image.size = Some(n as u64 % 3);
        }
        meta.create(&image).unwrap();
        match n % 5 {
            1 => drop(meta.set_status(image.id, ImageStatus::Active).unwrap()),
            2 => drop(meta.begin(image.id, ImageStatus::Uploading).unwrap()),
            _ => {}
        }
    }
    let all = meta.list(&[], None, 1000).unwrap();
    let sorts: Vec<Vec<(SortKey, SortDir)>> = SortKey::ALL
        .iter()
        .flat_map(|key| [vec![(*key, SortDir::Asc)], vec![(*key, SortDir::Desc)]])
        .chain([
            vec![
                (SortKey::Status, SortDir::Asc),
                (SortKey::Name, SortDir::Desc),
            ],
            vec![(SortKey::Name, SortDir::Desc), (SortKey::Id, SortDir::Asc)],
            vec![
                (SortKey::Size, SortDir::Asc),
                (SortKey::CreatedAt, SortDir::Asc),
            ],
            vec![
                (SortKey::DiskFormat, SortDir::Desc),
                (SortKey::CreatedAt, SortDir::Asc),
                (SortKey::Id, SortDir::Asc),
            ],
        ])
        .collect();
    for sort in sorts {
        let mut expected = all.clone();
        expected.sort_by(|a, b| compare(&sort, a, b));
        // The whole list in one page, and again three at a time by marker.
        assert_eq!(meta.list(&sort, None, 1000).unwrap(), expected, "{sort:?}");
        let mut paged = Vec::new();
        let mut marker = None;
        loop {
            let page = meta.list(&sort, marker, 3).unwrap();
            if page.is_empty() {
                break;
            }
            marker = page.last().map(|image| image.id);
            paged.extend(page);
        }
        assert_eq!(ids(&paged), ids(&expected), "{sort:?}");
    }
}
pub fn text_conditions_match_set_values_only<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    let mut named = queued(1);
    named.name = Some("glass, darkly".into());
    named.owner = Some("p".into());
    named.checksum = Some("c1".into());
    meta.create(&named).unwrap();
    let mut unnamed = queued(2);
    unnamed.name = None;
    unnamed.disk_format = Some("raw".into());
    unnamed.container_format = None;
    meta.create(&unnamed).unwrap();
    meta.create(&queued(3)).unwrap();
    meta.set_status(id(3), ImageStatus::Active).unwrap();
    let text = |field, values: &[&str]| Condition::Text {
        field,
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let only = |condition| listed_set(meta, ListFilter::all().with(condition));
    assert_eq!(only(text(TextField::Name, &["glass, darkly"])), [id(1)]);
    assert_eq!(
        only(text(TextField::Name, &["glass, darkly", "image-3", "x"])),
        [id(1), id(3)]
    );
    // An unset value matches nothing, not even "".
    assert!(only(text(TextField::Name, &[""])).is_empty());
    assert!(only(text(TextField::ContainerFormat, &[""])).is_empty());
    assert!(only(text(TextField::Name, &[])).is_empty());
    assert_eq!(only(text(TextField::DiskFormat, &["raw"])), [id(2)]);
    assert_eq!(
        only(text(TextField::ContainerFormat, &["bare"])),
        [id(1), id(3)]
    );
    assert_eq!(only(text(TextField::Status, &["active"])), [id(3)]);
    assert_eq!(
        only(text(TextField::Status, &["queued", "saving"])),
        [id(1), id(2)]
    );
    assert_eq!(only(text(TextField::Owner, &["p"])), [id(1)]);
    assert_eq!(only(text(TextField::Checksum, &["c1"])), [id(1)]);
    assert!(only(text(TextField::OsHashValue, &["c1"])).is_empty());
    // Ids compare as their lowercase hyphenated text.
    let second = id(2).to_string();
    assert_eq!(only(text(TextField::Id, &[&second])), [id(2)]);
    let mut lettered = queued(0xabc);
    lettered.name = None;
    meta.create(&lettered).unwrap();
    let text_id = lettered.id.to_string();
    assert!(text_id.ends_with("abc"));
    assert_eq!(only(text(TextField::Id, &[&text_id])), [lettered.id]);
    assert!(only(text(TextField::Id, &[&text_id.to_uppercase()])).is_empty());
}

pub fn number_time_and_flag_conditions<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    for n in 1..=4u128 {
        let mut image = queued(n);
        // Created at n seconds and a half.
        image.created_at = at(n as i64 * 1_000_000 + 500_000);
        image.min_ram = n as u64 * 128;
        image.protected = n == 1;
        image.os_hidden = n == 4;
        meta.create(&image).unwrap();
    }
    meta.begin(id(2), ImageStatus::Saving).unwrap();
    let mut data = super::outcome(id(2));
    data.size = 2000;
    data.virtual_size = None;
    meta.complete(id(2), data).unwrap();
    meta.begin(id(3), ImageStatus::Saving).unwrap();
    let mut data = super::outcome(id(3));
    data.size = 3000;
    data.virtual_size = Some(30_000);
    meta.complete(id(3), data).unwrap();
    let only = |conditions: Vec<Condition>| {
        let filter = conditions
            .into_iter()
            .fold(ListFilter::all(), |filter, condition| {
                filter.with(condition)
            });
        listed_set(meta, filter)
    };
    let number = |field, cmp, value| Condition::Number { field, cmp, value };
    assert_eq!(
        only(vec![number(NumberField::Size, Cmp::Gte, 0)]),
        [id(2), id(3)]
    );
    assert_eq!(
        only(vec![
            number(NumberField::Size, Cmp::Gte, 2000),
            number(NumberField::Size, Cmp::Lte, 2999)
        ]),
        [id(2)]
    );
    assert_eq!(
        only(vec![number(NumberField::VirtualSize, Cmp::Lt, 40_000)]),
        [id(3)]
    );
    assert_eq!(
        only(vec![number(NumberField::MinRam, Cmp::Eq, 256)]),
        [id(2)]
    );
    assert_eq!(
        only(vec![number(NumberField::MinDisk, Cmp::Eq, 0)]),
        [id(1), id(2), id(3), id(4)]
    );
    assert_eq!(
        only(vec![number(NumberField::MinRam, Cmp::Neq, 256)]),
        [id(1), id(3), id(4)]
    );
    // Times compare at whole seconds: image 2 was created at 2.5 s.
    let time = |field, cmp, seconds: i64| Condition::Time {
        field,
        cmp,
        at: at(seconds * 1_000_000),
    };
    assert_eq!(only(vec![time(TimeField::CreatedAt, Cmp::Eq, 2)]), [id(2)]);
    assert_eq!(
        only(vec![time(TimeField::CreatedAt, Cmp::Gt, 2)]),
        [id(3), id(4)]
    );
    assert_eq!(
        only(vec![time(TimeField::CreatedAt, Cmp::Gte, 2)]),
        [id(2), id(3), id(4)]
    );
    assert_eq!(only(vec![time(TimeField::CreatedAt, Cmp::Lt, 2)]), [id(1)]);
    assert_eq!(
        only(vec![time(TimeField::CreatedAt, Cmp::Lte, 2)]),
        [id(1), id(2)]
    );
    assert_eq!(
        only(vec![time(TimeField::CreatedAt, Cmp::Neq, 2)]),
        [id(1), id(3), id(4)]
    );
    // Every image was updated (by the store's clock) after 2020.
    assert_eq!(
        only(vec![time(TimeField::UpdatedAt, Cmp::Gt, 1_577_836_800)]).len(),
        4
    );
    assert_eq!(only(vec![Condition::Protected(true)]), [id(1)]);
    assert_eq!(
        only(vec![
            Condition::Protected(false),
            Condition::OsHidden(false)
        ]),
        [id(2), id(3)]
    );
    assert_eq!(only(vec![Condition::OsHidden(true)]), [id(4)]);
    assert_eq!(
        only(vec![Condition::StatusNotIn(vec![
            ImageStatus::Active,
            ImageStatus::Killed
        ])]),
        [id(1), id(4)]
    );
}

pub fn tags_and_properties_must_all_match<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    for (n, tags, distro) in [
        (1, &["a", "b"][..], Some("ubuntu")),
        (2, &["a"][..], Some("fedora")),
        (3, &[][..], None),
    ] {
        let mut image = queued(n);
        image.tags = tags.iter().map(|t| t.to_string()).collect();
        if let Some(distro) = distro {
            image.properties.insert("os_distro".into(), distro.into());
        }
        image
            .properties
            .insert("hw_disk_bus".into(), "virtio".into());
        meta.create(&image).unwrap();
    }
    let tag = |t: &str| Condition::Tag(t.to_owned());
    let property = |key: &str, value: &str| Condition::Property {
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let all = ListFilter::all;
    assert_eq!(listed_set(meta, all().with(tag("a"))), [id(1), id(2)]);
    assert_eq!(
        listed_set(meta, all().with(tag("a")).with(tag("b"))),
        [id(1)]
    );
    assert!(listed_set(meta, all().with(tag("c"))).is_empty());
    assert_eq!(
        listed_set(meta, all().with(property("os_distro", "fedora"))),
        [id(2)]
    );
    assert_eq!(
        listed_set(
            meta,
            all().with(property("hw_disk_bus", "virtio")).with(tag("b"))
        ),
        [id(1)]
    );
    assert!(listed_set(meta, all().with(property("os_distro", ""))).is_empty());
}

/// `p`'s and `q`'s images with every visibility (`p`: 0 public, 1 private, 2 shared,
/// 3 community; `q`: 10..=13 likewise), `q`'s shared images 14, 15, 16 with `p` as a pending,
/// accepted and rejected member, and `other` a pending member of 12.
fn sharing_world(meta: &dyn Backend) {
    let visibilities = [
        Visibility::Public,
        Visibility::Private,
        Visibility::Shared,
        Visibility::Community,
    ];
    for (k, owner) in ["p", "q"].into_iter().enumerate() {
        for (v, visibility) in visibilities.into_iter().enumerate() {
            let mut image = owned((k * 10 + v) as u128, owner);
            image.visibility = visibility;
            meta.create(&image).unwrap();
        }
    }
    for (n, status) in [
        (14, None),
        (15, Some(MemberStatus::Accepted)),
        (16, Some(MemberStatus::Rejected)),
    ] {
        meta.create(&owned(n, "q")).unwrap();
        meta.add_member(id(n), "p", None).unwrap();
        if let Some(status) = status {
            meta.update_member(id(n), "p", status).unwrap();
        }
    }
    meta.add_member(id(12), "other", None).unwrap();
}

fn viewer(
    project: Option<&str>,
    admin: bool,
    visibility: VisibilityFilter,
    member_status: Option<MemberStatus>,
) -> ListFilter {
    ListFilter::all().scope(Scope::Viewer(Viewer {
        project: project.map(str::to_owned),
        admin,
        visibility,
        member_status,
    }))
}

fn ids_of(ns: &[u128]) -> Vec<ImageId> {
    let mut ids: Vec<ImageId> = ns.iter().map(|n| id(*n)).collect();
    ids.sort();
    ids
}

pub fn viewers_see_what_spec_5_4_lists<E: Engine>() {
    use VisibilityFilter::{All, Default, Only};
    let db = E::create();
    let meta = db.backend();
    sharing_world(meta);
    let accepted = Some(MemberStatus::Accepted);
    let member = |visibility| viewer(Some("p"), false, visibility, accepted);
    // p: public images, all of its own, and q's shared image it accepted.
    assert_eq!(
        listed_set(meta, member(Default)),
        ids_of(&[0, 1, 2, 3, 10, 15])
    );
    // Other projects' community images only when asked for.
    assert_eq!(
        listed_set(meta, member(All)),
        ids_of(&[0, 1, 2, 3, 10, 13, 15])
    );
    assert_eq!(
        listed_set(meta, member(Only(Visibility::Community))),
        ids_of(&[3, 13])
    );
    assert_eq!(
        listed_set(meta, member(Only(Visibility::Shared))),
        ids_of(&[2, 15])
    );
    assert_eq!(
        listed_set(meta, member(Only(Visibility::Private))),
        ids_of(&[1])
    );
    assert_eq!(
        listed_set(meta, member(Only(Visibility::Public))),
        ids_of(&[0, 10])
    );
    // Admins see every private and shared image, community ones only when asked for.
    let admin = |visibility| viewer(Some("a"), true, visibility, accepted);
    assert_eq!(
        listed_set(meta, admin(Default)),
        ids_of(&[0, 1, 2, 10, 11, 12, 14, 15, 16])
    );
    assert_eq!(
        listed_set(meta, admin(All)),
        ids_of(&[0, 1, 2, 3, 10, 11, 12, 13, 14, 15, 16])
    );
    // An unscoped caller owns nothing and is nobody's member.
    let unscoped = |visibility| viewer(None, false, visibility, accepted);
    assert_eq!(listed_set(meta, unscoped(Default)), ids_of(&[0, 10]));
    assert_eq!(listed_set(meta, unscoped(All)), ids_of(&[0, 3, 10, 13]));
    assert_eq!(listed_set(meta, ListFilter::all()).len(), 11);
    // Scope and conditions together.
    assert_eq!(
        listed_set(
            meta,
            member(Default).with(Condition::Text {
                field: TextField::Owner,
                values: vec!["q".into()],
            })
        ),
        ids_of(&[10, 15])
    );
}

pub fn member_status_decides_which_shared_images_are_listed<E: Engine>() {
    use VisibilityFilter::Default;
    let db = E::create();
    let meta = db.backend();
    sharing_world(meta);
    let own_and_public = [0, 1, 2, 3, 10];
    for (status, shared) in [
        (None, &[14, 15, 16][..]),
        (Some(MemberStatus::Pending), &[14][..]),
        (Some(MemberStatus::Accepted), &[15][..]),
        (Some(MemberStatus::Rejected), &[16][..]),
    ] {
        let expected: Vec<u128> = own_and_public.iter().chain(shared).copied().collect();
        assert_eq!(
            listed_set(meta, viewer(Some("p"), false, Default, status)),
            ids_of(&expected),
            "{status:?}"
        );
    }
    assert_eq!(
        listed_set(
            meta,
            viewer(Some("other"), false, Default, Some(MemberStatus::Pending))
        ),
        ids_of(&[0, 10, 12])
    );
    // Admins list every shared image whatever member_status says.
    assert_eq!(
        listed_set(
            meta,
            viewer(Some("a"), true, Default, Some(MemberStatus::Rejected))
        ),
        ids_of(&[0, 1, 2, 10, 11, 12, 14, 15, 16])
    );
    // A membership of an image no longer shared lists nothing.
    meta.update_image_with(id(15), |image| {
        image.visibility = Visibility::Private;
        Ok::<(), Error>(())
    })
    .unwrap();
    assert_eq!(
        listed_set(
            meta,
            viewer(Some("p"), false, Default, Some(MemberStatus::Accepted))
        ),
        ids_of(&own_and_public)
    );
}

pub fn a_marker_may_be_invisible_to_the_viewer<E: Engine>() {
    let db = E::create();
    let meta = db.backend();
    sharing_world(meta);
    // Newest first: 16, 15, ..., 10, 3, 2, 1, 0; 11 is q's private image, invisible to p.
    let filter = viewer(
        Some("p"),
        false,
        VisibilityFilter::Default,
        Some(MemberStatus::Accepted),
    );
    assert_eq!(
        listed(meta, filter.clone().after(Some(id(11)))),
        [10, 3, 2, 1, 0].map(id)
    );
    assert_eq!(
        listed(meta, filter.clone().after(Some(id(11))).limit(2)),
        [10, 3].map(id)
    );
    assert_eq!(listed(meta, filter.limit(2)), [15, 10].map(id));
}
