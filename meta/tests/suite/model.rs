//! Model test: random sequences of operations run against a [`meta::Backend`] and against a
//! plain `BTreeMap` model that restates the spec's rules independently; every result, error
//! and listing page must agree, and after every step the whole store must equal the model
//! (images, counts, tombstones, upload owners, memberships). [`run`] takes any [`Engine`];
//! `tests/model.rs` runs it on redb.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use meta::{
    BackendExt, Condition, Error, Image, ImageId, ImageStatus, Limits, ListFilter, Location,
    MemberStatus, NodeId, NumberField, Scope, SortDir, SortKey, TextField, Timestamp, UploadClaim,
    UploadOutcome, Viewer, Visibility, VisibilityFilter,
};
use proptest::prelude::*;

use super::Engine;

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

/// Projects that own images and are members of them.
const PROJECTS: [&str; 2] = ["p0", "p1"];

/// Gateway nodes that run uploads.
fn node(n: u8) -> NodeId {
    format!("node-{n}").parse().unwrap()
}

#[derive(Debug, Clone)]
pub enum Edit {
    Name(Option<u8>),
    Protected(bool),
    Hidden(bool),
    Visibility(Visibility),
    DiskFormat(Option<u8>),
    ContainerFormat(Option<u8>),
    Tag(u8),
    Property(u8, u8),
    Checksum(Option<usize>),
    Owner(Option<u8>),
}

/// What a listing asks for, as the model understands it; [`Filter::to_list_filter`] says it
/// in the store's terms.
#[derive(Debug, Clone)]
pub enum Filter {
    All,
    NotProtected,
    Named(u8),
    IdEven,
    Nothing,
    Hidden(bool),
    SizeAtLeast(u8),
    Tag(u8),
    Property(u8, u8),
    NotActive,
    Viewer {
        project: Option<u8>,
        admin: bool,
        visibility: VisibilityFilter,
        member_status: Option<MemberStatus>,
    },
}

impl Filter {
    fn to_list_filter(&self) -> ListFilter {
        let all = ListFilter::all();
        match self {
            Filter::All => all,
            Filter::NotProtected => all.with(Condition::Protected(false)),
            Filter::Named(n) => all.with(Condition::Text {
                field: TextField::Name,
                values: vec![format!("name-{n}")],
            }),
            Filter::IdEven => all.with(Condition::Text {
                field: TextField::Id,
                values: (0..POOL)
                    .map(pool_id)
                    .filter(|id| id.as_uuid().as_u128().is_multiple_of(2))
                    .map(|id| id.to_string())
                    .collect(),
            }),
            Filter::Nothing => all.with(Condition::Text {
                field: TextField::Id,
                values: Vec::new(),
            }),
            Filter::Hidden(hidden) => all.with(Condition::OsHidden(*hidden)),
            Filter::SizeAtLeast(size) => all.with(Condition::Number {
                field: NumberField::Size,
                cmp: meta::Cmp::Gte,
                value: u64::from(*size),
            }),
            Filter::Tag(tag) => all.with(Condition::Tag(format!("tag-{tag}"))),
            Filter::Property(key, value) => all.with(Condition::Property {
                key: format!("key-{key}"),
                value: format!("value-{value}"),
            }),
            Filter::NotActive => all.with(Condition::StatusNotIn(vec![ImageStatus::Active])),
            Filter::Viewer {
                project,
                admin,
                visibility,
                member_status,
            } => all.scope(Scope::Viewer(Viewer {
                project: project.map(|p| PROJECTS[usize::from(p)].to_owned()),
                admin: *admin,
                visibility: *visibility,
                member_status: *member_status,
            })),
        }
    }

    /// The spec's rules (§5.3, §5.4), restated.
    fn keep(&self, image: &Image, members: &BTreeMap<(ImageId, String), MemberStatus>) -> bool {
        match self {
            Filter::All => true,
            Filter::NotProtected => !image.protected,
            Filter::Named(n) => image.name.as_deref() == Some(format!("name-{n}").as_str()),
            Filter::IdEven => image.id.as_uuid().as_u128().is_multiple_of(2),
            Filter::Nothing => false,
            Filter::Hidden(hidden) => image.os_hidden == *hidden,
            Filter::SizeAtLeast(size) => image.size.is_some_and(|s| s >= u64::from(*size)),
            Filter::Tag(tag) => image.tags.contains(&format!("tag-{tag}")),
            Filter::Property(key, value) => {
                image.properties.get(&format!("key-{key}")) == Some(&format!("value-{value}"))
            }
            Filter::NotActive => image.status != ImageStatus::Active,
            Filter::Viewer {
                project,
                admin,
                visibility,
                member_status,
            } => {
                let project = project.map(|p| PROJECTS[usize::from(p)]);
                if let VisibilityFilter::Only(only) = visibility {
                    if image.visibility != *only {
                        return false;
                    }
                }
                let own = project.is_some() && image.owner.as_deref() == project;
                let membership =
                    project.and_then(|p| members.get(&(image.id, p.to_owned())).copied());
                let member = membership.is_some_and(|s| member_status.is_none_or(|w| s == w));
                match image.visibility {
                    Visibility::Public => true,
                    Visibility::Community => own || *visibility != VisibilityFilter::Default,
                    Visibility::Private => own || *admin,
                    Visibility::Shared => own || *admin || member,
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Create {
        n: u8,
        name: Option<u8>,
        created: u8,
        disk: Option<u8>,
        container: Option<u8>,
        size: Option<u8>,
        protected: bool,
        owner: Option<u8>,
        visibility: Visibility,
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
        node: u8,
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
    Recover {
        node: u8,
    },
    AddMember {
        n: u8,
        project: u8,
    },
    UpdateMember {
        n: u8,
        project: u8,
        status: MemberStatus,
    },
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

fn project() -> impl Strategy<Value = u8> {
    0..PROJECTS.len() as u8
}

fn status() -> impl Strategy<Value = ImageStatus> {
    proptest::sample::select(ImageStatus::ALL.to_vec())
}

fn visibility() -> impl Strategy<Value = Visibility> {
    proptest::sample::select(Visibility::ALL.to_vec())
}

fn member_status() -> impl Strategy<Value = MemberStatus> {
    proptest::sample::select(MemberStatus::ALL.to_vec())
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        proptest::option::of(small()).prop_map(Edit::Name),
        any::<bool>().prop_map(Edit::Protected),
        any::<bool>().prop_map(Edit::Hidden),
        visibility().prop_map(Edit::Visibility),
        proptest::option::of(small()).prop_map(Edit::DiskFormat),
        proptest::option::of(small()).prop_map(Edit::ContainerFormat),
        small().prop_map(Edit::Tag),
        (small(), small()).prop_map(|(key, value)| Edit::Property(key, value)),
        proptest::option::of(0..CHECKSUMS.len()).prop_map(Edit::Checksum),
        proptest::option::of(project()).prop_map(Edit::Owner),
    ]
}

fn sort() -> impl Strategy<Value = Vec<(SortKey, SortDir)>> {
    let key = proptest::sample::select(SortKey::ALL.to_vec());
    let dir = prop_oneof![Just(SortDir::Asc), Just(SortDir::Desc)];
    proptest::collection::vec((key, dir), 0..4)
}

fn filter() -> impl Strategy<Value = Filter> {
    let visibility_filter = prop_oneof![
        2 => Just(VisibilityFilter::Default),
        1 => Just(VisibilityFilter::All),
        1 => visibility().prop_map(VisibilityFilter::Only),
    ];
    prop_oneof![
        4 => Just(Filter::All),
        1 => Just(Filter::NotProtected),
        1 => small().prop_map(Filter::Named),
        1 => Just(Filter::IdEven),
        1 => Just(Filter::Nothing),
        1 => any::<bool>().prop_map(Filter::Hidden),
        1 => small().prop_map(Filter::SizeAtLeast),
        1 => small().prop_map(Filter::Tag),
        1 => (small(), small()).prop_map(|(key, value)| Filter::Property(key, value)),
        1 => Just(Filter::NotActive),
        8 => (
            proptest::option::weighted(0.9, project()),
            proptest::bool::weighted(0.2),
            visibility_filter,
            proptest::option::weighted(0.8, member_status()),
        )
            .prop_map(|(project, admin, visibility, member_status)| Filter::Viewer {
                project,
                admin,
                visibility,
                member_status,
            }),
    ]
}

/// One random operation.
pub fn op() -> impl Strategy<Value = Op> {
    let n = || 0..POOL;
    // Members and listings by viewers need shared images that exist: a few ids come up often.
    let often = || 0..3u8;
    prop_oneof![
        6 => (
            (
                prop_oneof![1 => often(), 1 => n()],
                proptest::option::of(small()),
                small(),
                proptest::option::weighted(0.8, small()),
                proptest::option::weighted(0.8, small()),
            ),
            (
                proptest::option::weighted(0.2, small()),
                proptest::bool::weighted(0.2),
                proptest::option::weighted(0.8, project()),
                // Shared images are the ones members and viewers make interesting.
                prop_oneof![2 => Just(Visibility::Shared), 2 => visibility()],
            ),
        )
            .prop_map(
                |((n, name, created, disk, container), (size, protected, owner, visibility))| {
                    Op::Create {
                        n,
                        name,
                        created,
                        disk,
                        container,
                        size,
                        protected,
                        owner,
                        visibility,
                    }
                }
            ),
        4 => (n(), edit()).prop_map(|(n, edit)| Op::Update { n, edit }),
        2 => n().prop_map(|n| Op::Delete { n }),
        3 => (
            n(),
            prop_oneof![4 => Just(ImageStatus::Saving), 2 => Just(ImageStatus::Uploading), 1 => status()],
            0..2u8,
        )
            .prop_map(|(n, to, node)| Op::Begin { n, to, node }),
        3 => (n(), small(), proptest::option::of(small()), 0..CHECKSUMS.len()).prop_map(
            |(n, size, virtual_size, checksum)| Op::Complete { n, size, virtual_size, checksum }
        ),
        2 => n().prop_map(|n| Op::Abort { n }),
        3 => (n(), status()).prop_map(|(n, to)| Op::SetStatus { n, to }),
        2 => (0..2u8).prop_map(|node| Op::Recover { node }),
        4 => (often(), project()).prop_map(|(n, project)| Op::AddMember { n, project }),
        3 => (often(), project(), member_status())
            .prop_map(|(n, project, status)| Op::UpdateMember { n, project, status }),
        8 => (sort(), proptest::option::weighted(0.3, n()), 0..6u8, filter())
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
    NotShared,
    DuplicateMember,
    MemberNotFound,
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
        Error::NotShared(_) => Kind::NotShared,
        Error::DuplicateMember { .. } => Kind::DuplicateMember,
        Error::MemberNotFound { .. } => Kind::MemberNotFound,
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

fn receiving(status: ImageStatus) -> bool {
    matches!(status, ImageStatus::Saving | ImageStatus::Uploading)
}

#[derive(Default)]
struct Model {
    live: BTreeMap<ImageId, Image>,
    tombstones: BTreeSet<ImageId>,
    /// The node running each upload begun through `begin_upload`.
    owners: BTreeMap<ImageId, u8>,
    /// `(image, project)` → its status.
    members: BTreeMap<(ImageId, String), MemberStatus>,
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
        filter: &Filter,
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
            .filter(|image| filter.keep(image, &self.members))
            .take(limit)
            .cloned()
            .collect())
    }

    fn get(&self, id: ImageId) -> Result<Image, Kind> {
        self.live.get(&id).cloned().ok_or(Kind::NotFound)
    }

    /// The model's version of a status change.
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

    fn remove(&mut self, id: ImageId) {
        self.live.remove(&id);
        self.tombstones.insert(id);
        self.owners.remove(&id);
        self.members.retain(|(image, _), _| *image != id);
    }

    /// Adopts a stored image: its owner node goes when it stops receiving data.
    fn adopt(&mut self, image: Image) {
        if !receiving(image.status) {
            self.owners.remove(&image.id);
        }
        self.live.insert(image.id, image);
    }

    /// A member write's preconditions: the image is live and shared.
    fn shared(&self, id: ImageId) -> Result<(), Kind> {
        match self.get(id)?.visibility {
            Visibility::Shared => Ok(()),
            _ => Err(Kind::NotShared),
        }
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
        Edit::Owner(owner) => image.owner = owner.map(|p| PROJECTS[usize::from(p)].to_owned()),
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
            model.adopt(expected);
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

/// Compares a member write's result (its status) with the model's prediction; on success the
/// model records it.
fn check_member(
    model: &mut Model,
    key: (ImageId, String),
    actual: Result<meta::Member, Error>,
    expected: Result<MemberStatus, Kind>,
) -> Result<(), TestCaseError> {
    match (actual, expected) {
        (Ok(actual), Ok(expected)) => {
            prop_assert_eq!((actual.image_id, &actual.member_id), (key.0, &key.1));
            prop_assert_eq!(actual.status, expected);
            model.members.insert(key, expected);
        }
        (Err(actual), Err(expected)) => prop_assert_eq!(kind(&actual), expected),
        (actual, expected) => {
            return Err(TestCaseError::fail(format!(
                "member: store {actual:?}, model {expected:?}"
            )))
        }
    }
    Ok(())
}

/// Runs `ops` on a new database of engine `E` and on the model.
pub fn run<E: Engine>(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut db = E::create();
    let mut model = Model::default();
    let unlimited = Limits::UNLIMITED;

    for op in ops {
        if let Op::Reopen = op {
            db.reopen();
        }
        let meta = db.backend();
        match op {
            Op::Create {
                n,
                name,
                created,
                disk,
                container,
                size,
                protected,
                owner,
                visibility,
            } => {
                let mut image = Image::new(pool_id(n), Timestamp::from_unix_micros(created.into()));
                image.name = name.map(|n| format!("name-{n}"));
                image.disk_format = formats(disk);
                image.container_format =
                    container.map(|n| ["bare", "ovf", "ova", "docker"][usize::from(n)].to_owned());
                image.size = size.map(u64::from);
                image.protected = protected;
                image.owner = owner.map(|p| PROJECTS[usize::from(p)].to_owned());
                image.visibility = visibility;
                let expected =
                    if model.live.contains_key(&image.id) || model.tombstones.contains(&image.id) {
                        Err(Kind::Duplicate)
                    } else {
                        Ok(image.clone())
                    };
                let actual = meta.create_image(&image, &unlimited).map(|()| image);
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
                let actual = meta.update_image_with(id, |image| {
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
                        model.remove(id);
                    }
                    (Err(actual), Err(expected)) => prop_assert_eq!(kind(&actual), expected),
                    (actual, expected) => {
                        return Err(TestCaseError::fail(format!(
                            "delete: store {actual:?}, model {expected:?}"
                        )))
                    }
                }
            }
            Op::Begin { n, to, node: who } => {
                let id = pool_id(n);
                let expected = model.get(id).and_then(|image| {
                    let receiving = matches!(to, ImageStatus::Saving | ImageStatus::Uploading);
                    if image.status != ImageStatus::Queued || !receiving {
                        Err(Kind::InvalidTransition(image.status, to))
                    } else {
                        model.transition(&image, to)
                    }
                });
                let claim = UploadClaim {
                    to,
                    node: node(who),
                    incoming_bytes: None,
                };
                let actual = meta
                    .begin_upload(id, &claim, &unlimited)
                    .map(|start| start.image);
                let began = actual.is_ok();
                check_write(&mut model, actual, expected)?;
                if began {
                    model.owners.insert(id, who);
                }
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
                let actual = meta.complete_upload(id, done, &unlimited);
                check_write(&mut model, actual, expected)?;
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
                        model.remove(id);
                    }
                    (actual, expected) => check_write(&mut model, actual, expected)?,
                }
            }
            Op::Recover { node: who } => {
                // This node's uploads, and those with no recorded owner.
                let interrupted: BTreeSet<ImageId> = model
                    .live
                    .values()
                    .filter(|image| receiving(image.status))
                    .filter(|image| model.owners.get(&image.id).is_none_or(|n| *n == who))
                    .map(|image| image.id)
                    .collect();
                let recovered: BTreeSet<ImageId> = meta
                    .recover_interrupted(&node(who))
                    .unwrap()
                    .into_iter()
                    .collect();
                prop_assert_eq!(&recovered, &interrupted);
                for id in interrupted {
                    let expected = model.transition(&model.live[&id], ImageStatus::Queued);
                    check_write(&mut model, meta.get_image(id), expected)?;
                }
            }
            Op::AddMember { n, project } => {
                let id = pool_id(n);
                let key = (id, PROJECTS[usize::from(project)].to_owned());
                let expected = model.shared(id).and_then(|()| {
                    if model.members.contains_key(&key) {
                        Err(Kind::DuplicateMember)
                    } else {
                        Ok(MemberStatus::Pending)
                    }
                });
                let actual = meta.add_member(id, &key.1, None);
                check_member(&mut model, key, actual, expected)?;
            }
            Op::UpdateMember { n, project, status } => {
                let id = pool_id(n);
                let key = (id, PROJECTS[usize::from(project)].to_owned());
                let expected = model.shared(id).and_then(|()| {
                    if model.members.contains_key(&key) {
                        Ok(status)
                    } else {
                        Err(Kind::MemberNotFound)
                    }
                });
                let actual = meta.update_member(id, &key.1, status);
                check_member(&mut model, key, actual, expected)?;
            }
            Op::List {
                sort,
                marker,
                limit,
                filter,
            } => {
                let marker = marker.map(pool_id);
                let limit = usize::from(limit);
                let expected = model.list(&sort, marker, limit, &filter);
                let actual = meta
                    .list_images(
                        &filter
                            .to_list_filter()
                            .sorted(&sort)
                            .after(marker)
                            .limit(limit),
                    )
                    .map_err(|err| kind(&err));
                prop_assert_eq!(
                    actual,
                    expected,
                    "sort {:?} marker {:?} filter {:?}",
                    sort,
                    marker,
                    filter
                );
            }
            Op::Reopen => {}
        }

        // The whole store equals the model after every step.
        let meta = db.backend();
        let everything = meta.list_images(&ListFilter::all()).unwrap();
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
        for n in 0..POOL {
            let id = pool_id(n);
            prop_assert_eq!(
                meta.was_deleted(id).unwrap(),
                model.tombstones.contains(&id),
                "was_deleted {}",
                id
            );
        }
        for id in model.live.keys() {
            let owner = meta.upload_state(*id).unwrap().map(|state| state.node);
            prop_assert_eq!(owner, model.owners.get(id).map(|n| node(*n)), "{}", id);
        }
        for project in PROJECTS {
            let shared = meta.images_shared_with(project).unwrap();
            let expected: Vec<(ImageId, MemberStatus)> = model
                .members
                .iter()
                .filter(|((_, member), _)| member == project)
                .map(|((image, _), status)| (*image, *status))
                .collect();
            prop_assert_eq!(shared, expected, "{}", project);
        }
    }
    Ok(())
}
