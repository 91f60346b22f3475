//! A database of its own for a test, in the PostgreSQL cluster `tests/e2e/pg.sh` starts
//! (`GLINT_PG_TEST_URL`): a schema created for the test and dropped after it, and the
//! `[database]` settings that point glint at it.

/// A schema in the test cluster, dropped on drop.
pub struct TestDatabase {
    admin: postgres::Client,
    schema: String,
    url: String,
    application_name: String,
}

/// The test cluster's URL, or `None` when the test should skip (it fails instead when
/// `GLINT_REQUIRE_PG` is set).
pub fn url() -> Option<String> {
    match std::env::var("GLINT_PG_TEST_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("GLINT_REQUIRE_PG").is_none(),
                "GLINT_REQUIRE_PG is set but GLINT_PG_TEST_URL is not"
            );
            eprintln!("GLINT_PG_TEST_URL is not set: PostgreSQL test skipped (tests/e2e/pg.sh)");
            None
        }
    }
}

impl TestDatabase {
    /// A fresh schema, or `None` without a test cluster.
    pub fn create() -> Option<TestDatabase> {
        let url = url()?;
        let mut admin =
            postgres::Client::connect(&url, postgres::NoTls).expect("connect to the test cluster");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("t_{id}");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create a schema");
        let application_name = format!("glint-{id}");
        let url =
            format!("{url}?options=-csearch_path%3D{schema}&application_name={application_name}");
        Some(TestDatabase {
            admin,
            schema,
            url,
            application_name,
        })
    }

    /// The `[database]` table of a gateway on this schema (migrated at start-up), with the
    /// password given as a secret rather than in the URL.
    pub fn config_toml(&self) -> String {
        let (without, password) = split_password(&self.url);
        format!(
            "[database]\nconnection = \"{without}\"\npassword = \"{password}\"\nsync_on_start = true\n"
        )
    }

    /// Terminates every connection glint holds to this schema (a database outage as the
    /// gateways see it); returns how many.
    pub fn terminate_connections(&mut self) -> i64 {
        self.admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = $1",
                &[&self.application_name],
            )
            .expect("terminate connections")
            .get(0)
    }
}

/// `postgresql://user:pw@host/db?…` → (`postgresql://user@host/db?…`, `pw`).
fn split_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) => (
                format!("{scheme}://{user}@{host}{path}"),
                password.to_owned(),
            ),
            None => (url.to_owned(), String::new()),
        },
        None => (url.to_owned(), String::new()),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema));
    }
}
