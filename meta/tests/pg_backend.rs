//! The backend conformance suite (`suite/`) on the PostgreSQL engine, each test on a schema of
//! its own in the cluster `tests/e2e/pg.sh` starts (`GLINT_PG_TEST_URL`); plus what only a
//! shared database has: several backends on one database, the change feed, migrations, and a
//! lost connection.

#[macro_use]
mod suite;

use std::time::Duration;

use meta::{Backend, BackendExt, Error, ImageStatus, PgBackend, PgOptions};
use suite::{Engine, PgEngine, Short};

backend_tests!(suite::PgEngine, if suite::pg_ready);

/// Two gateways on one database: what one writes the other reads at once, an upload claimed
/// by one cannot be claimed by the other, and each one's recovery leaves the other's uploads.
#[test]
fn two_backends_share_one_database() {
    if !suite::pg_ready() {
        return;
    }
    let db = PgEngine::create();
    let first = db.backend();
    let second = PgBackend::connect(db.options()).unwrap();
    let image = suite::queued(1);
    first.create(&image).unwrap();
    assert_eq!(second.get_image(image.id).unwrap(), image);
    second
        .begin_upload(
            image.id,
            &suite::claim(ImageStatus::Saving, suite::other_node()),
            &meta::Limits::UNLIMITED,
        )
        .unwrap();
    assert!(matches!(
        first.begin(image.id, ImageStatus::Saving),
        Err(Error::InvalidTransition { .. })
    ));
    assert!(first.recover().unwrap().is_empty());
    assert_eq!(suite::status_of(first, image.id), ImageStatus::Saving);
    second.complete(image.id, suite::outcome(image.id)).unwrap();
    assert_eq!(suite::status_of(first, image.id), ImageStatus::Active);
}

/// Issue 14: deleting or deactivating an image on one gateway is announced to the others.
#[test]
fn status_changes_are_announced_to_every_watcher() {
    if !suite::pg_ready() {
        return;
    }
    let db = PgEngine::create();
    let meta = db.backend();
    let other = PgBackend::connect(db.options()).unwrap();
    let mut feed = other
        .watch_changes()
        .unwrap()
        .expect("PostgreSQL has a change feed");
    let id = suite::image_in(meta, 1, ImageStatus::Active);
    meta.set_status(id, ImageStatus::Deactivated).unwrap();
    meta.delete_image(id).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let change = feed
            .next(Duration::from_secs(10))
            .unwrap()
            .expect("a change within 10 s");
        if change.id == id {
            seen.push(change.status);
        }
    }
    assert_eq!(
        seen,
        [
            ImageStatus::Active,
            ImageStatus::Deactivated,
            ImageStatus::Deleted
        ]
    );
    // Edits that keep the status are not announced. (The channel is the database's: other
    // tests' images, in other schemas, may be announced meanwhile.)
    let kept = suite::image_in(meta, 2, ImageStatus::Active);
    meta.update_image_with(kept, |image| {
        image.name = Some("renamed".into());
        Ok::<(), Error>(())
    })
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut for_kept = Vec::new();
    while std::time::Instant::now() < deadline {
        match feed.next(Duration::from_millis(100)).unwrap() {
            Some(change) if change.id == kept => for_kept.push(change.status),
            Some(_) => {}
            None if !for_kept.is_empty() => break,
            None => {}
        }
    }
    // Its one status change (queued -> active), not the rename.
    assert_eq!(for_kept, [ImageStatus::Active]);
}

/// Concurrent uploads of one owner from several connections never take it over its limit:
/// exactly as many begin as fit, whatever the interleaving.
#[test]
fn quota_reservations_hold_across_connections() {
    if !suite::pg_ready() {
        return;
    }
    let db = PgEngine::create();
    let limits = meta::Limits {
        image_size_total_mib: Some(10),
        ..meta::Limits::UNLIMITED
    };
    for n in 0..8 {
        db.backend()
            .create_image(&suite::owned(n, "p"), &limits)
            .unwrap();
    }
    let began: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|n| {
                let options = db.options().clone();
                scope.spawn(move || {
                    let backend = PgBackend::connect(&options).unwrap();
                    let claim = meta::UploadClaim {
                        incoming_bytes: Some(3 * meta::MIB),
                        ..suite::claim(ImageStatus::Saving, suite::node())
                    };
                    backend.begin_upload(suite::id(n), &claim, &limits).is_ok()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| usize::from(w.join().unwrap()))
            .sum()
    });
    assert_eq!(began, 3, "3 × 3 MiB fit in 10 MiB, a fourth does not");
    assert_eq!(
        db.backend().usage("p").unwrap().reserved_bytes,
        9 * meta::MIB
    );
}

/// An unmigrated database is refused by `connect` and brought up by `sync`, which is
/// idempotent; a database from a newer glint is refused.
#[test]
fn connect_needs_a_synced_schema() {
    let Some(url) = suite::pg_url() else {
        return;
    };
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let options = PgOptions::new(format!(
        "{url}{}options=-csearch_path%3D{schema}",
        if url.contains('?') { "&" } else { "?" }
    ));
    assert!(matches!(
        PgBackend::connect(&options),
        Err(Error::SchemaOutdated { found: 0, .. })
    ));
    let first = PgBackend::sync(&options).unwrap();
    assert_eq!((first.from, first.to), (0, meta::PG_SCHEMA_VERSION));
    let again = PgBackend::sync(&options).unwrap();
    assert_eq!(
        (again.from, again.to),
        (meta::PG_SCHEMA_VERSION, meta::PG_SCHEMA_VERSION)
    );
    let backend = PgBackend::connect(&options).unwrap();
    assert_eq!(backend.schema_version(), meta::PG_SCHEMA_VERSION);
    drop(backend);
    admin
        .batch_execute(&format!(
            "INSERT INTO {schema}.glint_schema_migrations (version, description) VALUES (99, 'future')"
        ))
        .unwrap();
    assert!(matches!(
        PgBackend::connect(&options),
        Err(Error::SchemaTooNew { found: 99, .. })
    ));
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

/// A connection the server drops makes the call fail as `Unavailable` (the gateway's 503), and
/// the next call connects again by itself; nothing committed is lost.
#[test]
fn a_lost_connection_is_unavailable_then_reconnects() {
    let Some(url) = suite::pg_url() else {
        return;
    };
    let db = PgEngine::create();
    // This engine's own connections, by an application name no other test uses.
    let name = format!("glint-lost-{}", uuid::Uuid::new_v4().simple());
    let options = PgOptions::new(format!("{}&application_name={name}", db.options().url));
    let meta = PgBackend::connect(&options).unwrap();
    let meta = &meta;
    let id = suite::image_in(meta, 1, ImageStatus::Active);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert!(killed >= 1);
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(meta.get_image(id));
    }
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(Error::Unavailable(_)))),
        "{outcomes:?}"
    );
    // Within the retry window a failed connect is not retried; after it, it is.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match meta.get_image(id) {
            Ok(image) => {
                assert_eq!(image.status, ImageStatus::Active);
                break;
            }
            Err(Error::Unavailable(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(other) => panic!("{other}"),
        }
    }
}
