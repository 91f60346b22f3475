//! The metadef records, spelled as Glance spells them, and the limits every write checks.
//!
//! Values that Glance's API omits when unset are `Option`s here, so that what was given is what
//! is answered. Lengths are counted in characters, as Glance's JSON schemas and its database
//! columns count them.

use std::collections::BTreeMap;
use std::fmt;

use crate::types::{ParseError, Timestamp};

use super::MetadefError;

/// Longest namespace, object, property, tag and resource-type name, `display_name`, `prefix`
/// and `properties_target` (Glance's `String(80)` columns and schema `maxLength`).
pub const MAX_NAME_CHARS: usize = 80;
/// Longest namespace `description`.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest namespace `owner`.
pub const MAX_OWNER_CHARS: usize = 255;

/// Who may read a namespace and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NamespaceVisibility {
    /// Every project may read it.
    Public,
    /// Only the owner project (and admins) may read it; Glance's default.
    #[default]
    Private,
}

impl NamespaceVisibility {
    /// Both values, in a fixed order.
    pub const ALL: [NamespaceVisibility; 2] =
        [NamespaceVisibility::Public, NamespaceVisibility::Private];

    /// Glance's spelling: `"public"` or `"private"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NamespaceVisibility::Public => "public",
            NamespaceVisibility::Private => "private",
        }
    }
}

impl fmt::Display for NamespaceVisibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for NamespaceVisibility {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        NamespaceVisibility::ALL
            .into_iter()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| ParseError::new("namespace visibility", text))
    }
}

/// A namespace's own fields: what `PUT /v2/metadefs/namespaces/{namespace}` replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The unique name, used in URLs (e.g. `OS::Compute::Libvirt`).
    pub namespace: String,
    /// A name for people.
    pub display_name: Option<String>,
    /// What the namespace describes.
    pub description: Option<String>,
    /// Who may read it.
    pub visibility: NamespaceVisibility,
    /// When true the namespace, and anything in it, cannot be deleted.
    pub protected: bool,
    /// The owner project.
    pub owner: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its own fields last changed.
    pub updated_at: Timestamp,
}

impl Namespace {
    /// Checks the lengths Glance allows; a namespace name must also be non-empty, since an
    /// empty one could never be addressed in a URL.
    pub fn validate(&self) -> Result<(), MetadefError> {
        if self.namespace.is_empty() {
            return Err(MetadefError::Invalid(
                "the namespace name must not be empty".to_owned(),
            ));
        }
        check_len("namespace", &self.namespace, MAX_NAME_CHARS)?;
        check_opt_len("display_name", &self.display_name, MAX_NAME_CHARS)?;
        check_opt_len("description", &self.description, MAX_DESCRIPTION_CHARS)?;
        check_len("owner", &self.owner, MAX_OWNER_CHARS)
    }
}

/// The JSON `type` values a property definition may name.
pub const PROPERTY_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// A property definition: the JSON-schema fragment describing one property a resource may carry
/// (Glance's `PropertyType`). Unset fields are left out of API answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropertyDefinition {
    /// The name shown to people.
    pub title: String,
    /// One of [`PROPERTY_TYPES`].
    pub property_type: String,
    /// What the property means.
    pub description: Option<String>,
    /// How several values combine, e.g. `["<or>"]`.
    pub operators: Option<Vec<String>>,
    /// The default value, as text (Glance stores it as a string whatever its JSON type).
    pub default: Option<String>,
    /// Whether users may change the value.
    pub readonly: Option<bool>,
    /// Smallest number allowed.
    pub minimum: Option<i64>,
    /// Largest number allowed.
    pub maximum: Option<i64>,
    /// The values allowed.
    pub enum_values: Option<Vec<String>>,
    /// A regular expression the value must match.
    pub pattern: Option<String>,
    /// Shortest string allowed.
    pub min_length: Option<u64>,
    /// Longest string allowed.
    pub max_length: Option<u64>,
    /// Whether the value is confidential (kept from embedded and loaded definitions).
    pub confidential: Option<bool>,
    /// For arrays: the items' type and allowed values.
    pub items: Option<ItemsDefinition>,
    /// For arrays: whether items must differ.
    pub unique_items: Option<bool>,
    /// For arrays: fewest items.
    pub min_items: Option<u64>,
    /// For arrays: most items.
    pub max_items: Option<u64>,
    /// For arrays: whether items beyond those described are allowed.
    pub additional_items: Option<bool>,
}

/// The `items` of an array property.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemsDefinition {
    /// One of [`PROPERTY_TYPES`].
    pub item_type: String,
    /// The values allowed.
    pub enum_values: Option<Vec<String>>,
}

impl PropertyDefinition {
    /// Checks what the schema of `/v2/schemas/metadefs/property` requires beyond JSON types:
    /// a known `type` (also for `items`). `name` is the property's name, checked for length.
    pub fn validate(&self, name: &str) -> Result<(), MetadefError> {
        check_name("property", name)?;
        let bad_type = |field: &str, value: &str| {
            MetadefError::Invalid(format!(
                "property {name}: {field} {value:?} is not one of {}",
                PROPERTY_TYPES.join(", ")
            ))
        };
        if !PROPERTY_TYPES.contains(&self.property_type.as_str()) {
            return Err(bad_type("type", &self.property_type));
        }
        if let Some(items) = &self.items {
            if !PROPERTY_TYPES.contains(&items.item_type.as_str()) {
                return Err(bad_type("items.type", &items.item_type));
            }
        }
        Ok(())
    }
}

/// A metadef object: a named group of property definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadefObject {
    /// Unique within its namespace.
    pub name: String,
    /// What the object describes.
    pub description: Option<String>,
    /// The names of the properties a resource must set.
    pub required: Vec<String>,
    /// The object's property definitions, by name.
    pub properties: BTreeMap<String, PropertyDefinition>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl MetadefObject {
    /// Checks the object's name and each of its property definitions.
    pub fn validate(&self) -> Result<(), MetadefError> {
        check_name("object", &self.name)?;
        self.properties
            .iter()
            .try_for_each(|(name, definition)| definition.validate(name))
    }
}

/// A metadef tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadefTag {
    /// Unique within its namespace (compared exactly).
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last renamed.
    pub updated_at: Timestamp,
}

/// A resource type that namespaces can be associated with (e.g. `OS::Glance::Image`).
/// Resource types are global and outlive their associations, as in Glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// Its unique name.
    pub name: String,
    /// Seeded by `glint metadefs load` (Glance's "system" resource types).
    pub protected: bool,
    /// When it was first used.
    pub created_at: Timestamp,
    /// When a load last preferred a newer definition of it.
    pub updated_at: Timestamp,
}

/// The association of a namespace with a resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTypeAssociation {
    /// The resource type's name.
    pub name: String,
    /// Prepended to the namespace's property names when applied to this resource type
    /// (e.g. `hw_`).
    pub prefix: Option<String>,
    /// Where on the resource the properties go (e.g. `image`).
    pub properties_target: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When a load last preferred a newer definition of it.
    pub updated_at: Timestamp,
}

impl ResourceTypeAssociation {
    /// Checks the lengths Glance allows.
    pub fn validate(&self) -> Result<(), MetadefError> {
        check_name("resource type", &self.name)?;
        check_opt_len("prefix", &self.prefix, MAX_NAME_CHARS)?;
        check_opt_len("properties_target", &self.properties_target, MAX_NAME_CHARS)
    }
}

/// A namespace with everything in it: what `POST /v2/metadefs/namespaces` may create in one
/// go, what `GET` of one namespace answers, and one file of `glint metadefs load/export`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceDocument {
    /// The namespace's own fields.
    pub namespace: Namespace,
    /// Its resource-type associations, oldest first.
    pub resource_type_associations: Vec<ResourceTypeAssociation>,
    /// Its property definitions, by name.
    pub properties: BTreeMap<String, PropertyDefinition>,
    /// Its objects, oldest first.
    pub objects: Vec<MetadefObject>,
    /// Its tags, oldest first.
    pub tags: Vec<MetadefTag>,
    /// The resource types its associations name, as stored: filled by
    /// [`Metadefs::export_metadefs`](super::Metadefs::export_metadefs), and used by a load that has to
    /// create one of them, so that an export loads back with the same resource types. Empty
    /// elsewhere; a resource type not listed is created with its association's times.
    pub resource_types: Vec<ResourceType>,
}

impl NamespaceDocument {
    /// A document of `namespace` with nothing in it.
    pub fn new(namespace: Namespace) -> NamespaceDocument {
        NamespaceDocument {
            namespace,
            resource_type_associations: Vec::new(),
            properties: BTreeMap::new(),
            objects: Vec::new(),
            tags: Vec::new(),
            resource_types: Vec::new(),
        }
    }

    /// Checks every record, and that names are unique within their kind.
    pub fn validate(&self) -> Result<(), MetadefError> {
        let ns = &self.namespace.namespace;
        self.namespace.validate()?;
        let mut seen = std::collections::BTreeSet::new();
        for association in &self.resource_type_associations {
            association.validate()?;
            if !seen.insert(association.name.as_str()) {
                return Err(MetadefError::DuplicateAssociation {
                    namespace: ns.clone(),
                    resource_type: association.name.clone(),
                });
            }
        }
        for (name, definition) in &self.properties {
            definition.validate(name)?;
        }
        seen.clear();
        for object in &self.objects {
            object.validate()?;
            if !seen.insert(object.name.as_str()) {
                return Err(MetadefError::DuplicateObject {
                    namespace: ns.clone(),
                    name: object.name.clone(),
                });
            }
        }
        seen.clear();
        for tag in &self.tags {
            check_name("tag", &tag.name)?;
            if !seen.insert(tag.name.as_str()) {
                return Err(MetadefError::DuplicateTag {
                    namespace: ns.clone(),
                    name: tag.name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// What `glint metadefs load` does with a namespace that already exists (Glance's
/// `glance-manage db load_metadefs` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Leave it as it is (no option).
    #[default]
    SkipExisting,
    /// Add what the file has and the namespace lacks; keep everything else (`--merge`).
    Merge,
    /// As `Merge`, and replace what both have with the file's version (`--merge
    /// --prefer-new`).
    MergePreferNew,
    /// Replace the namespace and everything in it with the file's (`--merge --overwrite`).
    Overwrite,
}

/// What a load did, namespace by namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Namespaces that did not exist and were created.
    pub created: Vec<String>,
    /// Existing namespaces into which something was written.
    pub updated: Vec<String>,
    /// Existing namespaces left exactly as they were.
    pub unchanged: Vec<String>,
}

/// A sort key of the namespace list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceSortKey {
    /// By name.
    Namespace,
    /// By creation time (the default).
    CreatedAt,
    /// By last change.
    UpdatedAt,
}

/// A sort key of a namespace's tag list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSortKey {
    /// By name.
    Name,
    /// By creation time (the default).
    CreatedAt,
    /// By last change.
    UpdatedAt,
}

/// Whose namespaces a caller may see at all (the data layer's rule, before policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceViewer {
    /// Every namespace (admins).
    Everything,
    /// Public namespaces and those the project owns (none when `None`).
    Project(Option<String>),
}

impl NamespaceViewer {
    /// Whether this viewer sees `namespace`.
    pub fn sees(&self, namespace: &Namespace) -> bool {
        match self {
            NamespaceViewer::Everything => true,
            NamespaceViewer::Project(project) => {
                namespace.visibility == NamespaceVisibility::Public
                    || project.as_deref() == Some(namespace.owner.as_str())
            }
        }
    }
}

/// One page of the namespace list: `GET /v2/metadefs/namespaces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceQuery {
    /// Whose namespaces are listed.
    pub viewer: NamespaceViewer,
    /// Only namespaces of this visibility.
    pub visibility: Option<NamespaceVisibility>,
    /// Only namespaces associated with at least one of these resource types.
    pub resource_types: Option<Vec<String>>,
    /// The order: this key, then `created_at`, then creation order, all in `descending`'s
    /// direction.
    pub sort_key: NamespaceSortKey,
    /// Descending (Glance's default) or ascending.
    pub descending: bool,
    /// Start after this namespace, which must exist and be seen by the viewer.
    pub marker: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// One page of a namespace's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagQuery {
    /// The order: this key, then `created_at`, then creation order.
    pub sort_key: TagSortKey,
    /// Descending (Glance's default) or ascending.
    pub descending: bool,
    /// Start after this tag, which must exist in the namespace.
    pub marker: Option<String>,
    /// At most this many; `None` for all.
    pub limit: Option<usize>,
}

/// Which kind of content `delete_metadef_content` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// Every object.
    Objects,
    /// Every property definition.
    Properties,
    /// Every tag.
    Tags,
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), MetadefError> {
    let chars = value.chars().count();
    if chars > max {
        return Err(MetadefError::Invalid(format!(
            "{field} is {chars} characters long; at most {max} are allowed"
        )));
    }
    Ok(())
}

fn check_opt_len(field: &str, value: &Option<String>, max: usize) -> Result<(), MetadefError> {
    value
        .as_deref()
        .map_or(Ok(()), |value| check_len(field, value, max))
}

/// Checks a non-empty name of at most [`MAX_NAME_CHARS`].
pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), MetadefError> {
    if name.is_empty() {
        return Err(MetadefError::Invalid(format!(
            "a {kind} name must not be empty"
        )));
    }
    check_len(&format!("{kind} name {name:?}"), name, MAX_NAME_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(name: &str) -> Namespace {
        Namespace {
            namespace: name.to_owned(),
            display_name: None,
            description: None,
            visibility: NamespaceVisibility::Private,
            protected: false,
            owner: "admin".to_owned(),
            created_at: Timestamp::from_unix_micros(0),
            updated_at: Timestamp::from_unix_micros(0),
        }
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        assert!(namespace(&"é".repeat(80)).validate().is_ok());
        assert!(matches!(
            namespace(&"a".repeat(81)).validate(),
            Err(MetadefError::Invalid(_))
        ));
        assert!(namespace("").validate().is_err());
        let mut long_description = namespace("n");
        long_description.description = Some("d".repeat(501));
        assert!(long_description.validate().is_err());
    }

    #[test]
    fn property_types_are_checked() {
        let mut definition = PropertyDefinition {
            title: "t".into(),
            property_type: "string".into(),
            ..Default::default()
        };
        assert!(definition.validate("p").is_ok());
        definition.property_type = "strng".into();
        assert!(definition.validate("p").is_err());
        definition.property_type = "array".into();
        definition.items = Some(ItemsDefinition {
            item_type: "nothing".into(),
            enum_values: None,
        });
        assert!(definition.validate("p").is_err());
        assert!(PropertyDefinition {
            property_type: "string".into(),
            ..Default::default()
        }
        .validate(&"x".repeat(81))
        .is_err());
    }

    #[test]
    fn documents_refuse_duplicate_names() {
        let mut document = NamespaceDocument::new(namespace("n"));
        let tag = MetadefTag {
            name: "t".into(),
            created_at: Timestamp::from_unix_micros(0),
            updated_at: Timestamp::from_unix_micros(0),
        };
        document.tags = vec![tag.clone(), tag];
        assert!(matches!(
            document.validate(),
            Err(MetadefError::DuplicateTag { .. })
        ));
    }

    #[test]
    fn visibility_round_trips() {
        for visibility in NamespaceVisibility::ALL {
            assert_eq!(visibility.as_str().parse(), Ok(visibility));
        }
        assert!("shared".parse::<NamespaceVisibility>().is_err());
    }
}
