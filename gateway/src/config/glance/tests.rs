use std::path::Path;

use super::*;
use crate::config::{Config, Strategy, REDACTED};

const WALKTHROUGH: &str = include_str!("../../../tests/fixtures/glance-api.walkthrough.conf");

fn translate_text(text: &str) -> Result<(Table, GlanceReport), ConfigError> {
    translate(&IniFile::parse(text, Path::new("glance-api.conf")).unwrap())
}

/// The config, as `glint serve --glance-config F [--config T]` builds it.
fn load(glance: &str, toml: Option<&str>) -> Result<(Config, GlanceReport), ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let glance_path = dir.path().join("glance-api.conf");
    std::fs::write(&glance_path, glance).unwrap();
    let toml_path = dir.path().join("glint.toml");
    if let Some(toml) = toml {
        std::fs::write(&toml_path, toml).unwrap();
    }
    let (config, report) = Config::load_with_glance(
        Some(&glance_path),
        toml.map(|_| toml_path.as_path()),
        std::iter::empty(),
    )?;
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

#[test]
fn the_walkthrough_config_maps_auth_formats_and_size_cap() {
    let (config, report) = load(WALKTHROUGH, None).unwrap();
    config.validate().unwrap();
    assert_eq!(config.auth.strategy, Strategy::Keystone);
    let ks = config.keystone_authtoken.as_ref().unwrap();
    assert_eq!(ks.auth_url, "http://controller:5000");
    assert_eq!(ks.username, "glance");
    assert_eq!(ks.password.expose(), "GLANCE_PASS");
    assert_eq!(ks.project_name, "service");
    assert_eq!(ks.user_domain_name, "Default");
    assert_eq!(
        ks.www_authenticate_uri.as_deref(),
        Some("http://controller:5000")
    );
    assert_eq!(ks.memcached_servers.as_deref(), Some("controller:11211"));
    assert_eq!(
        config.disk_formats,
        ["ami", "ari", "aki", "vhd", "vmdk", "raw", "qcow2", "vdi", "iso", "root-tar"]
    );
    assert_eq!(config.image_size_cap, 10 << 30);
    assert_eq!(config.log_filter, "info");

    assert_eq!(
        verdict(&report, "paste_deploy", "flavor"),
        &Verdict::mapped("auth.strategy")
    );
    assert!(matches!(
        verdict(&report, "oslo_messaging_rabbit", "rabbit_ha_queues"),
        Verdict::Ignored(_)
    ));
    assert!(matches!(
        verdict(&report, "database", "connection"),
        Verdict::Ignored(_)
    ));
    assert!(matches!(
        verdict(&report, "oslo_limit", "endpoint_id"),
        Verdict::Ignored(_)
    ));
    assert!(matches!(
        verdict(&report, "DEFAULT", "use_keystone_limits"),
        Verdict::Ignored(_)
    ));
    // Every option of the file has exactly one verdict.
    let set: usize = WALKTHROUGH
        .lines()
        .filter(|l| l.contains(" = ") && !l.starts_with('#'))
        .count();
    assert_eq!(report.options.len(), set);
    // The password never shows, in the effective config or the report.
    let shown = toml::to_string_pretty(&config).unwrap();
    assert!(!shown.contains("GLANCE_PASS"), "{shown}");
    assert!(shown.contains(REDACTED));
    let listed: Vec<String> = report.options.iter().map(ToString::to_string).collect();
    assert!(!listed.join("\n").contains("GLANCE_PASS"));
}

#[test]
fn a_toml_file_overrides_the_glance_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, "from-a-file\n").unwrap();
    let (config, _) = load(
        WALKTHROUGH,
        Some(&format!(
            "image_size_cap = 5\n[keystone_authtoken]\npassword_file = {secret:?}\n"
        )),
    )
    .unwrap();
    assert_eq!(config.image_size_cap, 5);
    // A secret's `_file` form replaces the INI's value.
    let ks = config.keystone_authtoken.unwrap();
    assert_eq!(ks.password.expose(), "from-a-file");
    // Keys the TOML file leaves out keep the INI's values.
    assert_eq!(ks.username, "glance");
    assert_eq!(config.auth.strategy, Strategy::Keystone);
    // The TOML file's own keys are still checked.
    let err = load(WALKTHROUGH, Some("image_size_capp = 5\n")).unwrap_err();
    assert!(
        err.to_string().contains("did you mean `image_size_cap`"),
        "{err}"
    );
}

#[test]
fn unknown_options_name_the_nearest_glance_option() {
    let (_, report) = translate_text(
        "[DEFAULT]\nimage_size_cp = 1\n[keystone_authtoken]\nmemcache_server = x\n\
         [no_such_section]\nanything = 1\n",
    )
    .unwrap();
    assert_eq!(
        verdict(&report, "DEFAULT", "image_size_cp"),
        &Verdict::Unknown {
            nearest: Some("image_size_cap".into())
        }
    );
    assert_eq!(
        verdict(&report, "keystone_authtoken", "memcache_server"),
        &Verdict::Unknown {
            nearest: Some("memcached_servers".into())
        }
    );
    assert_eq!(
        verdict(&report, "no_such_section", "anything"),
        &Verdict::Unknown { nearest: None }
    );
    let shown = report.options[0].to_string();
    assert_eq!(
        shown,
        "[DEFAULT] image_size_cp (line 2): not a Glance option, ignored (did you mean \
         `image_size_cap`?)"
    );
}

#[test]
fn a_bad_value_names_section_option_and_line_but_not_the_value() {
    for (text, names) in [
        (
            "[DEFAULT]\nimage_size_cap = lots\n",
            "[DEFAULT] image_size_cap",
        ),
        (
            "[DEFAULT]\nimage_size_cap = 0\n",
            "[DEFAULT] image_size_cap",
        ),
        (
            "[image_format]\nrequire_image_format_match = maybe\n",
            "[image_format] require",
        ),
        (
            "[DEFAULT]\nuser_storage_quota = 10 GB\n",
            "[DEFAULT] user_storage_quota",
        ),
        (
            "[paste_deploy]\nflavor = trusted-auth\n",
            "[paste_deploy] flavor",
        ),
        ("[DEFAULT]\nbind_port = 99999\n", "[DEFAULT] bind_port"),
    ] {
        let err = translate_text(text).unwrap_err().to_string();
        assert!(err.contains(names), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }
    let err = translate_text("[keystone_authtoken]\nservice_token_roles_required = hunter2\n")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn deprecated_names_read_as_the_current_option() {
    let (table, report) = translate_text(
        "[DEFAULT]\ndisk_formats = raw,qcow2\n[keystone_authtoken]\nauth_uri = http://k\n",
    )
    .unwrap();
    assert_eq!(
        verdict(&report, "DEFAULT", "disk_formats"),
        &Verdict::mapped("disk_formats")
    );
    assert_eq!(table["disk_formats"].as_array().unwrap().len(), 2);
    assert_eq!(
        table["keystone_authtoken"]["www_authenticate_uri"].as_str(),
        Some("http://k")
    );
    // When both names are set, oslo reads the current one.
    let (table, report) =
        translate_text("[DEFAULT]\ndisk_formats = raw\n[image_format]\ndisk_formats = qcow2,iso\n")
            .unwrap();
    assert_eq!(table["disk_formats"].as_array().unwrap().len(), 2);
    assert!(matches!(
        verdict(&report, "DEFAULT", "disk_formats"),
        Verdict::Ignored(_)
    ));
}

#[test]
fn values_are_read_with_oslo_types_and_interpolation() {
    let (config, _) = load(
        "[DEFAULT]\nbase = 2\nimage_member_quota = -1\nimage_tag_quota = ${base}0\n\
         debug = On\nuser_storage_quota = 10GB\nbind_host = ::1\nbind_port = 19292\n\
         [image_format]\nrequire_image_format_match = no\ngpt_safety_checks_nonfatal = mbr,\n\
         container_formats = bare , ovf\n",
        None,
    )
    .unwrap();
    assert_eq!(config.image_member_quota, -1);
    assert_eq!(config.image_tag_quota, 20);
    assert_eq!(config.log_filter, "debug");
    assert_eq!(config.quotas.image_size_total, 10 * 1024);
    assert_eq!(config.listen.to_string(), "[::1]:19292");
    assert!(!config.require_image_format_match);
    assert_eq!(config.gpt_safety_checks_nonfatal, ["mbr"]);
    assert_eq!(config.container_formats, ["bare", "ovf"]);
    // Only bind_port: Glance's eventlet server bound every address.
    let (config, _) = load("[DEFAULT]\nbind_port = 9393\n", None).unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:9393");
    // Neither: glint's own default (loopback).
    let (config, _) = load("[DEFAULT]\n", None).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:9292");
}

#[test]
fn storage_quota_units_are_powers_of_1024() {
    assert_eq!(parse_storage_quota("0"), Some(0));
    assert_eq!(parse_storage_quota("512"), Some(512));
    assert_eq!(parse_storage_quota("3KB"), Some(3 << 10));
    assert_eq!(parse_storage_quota("1TB"), Some(1 << 40));
    assert_eq!(parse_storage_quota("1kb"), None);
    assert_eq!(parse_storage_quota("-1"), None);
    assert_eq!(parse_storage_quota("GB"), None);
    let (config, report) = load("[DEFAULT]\nuser_storage_quota = 1536KB\n", None).unwrap();
    assert_eq!(config.quotas.image_size_total, 1);
    assert!(verdict(&report, "DEFAULT", "user_storage_quota")
        .to_owned()
        .eq(&Verdict::Mapped {
            key: "quotas.image_size_total".into(),
            note: Some("glint counts whole MiB: 1 MiB".into())
        }));
    let (config, report) = load(
        "[DEFAULT]\nuser_storage_quota = 1GB\nuse_keystone_limits = true\n",
        None,
    )
    .unwrap();
    assert_eq!(config.quotas.image_size_total, -1);
    assert!(matches!(
        verdict(&report, "DEFAULT", "use_keystone_limits"),
        Verdict::Unsupported(_)
    ));
    assert!(matches!(
        verdict(&report, "DEFAULT", "user_storage_quota"),
        Verdict::Ignored(_)
    ));
}

#[test]
fn flavors_choose_the_auth_strategy() {
    for (flavor, strategy, cache) in [
        ("", Strategy::Noauth, false),
        ("keystone", Strategy::Keystone, false),
        ("keystone+cachemanagement", Strategy::Keystone, true),
        ("caching", Strategy::Noauth, true),
    ] {
        let (config, report) = load(&format!("[paste_deploy]\nflavor = {flavor}\n"), None).unwrap();
        assert_eq!(config.auth.strategy, strategy, "{flavor}");
        assert!(
            matches!(
                verdict(&report, "paste_deploy", "flavor"),
                Verdict::Mapped { key, .. } if key == "auth.strategy"
            ),
            "{flavor}"
        );
        // A caching flavor turns the cache on, at Glance's default size.
        let size = if cache { 10 << 30 } else { 0 };
        assert_eq!(config.image_cache_max_size, size, "{flavor}");
        assert_eq!(config.cache_dir().is_some(), cache, "{flavor}");
    }
}

#[test]
fn image_cache_options_are_taken_with_a_caching_flavor_only() {
    let options = "[DEFAULT]\nimage_cache_dir = /var/lib/glance/image-cache\n\
                   image_cache_max_size = 5368709120\nimage_cache_stall_time = 3600\n\
                   image_cache_driver = centralized_db\n";
    let (config, report) = load(
        &format!("{options}[paste_deploy]\nflavor = keystone+cachemanagement\n"),
        None,
    )
    .unwrap();
    assert_eq!(
        config.cache_dir().as_deref(),
        Some(Path::new("/var/lib/glance/image-cache"))
    );
    assert_eq!(config.image_cache_max_size, 5 << 30);
    assert_eq!(
        verdict(&report, "DEFAULT", "image_cache_dir"),
        &Verdict::mapped("image_cache_dir")
    );
    assert!(matches!(
        verdict(&report, "DEFAULT", "image_cache_max_size"),
        Verdict::Mapped { key, note: Some(_) } if key == "image_cache_max_size"
    ));
    for name in ["image_cache_stall_time", "image_cache_driver"] {
        assert!(
            matches!(verdict(&report, "DEFAULT", name), Verdict::Ignored(_)),
            "{name}"
        );
    }
    // Without the cache middleware Glance caches nothing, whatever the options say.
    let (config, report) = load(
        &format!("{options}[paste_deploy]\nflavor = keystone\n"),
        None,
    )
    .unwrap();
    assert_eq!(config.cache_dir(), None);
    assert!(matches!(
        verdict(&report, "DEFAULT", "image_cache_max_size"),
        Verdict::Ignored(_)
    ));
    // The TOML file still wins.
    let (config, _) = load(
        &format!("{options}[paste_deploy]\nflavor = caching\n"),
        Some("image_cache_max_size = 1024\n"),
    )
    .unwrap();
    assert_eq!(config.image_cache_max_size, 1024);
}

#[test]
fn a_postgresql_connection_becomes_glints_database_without_its_password_showing() {
    let (config, report) = load(
        "[database]\nconnection = postgresql+psycopg2://glint:s3%40cret@db.example:5432/glint\n",
        None,
    )
    .unwrap();
    let database = config.database.as_ref().expect("[database] mapped");
    assert_eq!(
        database.connection,
        "postgresql://glint@db.example:5432/glint"
    );
    assert_eq!(database.password.expose(), "s3@cret");
    assert!(matches!(
        verdict(&report, "database", "connection"),
        Verdict::Mapped { key, .. } if key == "database.connection"
    ));
    let shown = toml::to_string_pretty(&config).unwrap();
    assert!(
        !shown.contains("s3@cret") && !shown.contains("s3%40cret"),
        "{shown}"
    );
    for option in &report.options {
        assert!(!option.to_string().contains("s3"), "{option}");
    }
    // Glance's own kinds of database are what migrate-from-glance reads, not glint's.
    for url in [
        "mysql+pymysql://glance:pw@controller/glance",
        "sqlite:////var/lib/glance/glance.sqlite",
    ] {
        let (config, report) = load(&format!("[database]\nconnection = {url}\n"), None).unwrap();
        assert!(config.database.is_none(), "{url}");
        assert!(
            matches!(
                verdict(&report, "database", "connection"),
                Verdict::Ignored(_)
            ),
            "{url}"
        );
    }
}

#[test]
fn behaviour_changing_values_are_not_supported_and_defaults_are_harmless() {
    let (_, report) = translate_text(
        "[DEFAULT]\ndelayed_delete = true\nshow_image_direct_url = false\n\
         enabled_import_methods = [glance-direct,glance-download]\nlog_file = /var/log/glance/api.log\n\
         [oslo_policy]\nenforce_new_defaults = false\nenforce_scope = true\n\
         [cors]\nallowed_origin = https://dashboard\n\
         [oslo_messaging_notifications]\ndriver = messagingv2\n\
         [keystone_authtoken]\ndelay_auth_decision = false\nuser_domain_id = default\n",
    )
    .unwrap();
    for (section, name, unsupported) in [
        ("DEFAULT", "delayed_delete", true),
        ("DEFAULT", "show_image_direct_url", false),
        ("DEFAULT", "enabled_import_methods", false),
        ("DEFAULT", "log_file", false),
        ("oslo_policy", "enforce_new_defaults", true),
        ("oslo_policy", "enforce_scope", false),
        ("cors", "allowed_origin", true),
        ("oslo_messaging_notifications", "driver", true),
        ("keystone_authtoken", "delay_auth_decision", false),
        ("keystone_authtoken", "user_domain_id", true),
    ] {
        let v = verdict(&report, section, name);
        assert_eq!(
            matches!(v, Verdict::Unsupported(_)),
            unsupported,
            "[{section}] {name}: {v:?}"
        );
        assert!(!matches!(v, Verdict::Unknown { .. }), "[{section}] {name}");
    }
    assert_eq!(report.unsupported().count(), 5);
}

#[test]
fn glance_download_and_its_properties_map() {
    let (config, report) = load(
        "[DEFAULT]\nenabled_import_methods = [glance-direct,glance-download]\n\
         [glance_download_properties]\nextra_properties = ['hw_', 'os_distro', 'trait:']\n",
        None,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.enabled_import_methods,
        ["glance-direct", "glance-download"]
    );
    assert_eq!(
        config.glance_download_properties.extra_properties,
        ["hw_", "os_distro", "trait:"]
    );
    assert!(matches!(
        verdict(&report, "glance_download_properties", "extra_properties"),
        Verdict::Mapped { .. }
    ));
}

#[test]
fn store_sections_named_by_enabled_backends_are_known() {
    let (_, report) = translate_text(
        "[DEFAULT]\nenabled_backends = fs:file, ceph:rbd\n[fs]\nfilesystem_store_datadir = /x\n\
         [ceph]\nrbd_store_pool = images\nfilesystem_store_datadir = /y\n",
    )
    .unwrap();
    assert!(matches!(
        verdict(&report, "fs", "filesystem_store_datadir"),
        Verdict::Mapped { .. }
    ));
    assert!(matches!(
        verdict(&report, "ceph", "rbd_store_pool"),
        Verdict::Unsupported(_)
    ));
    assert!(matches!(
        verdict(&report, "ceph", "filesystem_store_datadir"),
        Verdict::Unknown { .. }
    ));
}

#[test]
fn the_catalog_holds_glances_sample_and_more() {
    let default = catalog_names("DEFAULT");
    for name in ["image_size_cap", "enabled_backends", "bind_port", "debug"] {
        assert!(default.iter().any(|n| n == name), "{name}");
    }
    let keystone = catalog_names("keystone_authtoken");
    for name in [
        "www_authenticate_uri",
        "memcached_servers",
        "password",
        "username",
    ] {
        assert!(keystone.iter().any(|n| n == name), "{name}");
    }
    assert!(catalog().options.len() > 500);
}

#[test]
fn import_options_are_mapped() {
    let (config, report) = load(
        "[DEFAULT]\nenabled_import_methods = [glance-direct,copy-image]\n\
         node_staging_uri = file:///var/lib/glance/staging/\n\
         worker_self_reference_url = http://glance-2.internal:9292/\n\
         [task]\ntask_time_to_live = 12\n",
        None,
    )
    .unwrap();
    assert_eq!(
        config.worker_self_reference_url.as_deref(),
        Some("http://glance-2.internal:9292")
    );
    assert_eq!(
        config.enabled_import_methods,
        ["glance-direct".to_owned(), "copy-image".to_owned()]
    );
    assert_eq!(
        config.node_staging_dir.as_deref(),
        Some(std::path::Path::new("/var/lib/glance/staging/"))
    );
    assert_eq!(config.task_time_to_live, 12);
    for (section, name) in [
        ("DEFAULT", "enabled_import_methods"),
        ("DEFAULT", "node_staging_uri"),
        ("DEFAULT", "worker_self_reference_url"),
        ("task", "task_time_to_live"),
    ] {
        assert!(
            matches!(verdict(&report, section, name), Verdict::Mapped { .. }),
            "[{section}] {name}"
        );
    }
    assert!(translate_text("[DEFAULT]\nenabled_import_methods = [teleport]\n").is_err());
    // Not a URL of a gateway: refused at start-up, naming the option.
    let (bad, _) = load(
        "[DEFAULT]\nworker_self_reference_url = glance-2:9292\n",
        None,
    )
    .unwrap();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("worker_self_reference_url"),
        "a bad URL names the option"
    );
    // Glance's own default keeps glint's.
    let (config, report) =
        load("[DEFAULT]\nnode_staging_uri = file:///tmp/staging/\n", None).unwrap();
    assert_eq!(config.node_staging_dir, None);
    assert!(matches!(
        verdict(&report, "DEFAULT", "node_staging_uri"),
        Verdict::Ignored(_)
    ));
}

#[test]
fn glance_image_import_conf_sections_map_to_the_same_tables() {
    let (config, report) = load(
        "[DEFAULT]\nenabled_import_methods = [web-download]\n\
         [import_filtering_opts]\nallowed_schemes = ['https']\n\
         allowed_hosts = [mirror.internal, 10.0.0.5]\nallowed_ports = [443, 8443]\n\
         disallowed_ports = []\n\
         [image_import_opts]\nimage_import_plugins = ['image_conversion', 'inject_image_metadata']\n\
         [image_conversion]\noutput_format = qcow2\n\
         [inject_metadata_properties]\nignore_user_roles = admin,reader\n\
         inject = hw_disk_bus:virtio,hw_vif_model:e1000\n",
        None,
    )
    .unwrap();
    config.validate().unwrap();
    let f = &config.import_filtering_opts;
    assert_eq!(f.allowed_schemes, ["https"]);
    assert_eq!(f.allowed_hosts, ["mirror.internal", "10.0.0.5"]);
    assert_eq!(f.allowed_ports, [443, 8443]);
    assert!(f.disallowed_ports.is_empty());
    assert_eq!(
        config.image_import_plugins,
        ["image_conversion", "inject_image_metadata"]
    );
    assert_eq!(config.image_conversion.output_format, "qcow2");
    let inject = &config.inject_metadata_properties;
    assert_eq!(inject.ignore_user_roles, ["admin", "reader"]);
    assert_eq!(inject.inject["hw_disk_bus"], "virtio");
    assert_eq!(inject.inject["hw_vif_model"], "e1000");
    for (section, name) in [
        ("import_filtering_opts", "allowed_hosts"),
        ("image_import_opts", "image_import_plugins"),
        ("inject_metadata_properties", "inject"),
    ] {
        assert!(
            matches!(verdict(&report, section, name), Verdict::Mapped { .. }),
            "[{section}] {name}: {:?}",
            verdict(&report, section, name)
        );
    }
}

#[test]
fn a_bad_port_or_an_unknown_filtering_option_is_named() {
    let err = translate_text("[import_filtering_opts]\nallowed_ports = [80, http]\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("allowed_ports"), "{text}");
    assert!(text.contains("\"http\""), "{text}");
    let (_, report) =
        translate_text("[import_filtering_opts]\nallowed_host = [mirror.internal]\n").unwrap();
    assert_eq!(
        verdict(&report, "import_filtering_opts", "allowed_host"),
        &Verdict::Unknown {
            nearest: Some("allowed_hosts".into())
        }
    );
}
