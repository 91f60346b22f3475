use std::path::Path;

use meta::{Backend, MemberStatus, RedbBackend};

use super::glance_db::tests::{glance_sqlite, ACTIVE, DELETED};
use super::*;
use crate::config::{StoreSettings, StoreType, StoresConfig};
use crate::store::fs::STORE_NAME;

const DATA: &[u8] = b"hello world";

/// A Glance database in `dir` whose active image's file is in `glance_images`.
fn glance(dir: &Path, glance_images: &Path) -> Options {
    fs::create_dir_all(glance_images).unwrap();
    fs::write(glance_images.join(ACTIVE), DATA).unwrap();
    let db = dir.join("glance.sqlite");
    glance_sqlite(&db, glance_images);
    Options {
        database: Secret::new(format!("sqlite:///{}", db.display())),
        ..Options::default()
    }
}

fn config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_owned(),
        ..Config::default()
    }
}

fn run_to_text(config: &Config, options: &Options) -> (Summary, String) {
    let mut out = Vec::new();
    let summary = run(config, options, &mut out).unwrap();
    (summary, String::from_utf8(out).unwrap())
}

#[test]
fn images_are_adopted_in_place_as_glance_had_them_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("glint");
    // Glance's file store is glint's: <data_dir>/images.
    let options = glance(dir.path(), &data_dir.join("images"));
    let config = config(&data_dir);
    let (summary, text) = run_to_text(&config, &options);
    assert_eq!(
        (summary.created, summary.deleted, summary.failed),
        (2, 1, 0),
        "{text}"
    );
    assert!(
        text.contains(&format!("adopted {ACTIVE} active \"cirros\", 1 member(s)")),
        "{text}"
    );
    assert!(!text.contains("sqlite.sqlite"), "{text}");

    let meta = RedbBackend::open(&config.meta_path()).unwrap();
    let image = meta.get_image(ACTIVE.parse().unwrap()).unwrap();
    assert_eq!(image.status, ImageStatus::Active);
    assert_eq!(image.name.as_deref(), Some("cirros"));
    assert_eq!(image.size, Some(11));
    assert_eq!(image.virtual_size, Some(1024));
    assert_eq!(
        image.checksum.as_deref(),
        Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
    );
    assert_eq!(image.visibility, Visibility::Shared);
    assert!(image.protected && image.os_hidden);
    assert_eq!(image.owner.as_deref(), Some("p-owner"));
    assert_eq!(image.created_at, timestamp("2025-01-02 03:04:05.123456"));
    assert_eq!(image.updated_at, timestamp("2025-01-02 03:05:00.000001"));
    assert_eq!(image.tags.iter().collect::<Vec<_>>(), ["web"]);
    assert_eq!(image.properties["os_distro"], "cirros");
    assert_eq!(image.locations.len(), 1);
    assert_eq!(image.locations[0].store, STORE_NAME);
    // The store finds the file where Glance left it.
    let store = FsStore::open(&config.images_dir()).unwrap();
    assert_eq!(
        fs::read(store.path_of(&image.locations[0]).unwrap()).unwrap(),
        DATA
    );
    let members = meta.list_members(image.id).unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].status, MemberStatus::Accepted);
    assert_eq!(members[0].created_at, timestamp("2025-01-03 00:00:00"));
    // The deleted image's id stays taken.
    let deleted: ImageId = DELETED.parse().unwrap();
    assert!(matches!(
        meta.get_image(deleted),
        Err(meta::Error::NotFound(_))
    ));
    let mut again = Image::new(deleted, meta::Timestamp::now());
    again.disk_format = Some("raw".into());
    assert!(matches!(
        meta.create_image(&again, &meta::Limits::UNLIMITED),
        Err(meta::Error::Duplicate(_))
    ));
    drop(meta);

    let (summary, text) = run_to_text(
        &config,
        &Options {
            verify: true,
            ..options
        },
    );
    assert_eq!(
        (
            summary.created,
            summary.unchanged,
            summary.verified,
            summary.failed
        ),
        (0, 2, 1, 0),
        "{text}"
    );
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("glint");
    let options = Options {
        dry_run: true,
        copy_to: Some(STORE_NAME.into()),
        ..glance(dir.path(), &dir.path().join("glance-images"))
    };
    let (summary, text) = run_to_text(&config(&data_dir), &options);
    assert_eq!(summary.failed, 0, "{text}");
    assert!(
        text.contains(&format!("would adopt {DELETED} deleted")),
        "{text}"
    );
    assert!(text.contains("data copied"), "{text}");
    assert!(!data_dir.join("meta.redb").exists());
    assert!(!data_dir.join("images").join(ACTIVE).exists());
}

#[test]
fn data_outside_the_store_needs_copy_to_and_is_checked_while_copied() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("glint");
    let glance_images = dir.path().join("glance-images");
    let options = glance(dir.path(), &glance_images);
    let config = config(&data_dir);
    let (summary, text) = run_to_text(&config, &options);
    assert_eq!((summary.failed, summary.created), (1, 1), "{text}");
    assert!(text.contains("--copy-to STORE"), "{text}");

    // A corrupted file is refused, and no partial copy is left behind.
    fs::write(glance_images.join(ACTIVE), b"hello worle").unwrap();
    let copy = Options {
        copy_to: Some(STORE_NAME.into()),
        ..options.clone()
    };
    let (summary, text) = run_to_text(&config, &copy);
    assert_eq!(summary.failed, 1, "{text}");
    assert!(text.contains("md5 is"), "{text}");
    let leftovers: Vec<_> = fs::read_dir(config.images_dir()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    fs::write(glance_images.join(ACTIVE), DATA).unwrap();
    let (summary, text) = run_to_text(
        &config,
        &Options {
            verify: true,
            ..copy.clone()
        },
    );
    assert_eq!(
        (
            summary.copied,
            summary.verified,
            summary.created,
            summary.failed
        ),
        (1, 1, 1, 0),
        "{text}"
    );
    assert_eq!(fs::read(config.images_dir().join(ACTIVE)).unwrap(), DATA);
    // Copied once: the next run finds it.
    let (summary, _) = run_to_text(&config, &copy);
    assert_eq!((summary.copied, summary.unchanged), (0, 2));
}

#[test]
fn a_record_changed_in_glint_is_left_alone_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("glint");
    let options = glance(dir.path(), &data_dir.join("images"));
    let config = config(&data_dir);
    run_to_text(&config, &options);
    {
        let meta = RedbBackend::open(&config.meta_path()).unwrap();
        meta.update_image(ACTIVE.parse().unwrap(), &mut |image| {
            image.name = Some("renamed in glint".into());
            Ok(())
        })
        .unwrap();
    }
    let (summary, text) = run_to_text(&config, &options);
    assert_eq!(summary.failed, 1, "{text}");
    assert!(text.contains("--overwrite"), "{text}");
    let (summary, _) = run_to_text(
        &config,
        &Options {
            overwrite: true,
            ..options
        },
    );
    assert_eq!((summary.replaced, summary.failed), (1, 0));
}

fn glance_image(status: &str) -> GlanceImage {
    GlanceImage {
        id: ACTIVE.into(),
        name: None,
        disk_format: Some("raw".into()),
        container_format: Some("bare".into()),
        size: Some(11),
        virtual_size: None,
        status: status.into(),
        visibility: "private".into(),
        checksum: Some("x".into()),
        os_hash_algo: None,
        os_hash_value: None,
        min_disk: 0,
        min_ram: 0,
        owner: None,
        protected: false,
        os_hidden: false,
        created_at: timestamp("2025-01-01 00:00:00"),
        updated_at: None,
        deleted_at: None,
        deleted: false,
        properties: Default::default(),
        tags: Default::default(),
        members: Vec::new(),
        locations: vec![GlanceLocation {
            url: "file:///elsewhere/x".into(),
            metadata: Default::default(),
            status: "active".into(),
        }],
    }
}

#[test]
fn plans_by_status_and_location() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::from_config(&config(dir.path())).unwrap();
    let stores = &stores;
    // An upload in progress in Glance cannot finish in glint.
    let step = plan(&glance_image("saving"), stores, None).unwrap();
    let Adoption::Live { image, .. } = &step.record else {
        panic!()
    };
    assert_eq!((image.status, image.size), (ImageStatus::Queued, None));
    assert_eq!(image.updated_at, image.created_at);
    assert_eq!(step.data, DataPlan::None);
    assert_eq!(step.notes.len(), 1);
    // Deactivated images keep their status and data.
    let step = plan(&glance_image("deactivated"), stores, Some(STORE_NAME)).unwrap();
    assert!(matches!(step.data, DataPlan::Copy { .. }));
    // A web location is the http store's, adopted as it is.
    let mut http = glance_image("active");
    http.locations[0].url = "http://mirror/x.img".into();
    assert_eq!(
        plan(&http, stores, None).unwrap().data,
        DataPlan::InPlace(vec![Location {
            url: "http://mirror/x.img".into(),
            store: "http".into(),
        }])
    );
    // An S3 location with no S3 store configured fails the image, without its secret.
    let mut s3 = glance_image("active");
    s3.locations[0].url = "s3://AK:SE/CRET@rgw:7480/glance/x".into();
    let why = plan(&s3, stores, Some(STORE_NAME)).unwrap_err().0;
    assert!(why.contains("s3://rgw:7480/glance/x"), "{why}");
    assert!(!why.contains("CRET"), "{why}");
    let mut odd = glance_image("active");
    odd.id = "not-a-uuid".into();
    assert!(plan(&odd, stores, Some(STORE_NAME)).is_err());
    // A location being deleted in Glance is not data.
    let mut pending = glance_image("active");
    pending.locations[0].status = "pending_delete".into();
    assert_eq!(plan(&pending, stores, None).unwrap().data, DataPlan::None);
    // pending_delete images are deleted in Glance's eyes (deleted = 1).
    let mut gone = glance_image("pending_delete");
    gone.deleted = true;
    assert!(matches!(
        plan(&gone, stores, None).unwrap().record,
        Adoption::Deleted { .. }
    ));
}

#[test]
fn urls_lose_their_credentials_and_files_their_symlinks() {
    assert_eq!(
        glint_url("s3://AK:se/cr@et@rgw.local:7480/images/abc"),
        "s3://rgw.local:7480/images/abc"
    );
    assert_eq!(
        glint_url("s3+https://s3.example.com/images/abc"),
        "s3+https://s3.example.com/images/abc"
    );
    assert_eq!(
        shown_url("s3://AK:se/cr@et@rgw.local:7480/images/abc"),
        "s3://rgw.local:7480/images/abc"
    );
    assert_eq!(
        shown_url("https://user:pw@mirror/a/b.img"),
        "https://mirror/a/b.img"
    );
    assert_eq!(shown_url("http://mirror/a@b"), "http://mirror/a@b");
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
    let url = format!("file://{}/link//{ACTIVE}", dir.path().display());
    assert_eq!(
        glint_url(&url),
        format!("file://{}/{ACTIVE}", real.canonicalize().unwrap().display())
    );
}

/// A config with two file stores: `fast` over `fast_dir` (the default) and `cold`.
fn two_stores(data_dir: &Path, fast_dir: &Path, cold_dir: &Path, multi: bool) -> Config {
    let file = |dir: &Path| StoreSettings {
        kind: StoreType::File,
        filesystem_store_datadir: Some(dir.to_owned()),
        ..StoreSettings::default()
    };
    Config {
        stores: StoresConfig {
            stores: [
                ("fast".to_owned(), file(fast_dir)),
                ("cold".to_owned(), file(cold_dir)),
            ]
            .into_iter()
            .collect(),
            default: Some("fast".into()),
            multi_store: (!multi).then_some(false),
        },
        ..config(data_dir)
    }
}

#[test]
fn multi_store_locations_keep_their_store_and_copy_to_fills_another() {
    let dir = tempfile::tempdir().unwrap();
    let glance_images = dir.path().join("glance-images");
    let cold_dir = dir.path().join("cold");
    let options = glance(dir.path(), &glance_images);
    let config = two_stores(&dir.path().join("glint"), &glance_images, &cold_dir, true);

    // Glance's store name is kept when glint has that store and it holds the URL; else the
    // store that holds it.
    let stores = Stores::from_config(&config).unwrap();
    let mut image = glance_image("active");
    image.locations[0].url = format!("file://{}/{ACTIVE}", glance_images.display());
    image.locations[0]
        .metadata
        .insert("store".into(), "fast".into());
    let DataPlan::InPlace(found) = plan(&image, &stores, None).unwrap().data else {
        panic!()
    };
    assert_eq!(found[0].store, "fast");
    image.locations[0]
        .metadata
        .insert("store".into(), "cold".into());
    let DataPlan::InPlace(found) = plan(&image, &stores, None).unwrap().data else {
        panic!()
    };
    assert_eq!(found[0].store, "fast");
    drop(stores);

    let (summary, text) = run_to_text(&config, &options);
    assert_eq!((summary.created, summary.failed), (2, 0), "{text}");
    {
        let meta = RedbBackend::open(&config.meta_path()).unwrap();
        let image = meta.get_image(ACTIVE.parse().unwrap()).unwrap();
        assert_eq!(image.locations[0].store, "fast");
    }
    // Copying an image glint already holds elsewhere changes its record: only with
    // --overwrite, and nothing is copied in vain.
    let (summary, text) = run_to_text(
        &config,
        &Options {
            copy_to: Some("cold".into()),
            ..options.clone()
        },
    );
    assert_eq!((summary.copied, summary.failed), (0, 1), "{text}");
    assert!(text.contains("--overwrite"), "{text}");
    assert!(!cold_dir.join(ACTIVE).exists());
    // --copy-to cold: copied through the store, checked, and the record now names it.
    let copy = Options {
        copy_to: Some("cold".into()),
        verify: true,
        overwrite: true,
        ..options.clone()
    };
    let (summary, text) = run_to_text(&config, &copy);
    assert_eq!(
        (
            summary.copied,
            summary.verified,
            summary.replaced,
            summary.failed
        ),
        (1, 1, 1, 0),
        "{text}"
    );
    assert_eq!(fs::read(cold_dir.join(ACTIVE)).unwrap(), DATA);
    let meta = RedbBackend::open(&config.meta_path()).unwrap();
    let image = meta.get_image(ACTIVE.parse().unwrap()).unwrap();
    assert_eq!(image.locations.len(), 1);
    assert_eq!(image.locations[0].store, "cold");
    drop(meta);
    // Again: the copy is found, nothing is copied or changed.
    let (summary, text) = run_to_text(&config, &copy);
    assert_eq!(
        (summary.copied, summary.unchanged, summary.failed),
        (0, 2, 0),
        "{text}"
    );
    // A store that does not exist, or takes no writes, is refused before anything is read.
    for bad in ["nope", "http"] {
        let err = run(
            &config,
            &Options {
                copy_to: Some(bad.into()),
                ..options.clone()
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, MigrateError::UnknownStore(..)), "{err}");
        assert!(err.to_string().contains("cold, fast"), "{err}");
    }
}

#[test]
fn single_store_mode_with_glances_folder_adopts_in_place() {
    // What a legacy glance-api.conf maps to: [stores] multi_store = false, the file store
    // in Glance's folder.
    let dir = tempfile::tempdir().unwrap();
    let glance_images = dir.path().join("glance-images");
    let options = glance(dir.path(), &glance_images);
    let config = two_stores(
        &dir.path().join("glint"),
        &glance_images,
        &dir.path().join("cold"),
        false,
    );
    let (summary, text) = run_to_text(
        &config,
        &Options {
            verify: true,
            ..options
        },
    );
    assert_eq!(
        (
            summary.created,
            summary.verified,
            summary.copied,
            summary.failed
        ),
        (2, 1, 0, 0),
        "{text}"
    );
    assert!(text.contains("data verified"), "{text}");
}

#[test]
fn metadefs_keep_their_owner_times_and_content() {
    use meta::metadefs::Metadefs;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("glint");
    let options = glance(dir.path(), &data_dir.join("images"));
    let config = config(&data_dir);
    let (summary, text) = run_to_text(&config, &options);
    assert_eq!(summary.namespaces, (1, 0, 0), "{text}");
    {
        let meta = RedbBackend::open(&config.meta_path()).unwrap();
        let document = meta
            .metadef_namespace_document("OS::Compute::Example")
            .unwrap()
            .unwrap();
        assert_eq!(document.namespace.owner, "admin");
        assert_eq!(
            document.namespace.created_at,
            timestamp("2025-01-01 00:00:00")
        );
        assert!(document.properties.contains_key("hw_x"));
        assert_eq!(document.objects[0].name, "obj");
        assert_eq!(document.tags[0].name, "tag-a");
        assert_eq!(
            document.resource_type_associations[0].name,
            "OS::Glance::Image"
        );
        assert_eq!(
            document.resource_type_associations[0].prefix.as_deref(),
            Some("hw_")
        );
    }
    // Loaded again: nothing changes.
    let (summary, text) = run_to_text(&config, &options);
    assert_eq!(summary.namespaces, (0, 0, 1), "{text}");
}

#[test]
fn a_glint_serving_from_the_data_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("glint");
    let options = glance(dir.path(), &data_dir.join("images"));
    let config = config(&data_dir);
    let _serving = RedbBackend::open(&config.meta_path()).unwrap();
    let err = run(&config, &options, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, MigrateError::InUse(_)), "{err}");
    assert!(err.to_string().contains("stop the glint serving"), "{err}");
}
