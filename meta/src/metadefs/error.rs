//! [`MetadefError`]: what can go wrong in a metadef operation, in Glance's words, and nothing
//! about HTTP.

/// Which record of a protected namespace a delete was refused for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectedRecord {
    /// The namespace itself, or all of one kind of its content.
    Namespace,
    /// One object.
    Object(String),
    /// One property definition.
    Property(String),
    /// One tag.
    Tag(String),
    /// One resource-type association.
    Association(String),
}

/// A metadef operation failed; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadefError {
    /// No namespace has this name (or, for the caller, none it may see).
    #[error("Metadata definition namespace={0} was not found.")]
    NamespaceNotFound(String),
    /// The namespace has no such object.
    #[error(
        "The metadata definition object with name={name} was not found in \
         namespace={namespace}."
    )]
    ObjectNotFound {
        /// The namespace.
        namespace: String,
        /// The object.
        name: String,
    },
    /// The namespace has no such property.
    #[error(
        "The metadata definition property with name={name} was not found in \
         namespace={namespace}."
    )]
    PropertyNotFound {
        /// The namespace.
        namespace: String,
        /// The property.
        name: String,
    },
    /// The namespace has no such tag.
    #[error(
        "The metadata definition tag with name={name} was not found in namespace={namespace}."
    )]
    TagNotFound {
        /// The namespace.
        namespace: String,
        /// The tag.
        name: String,
    },
    /// The namespace is not associated with this resource type.
    #[error(
        "The metadata definition resource-type association of \
         resource-type={resource_type} to namespace={namespace}, was not found."
    )]
    AssociationNotFound {
        /// The namespace.
        namespace: String,
        /// The resource type.
        resource_type: String,
    },
    /// A namespace with this name exists.
    #[error("The metadata definition namespace={0} already exists.")]
    DuplicateNamespace(String),
    /// The namespace has an object with this name.
    #[error(
        "A metadata definition object with name={name} already exists in \
         namespace={namespace}."
    )]
    DuplicateObject {
        /// The namespace.
        namespace: String,
        /// The object.
        name: String,
    },
    /// The namespace has a property with this name.
    #[error(
        "A metadata definition property with name={name} already exists in \
         namespace={namespace}."
    )]
    DuplicateProperty {
        /// The namespace.
        namespace: String,
        /// The property.
        name: String,
    },
    /// The namespace has a tag with this name (or a request names it twice).
    #[error("A metadata tag with name={name} already exists in namespace={namespace}.")]
    DuplicateTag {
        /// The namespace.
        namespace: String,
        /// The tag.
        name: String,
    },
    /// The namespace is associated with this resource type already.
    #[error(
        "The metadata definition resource-type association of \
         resource-type={resource_type} to namespace={namespace} already exists."
    )]
    DuplicateAssociation {
        /// The namespace.
        namespace: String,
        /// The resource type.
        resource_type: String,
    },
    /// The namespace is protected: neither it nor anything in it can be deleted.
    #[error("{}", protected_message(namespace, record))]
    Protected {
        /// The namespace.
        namespace: String,
        /// What the delete was about.
        record: ProtectedRecord,
    },
    /// A record breaks a rule of Glance's schemas (a length, a property `type`, ...).
    #[error("{0}")]
    Invalid(String),
}

fn protected_message(namespace: &str, record: &ProtectedRecord) -> String {
    let (kind, name) = match record {
        ProtectedRecord::Namespace => ("namespace", namespace),
        ProtectedRecord::Object(name) => ("object", name.as_str()),
        ProtectedRecord::Property(name) => ("property", name.as_str()),
        ProtectedRecord::Tag(name) => ("tag", name.as_str()),
        ProtectedRecord::Association(name) => ("resource-type-association", name.as_str()),
    };
    format!("Metadata definition {kind} {name} is protected and cannot be deleted.")
}
