//! The configuration as an operator meets it: `glint check-config` and `glint serve` with a
//! TOML file and `GLINT_*` variables. Secrets never show; misspelt keys and variables stop
//! start-up, naming the nearest known name.

use std::path::Path;
use std::process::{Command, Output};

use glint_tests::{glint_bin, TestServer};

const PASSWORD: &str = "correct-horse-battery-staple";

fn keystone_toml(password_line: &str) -> String {
    format!(
        "[auth]\nstrategy = \"keystone\"\n[keystone_authtoken]\n\
         auth_url = \"http://127.0.0.1:9/v3\"\nusername = \"glance\"\n\
         project_name = \"service\"\n{password_line}\n"
    )
}

fn glint(args: &[&str], config: Option<&Path>, envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(glint_bin());
    cmd.args(args);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    // Only the variables this test means: the suite's own GLINT_* are tool variables.
    for (name, _) in std::env::vars() {
        if name.starts_with("GLINT_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(envs.iter().copied());
    cmd.output().expect("run glint")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// Issue 10: check-config printed [keystone_authtoken] password in clear.
#[test]
fn check_config_shows_secrets_redacted_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let inline = dir.path().join("inline.toml");
    std::fs::write(
        &inline,
        keystone_toml(&format!("password = \"{PASSWORD}\"")),
    )
    .unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    let from_file = dir.path().join("from-file.toml");
    std::fs::write(
        &from_file,
        keystone_toml(&format!(
            "password_file = {:?}",
            secret.display().to_string()
        )),
    )
    .unwrap();
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, keystone_toml("")).unwrap();

    for (config, envs) in [
        (&inline, vec![]),
        (&from_file, vec![]),
        (&bare, vec![("GLINT_KEYSTONE_AUTHTOKEN_PASSWORD", PASSWORD)]),
    ] {
        let out = glint(&["check-config"], Some(config), &envs);
        let shown = text(&out);
        assert!(out.status.success(), "{shown}");
        assert!(!shown.contains(PASSWORD), "the password is shown:\n{shown}");
        assert!(shown.contains("password = \"***\""), "{shown}");
    }
}

#[test]
fn a_secret_never_reaches_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("glint.toml");
    // A syntax error on the password's own line.
    std::fs::write(&config, keystone_toml(&format!("password = \"{PASSWORD}"))).unwrap();
    let out = glint(&["check-config"], Some(&config), &[]);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(shown.contains("line 7"), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
}

// Issue 10: a misspelt key or GLINT_* variable must not leave the default silently in force.
#[test]
fn unknown_keys_and_variables_stop_serve_and_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("glint.toml");
    std::fs::write(&config, "image_size_capp = 10\n").unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data];
    for args in [&["check-config"][..], &serve[..]] {
        let out = glint(args, Some(&config), &[]);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {shown}");
        assert!(
            shown.contains("unknown key `image_size_capp`")
                && shown.contains("did you mean `image_size_cap`?"),
            "{args:?}: {shown}"
        );
        let out = glint(args, None, &[("GLINT_IMAGE_SIZE_CAPP", "10")]);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {shown}");
        assert!(
            shown.contains("unknown environment variable GLINT_IMAGE_SIZE_CAPP")
                && shown.contains("did you mean GLINT_IMAGE_SIZE_CAP?"),
            "{args:?}: {shown}"
        );
    }
    // The variables of glint's own test tools are not settings, and are left alone.
    let out = glint(&["check-config"], None, &[("GLINT_BIN", "/x")]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn every_key_is_a_variable_too() {
    let out = glint(
        &["check-config"],
        None,
        &[
            ("GLINT_IMAGE_SIZE_CAP", "12345"),
            ("GLINT_QUOTAS_IMAGE_COUNT_TOTAL", "9"),
        ],
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("image_size_cap = 12345"), "{shown}");
    assert!(shown.contains("image_count_total = 9"), "{shown}");
    // And the server runs with it.
    let srv = TestServer::builder()
        .env("GLINT_IMAGE_SIZE_CAP", "4")
        .start();
    let id = srv.create_raw_image(serde_json::json!({}));
    srv.upload(&id, b"too big").expect_status(413);
}
