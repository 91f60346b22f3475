use std::path::{Path, PathBuf};

use super::super::{translate, GlanceReport, IniFile, Verdict};
use crate::config::{Config, ConfigError, StoreType};

/// The config `glint serve --glance-config F` builds from `text`, validated.
fn load(text: &str) -> Result<(Config, GlanceReport), ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("glance-api.conf");
    std::fs::write(&path, text).unwrap();
    let (config, report) = Config::load_with_glance(Some(&path), None, std::iter::empty())?;
    config.validate()?;
    Ok((config, report.unwrap()))
}

fn verdict<'r>(report: &'r GlanceReport, section: &str, name: &str) -> &'r Verdict {
    &report
        .options
        .iter()
        .find(|o| o.section == section && o.name == name)
        .unwrap_or_else(|| panic!("[{section}] {name} not in the report"))
        .verdict
}

fn mapped_to(report: &GlanceReport, section: &str, name: &str) -> String {
    match verdict(report, section, name) {
        Verdict::Mapped { key, .. } => key.clone(),
        other => panic!("[{section}] {name}: {other:?}"),
    }
}

fn is_unsupported(report: &GlanceReport, section: &str, name: &str) -> bool {
    matches!(verdict(report, section, name), Verdict::Unsupported(_))
}

fn is_ignored(report: &GlanceReport, section: &str, name: &str) -> bool {
    matches!(verdict(report, section, name), Verdict::Ignored(_))
}

#[test]
fn the_legacy_form_is_single_store_mode_with_glances_folder() {
    let (config, report) = load(
        "[glance_store]\nstores = file,http\ndefault_store = file\n\
         filesystem_store_datadir = /var/lib/glance/images/\n",
    )
    .unwrap();
    let stores = &config.stores;
    assert!(!stores.is_multi(), "{stores:?}");
    assert_eq!(stores.default_id(), Some("file"));
    assert_eq!(stores.stores.len(), 2);
    assert_eq!(stores.stores["file"].kind, StoreType::File);
    assert_eq!(stores.stores["http"].kind, StoreType::Http);
    assert_eq!(
        stores.stores["file"].filesystem_store_datadir,
        Some(PathBuf::from("/var/lib/glance/images/"))
    );
    assert_eq!(mapped_to(&report, "glance_store", "stores"), "stores");
    assert_eq!(
        mapped_to(&report, "glance_store", "default_store"),
        "stores.default"
    );
    assert_eq!(
        mapped_to(&report, "glance_store", "filesystem_store_datadir"),
        "stores.file.filesystem_store_datadir"
    );
}

#[test]
fn a_glance_store_section_without_stores_takes_glance_store_defaults() {
    let (config, _) = load("[glance_store]\nfilesystem_store_chunk_size = 131072\n").unwrap();
    assert!(!config.stores.is_multi());
    assert_eq!(config.stores.default_id(), Some("file"));
    assert_eq!(
        config.stores.stores["file"].filesystem_store_chunk_size,
        Some(131072)
    );
    assert!(config.stores.stores.contains_key("http"));
    // No [glance_store] at all: glint's own default (no [stores] table).
    let (config, _) = load("[DEFAULT]\ndebug = true\n").unwrap();
    assert!(config.stores.stores.is_empty());
}

const LEGACY_S3: &str = "[glance_store]\nstores = file, http, s3, rbd\ndefault_store = s3\n\
    s3_store_host = http://127.0.0.1:7480\ns3_store_access_key = AK\n\
    s3_store_secret_key = the-s3-secret\ns3_store_bucket = glance\n\
    s3_store_create_bucket_on_put = true\ns3_store_large_object_size = 200\n\
    s3_store_bucket_url_format = path\nrbd_store_pool = images\n\
    swift_store_container = glance\nhttps_insecure = false\n";

#[test]
fn legacy_s3_options_map_and_the_secret_stays_secret() {
    let (config, report) = load(LEGACY_S3).unwrap();
    let stores = &config.stores;
    assert!(!stores.is_multi());
    assert_eq!(stores.default_id(), Some("s3"));
    let s3 = stores.stores["s3"].s3();
    assert_eq!(s3.host, "http://127.0.0.1:7480");
    assert_eq!(s3.access_key, "AK");
    assert_eq!(s3.secret_key.expose(), "the-s3-secret");
    assert_eq!(s3.bucket, "glance");
    assert!(s3.create_bucket_on_put);
    assert_eq!(s3.large_object_size_mib, 200);
    assert_eq!(
        mapped_to(&report, "glance_store", "s3_store_secret_key"),
        "stores.s3.s3_store_secret_key"
    );
    // rbd is enabled but glint has none: `stores` and its options say so.
    assert!(is_unsupported(&report, "glance_store", "stores"));
    assert!(is_unsupported(&report, "glance_store", "rbd_store_pool"));
    // swift is not enabled: its options change nothing.
    assert!(is_ignored(&report, "glance_store", "swift_store_container"));
    assert!(is_ignored(&report, "glance_store", "https_insecure"));
    // check-config's rendering and the report never show the secret.
    let shown = toml::to_string_pretty(&config).unwrap();
    assert!(!shown.contains("the-s3-secret"), "{shown}");
    assert!(shown.contains("s3_store_secret_key = \"***\""), "{shown}");
    assert!(shown.contains("multi_store = false"), "{shown}");
    for option in &report.options {
        assert!(!option.to_string().contains("the-s3-secret"), "{option}");
    }
}

#[test]
fn legacy_options_of_a_store_not_enabled_are_ignored() {
    let (config, report) = load(
        "[glance_store]\nstores = file\ns3_store_host = h\nhttps_ca_certificates_file = /ca\n",
    )
    .unwrap();
    assert_eq!(config.stores.stores.len(), 1);
    assert!(is_ignored(&report, "glance_store", "s3_store_host"));
    assert!(is_ignored(
        &report,
        "glance_store",
        "https_ca_certificates_file"
    ));
}

const MULTI: &str = "[DEFAULT]\nenabled_backends = fast:file, cold:s3, web:http, ceph:rbd\n\
    [glance_store]\ndefault_backend = fast\nstores = file\ns3_store_host = ignored\n\
    [fast]\nfilesystem_store_datadir = /srv/fast\nstore_description = Fast disks\nweight = 10\n\
    filesystem_store_file_perm = 0\nfilesystem_thin_provisioning = true\n\
    [cold]\ns3_store_host = rgw.local:7480\ns3_store_access_key = AK\n\
    s3_store_secret_key = cold-secret\ns3_store_bucket = images\n\
    s3_store_large_object_chunk_size = 16\ns3_store_thread_pools = 4\n\
    [web]\nhttps_ca_certificates_file = /etc/ssl/ca.pem\nhttp_proxy_information = http:proxy:3128\n\
    [ceph]\nrbd_store_pool = images\nstore_description = Ceph\n";

#[test]
fn the_multi_store_form_maps_one_section_per_store() {
    let (config, report) = load(MULTI).unwrap();
    let stores = &config.stores;
    assert!(stores.is_multi());
    assert_eq!(stores.default_id(), Some("fast"));
    assert_eq!(
        stores.stores.keys().collect::<Vec<_>>(),
        ["cold", "fast", "web"]
    );
    let fast = &stores.stores["fast"];
    assert_eq!(fast.kind, StoreType::File);
    assert_eq!(
        fast.filesystem_store_datadir,
        Some(PathBuf::from("/srv/fast"))
    );
    assert_eq!(fast.description.as_deref(), Some("Fast disks"));
    assert_eq!(fast.weight, Some(10));
    let cold = stores.stores["cold"].s3();
    assert_eq!(cold.host, "rgw.local:7480");
    assert_eq!(cold.secret_key.expose(), "cold-secret");
    assert_eq!(cold.large_object_chunk_size_mib, 16);
    assert_eq!(cold.thread_pools, 4);
    assert_eq!(
        stores.stores["web"].http().ca_file,
        Some(PathBuf::from("/etc/ssl/ca.pem"))
    );
    assert_eq!(
        mapped_to(&report, "glance_store", "default_backend"),
        "stores.default"
    );
    assert_eq!(
        mapped_to(&report, "cold", "s3_store_secret_key"),
        "stores.cold.s3_store_secret_key"
    );
    assert!(is_unsupported(&report, "DEFAULT", "enabled_backends"));
    assert!(is_unsupported(&report, "ceph", "rbd_store_pool"));
    assert!(is_unsupported(&report, "ceph", "store_description"));
    assert!(is_unsupported(
        &report,
        "fast",
        "filesystem_thin_provisioning"
    ));
    assert!(is_unsupported(&report, "web", "http_proxy_information"));
    assert!(is_ignored(&report, "fast", "filesystem_store_file_perm"));
    // Legacy options beside enabled_backends are not read by Glance either.
    assert!(is_ignored(&report, "glance_store", "stores"));
    assert!(is_ignored(&report, "glance_store", "s3_store_host"));
    let shown = toml::to_string_pretty(&config).unwrap();
    assert!(!shown.contains("cold-secret"), "{shown}");
}

#[test]
fn options_of_another_driver_in_a_store_section_are_unknown() {
    let ini = IniFile::parse(
        "[DEFAULT]\nenabled_backends = fast:file\n[fast]\ns3_store_bucket = b\n",
        Path::new("glance-api.conf"),
    )
    .unwrap();
    let (_, report) = translate(&ini).unwrap();
    assert!(matches!(
        verdict(&report, "fast", "s3_store_bucket"),
        Verdict::Unknown { .. }
    ));
}

#[test]
fn one_folder_of_filesystem_store_datadirs_is_taken() {
    let (config, report) =
        load("[glance_store]\nfilesystem_store_datadirs = /srv/images:100\n").unwrap();
    assert_eq!(
        config.stores.stores["file"].filesystem_store_datadir,
        Some(PathBuf::from("/srv/images"))
    );
    assert_eq!(
        mapped_to(&report, "glance_store", "filesystem_store_datadirs"),
        "stores.file.filesystem_store_datadir"
    );
    let (_, report) = load(
        "[glance_store]\nfilesystem_store_datadirs = /a:100\nfilesystem_store_datadirs = /b:200\n",
    )
    .unwrap();
    assert!(is_unsupported(
        &report,
        "glance_store",
        "filesystem_store_datadirs"
    ));
}

#[test]
fn stores_glint_cannot_serve_stop_start_up_naming_the_option() {
    let err = |text: &str| load(text).unwrap_err().to_string();
    let rbd = err("[glance_store]\nstores = file,rbd\ndefault_store = rbd\n");
    assert!(
        rbd.contains("default_store") && rbd.contains("line 3"),
        "{rbd}"
    );
    let missing = err("[glance_store]\nstores = file\ndefault_store = s3\n");
    assert!(missing.contains("not one of"), "{missing}");
    let backend =
        err("[DEFAULT]\nenabled_backends = a:file, b:rbd\n[glance_store]\ndefault_backend = b\n");
    assert!(backend.contains("default_backend"), "{backend}");
    let unknown =
        err("[DEFAULT]\nenabled_backends = a:file\n[glance_store]\ndefault_backend = nope\n");
    assert!(unknown.contains("nope"), "{unknown}");
    let format = err(&LEGACY_S3.replace("= path", "= sideways"));
    assert!(
        format.contains("s3_store_bucket_url_format") && !format.contains("the-s3-secret"),
        "{format}"
    );
    // A missing s3 setting names glint's key, not the secret.
    let no_bucket = err(&LEGACY_S3.replace("s3_store_bucket = glance\n", ""));
    assert!(
        no_bucket.contains("stores.s3.s3_store_bucket") && !no_bucket.contains("the-s3-secret"),
        "{no_bucket}"
    );
}
