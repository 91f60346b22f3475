//! Metadata definitions ("metadefs", Glance's catalog of properties that images, volumes and
//! flavors may carry): namespaces, and in each namespace its objects, property definitions,
//! tags and resource-type associations.
//!
//! It owns the typed records ([`Namespace`], [`MetadefObject`], [`PropertyDefinition`],
//! [`MetadefTag`], [`ResourceTypeAssociation`], [`ResourceType`]), the rules Glance's schemas
//! set on them (lengths, property `type`s, unique names), and their tables; every operation is
//! one transaction of [`Metadefs`], the metadefs part of the API every engine implements
//! (`list_metadef_namespaces`, `create_metadef_*`, `load_metadefs`, ...). It deliberately leaves out JSON (the gateway parses and renders
//! Glance's JSON) and policy (the gateway decides who may see and change what; meta only
//! offers the data layer's visibility rule, [`NamespaceViewer`]).
//!
//! Deleting a namespace deletes what it holds; resource types are global and stay. A protected
//! namespace refuses every delete of it or its content ([`MetadefError::Protected`]), except an
//! overwriting load.

mod api;
mod error;
pub(crate) mod logic;
pub(crate) mod page;
mod types;

pub use api::Metadefs;
pub use error::{MetadefError, ProtectedRecord};
pub(crate) use types::check_name;
pub use types::{
    ContentKind, ItemsDefinition, LoadMode, LoadReport, MetadefObject, MetadefTag, Namespace,
    NamespaceDocument, NamespaceQuery, NamespaceSortKey, NamespaceViewer, NamespaceVisibility,
    PropertyDefinition, ResourceType, ResourceTypeAssociation, TagQuery, TagSortKey,
    MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_OWNER_CHARS, PROPERTY_TYPES,
};
