//! Databases written by older schema versions, committed under `tests/fixtures/`, still open and
//! read back as written (see `tests/fixtures/README.md`). Each fixture is opened from a copy,
//! since opening may migrate the file.

// Helpers here are not `#[test]` functions, which clippy's allow-unwrap-in-tests exempts; a
// panic is how a test helper reports failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use meta::metadefs::Metadefs;
use meta::{
    Backend, Error, Image, ImageId, ImageStatus, Limits, ListFilter, Location, MemberStatus,
    NodeId, RedbBackend, SortDir, SortKey, Timestamp, UploadClaim, UploadOutcome, Usage,
    Visibility,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn id(text: &str) -> ImageId {
    text.parse().expect("fixture ids are canonical")
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(seconds * 1_000_000)
}

const ACTIVE: &str = "6f0c2a7e-3b1d-4c55-9a3e-0d9a1c2b3e41";
const SAVING: &str = "6f0c2a7e-3b1d-4c55-9a3e-0d9a1c2b3e42";
const UPLOADING: &str = "6f0c2a7e-3b1d-4c55-9a3e-0d9a1c2b3e43";
const DEACTIVATED: &str = "6f0c2a7e-3b1d-4c55-9a3e-0d9a1c2b3e44";
const BARE: &str = "6f0c2a7e-3b1d-4c55-9a3e-0d9a1c2b3e45";
const DELETED: &str = "6f0c2a7e-3b1d-4c55-9a3e-0d9a1c2b3e46";

fn node(name: &str) -> NodeId {
    name.parse().expect("fixture node ids are valid")
}

fn claim(to: ImageStatus, by: &str) -> UploadClaim {
    UploadClaim {
        to,
        node: node(by),
        incoming_bytes: None,
    }
}

fn upload(image: &str) -> UploadOutcome {
    UploadOutcome {
        size: 21_430_272,
        checksum: "443b7623e27ecf03dc9e01ee93f67afe".to_owned(),
        os_hash_algo: "sha512".to_owned(),
        os_hash_value: "6513f21e44aa3da349f248188a44bc304a3653a04122d8fb4535423c8e1d14cd6a153f735bb0982e2161b5b5186106570c17a9e58b64dd39390617cd5a350f78".to_owned(),
        virtual_size: Some(117_440_512),
        location: Location {
            url: format!("file:///var/lib/glint/images/{image}"),
            store: "file".to_owned(),
        },
    }
}

/// The live images of `schema_v1.redb`, as written by [`generate_schema_v1`], and the statuses
/// they were moved to after creation. `updated_at` is the creation time; images that were
/// moved have a later, unrecorded `updated_at`.
fn v1_images() -> Vec<(Image, &'static [ImageStatus])> {
    let mut active = Image::new(id(ACTIVE), at(1_700_000_001));
    active.name = Some("cirros-0.6.2".to_owned());
    active.visibility = Visibility::Public;
    active.owner = Some("bab7d5c60cd041a0a36f7c4b6e1dd978".to_owned());
    active.min_ram = 64;
    active.min_disk = 1;
    active.disk_format = Some("qcow2".to_owned());
    active.container_format = Some("bare".to_owned());
    active.tags = ["cirros".to_owned(), "test".to_owned()].into();
    active.properties = [
        ("hw_disk_bus".to_owned(), "virtio".to_owned()),
        ("os_distro".to_owned(), "cirros".to_owned()),
    ]
    .into();

    let mut saving = Image::new(id(SAVING), at(1_700_000_002));
    saving.name = Some("interrupted upload".to_owned());
    saving.disk_format = Some("raw".to_owned());
    saving.container_format = Some("bare".to_owned());

    let mut uploading = Image::new(id(UPLOADING), at(1_700_000_003));
    uploading.name = Some("staged".to_owned());
    uploading.visibility = Visibility::Private;

    let mut deactivated = Image::new(id(DEACTIVATED), at(1_700_000_004));
    deactivated.name = Some("Ubuntu \u{2014} noble".to_owned());
    deactivated.visibility = Visibility::Community;
    deactivated.protected = true;
    deactivated.os_hidden = true;
    deactivated.disk_format = Some("vmdk".to_owned());
    deactivated.container_format = Some("ova".to_owned());

    let bare = Image::new(id(BARE), at(1_700_000_005));

    vec![
        (active, &[ImageStatus::Saving, ImageStatus::Active]),
        (saving, &[ImageStatus::Saving]),
        (uploading, &[ImageStatus::Uploading]),
        (
            deactivated,
            &[
                ImageStatus::Saving,
                ImageStatus::Active,
                ImageStatus::Deactivated,
            ],
        ),
        (bare, &[]),
    ]
}

/// Wrote `tests/fixtures/schema_v1.redb` while schema version 1 was current; kept as the record
/// of how the fixture was made. It now fails its version assertion: the fixture stands for
/// files users already have and is never regenerated.
#[test]
#[ignore = "writes the committed fixture; run by hand, see tests/fixtures/README.md"]
fn generate_schema_v1() {
    let path = fixture("schema_v1.redb");
    let _ = std::fs::remove_file(&path);
    let meta = RedbBackend::open(&path).unwrap();
    assert_eq!(
        meta.schema_version(),
        1,
        "the generator writes version 1 only"
    );
    for (image, path) in v1_images() {
        meta.create_image(&image, &Limits::UNLIMITED).unwrap();
        for status in path {
            match status {
                ImageStatus::Saving | ImageStatus::Uploading => {
                    meta.begin_upload(image.id, &claim(*status, "node-a"), &Limits::UNLIMITED)
                        .unwrap();
                }
                ImageStatus::Active => {
                    meta.complete_upload(
                        image.id,
                        upload(&image.id.to_string()),
                        &Limits::UNLIMITED,
                    )
                    .unwrap();
                }
                other => {
                    meta.set_status(image.id, *other).unwrap();
                }
            }
        }
    }
    let deleted = Image::new(id(DELETED), at(1_700_000_006));
    meta.create_image(&deleted, &Limits::UNLIMITED).unwrap();
    meta.delete_image(deleted.id).unwrap();
    drop(meta);
    // Compact so that the committed file stays small.
    let mut db = redb::Database::open(&path).unwrap();
    while db.compact().unwrap() {}
}

fn open_copy(name: &str) -> (tempfile::TempDir, RedbBackend) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(name);
    std::fs::copy(fixture(name), &copy).unwrap();
    let meta = RedbBackend::open(&copy).unwrap();
    (dir, meta)
}

#[test]
fn reads_images_written_by_schema_v1() {
    let (_dir, meta) = open_copy("schema_v1.redb");
    // Opening migrates the copy to the current version.
    assert_eq!(meta.schema_version(), meta::REDB_SCHEMA_VERSION);
    for (expected, path) in v1_images() {
        let mut actual = meta.get_image(expected.id).unwrap();
        let status = path.last().copied().unwrap_or(ImageStatus::Queued);
        assert_eq!(actual.status, status, "{}", expected.id);
        if path.is_empty() {
            assert_eq!(actual, expected);
            continue;
        }
        assert!(actual.updated_at > expected.updated_at, "{}", expected.id);
        let mut expected = expected;
        expected.status = status;
        expected.updated_at = actual.updated_at;
        if path.contains(&ImageStatus::Active) {
            let data = upload(&expected.id.to_string());
            expected.size = Some(data.size);
            expected.checksum = Some(data.checksum);
            expected.os_hash_algo = Some(data.os_hash_algo);
            expected.os_hash_value = Some(data.os_hash_value);
            expected.virtual_size = data.virtual_size;
            expected.locations = vec![data.location];
        }
        actual.updated_at = expected.updated_at;
        assert_eq!(actual, expected);
    }
    assert!(matches!(
        meta.get_image(id(DELETED)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn migration_to_v2_computes_usage_and_starts_without_members() {
    let (_dir, meta) = open_copy("schema_v1.redb");
    // Only the active image has an owner; the others are charged to nobody.
    let usage = meta.usage("bab7d5c60cd041a0a36f7c4b6e1dd978").unwrap();
    assert_eq!(
        usage,
        Usage {
            image_count: 1,
            size_bytes: 21_430_272,
            uploading_count: 0,
            reserved_bytes: 0,
        }
    );
    assert_eq!(meta.usage("").unwrap(), Usage::default());
    for (image, _) in v1_images() {
        assert!(meta.list_members(image.id).unwrap().is_empty());
    }
    // The migrated file keeps usage in step like a new one.
    meta.delete_image(id(ACTIVE)).unwrap();
    assert_eq!(
        meta.usage("bab7d5c60cd041a0a36f7c4b6e1dd978").unwrap(),
        Usage::default()
    );
}

#[test]
fn schema_v1_indexes_counts_and_tombstones_are_usable() {
    let (_dir, meta) = open_copy("schema_v1.redb");
    assert_eq!(meta.count_images().unwrap(), 5);
    let newest_first: Vec<ImageId> = meta
        .list_images(&ListFilter::all().limit(10))
        .unwrap()
        .iter()
        .map(|image| image.id)
        .collect();
    assert_eq!(
        newest_first,
        [BARE, DEACTIVATED, UPLOADING, SAVING, ACTIVE].map(id)
    );
    let by_name: Vec<ImageId> = meta
        .list_images(
            &ListFilter::all()
                .sorted(&[(SortKey::Name, SortDir::Asc)])
                .after(Some(id(BARE)))
                .limit(10),
        )
        .unwrap()
        .iter()
        .map(|image| image.id)
        .collect();
    assert_eq!(by_name, [DEACTIVATED, ACTIVE, SAVING, UPLOADING].map(id));
    let counts = meta.images_by_status().unwrap();
    for (status, expected) in [
        (ImageStatus::Queued, 1),
        (ImageStatus::Saving, 1),
        (ImageStatus::Uploading, 1),
        (ImageStatus::Active, 1),
        (ImageStatus::Deactivated, 1),
        (ImageStatus::Killed, 0),
    ] {
        assert!(counts.contains(&(status, expected)), "{status}: {counts:?}");
    }
    let deleted = Image::new(id(DELETED), Timestamp::now());
    assert!(matches!(
        meta.create_image(&deleted, &Limits::UNLIMITED),
        Err(Error::Duplicate(_))
    ));

    // Uploads of schema 1 record no node: any node's recovery resets them.
    let mut recovered = meta.recover_interrupted(&node("any-node")).unwrap();
    recovered.sort();
    assert_eq!(recovered, vec![id(SAVING), id(UPLOADING)]);
    meta.delete_image(id(ACTIVE)).unwrap();
    assert_eq!(meta.count_images().unwrap(), 4);
}

// ---- schema version 2: members and usage

const OWNER: &str = "bab7d5c60cd041a0a36f7c4b6e1dd978";
const SHARED: &str = "7a1d0c55-0f3e-4b8a-9c61-2e5d8f4a6b01";
const SHARED_DELETED: &str = "7a1d0c55-0f3e-4b8a-9c61-2e5d8f4a6b02";

/// Writes `tests/fixtures/schema_v2.redb`: the v1 images, plus a shared image of `OWNER` with
/// three members (pending, accepted, rejected) and a deleted shared image that had one.
/// Only while version 2 is current:
/// `cargo test -p meta --test backward_compatibility -- --ignored generate_schema_v2`.
#[test]
#[ignore = "writes the committed fixture; run by hand, see tests/fixtures/README.md"]
fn generate_schema_v2() {
    let path = fixture("schema_v2.redb");
    let _ = std::fs::remove_file(&path);
    let meta = RedbBackend::open(&path).unwrap();
    assert_eq!(
        meta.schema_version(),
        2,
        "the generator writes version 2 only"
    );
    populate_v2(&meta, |_| "node-a");
    drop(meta);
    let mut db = redb::Database::open(&path).unwrap();
    while db.compact().unwrap() {}
}

/// The contents of `schema_v2.redb` (and, with upload owners, of `schema_v3.redb`): the v1
/// images, a shared image of `OWNER` with three members (pending, accepted, rejected) and a
/// deleted shared image that had one. Uploads are begun by `node_for(status)`.
fn populate_v2(meta: &RedbBackend, node_for: impl Fn(ImageStatus) -> &'static str) {
    for (image, path) in v1_images() {
        meta.create_image(&image, &Limits::UNLIMITED).unwrap();
        for status in path {
            match status {
                ImageStatus::Saving | ImageStatus::Uploading => {
                    meta.begin_upload(
                        image.id,
                        &claim(*status, node_for(*status)),
                        &Limits::UNLIMITED,
                    )
                    .unwrap();
                }
                ImageStatus::Active => {
                    meta.complete_upload(
                        image.id,
                        upload(&image.id.to_string()),
                        &Limits::UNLIMITED,
                    )
                    .unwrap();
                }
                other => {
                    meta.set_status(image.id, *other).unwrap();
                }
            }
        }
    }
    let mut shared = Image::new(id(SHARED), at(1_700_000_007));
    shared.owner = Some(OWNER.to_owned());
    meta.create_image(&shared, &Limits::UNLIMITED).unwrap();
    for (project, status) in [
        ("project-a", MemberStatus::Pending),
        ("project-b", MemberStatus::Accepted),
        ("project-c", MemberStatus::Rejected),
    ] {
        meta.add_member(shared.id, project, None).unwrap();
        if status != MemberStatus::Pending {
            meta.update_member(shared.id, project, status).unwrap();
        }
    }
    let mut gone = Image::new(id(SHARED_DELETED), at(1_700_000_008));
    gone.owner = Some(OWNER.to_owned());
    meta.create_image(&gone, &Limits::UNLIMITED).unwrap();
    meta.add_member(gone.id, "project-a", None).unwrap();
    meta.delete_image(gone.id).unwrap();
}

#[test]
fn reads_members_and_usage_written_by_schema_v2() {
    let (_dir, meta) = open_copy("schema_v2.redb");
    assert_eq!(meta.schema_version(), meta::REDB_SCHEMA_VERSION);
    let members: Vec<(String, MemberStatus)> = meta
        .list_members(id(SHARED))
        .unwrap()
        .into_iter()
        .map(|m| (m.member_id, m.status))
        .collect();
    assert_eq!(
        members,
        [
            ("project-a".to_owned(), MemberStatus::Pending),
            ("project-b".to_owned(), MemberStatus::Accepted),
            ("project-c".to_owned(), MemberStatus::Rejected),
        ]
    );
    assert_eq!(
        meta.images_shared_with("project-a").unwrap(),
        [(id(SHARED), MemberStatus::Pending)]
    );
    assert!(meta.list_members(id(SHARED_DELETED)).unwrap().is_empty());
    assert_eq!(
        meta.usage(OWNER).unwrap(),
        Usage {
            image_count: 2,
            size_bytes: 21_430_272,
            uploading_count: 0,
            reserved_bytes: 0,
        }
    );
    // Still writable: deleting the shared image takes its members and its usage along.
    meta.delete_image(id(SHARED)).unwrap();
    assert!(meta.images_shared_with("project-b").unwrap().is_empty());
    assert_eq!(meta.usage(OWNER).unwrap().image_count, 1);
}

#[test]
fn migration_to_v3_leaves_older_uploads_without_an_owner() {
    let (_dir, meta) = open_copy("schema_v2.redb");
    for image in [SAVING, UPLOADING, ACTIVE] {
        assert_eq!(meta.upload_state(id(image)).unwrap(), None, "{image}");
    }
    // Whichever node opens the file first resets them.
    let mut recovered = meta.recover_interrupted(&node("node-z")).unwrap();
    recovered.sort();
    assert_eq!(recovered, vec![id(SAVING), id(UPLOADING)]);
    // New uploads on the migrated file record their node.
    meta.begin_upload(
        id(SAVING),
        &claim(ImageStatus::Saving, "node-z"),
        &Limits::UNLIMITED,
    )
    .unwrap();
    assert_eq!(
        meta.upload_state(id(SAVING))
            .unwrap()
            .map(|state| state.node),
        Some(node("node-z"))
    );
}

// ---- schema version 3: upload owners

const UNOWNED: &str = "7a1d0c55-0f3e-4b8a-9c61-2e5d8f4a6b03";

/// Writes `tests/fixtures/schema_v3.redb`: the v2 contents with the `saving` upload run by
/// `node-a` and the `uploading` one by `node-b`, plus an image moved to `saving` without
/// `begin_upload` (no owner). Only while version 3 is current:
/// `cargo test -p meta --test backward_compatibility -- --ignored generate_schema_v3`.
#[test]
#[ignore = "writes the committed fixture; run by hand, see tests/fixtures/README.md"]
fn generate_schema_v3() {
    let path = fixture("schema_v3.redb");
    let _ = std::fs::remove_file(&path);
    let meta = RedbBackend::open(&path).unwrap();
    assert_eq!(
        meta.schema_version(),
        3,
        "the generator writes version 3 only"
    );
    populate_v3(&meta);
    drop(meta);
    let mut db = redb::Database::open(&path).unwrap();
    while db.compact().unwrap() {}
}

/// The contents of `schema_v3.redb`, written through the current API.
fn populate_v3(meta: &RedbBackend) {
    populate_v2(meta, |status| match status {
        ImageStatus::Uploading => "node-b",
        _ => "node-a",
    });
    let mut unowned = Image::new(id(UNOWNED), at(1_700_000_009));
    unowned.disk_format = Some("raw".to_owned());
    unowned.container_format = Some("bare".to_owned());
    meta.create_image(&unowned, &Limits::UNLIMITED).unwrap();
    meta.set_status(unowned.id, ImageStatus::Saving).unwrap();
}

#[test]
fn reads_upload_owners_written_by_schema_v3() {
    let (_dir, meta) = open_copy("schema_v3.redb");
    assert_eq!(meta.schema_version(), meta::REDB_SCHEMA_VERSION);
    let owner = |image| {
        meta.upload_state(id(image))
            .unwrap()
            .map(|state| state.node.to_string())
    };
    assert_eq!(owner(SAVING).as_deref(), Some("node-a"));
    assert_eq!(owner(UPLOADING).as_deref(), Some("node-b"));
    assert_eq!(owner(UNOWNED), None);
    assert_eq!(owner(ACTIVE), None);
    let started = meta.upload_state(id(SAVING)).unwrap().unwrap().started_at;
    assert!(started > at(1_700_000_002), "{started:?}");
    assert_eq!(meta.count_images().unwrap(), 7);
    assert_eq!(meta.list_members(id(SHARED)).unwrap().len(), 3);

    // node-a's recovery takes its own upload and the unowned one, not node-b's.
    let mut recovered = meta.recover_interrupted(&node("node-a")).unwrap();
    recovered.sort();
    assert_eq!(recovered, vec![id(SAVING), id(UNOWNED)]);
    assert_eq!(
        meta.get_image(id(UPLOADING)).unwrap().status,
        ImageStatus::Uploading
    );
    assert_eq!(owner(UPLOADING).as_deref(), Some("node-b"));
    assert_eq!(
        meta.recover_interrupted(&node("node-b")).unwrap(),
        vec![id(UPLOADING)]
    );
    assert_eq!(owner(UPLOADING), None);
}

// ---- schema version 4: metadefs

/// Issue 13: a version 3 database (no metadef tables) migrates to version 4 with an empty,
/// usable metadefs catalog; its images, members and upload owners are untouched.
#[test]
fn migration_to_v4_adds_an_empty_metadefs_catalog() {
    let (_dir, meta) = open_copy("schema_v3.redb");
    assert!(meta
        .list_metadef_namespaces(&everything())
        .unwrap()
        .is_empty());
    assert!(meta.metadef_resource_types().unwrap().is_empty());
    assert!(meta.export_metadefs().unwrap().is_empty());
    assert_eq!(meta.count_images().unwrap(), 7);
    assert_eq!(meta.list_members(id(SHARED)).unwrap().len(), 3);
    assert_eq!(
        meta.upload_state(id(SAVING))
            .unwrap()
            .map(|state| state.node.to_string())
            .as_deref(),
        Some("node-a")
    );
    let documents = v4_metadefs();
    let report = meta
        .load_metadefs(&documents, LoadMode::SkipExisting)
        .unwrap();
    assert_eq!(report.created.len(), 2);
    assert_eq!(strip_types(meta.export_metadefs().unwrap()), documents);
}

use meta::metadefs::{
    LoadMode, MetadefObject, MetadefTag, Namespace, NamespaceDocument, NamespaceQuery,
    NamespaceSortKey, NamespaceViewer, NamespaceVisibility, PropertyDefinition,
    ResourceTypeAssociation,
};

fn everything() -> NamespaceQuery {
    NamespaceQuery {
        viewer: NamespaceViewer::Everything,
        visibility: None,
        resource_types: None,
        sort_key: NamespaceSortKey::CreatedAt,
        descending: true,
        marker: None,
        limit: 100,
    }
}

/// Exported documents without the resource types an export adds.
fn strip_types(mut documents: Vec<NamespaceDocument>) -> Vec<NamespaceDocument> {
    for document in &mut documents {
        document.resource_types.clear();
    }
    documents
}

/// The metadefs of `schema_v4.redb`: a protected public namespace with one of everything, and
/// a private one of another owner.
fn v4_metadefs() -> Vec<NamespaceDocument> {
    let mut libvirt = NamespaceDocument::new(Namespace {
        namespace: "OS::Compute::Libvirt".to_owned(),
        display_name: Some("libvirt Driver Options".to_owned()),
        description: Some("The libvirt compute driver options.".to_owned()),
        visibility: NamespaceVisibility::Public,
        protected: true,
        owner: "admin".to_owned(),
        created_at: at(1_700_000_100),
        updated_at: at(1_700_000_101),
    });
    libvirt.resource_type_associations = vec![
        ResourceTypeAssociation {
            name: "OS::Glance::Image".to_owned(),
            prefix: Some("hw_".to_owned()),
            properties_target: None,
            created_at: at(1_700_000_100),
            updated_at: at(1_700_000_100),
        },
        ResourceTypeAssociation {
            name: "OS::Cinder::Volume".to_owned(),
            prefix: Some("hw_".to_owned()),
            properties_target: Some("image".to_owned()),
            created_at: at(1_700_000_100),
            updated_at: at(1_700_000_100),
        },
    ];
    let boot_menu = PropertyDefinition {
        title: "Boot Menu".to_owned(),
        property_type: "string".to_owned(),
        description: Some("If true, enables the BIOS bootmenu.".to_owned()),
        enum_values: Some(vec!["true".to_owned(), "false".to_owned()]),
        default: Some("false".to_owned()),
        ..Default::default()
    };
    let serial = PropertyDefinition {
        title: "Serial Port Count".to_owned(),
        property_type: "integer".to_owned(),
        minimum: Some(0),
        maximum: Some(8),
        readonly: Some(false),
        ..Default::default()
    };
    libvirt.properties = [
        ("boot_menu".to_owned(), boot_menu),
        ("serial_port_count".to_owned(), serial.clone()),
    ]
    .into();
    libvirt.objects = vec![MetadefObject {
        name: "Serial".to_owned(),
        description: Some("Serial ports \u{2014} and more".to_owned()),
        required: vec!["serial_port_count".to_owned()],
        properties: [("serial_port_count".to_owned(), serial)].into(),
        created_at: at(1_700_000_100),
        updated_at: at(1_700_000_102),
    }];
    libvirt.tags = ["kvm", "qemu"]
        .into_iter()
        .map(|name| MetadefTag {
            name: name.to_owned(),
            created_at: at(1_700_000_100),
            updated_at: at(1_700_000_100),
        })
        .collect();
    let mut private = NamespaceDocument::new(Namespace {
        namespace: "OS::Private::Tuning".to_owned(),
        display_name: None,
        description: None,
        visibility: NamespaceVisibility::Private,
        protected: false,
        owner: OWNER.to_owned(),
        created_at: at(1_700_000_200),
        updated_at: at(1_700_000_200),
    });
    private.properties = [(
        "tuning_mode".to_owned(),
        PropertyDefinition {
            title: "Mode".to_owned(),
            property_type: "array".to_owned(),
            items: Some(meta::metadefs::ItemsDefinition {
                item_type: "string".to_owned(),
                enum_values: Some(vec!["fast".to_owned(), "safe".to_owned()]),
            }),
            unique_items: Some(true),
            confidential: Some(true),
            ..Default::default()
        },
    )]
    .into();
    vec![libvirt, private]
}

/// Writes `tests/fixtures/schema_v4.redb`: the v3 contents plus [`v4_metadefs`]. Only while
/// version 4 is current:
/// `cargo test -p meta --test backward_compatibility -- --ignored generate_schema_v4`.
#[test]
#[ignore = "writes the committed fixture; run by hand, see tests/fixtures/README.md"]
fn generate_schema_v4() {
    let path = fixture("schema_v4.redb");
    let _ = std::fs::remove_file(&path);
    let meta = RedbBackend::open(&path).unwrap();
    assert_eq!(
        meta.schema_version(),
        4,
        "the generator writes version 4 only"
    );
    populate_v3(&meta);
    meta.load_metadefs(&v4_metadefs(), LoadMode::SkipExisting)
        .unwrap();
    drop(meta);
    let mut db = redb::Database::open(&path).unwrap();
    while db.compact().unwrap() {}
}

#[test]
fn reads_metadefs_written_by_schema_v4() {
    let (_dir, meta) = open_copy("schema_v4.redb");
    assert_eq!(meta.schema_version(), meta::REDB_SCHEMA_VERSION);
    assert_eq!(strip_types(meta.export_metadefs().unwrap()), v4_metadefs());
    let types: Vec<(String, bool)> = meta
        .metadef_resource_types()
        .unwrap()
        .into_iter()
        .map(|rt| (rt.name, rt.protected))
        .collect();
    assert_eq!(
        types,
        [
            ("OS::Glance::Image".to_owned(), true),
            ("OS::Cinder::Volume".to_owned(), true),
        ]
    );
    assert_eq!(meta.count_images().unwrap(), 7);
    // Still writable, and the protected namespace still refuses deletes.
    assert!(meta
        .delete_metadef_namespace("OS::Compute::Libvirt")
        .is_err());
    meta.delete_metadef_namespace("OS::Private::Tuning")
        .unwrap();
    assert_eq!(meta.export_metadefs().unwrap().len(), 1);
}

// ---- schema version 5: tasks and the import lock (issue 12)

#[test]
fn migration_to_v5_adds_an_empty_task_table() {
    use meta::tasks::{TaskFilter, Tasks};
    let (_dir, meta) = open_copy("schema_v4.redb");
    assert_eq!(meta.schema_version(), meta::REDB_SCHEMA_VERSION);
    let all = TaskFilter {
        limit: 100,
        ..TaskFilter::default()
    };
    assert!(meta.list_tasks(&all).unwrap().is_empty());
    assert!(meta.image_tasks(id(ACTIVE)).unwrap().is_empty());
    // Usable: a task can be stored and read back.
    let task = v5_tasks().remove(0);
    meta.create_task(&task).unwrap();
    assert_eq!(meta.get_task(task.id).unwrap(), task);
}

const LOCKING_TASK: &str = "0b6f3e2a-5c1d-4e7f-8a9b-1c2d3e4f5a61";
const DONE_TASK: &str = "0b6f3e2a-5c1d-4e7f-8a9b-1c2d3e4f5a62";

/// The tasks of `schema_v5.redb`: one finished copy of the active image, and one import of the
/// bare queued image (N=5), running on `node-a`, holding its lock.
fn v5_tasks() -> Vec<meta::tasks::Task> {
    use meta::tasks::{Task, TaskRunner, TaskStatus, TaskType};
    let done = Task {
        id: DONE_TASK.parse().unwrap(),
        kind: TaskType::ApiImageImport,
        status: TaskStatus::Success,
        owner: Some("bab7d5c60cd041a0a36f7c4b6e1dd978".into()),
        image_id: Some(id(ACTIVE)),
        request_id: Some("req-5f1c".into()),
        user_id: Some("c0ffee".into()),
        input: format!(
            r#"{{"image_id":"{ACTIVE}","import_req":{{"method":{{"name":"copy-image"}}}},"backend":["backup"]}}"#
        ),
        result: Some(format!(r#"{{"image_id":"{ACTIVE}"}}"#)),
        message: String::new(),
        // 2100-01-01: never expires during the test's lifetime.
        expires_at: Some(at(4_102_444_800)),
        created_at: at(1_700_000_100),
        updated_at: at(1_700_000_160),
        runner: None,
    };
    let locking = Task {
        id: LOCKING_TASK.parse().unwrap(),
        kind: TaskType::ApiImageImport,
        status: TaskStatus::Processing,
        owner: None,
        image_id: Some(id(BARE)),
        request_id: None,
        user_id: None,
        input: format!(
            r#"{{"image_id":"{BARE}","import_req":{{"method":{{"name":"web-download","uri":"http://mirror/x.img"}}}},"backend":["file"]}}"#
        ),
        result: None,
        message: String::new(),
        expires_at: None,
        created_at: at(1_700_000_200),
        updated_at: at(1_700_000_200),
        runner: Some(TaskRunner {
            node: node("node-a"),
            lease_until: at(1_700_000_260),
        }),
    };
    vec![done, locking]
}

#[test]
fn reads_tasks_and_locks_written_by_schema_v5() {
    use meta::tasks::{TaskFilter, Tasks, IMPORTING_STORES_PROPERTY, IMPORT_TASK_PROPERTY};
    let (_dir, meta) = open_copy("schema_v5.redb");
    assert_eq!(meta.schema_version(), meta::REDB_SCHEMA_VERSION);
    let expected = v5_tasks();
    let done = meta.get_task(DONE_TASK.parse().unwrap()).unwrap();
    assert_eq!(done, expected[0]);
    let locking = meta.get_task(LOCKING_TASK.parse().unwrap()).unwrap();
    // begin_import stamps the time of its transaction as updated_at; the rest is as written.
    assert_eq!(
        meta::tasks::Task {
            updated_at: expected[1].updated_at,
            ..locking.clone()
        },
        expected[1]
    );
    let bare = meta.get_image(id(BARE)).unwrap();
    assert_eq!(bare.status, ImageStatus::Importing);
    assert_eq!(bare.properties[IMPORT_TASK_PROPERTY], LOCKING_TASK);
    assert_eq!(bare.properties[IMPORTING_STORES_PROPERTY], "file");
    let all = TaskFilter {
        limit: 10,
        ..TaskFilter::default()
    };
    assert_eq!(meta.list_tasks(&all).unwrap().len(), 2);
    assert_eq!(
        meta.image_tasks(id(ACTIVE)).unwrap(),
        vec![expected[0].clone()]
    );
    // The lease of node-a lapsed long ago: another import takes the lock over.
    let mut next = expected[1].clone();
    next.id = meta::tasks::TaskId::new_v4();
    next.runner = Some(meta::tasks::TaskRunner {
        node: node("node-b"),
        lease_until: Timestamp::from_unix_micros(i64::MAX),
    });
    let begun = meta
        .begin_import(&meta::tasks::ImportStart {
            task: next.clone(),
            from: ImageStatus::Importing,
            to: ImageStatus::Importing,
            stores: vec!["file".into()],
        })
        .unwrap();
    assert_eq!(begun.taken_over.unwrap().id, locking.id);
    assert_eq!(
        begun.image.properties[IMPORT_TASK_PROPERTY],
        next.id.to_string()
    );
}

/// `cargo test -p meta --test backward_compatibility -- --ignored generate_schema_v5`.
#[test]
#[ignore = "writes the committed fixture; run by hand, see tests/fixtures/README.md"]
fn generate_schema_v5() {
    use meta::tasks::{ImportStart, Tasks};
    let path = fixture("schema_v5.redb");
    let _ = std::fs::remove_file(&path);
    let meta = RedbBackend::open(&path).unwrap();
    assert_eq!(
        meta.schema_version(),
        5,
        "the generator writes version 5 only"
    );
    populate_v3(&meta);
    meta.load_metadefs(&v4_metadefs(), LoadMode::SkipExisting)
        .unwrap();
    let mut tasks = v5_tasks();
    let locking = tasks.pop().unwrap();
    meta.create_task(&tasks[0]).unwrap();
    meta::BackendExt::update_image_with(&meta, id(BARE), |image| -> Result<(), Error> {
        image.disk_format = Some("raw".into());
        image.container_format = Some("bare".into());
        Ok(())
    })
    .unwrap();
    meta.begin_import(&ImportStart {
        task: locking,
        from: ImageStatus::Queued,
        to: ImageStatus::Importing,
        stores: vec!["file".into()],
    })
    .unwrap();
    drop(meta);
    let mut db = redb::Database::open(&path).unwrap();
    while db.compact().unwrap() {}
}
