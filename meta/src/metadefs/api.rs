//! [`Metadefs`]: the metadefs part of the metadata API, which every engine implements (it is a
//! supertrait of [`Backend`](crate::Backend)), and the contract of each call.
//!
//! Every call is one atomic unit, as for images: it reads what it checks and writes what it
//! changes in one transaction, and a call that fails writes nothing. Engines check records with
//! the types' `validate` methods before writing ([`MetadefError::Invalid`] and the duplicate
//! errors), refuse deletes in protected namespaces ([`MetadefError::Protected`]), and keep
//! everything of a namespace with it (a rename moves it, a delete removes it; resource types
//! are global and stay). Lists are small (a catalog has tens of namespaces, each tens of
//! records): a SQL engine runs [`NamespaceQuery`] as `WHERE … ORDER BY … LIMIT`, the embedded
//! one sorts in memory.

use std::collections::BTreeMap;

use crate::error::Result;

#[allow(unused_imports)] // named by the docs
use super::MetadefError;
use super::{
    ContentKind, LoadMode, LoadReport, MetadefObject, MetadefTag, Namespace, NamespaceDocument,
    NamespaceQuery, PropertyDefinition, ResourceType, ResourceTypeAssociation, TagQuery,
};

/// The metadefs API: namespaces and what they hold, resource types, loads and exports.
pub trait Metadefs {
    // ---- reads
    /// One page of the namespace list, with each namespace's resource-type associations.
    ///
    /// Fails with [`MetadefError::NamespaceNotFound`] when the marker names no namespace the
    /// viewer sees.
    fn list_metadef_namespaces(
        &self,
        query: &NamespaceQuery,
    ) -> Result<Vec<(Namespace, Vec<ResourceTypeAssociation>)>>;

    /// Namespace `name`'s own fields; `None` when there is no such namespace.
    fn metadef_namespace(&self, name: &str) -> Result<Option<Namespace>>;

    /// Namespace `name` with everything in it; `None` when there is no such namespace.
    fn metadef_namespace_document(&self, name: &str) -> Result<Option<NamespaceDocument>>;

    /// Every namespace with everything in it, oldest first: what `glint metadefs export`
    /// writes.
    fn export_metadefs(&self) -> Result<Vec<NamespaceDocument>>;

    /// Every resource type, oldest first.
    fn metadef_resource_types(&self) -> Result<Vec<ResourceType>>;

    /// The resource-type associations of namespace `ns`, oldest first.
    fn metadef_associations(&self, ns: &str) -> Result<Vec<ResourceTypeAssociation>>;

    /// The objects of namespace `ns`, oldest first.
    fn metadef_objects(&self, ns: &str) -> Result<Vec<MetadefObject>>;

    /// Object `name` of namespace `ns`.
    fn metadef_object(&self, ns: &str, name: &str) -> Result<MetadefObject>;

    /// The property definitions of namespace `ns`, by name.
    fn metadef_properties(&self, ns: &str) -> Result<BTreeMap<String, PropertyDefinition>>;

    /// Property `name` of namespace `ns`.
    fn metadef_property(&self, ns: &str, name: &str) -> Result<PropertyDefinition>;

    /// One page of the tags of namespace `ns`. Fails with [`MetadefError::TagNotFound`] when
    /// the marker names no tag of the namespace.
    fn metadef_tags(&self, ns: &str, query: &TagQuery) -> Result<Vec<MetadefTag>>;

    /// Tag `name` of namespace `ns`.
    fn metadef_tag(&self, ns: &str, name: &str) -> Result<MetadefTag>;

    // ---- writes
    /// Creates a namespace and everything `document` holds, timestamps as given. Resource
    /// types it names that do not exist yet are created (unprotected).
    ///
    /// Fails with [`MetadefError::DuplicateNamespace`], or [`MetadefError::Invalid`] and the
    /// duplicate errors when the document breaks a rule.
    fn create_metadef_namespace(&self, document: &NamespaceDocument) -> Result<()>;

    /// Replaces namespace `name`'s own fields with `new`'s (keeping `created_at`); renames it
    /// (with everything in it) when `new.namespace` differs. Returns it as stored.
    ///
    /// Fails with [`MetadefError::NamespaceNotFound`] and, when renaming onto an existing name,
    /// [`MetadefError::DuplicateNamespace`].
    fn update_metadef_namespace(&self, name: &str, new: &Namespace) -> Result<Namespace>;

    /// Deletes namespace `name` and everything in it (resource types stay).
    ///
    /// Fails with [`MetadefError::NamespaceNotFound`] and [`MetadefError::Protected`].
    fn delete_metadef_namespace(&self, name: &str) -> Result<()>;

    /// Deletes all objects, properties or tags of namespace `name`.
    ///
    /// Fails with [`MetadefError::NamespaceNotFound`] and [`MetadefError::Protected`].
    fn delete_metadef_content(&self, name: &str, kind: ContentKind) -> Result<()>;

    /// Adds `object` to namespace `ns`, with `created_at` and `updated_at` set now. Returns it
    /// as stored.
    ///
    /// Fails with [`MetadefError::NamespaceNotFound`] and [`MetadefError::DuplicateObject`].
    fn create_metadef_object(&self, ns: &str, object: &MetadefObject) -> Result<MetadefObject>;

    /// Replaces object `name` of namespace `ns` with `object` (keeping its creation time;
    /// renaming it when `object.name` differs). Returns it as stored.
    ///
    /// Fails with the not-found errors and, when renaming onto an existing name,
    /// [`MetadefError::DuplicateObject`].
    fn update_metadef_object(
        &self,
        ns: &str,
        name: &str,
        object: &MetadefObject,
    ) -> Result<MetadefObject>;

    /// Deletes object `name` of namespace `ns`.
    ///
    /// Fails with the not-found errors and [`MetadefError::Protected`].
    fn delete_metadef_object(&self, ns: &str, name: &str) -> Result<()>;

    /// Adds property `name` to namespace `ns`.
    ///
    /// Fails with [`MetadefError::NamespaceNotFound`] and [`MetadefError::DuplicateProperty`].
    fn create_metadef_property(
        &self,
        ns: &str,
        name: &str,
        definition: &PropertyDefinition,
    ) -> Result<()>;

    /// Replaces property `name` of namespace `ns` with `definition` under `new_name`.
    ///
    /// Fails with the not-found errors and, when renaming onto an existing name,
    /// [`MetadefError::DuplicateProperty`].
    fn update_metadef_property(
        &self,
        ns: &str,
        name: &str,
        new_name: &str,
        definition: &PropertyDefinition,
    ) -> Result<()>;

    /// Deletes property `name` of namespace `ns`.
    ///
    /// Fails with the not-found errors and [`MetadefError::Protected`].
    fn delete_metadef_property(&self, ns: &str, name: &str) -> Result<()>;

    /// Adds tag `name` to namespace `ns`. Returns it as stored.
    ///
    /// Fails with [`MetadefError::NamespaceNotFound`] and [`MetadefError::DuplicateTag`].
    fn create_metadef_tag(&self, ns: &str, name: &str) -> Result<MetadefTag>;

    /// Adds the tags `names` to namespace `ns`, after removing all its tags unless `append`.
    /// Returns them as stored.
    ///
    /// Fails with [`MetadefError::NamespaceNotFound`] and [`MetadefError::DuplicateTag`]
    /// (a name given twice, or, appending, a name the namespace has).
    fn create_metadef_tags(
        &self,
        ns: &str,
        names: &[String],
        append: bool,
    ) -> Result<Vec<MetadefTag>>;

    /// Renames tag `name` of namespace `ns` to `new_name`. Returns it as stored.
    ///
    /// Fails with the not-found errors and [`MetadefError::DuplicateTag`].
    fn rename_metadef_tag(&self, ns: &str, name: &str, new_name: &str) -> Result<MetadefTag>;

    /// Deletes tag `name` of namespace `ns`.
    ///
    /// Fails with the not-found errors and [`MetadefError::Protected`].
    fn delete_metadef_tag(&self, ns: &str, name: &str) -> Result<()>;

    /// Associates namespace `ns` with a resource type (created, unprotected, if new), with
    /// `created_at` and `updated_at` set now. Returns the association as stored.
    ///
    /// Fails with [`MetadefError::NamespaceNotFound`] and
    /// [`MetadefError::DuplicateAssociation`].
    fn associate_metadef_resource_type(
        &self,
        ns: &str,
        association: &ResourceTypeAssociation,
    ) -> Result<ResourceTypeAssociation>;

    /// Ends the association of namespace `ns` with resource type `name` (the resource type
    /// stays).
    ///
    /// Fails with the not-found errors and [`MetadefError::Protected`].
    fn deassociate_metadef_resource_type(&self, ns: &str, name: &str) -> Result<()>;

    /// Loads namespace documents as `glance-manage db load_metadefs` does, in one
    /// transaction: every document is checked first, and any failure writes nothing.
    ///
    /// A namespace that does not exist is created with what its document holds (timestamps
    /// as given; resource types it names are created protected). One that exists is handled
    /// by `mode`: skipped; merged (what it lacks is added); merged preferring the document
    /// (what differs is replaced, with `updated_at` now); or overwritten (deleted with its
    /// content, protected or not, then created). Nothing is written for what is already as
    /// the document says, so loading the same files twice changes nothing.
    fn load_metadefs(&self, documents: &[NamespaceDocument], mode: LoadMode) -> Result<LoadReport>;
}
