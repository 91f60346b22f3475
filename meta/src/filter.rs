//! [`ListFilter`]: one page of a listing, as data — who lists (their visibility rules), the
//! conditions every listed image meets, the order, the marker and the limit.
//!
//! The filter is plain data so that every engine can run it its own way: the redb engine walks
//! the index of the first sort key and tests each record with [`ListFilter::admits`] (the
//! viewer's memberships come from its by-project member index, read once per page); a SQL
//! engine translates it into one statement:
//!
//! ```text
//! SELECT … FROM images
//! WHERE <scope: visibility OR owner = $project OR id IN (SELECT image FROM members …)>
//!   AND <each condition>
//!   AND (<sort values>) > (<the marker's sort values>)     -- keyset, in full_order()
//! ORDER BY <full_order()> LIMIT $limit
//! ```
//!
//! Each condition says exactly what it matches, including for unset (NULL) values; the gateway
//! builds the filter from a request's query (spec §5.3 and §5.4) and meta never sees HTTP.

use crate::members::MemberStatus;
use crate::sort::{full_order, SortDir, SortKey};
use crate::types::{Image, ImageId, ImageStatus, Timestamp, Visibility};

/// One page of a listing: which images, in which order, from where, how many.
///
/// Deleted images are never listed; every other status is, unless a condition or the scope
/// leaves it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Whose visibility rules apply.
    pub scope: Scope,
    /// Conditions every listed image meets (all of them).
    pub conditions: Vec<Condition>,
    /// The caller's sort keys; `created_at` and `id` are appended (see [`full_order`]).
    pub sort: Vec<(SortKey, SortDir)>,
    /// The page starts strictly after this image's position in the order. It must name a live
    /// image (visible to the viewer or not), else [`crate::Error::MarkerNotFound`].
    pub marker: Option<ImageId>,
    /// Most images on the page.
    pub limit: usize,
}

impl ListFilter {
    /// Every live image, newest first, no limit.
    pub fn all() -> ListFilter {
        ListFilter {
            scope: Scope::Unrestricted,
            conditions: Vec::new(),
            sort: Vec::new(),
            marker: None,
            limit: usize::MAX,
        }
    }

    /// This filter with `scope`.
    pub fn scope(mut self, scope: Scope) -> ListFilter {
        self.scope = scope;
        self
    }

    /// This filter with one more condition.
    pub fn with(mut self, condition: Condition) -> ListFilter {
        self.conditions.push(condition);
        self
    }

    /// This filter sorted by `sort`.
    pub fn sorted(mut self, sort: &[(SortKey, SortDir)]) -> ListFilter {
        self.sort = sort.to_vec();
        self
    }

    /// This filter starting after `marker`.
    pub fn after(mut self, marker: Option<ImageId>) -> ListFilter {
        self.marker = marker;
        self
    }

    /// This filter with at most `limit` images.
    pub fn limit(mut self, limit: usize) -> ListFilter {
        self.limit = limit;
        self
    }

    /// The full order of the listing: [`Self::sort`] with the tie-breakers appended.
    pub fn order(&self) -> Vec<(SortKey, SortDir)> {
        full_order(&self.sort)
    }

    /// The project whose memberships the scope needs (to list images shared with it), if any:
    /// a non-admin viewer with a project, when shared images can be listed at all.
    pub fn membership_project(&self) -> Option<&str> {
        match &self.scope {
            Scope::Viewer(viewer) if !viewer.admin => match viewer.visibility {
                VisibilityFilter::Default
                | VisibilityFilter::All
                | VisibilityFilter::Only(Visibility::Shared) => viewer.project.as_deref(),
                VisibilityFilter::Only(_) => None,
            },
            _ => None,
        }
    }

    /// Whether `image` is listed: the scope lets the viewer see it and every condition holds.
    /// `membership` is the status of [`Self::membership_project`]'s membership of `image`
    /// (`None` when it is not a member, or no project is needed). This is the reference
    /// semantics every engine must agree with.
    pub fn admits(&self, image: &Image, membership: Option<MemberStatus>) -> bool {
        self.scope.admits(image, membership) && self.conditions.iter().all(|c| c.holds(image))
    }
}

/// Whose visibility rules a listing applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every live image, whatever its visibility (internal callers, tests).
    Unrestricted,
    /// What one caller may list (spec §5.4).
    Viewer(Viewer),
}

impl Scope {
    fn admits(&self, image: &Image, membership: Option<MemberStatus>) -> bool {
        match self {
            Scope::Unrestricted => true,
            Scope::Viewer(viewer) => viewer.admits(image, membership),
        }
    }
}

/// A caller listing images, and the visibility it asked for (spec §5.4):
///
/// * `public` images, and the viewer project's own images of any visibility;
/// * `shared` images the project is a member of, with [`Viewer::member_status`];
/// * other projects' `community` images only when `visibility` was asked for (`community` or
///   `all`);
/// * admins also see every `private` and `shared` image (their `member_status` is ignored);
/// * `visibility=<v>` then keeps only images with that visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The caller's project; `None` for an unscoped caller (who owns nothing).
    pub project: Option<String>,
    /// Whether the caller has the admin role.
    pub admin: bool,
    /// The `visibility` the caller asked for.
    pub visibility: VisibilityFilter,
    /// Which memberships list a shared image: that status, or any when `None`
    /// (`member_status=all`). Glance's default is `accepted`.
    pub member_status: Option<MemberStatus>,
}

impl Viewer {
    fn admits(&self, image: &Image, membership: Option<MemberStatus>) -> bool {
        if matches!(self.visibility, VisibilityFilter::Only(v) if v != image.visibility) {
            return false;
        }
        let own = matches!(
            (self.project.as_deref(), image.owner.as_deref()),
            (Some(project), Some(owner)) if project == owner
        );
        let community_asked = self.visibility != VisibilityFilter::Default;
        let member = self.project.is_some()
            && membership.is_some_and(|status| self.member_status.is_none_or(|s| s == status));
        match image.visibility {
            Visibility::Public => true,
            Visibility::Community => own || community_asked,
            Visibility::Private => own || self.admin,
            Visibility::Shared => own || self.admin || member,
        }
    }
}

/// The `visibility` a caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VisibilityFilter {
    /// Not given: §5.4's default list (no other project's community images).
    Default,
    /// `all`: the default list plus other projects' community images.
    All,
    /// Only images with this visibility (community ones of any project included).
    Only(Visibility),
}

/// One condition on an image. A condition on an unset (NULL) field never holds, except
/// where said otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The field is set and equal to one of `values` (`name=x`, `name=in:a,b`); an empty list
    /// matches nothing. Values are compared as text: `status` as its Glance name, `id` as its
    /// hyphenated lowercase form.
    Text {
        /// The field.
        field: TextField,
        /// The accepted values.
        values: Vec<String>,
    },
    /// The field is set and `field <cmp> value` (`size_min` is `Gte`, `size_max` `Lte`,
    /// `min_ram=n` `Eq`).
    Number {
        /// The field.
        field: NumberField,
        /// The comparison.
        cmp: Cmp,
        /// The value compared with.
        value: u64,
    },
    /// The time, truncated to its whole second (Glance stores seconds), `<cmp> at`.
    Time {
        /// The field.
        field: TimeField,
        /// The comparison.
        cmp: Cmp,
        /// The time compared with.
        at: Timestamp,
    },
    /// The image carries this tag (several `Tag` conditions: all of them).
    Tag(String),
    /// The extra property `key` is set to exactly `value`.
    Property {
        /// The property name.
        key: String,
        /// Its value.
        value: String,
    },
    /// `protected` equals this.
    Protected(bool),
    /// `os_hidden` equals this.
    OsHidden(bool),
    /// The status is none of these (§5.4 leaves out `pending_delete` and `killed`).
    StatusNotIn(Vec<ImageStatus>),
}

impl Condition {
    /// Whether `image` meets this condition.
    pub fn holds(&self, image: &Image) -> bool {
        match self {
            Condition::Text { field, values } => field.holds(image, values),
            Condition::Number { field, cmp, value } => {
                field.get(image).is_some_and(|v| cmp.holds(v, *value))
            }
            Condition::Time { field, cmp, at } => {
                let micros = match field {
                    TimeField::CreatedAt => image.created_at,
                    TimeField::UpdatedAt => image.updated_at,
                }
                .as_unix_micros();
                cmp.holds(micros / 1_000_000 * 1_000_000, at.as_unix_micros())
            }
            Condition::Tag(tag) => image.tags.contains(tag),
            Condition::Property { key, value } => image.properties.get(key) == Some(value),
            Condition::Protected(protected) => image.protected == *protected,
            Condition::OsHidden(hidden) => image.os_hidden == *hidden,
            Condition::StatusNotIn(statuses) => !statuses.contains(&image.status),
        }
    }
}

/// A text field of an image that [`Condition::Text`] can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextField {
    /// `id`.
    Id,
    /// `name`.
    Name,
    /// `status`.
    Status,
    /// `container_format`.
    ContainerFormat,
    /// `disk_format`.
    DiskFormat,
    /// `owner`.
    Owner,
    /// `checksum`.
    Checksum,
    /// `os_hash_algo`.
    OsHashAlgo,
    /// `os_hash_value`.
    OsHashValue,
}

impl TextField {
    /// The Glance name, e.g. `"disk_format"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TextField::Id => "id",
            TextField::Name => "name",
            TextField::Status => "status",
            TextField::ContainerFormat => "container_format",
            TextField::DiskFormat => "disk_format",
            TextField::Owner => "owner",
            TextField::Checksum => "checksum",
            TextField::OsHashAlgo => "os_hash_algo",
            TextField::OsHashValue => "os_hash_value",
        }
    }

    fn holds(self, image: &Image, values: &[String]) -> bool {
        let any = |text: &str| values.iter().any(|value| value == text);
        let optional = |text: &Option<String>| text.as_deref().is_some_and(any);
        match self {
            TextField::Id => {
                let mut buffer = uuid::Uuid::encode_buffer();
                any(image.id.as_uuid().hyphenated().encode_lower(&mut buffer))
            }
            TextField::Name => optional(&image.name),
            TextField::Status => any(image.status.as_str()),
            TextField::ContainerFormat => optional(&image.container_format),
            TextField::DiskFormat => optional(&image.disk_format),
            TextField::Owner => optional(&image.owner),
            TextField::Checksum => optional(&image.checksum),
            TextField::OsHashAlgo => optional(&image.os_hash_algo),
            TextField::OsHashValue => optional(&image.os_hash_value),
        }
    }
}

/// A numeric field of an image that [`Condition::Number`] can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberField {
    /// `size` (unset until data exists).
    Size,
    /// `virtual_size` (unset unless inspection found one).
    VirtualSize,
    /// `min_ram` (always set).
    MinRam,
    /// `min_disk` (always set).
    MinDisk,
}

impl NumberField {
    /// The Glance name, e.g. `"virtual_size"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NumberField::Size => "size",
            NumberField::VirtualSize => "virtual_size",
            NumberField::MinRam => "min_ram",
            NumberField::MinDisk => "min_disk",
        }
    }

    fn get(self, image: &Image) -> Option<u64> {
        match self {
            NumberField::Size => image.size,
            NumberField::VirtualSize => image.virtual_size,
            NumberField::MinRam => Some(image.min_ram),
            NumberField::MinDisk => Some(image.min_disk),
        }
    }
}

/// A time field of an image that [`Condition::Time`] can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeField {
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
}

/// A comparison: the image's value on the left, the condition's on the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    /// `=`.
    Eq,
    /// `<>`.
    Neq,
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
}

impl Cmp {
    /// Whether `left <self> right`.
    pub fn holds<T: Ord>(self, left: T, right: T) -> bool {
        match self {
            Cmp::Eq => left == right,
            Cmp::Neq => left != right,
            Cmp::Lt => left < right,
            Cmp::Lte => left <= right,
            Cmp::Gt => left > right,
            Cmp::Gte => left >= right,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(owner: &str, visibility: Visibility) -> Image {
        let mut image = Image::new(ImageId::new_v4(), Timestamp::from_unix_micros(1_500_000));
        image.owner = Some(owner.to_owned());
        image.visibility = visibility;
        image
    }

    fn viewer(project: &str, admin: bool, visibility: VisibilityFilter) -> ListFilter {
        ListFilter::all().scope(Scope::Viewer(Viewer {
            project: Some(project.to_owned()),
            admin,
            visibility,
            member_status: Some(MemberStatus::Accepted),
        }))
    }

    #[test]
    fn viewer_sees_public_own_and_accepted_shared_images() {
        use Visibility::*;
        let default = viewer("p", false, VisibilityFilter::Default);
        assert!(default.admits(&image("q", Public), None));
        assert!(default.admits(&image("p", Private), None));
        assert!(default.admits(&image("p", Community), None));
        assert!(!default.admits(&image("q", Private), None));
        assert!(!default.admits(&image("q", Community), None));
        assert!(!default.admits(&image("q", Shared), None));
        assert!(default.admits(&image("q", Shared), Some(MemberStatus::Accepted)));
        assert!(!default.admits(&image("q", Shared), Some(MemberStatus::Pending)));
        let community = viewer("p", false, VisibilityFilter::Only(Community));
        assert!(community.admits(&image("q", Community), None));
        assert!(!community.admits(&image("q", Public), None));
        assert!(viewer("p", false, VisibilityFilter::All).admits(&image("q", Community), None));
    }

    #[test]
    fn admins_see_private_and_shared_but_not_community_by_default() {
        use Visibility::*;
        let admin = viewer("a", true, VisibilityFilter::Default);
        assert!(admin.admits(&image("q", Private), None));
        assert!(admin.admits(&image("q", Shared), None));
        assert!(!admin.admits(&image("q", Community), None));
        assert_eq!(admin.membership_project(), None);
        assert_eq!(
            viewer("p", false, VisibilityFilter::Default).membership_project(),
            Some("p")
        );
        assert_eq!(
            viewer("p", false, VisibilityFilter::Only(Public)).membership_project(),
            None
        );
    }

    #[test]
    fn conditions_on_unset_fields_never_hold() {
        let mut image = image("p", Visibility::Public);
        let named = Condition::Text {
            field: TextField::Name,
            values: vec![String::new()],
        };
        assert!(!named.holds(&image));
        image.name = Some(String::new());
        assert!(named.holds(&image));
        let sized = Condition::Number {
            field: NumberField::Size,
            cmp: Cmp::Gte,
            value: 0,
        };
        assert!(!sized.holds(&image));
        image.size = Some(0);
        assert!(sized.holds(&image));
        let nothing = Condition::Text {
            field: TextField::Status,
            values: Vec::new(),
        };
        assert!(!nothing.holds(&image));
    }

    #[test]
    fn ids_compare_in_lowercase_text_and_times_in_whole_seconds() {
        let image = image("p", Visibility::Public);
        let id = image.id.to_string();
        let by_id = |value: String| Condition::Text {
            field: TextField::Id,
            values: vec![value],
        };
        assert!(by_id(id.clone()).holds(&image));
        assert!(!by_id(id.to_uppercase()).holds(&image));
        let at = |cmp, micros| Condition::Time {
            field: TimeField::CreatedAt,
            cmp,
            at: Timestamp::from_unix_micros(micros),
        };
        // Created at 1.5 s: as stored by Glance, 1 s.
        assert!(at(Cmp::Eq, 1_000_000).holds(&image));
        assert!(at(Cmp::Lt, 2_000_000).holds(&image));
        assert!(!at(Cmp::Gt, 1_000_000).holds(&image));
    }
}
