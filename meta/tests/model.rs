//! Model test: random sequences of operations run against `Meta` and against a plain `BTreeMap`
//! model that restates the spec's rules independently; every result, error and listing page
//! must agree, and after every step the whole store must equal the model.

// Helpers here are not `#[test]` functions, which clippy's allow-unwrap-in-tests exempts; a
// panic is how a test helper reports failure.
#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use meta::{
    Error, Image, ImageId, ImageStatus, Location, Meta, SortDir, SortKey, Timestamp, UploadOutcome,
    Visibility,
};
use proptest::prelude::*;

/// Ids are drawn from a small pool so that operations collide; scrambled so that id order
/// differs from pool order.
const POOL: u8 = 10;

fn pool_id(n: u8) -> ImageId {
    let scrambled = (u128::from(n) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    ImageId::from_uuid(uuid::Uuid::from_u128(scrambled))
}

const CHECKSUMS: [&str; 2] = [
    "11111111111111111111111111111111",
    "22222222222222222222222222222222",
];

#[derive(Debug, Clone)]
enum Edit {
    Name(Option<u8>),
    Protected(bool),
    Hidden(bool),
    Visibility(Visibility),
    DiskFormat(Option<u8>),
    ContainerFormat(Option<u8>),
    Tag(u8),
    Property(u8, u8),
    Checksum(Option<usize>),
}

#[derive(Debug, Clone, Copy)]
enum Filter {
    All,
    NotProtected,
    Named,
    IdEven,
    Nothing,
}

impl Filter {
    fn keep(self, image: &Image) -> bool {
        match self {
            Filter::All => true,
            Filter::NotProtected => !image.protected,
            Filter::Named => image.name.is_some(),
            Filter::IdEven => image.id.as_uuid().as_u128().is_multiple_of(2),
            Filter::Nothing => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        n: u8,
        name: Option<u8>,
        created: u8,
        disk: Option<u8>,
        container: Option<u8>,
        size: Option<u8>,
        protected: bool,
    },
    Update {
        n: u8,
        edit: Edit,
    },
    Delete {
        n: u8,
    },
    Begin {
        n: u8,
        to: ImageStatus,
    },
    Complete {
        n: u8,
        size: u8,
        virtual_size: Option<u8>,
        checksum: usize,
    },
    Abort {
        n: u8,
    },
    SetStatus {
        n: u8,
        to: ImageStatus,
    },
    Recover,
    List {
        sort: Vec<(SortKey, SortDir)>,
        marker: Option<u8>,
        limit: u8,
        filter: Filter,
    },
    Reopen,
}

fn small() -> impl Strategy<Value = u8> {
    0..4u8
}

fn status() -> impl Strategy<Value = ImageStatus> {
    proptest::sample::select(ImageStatus::ALL.to_vec())
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        proptest::option::of(small()).prop_map(Edit::Name),
        any::<bool>().prop_map(Edit::Protected),
        any::<bool>().prop_map(Edit::Hidden),
        proptest::sample::select(Visibility::ALL.to_vec()).prop_map(Edit::Visibility),
        proptest::option::of(small()).prop_map(Edit::DiskFormat),
        proptest::option::of(small()).prop_map(Edit::ContainerFormat),
        small().prop_map(Edit::Tag),
        (small(), small()).prop_map(|(key, value)| Edit::Property(key, value)),
        proptest::option::of(0..CHECKSUMS.len()).prop_map(Edit::Checksum),
    ]
}

fn sort() -> impl Strategy<Value = Vec<(SortKey, SortDir)>> {
    let key = proptest::sample::select(SortKey::ALL.to_vec());
    let dir = prop_oneof![Just(SortDir::Asc), Just(SortDir::Desc)];
    proptest::collection::vec((key, dir), 0..4)
}

fn filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        4 => Just(Filter::All),
        1 => Just(Filter::NotProtected),
        1 => Just(Filter::Named),
        1 => Just(Filter::IdEven),
        1 => Just(Filter::Nothing),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let n = || 0..POOL;
    prop_oneof![
        6 => (
            n(),
            proptest::option::of(small()),
            small(),
            proptest::option::weighted(0.8, small()),
            proptest::option::weighted(0.8, small()),
            proptest::option::weighted(0.2, small()),
            proptest::bool::weighted(0.2),
        )
            .prop_map(|(n, name, created, disk, container, size, protected)| Op::Create {
                n,
                name,
                created,
                disk,
                container,
                size,
                protected,
            }),
        4 => (n(), edit()).prop_map(|(n, edit)| Op::Update { n, edit }),
        2 => n().prop_map(|n| Op::Delete { n }),
        3 => (n(), prop_oneof![4 => Just(ImageStatus::Saving), 2 => Just(ImageStatus::Uploading), 1 => status()])
            .prop_map(|(n, to)| Op::Begin { n, to }),
        3 => (n(), small(), proptest::option::of(small()), 0..CHECKSUMS.len()).prop_map(
            |(n, size, virtual_size, checksum)| Op::Complete { n, size, virtual_size, checksum }
        ),
        2 => n().prop_map(|n| Op::Abort { n }),
        3 => (n(), status()).prop_map(|(n, to)| Op::SetStatus { n, to }),
        1 => Just(Op::Recover),
        6 => (sort(), proptest::option::of(n()), 0..6u8, filter())
            .prop_map(|(sort, marker, limit, filter)| Op::List { sort, marker, limit, filter }),
        1 => Just(Op::Reopen),
    ]
}

/// Errors as the model predicts them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    NotFound,
    Duplicate,
    InvalidTransition(ImageStatus, ImageStatus),
    FormatsNotSet,
    FormatsLocked,
    Protected,
    MarkerNotFound,
    DataMismatch(&'static str),
}

fn kind(err: &Error) -> Kind {
    match err {
        Error::NotFound(_) => Kind::NotFound,
        Error::Duplicate(_) => Kind::Duplicate,
        Error::InvalidTransition { from, to } => Kind::InvalidTransition(*from, *to),
        Error::FormatsNotSet(_) => Kind::FormatsNotSet,
        Error::FormatsLocked { .. } => Kind::FormatsLocked,
        Error::Protected(_) => Kind::Protected,
        Error::MarkerNotFound(_) => Kind::MarkerNotFound,
        Error::DataMismatch { field, .. } => Kind::DataMismatch(field),
        other => panic!("unexpected error: {other}"),
    }
}

/// The spec's table (§3.5), restated.
fn allowed(from: ImageStatus, to: ImageStatus) -> bool {
    use ImageStatus::*;
    let targets: &[ImageStatus] = match from {
        Queued => &[Saving, Uploading, Importing, Active, Deleted],
        Saving => &[Active, Killed, Deleted, Queued],
        Uploading => &[Importing, Queued, Deleted],
        Importing => &[Active, Deleted, Queued],
        Active => &[PendingDelete, Deleted, Deactivated],
        Killed => &[Deleted],
        PendingDelete => &[Deleted, Active],
        Deleted => &[],
        Deactivated => &[Active, Deleted],
    };
    targets.contains(&to)
}

#[derive(Default)]
struct Model {
    live: BTreeMap<ImageId, Image>,
    tombstones: BTreeSet<ImageId>,
}

/// A sort value: text or number. NULL is `""` or 0.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Text(String),
    Number(i128),
}

fn value(image: &Image, key: SortKey) -> Value {
    let text = |value: &Option<String>| Value::Text(value.clone().unwrap_or_default());
    match key {
        SortKey::Name => text(&image.name),
        SortKey::Status => Value::Text(image.status.to_string()),
        SortKey::ContainerFormat => text(&image.container_format),
        SortKey::DiskFormat => text(&image.disk_format),
        SortKey::Size => Value::Number(i128::from(image.size.unwrap_or(0))),
        SortKey::Id => Value::Text(image.id.to_string()),
        SortKey::CreatedAt => Value::Number(i128::from(image.created_at.as_unix_micros())),
        SortKey::UpdatedAt => Value::Number(i128::from(image.updated_at.as_unix_micros())),
    }
}

impl Model {
    fn sorted(&self, sort: &[(SortKey, SortDir)]) -> Vec<Image> {
        let mut keys = if sort.is_empty() {
            vec![(SortKey::CreatedAt, SortDir::Desc)]
        } else {
            sort.to_vec()
        };
        for tie_breaker in [SortKey::CreatedAt, SortKey::Id] {
            if !keys.iter().any(|(key, _)| *key == tie_breaker) {
                keys.push((tie_breaker, SortDir::Desc));
            }
        }
        let mut images: Vec<Image> = self.live.values().cloned().collect();
        images.sort_by(|a, b| {
            keys.iter()
                .map(|(key, dir)| {
                    let ordering = value(a, *key).cmp(&value(b, *key));
                    match dir {
                        SortDir::Asc => ordering,
                        SortDir::Desc => ordering.reverse(),
                    }
                })
                .find(|ordering| *ordering != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        images
    }

    fn list(
        &self,
        sort: &[(SortKey, SortDir)],
        marker: Option<ImageId>,
        limit: usize,
        filter: Filter,
    ) -> Result<Vec<Image>, Kind> {
        let sorted = self.sorted(sort);
        let start = match marker {
            None => 0,
            Some(marker) => {
                sorted
                    .iter()
                    .position(|image| image.id == marker)
                    .ok_or(Kind::MarkerNotFound)?
                    + 1
            }
        };
        Ok(sorted[start..]
            .iter()
            .filter(|image| filter.keep(image))
            .take(limit)
            .cloned()
            .collect())
    }

    fn get(&self, id: ImageId) -> Result<Image, Kind> {
        self.live.get(&id).cloned().ok_or(Kind::NotFound)
    }

    /// The model's version of a status change; `None` result: no write.
    fn transition(&self, image: &Image, to: ImageStatus) -> Result<Image, Kind> {
        if !allowed(image.status, to) {
            return Err(Kind::InvalidTransition(image.status, to));
        }
        let formats = image.disk_format.is_some() && image.container_format.is_some();
        let leaving = matches!(image.status, ImageStatus::Queued | ImageStatus::Uploading);
        let towards_data = matches!(
            to,
            ImageStatus::Saving | ImageStatus::Active | ImageStatus::Importing
        );
        if leaving && towards_data && !formats {
            return Err(Kind::FormatsNotSet);
        }
        let mut next = image.clone();
        next.status = to;
        if to == ImageStatus::Queued {
            next.size = None;
            next.virtual_size = None;
        }
        Ok(next)
    }
}

fn formats(n: Option<u8>) -> Option<String> {
    n.map(|n| ["raw", "qcow2", "iso", "vmdk"][usize::from(n)].to_owned())
}

fn apply(edit: &Edit, image: &mut Image) {
    match edit {
        Edit::Name(name) => image.name = name.map(|n| format!("name-{n}")),
        Edit::Protected(on) => image.protected = *on,
        Edit::Hidden(on) => image.os_hidden = *on,
        Edit::Visibility(visibility) => image.visibility = *visibility,
        Edit::DiskFormat(format) => image.disk_format = formats(*format),
        Edit::ContainerFormat(format) => {
            image.container_format =
                format.map(|n| ["bare", "ovf", "ova", "docker"][usize::from(n)].to_owned())
        }
        Edit::Tag(tag) => {
            let tag = format!("tag-{tag}");
            if !image.tags.remove(&tag) {
                image.tags.insert(tag);
            }
        }
        Edit::Property(key, value) => {
            image
                .properties
                .insert(format!("key-{key}"), format!("value-{value}"));
        }
        Edit::Checksum(checksum) => image.checksum = checksum.map(|n| CHECKSUMS[n].to_owned()),
    }
}

fn outcome(id: ImageId, size: u8, virtual_size: Option<u8>, checksum: usize) -> UploadOutcome {
    UploadOutcome {
        size: u64::from(size),
        checksum: CHECKSUMS[checksum].to_owned(),
        os_hash_algo: "sha512".to_owned(),
        os_hash_value: "ab".repeat(64),
        virtual_size: virtual_size.map(u64::from),
        location: Location {
            url: format!("file:///images/{id}"),
            store: "file".to_owned(),
        },
    }
}

/// Compares a write's result with the model's prediction. On success the model adopts the
/// stored `updated_at` (the store's clock) and becomes `expected`'s image.
fn check_write(
    model: &mut Model,
    actual: Result<Image, Error>,
    expected: Result<Image, Kind>,
) -> Result<(), TestCaseError> {
    match (actual, expected) {
        (Ok(actual), Ok(mut expected)) => {
            expected.updated_at = actual.updated_at;
            prop_assert_eq!(&actual, &expected);
            model.live.insert(expected.id, expected);
        }
        (Err(actual), Err(expected)) => prop_assert_eq!(kind(&actual), expected),
        (actual, expected) => {
            return Err(TestCaseError::fail(format!(
                "store: {actual:?}, model: {expected:?}"
            )))
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let mut meta = Meta::open(&path).unwrap();
    let mut model = Model::default();

    for op in ops {
        match op {
            Op::Create {
                n,
                name,
                created,
                disk,
                container,
                size,
                protected,
            } => {
                let mut image = Image::new(pool_id(n), Timestamp::from_unix_micros(created.into()));
                image.name = name.map(|n| format!("name-{n}"));
                image.disk_format = formats(disk);
                image.container_format =
                    container.map(|n| ["bare", "ovf", "ova", "docker"][usize::from(n)].to_owned());
                image.size = size.map(u64::from);
                image.protected = protected;
                let expected =
                    if model.live.contains_key(&image.id) || model.tombstones.contains(&image.id) {
                        Err(Kind::Duplicate)
                    } else {
                        Ok(image.clone())
                    };
                let actual = meta.create_image(&image).map(|()| image);
                check_write(&mut model, actual, expected)?;
            }
            Op::Update { n, edit } => {
                let id = pool_id(n);
                let expected = model.get(id).and_then(|old| {
                    let mut new = old.clone();
                    apply(&edit, &mut new);
                    let formats_changed = new.disk_format != old.disk_format
                        || new.container_format != old.container_format;
                    let open = matches!(old.status, ImageStatus::Queued | ImageStatus::Importing);
                    if formats_changed && !open {
                        Err(Kind::FormatsLocked)
                    } else {
                        Ok(new)
                    }
                });
                let actual = meta.update_image(id, |image| {
                    apply(&edit, image);
                    Ok::<(), Error>(())
                });
                check_write(&mut model, actual, expected)?;
            }
            Op::Delete { n } => {
                let id = pool_id(n);
                let expected = model.get(id).and_then(|image| {
                    if image.protected {
                        Err(Kind::Protected)
                    } else {
                        Ok(image)
                    }
                });
                match (meta.delete_image(id), expected) {
                    (Ok(actual), Ok(expected)) => {
                        prop_assert_eq!(actual, expected);
                        model.live.remove(&id);
                        model.tombstones.insert(id);
                    }
                    (Err(actual), Err(expected)) => prop_assert_eq!(kind(&actual), expected),
                    (actual, expected) => {
                        return Err(TestCaseError::fail(format!(
                            "delete: store {actual:?}, model {expected:?}"
                        )))
                    }
                }
            }
            Op::Begin { n, to } => {
                let id = pool_id(n);
                let expected = model.get(id).and_then(|image| {
                    let receiving = matches!(to, ImageStatus::Saving | ImageStatus::Uploading);
                    if image.status != ImageStatus::Queued || !receiving {
                        Err(Kind::InvalidTransition(image.status, to))
                    } else {
                        model.transition(&image, to)
                    }
                });
                check_write(&mut model, meta.begin_upload(id, to), expected)?;
            }
            Op::Complete {
                n,
                size,
                virtual_size,
                checksum,
            } => {
                let id = pool_id(n);
                let done = outcome(id, size, virtual_size, checksum);
                let expected = model.get(id).and_then(|image| {
                    if image.status != ImageStatus::Saving {
                        return Err(Kind::InvalidTransition(image.status, ImageStatus::Active));
                    }
                    if image.size.is_some_and(|size| size != done.size) {
                        return Err(Kind::DataMismatch("size"));
                    }
                    if image.checksum.as_ref().is_some_and(|c| *c != done.checksum) {
                        return Err(Kind::DataMismatch("checksum"));
                    }
                    let mut active = model.transition(&image, ImageStatus::Active)?;
                    active.size = Some(done.size);
                    active.checksum = Some(done.checksum.clone());
                    active.os_hash_algo = Some(done.os_hash_algo.clone());
                    active.os_hash_value = Some(done.os_hash_value.clone());
                    active.virtual_size = done.virtual_size;
                    active.locations.push(done.location.clone());
                    Ok(active)
                });
                check_write(&mut model, meta.complete_upload(id, done), expected)?;
            }
            Op::Abort { n } => {
                let id = pool_id(n);
                let expected = match model.live.get(&id) {
                    None => Ok(None),
                    Some(image) => match image.status {
                        ImageStatus::Queued => Ok(None),
                        ImageStatus::Saving | ImageStatus::Uploading => {
                            model.transition(image, ImageStatus::Queued).map(Some)
                        }
                        from => Err(Kind::InvalidTransition(from, ImageStatus::Queued)),
                    },
                };
                match (meta.abort_upload(id), expected) {
                    (Ok(()), Ok(None)) => {}
                    (Ok(()), Ok(Some(expected))) => {
                        let actual = meta.get_image(id);
                        check_write(&mut model, actual, Ok(expected))?;
                    }
                    (Err(actual), Err(expected)) => prop_assert_eq!(kind(&actual), expected),
                    (actual, expected) => {
                        return Err(TestCaseError::fail(format!(
                            "abort: store {actual:?}, model {expected:?}"
                        )))
                    }
                }
            }
            Op::SetStatus { n, to } => {
                let id = pool_id(n);
                let expected = model.get(id).and_then(|image| {
                    if to == ImageStatus::Deleted && image.protected {
                        return Err(Kind::Protected);
                    }
                    model.transition(&image, to)
                });
                match (meta.set_status(id, to), expected) {
                    (Ok(actual), Ok(mut expected)) if to == ImageStatus::Deleted => {
                        expected.updated_at = actual.updated_at;
                        prop_assert_eq!(actual, expected);
                        model.live.remove(&id);
                        model.tombstones.insert(id);
                    }
                    (actual, expected) => check_write(&mut model, actual, expected)?,
                }
            }
            Op::Recover => {
                let interrupted: BTreeSet<ImageId> = model
                    .live
                    .values()
                    .filter(|image| {
                        matches!(image.status, ImageStatus::Saving | ImageStatus::Uploading)
                    })
                    .map(|image| image.id)
                    .collect();
                let recovered: BTreeSet<ImageId> =
                    meta.recover_interrupted().unwrap().into_iter().collect();
                prop_assert_eq!(&recovered, &interrupted);
                for id in interrupted {
                    let expected = model.transition(&model.live[&id], ImageStatus::Queued);
                    check_write(&mut model, meta.get_image(id), expected)?;
                }
            }
            Op::List {
                sort,
                marker,
                limit,
                filter,
            } => {
                let marker = marker.map(pool_id);
                let limit = usize::from(limit);
                let expected = model.list(&sort, marker, limit, filter);
                let actual = meta
                    .list_images(&sort, marker, limit, |image| filter.keep(image))
                    .map_err(|err| kind(&err));
                prop_assert_eq!(actual, expected, "sort {:?} marker {:?}", sort, marker);
            }
            Op::Reopen => {
                drop(meta);
                meta = Meta::open(&path).unwrap();
            }
        }

        // The whole store equals the model after every step.
        let everything = meta.list_images(&[], None, usize::MAX, |_| true).unwrap();
        prop_assert_eq!(everything, model.sorted(&[]));
        prop_assert_eq!(meta.count_images().unwrap(), model.live.len() as u64);
        for (status, count) in meta.images_by_status().unwrap() {
            let expected = model
                .live
                .values()
                .filter(|image| image.status == status)
                .count();
            prop_assert_eq!(count, expected as u64, "{}", status);
        }
    }
    Ok(())
}

proptest! {
    // 64 cases by default (each op commits with fsync); PROPTEST_CASES=n for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
