//! The metadefs part of the [`Catalog`]: every [`meta::metadefs::Metadefs`] call, reads where
//! reads run and writes on the writer thread, as for images. The two blocking calls at the end
//! serve the admin socket (`metadefs_admin`), which runs on a thread of its own.

use std::collections::BTreeMap;

use meta::metadefs::{
    ContentKind, LoadMode, LoadReport, MetadefObject, MetadefTag, Namespace, NamespaceDocument,
    NamespaceQuery, PropertyDefinition, ResourceType, ResourceTypeAssociation, TagQuery,
};

use super::{gone, Catalog};

impl Catalog {
    // ---- metadefs: reads

    /// One page of the namespace list, with each namespace's associations.
    pub async fn list_metadef_namespaces(
        &self,
        query: NamespaceQuery,
    ) -> meta::Result<Vec<(Namespace, Vec<ResourceTypeAssociation>)>> {
        self.read(move |meta| meta.list_metadef_namespaces(&query))
            .await
    }

    /// Namespace `name`'s own fields, if it exists.
    pub async fn metadef_namespace(&self, name: &str) -> meta::Result<Option<Namespace>> {
        let name = name.to_owned();
        self.read(move |meta| meta.metadef_namespace(&name)).await
    }

    /// Namespace `name` with everything in it, if it exists.
    pub async fn metadef_namespace_document(
        &self,
        name: &str,
    ) -> meta::Result<Option<NamespaceDocument>> {
        let name = name.to_owned();
        self.read(move |meta| meta.metadef_namespace_document(&name))
            .await
    }

    /// Every resource type.
    pub async fn metadef_resource_types(&self) -> meta::Result<Vec<ResourceType>> {
        self.read(|meta| meta.metadef_resource_types()).await
    }

    /// The associations of namespace `ns`.
    pub async fn metadef_associations(
        &self,
        ns: &str,
    ) -> meta::Result<Vec<ResourceTypeAssociation>> {
        let ns = ns.to_owned();
        self.read(move |meta| meta.metadef_associations(&ns)).await
    }

    /// The objects of namespace `ns`.
    pub async fn metadef_objects(&self, ns: &str) -> meta::Result<Vec<MetadefObject>> {
        let ns = ns.to_owned();
        self.read(move |meta| meta.metadef_objects(&ns)).await
    }

    /// Object `name` of namespace `ns`.
    pub async fn metadef_object(&self, ns: &str, name: &str) -> meta::Result<MetadefObject> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.read(move |meta| meta.metadef_object(&ns, &name)).await
    }

    /// The property definitions of namespace `ns`.
    pub async fn metadef_properties(
        &self,
        ns: &str,
    ) -> meta::Result<BTreeMap<String, PropertyDefinition>> {
        let ns = ns.to_owned();
        self.read(move |meta| meta.metadef_properties(&ns)).await
    }

    /// Property `name` of namespace `ns`.
    pub async fn metadef_property(&self, ns: &str, name: &str) -> meta::Result<PropertyDefinition> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.read(move |meta| meta.metadef_property(&ns, &name))
            .await
    }

    /// One page of the tags of namespace `ns`.
    pub async fn metadef_tags(&self, ns: &str, query: TagQuery) -> meta::Result<Vec<MetadefTag>> {
        let ns = ns.to_owned();
        self.read(move |meta| meta.metadef_tags(&ns, &query)).await
    }

    /// Tag `name` of namespace `ns`.
    pub async fn metadef_tag(&self, ns: &str, name: &str) -> meta::Result<MetadefTag> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.read(move |meta| meta.metadef_tag(&ns, &name)).await
    }

    // ---- metadefs: writes

    /// Creates a namespace with what `document` holds.
    pub async fn create_metadef_namespace(&self, document: NamespaceDocument) -> meta::Result<()> {
        self.write(move |meta| meta.create_metadef_namespace(&document))
            .await
    }

    /// Replaces namespace `name`'s own fields (renaming it when `new.namespace` differs).
    pub async fn update_metadef_namespace(
        &self,
        name: &str,
        new: Namespace,
    ) -> meta::Result<Namespace> {
        let name = name.to_owned();
        self.write(move |meta| meta.update_metadef_namespace(&name, &new))
            .await
    }

    /// Deletes namespace `name` and everything in it.
    pub async fn delete_metadef_namespace(&self, name: &str) -> meta::Result<()> {
        let name = name.to_owned();
        self.write(move |meta| meta.delete_metadef_namespace(&name))
            .await
    }

    /// Deletes all of one kind of namespace `name`'s content.
    pub async fn delete_metadef_content(&self, name: &str, kind: ContentKind) -> meta::Result<()> {
        let name = name.to_owned();
        self.write(move |meta| meta.delete_metadef_content(&name, kind))
            .await
    }

    /// Adds an object to namespace `ns`.
    pub async fn create_metadef_object(
        &self,
        ns: &str,
        object: MetadefObject,
    ) -> meta::Result<MetadefObject> {
        let ns = ns.to_owned();
        self.write(move |meta| meta.create_metadef_object(&ns, &object))
            .await
    }

    /// Replaces object `name` of namespace `ns`.
    pub async fn update_metadef_object(
        &self,
        ns: &str,
        name: &str,
        object: MetadefObject,
    ) -> meta::Result<MetadefObject> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.write(move |meta| meta.update_metadef_object(&ns, &name, &object))
            .await
    }

    /// Deletes object `name` of namespace `ns`.
    pub async fn delete_metadef_object(&self, ns: &str, name: &str) -> meta::Result<()> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.write(move |meta| meta.delete_metadef_object(&ns, &name))
            .await
    }

    /// Adds property `name` to namespace `ns`.
    pub async fn create_metadef_property(
        &self,
        ns: &str,
        name: &str,
        definition: PropertyDefinition,
    ) -> meta::Result<()> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.write(move |meta| meta.create_metadef_property(&ns, &name, &definition))
            .await
    }

    /// Replaces property `name` of namespace `ns` with `definition` under `new_name`.
    pub async fn update_metadef_property(
        &self,
        ns: &str,
        name: &str,
        new_name: &str,
        definition: PropertyDefinition,
    ) -> meta::Result<()> {
        let (ns, name, new_name) = (ns.to_owned(), name.to_owned(), new_name.to_owned());
        self.write(move |meta| meta.update_metadef_property(&ns, &name, &new_name, &definition))
            .await
    }

    /// Deletes property `name` of namespace `ns`.
    pub async fn delete_metadef_property(&self, ns: &str, name: &str) -> meta::Result<()> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.write(move |meta| meta.delete_metadef_property(&ns, &name))
            .await
    }

    /// Adds tag `name` to namespace `ns`.
    pub async fn create_metadef_tag(&self, ns: &str, name: &str) -> meta::Result<MetadefTag> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.write(move |meta| meta.create_metadef_tag(&ns, &name))
            .await
    }

    /// Adds tags `names` to namespace `ns`, replacing its tags unless `append`.
    pub async fn create_metadef_tags(
        &self,
        ns: &str,
        names: Vec<String>,
        append: bool,
    ) -> meta::Result<Vec<MetadefTag>> {
        let ns = ns.to_owned();
        self.write(move |meta| meta.create_metadef_tags(&ns, &names, append))
            .await
    }

    /// Renames tag `name` of namespace `ns`.
    pub async fn rename_metadef_tag(
        &self,
        ns: &str,
        name: &str,
        new_name: &str,
    ) -> meta::Result<MetadefTag> {
        let (ns, name, new_name) = (ns.to_owned(), name.to_owned(), new_name.to_owned());
        self.write(move |meta| meta.rename_metadef_tag(&ns, &name, &new_name))
            .await
    }

    /// Deletes tag `name` of namespace `ns`.
    pub async fn delete_metadef_tag(&self, ns: &str, name: &str) -> meta::Result<()> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.write(move |meta| meta.delete_metadef_tag(&ns, &name))
            .await
    }

    /// Associates namespace `ns` with a resource type.
    pub async fn associate_metadef_resource_type(
        &self,
        ns: &str,
        association: ResourceTypeAssociation,
    ) -> meta::Result<ResourceTypeAssociation> {
        let ns = ns.to_owned();
        self.write(move |meta| meta.associate_metadef_resource_type(&ns, &association))
            .await
    }

    /// Ends the association of namespace `ns` with resource type `name`.
    pub async fn deassociate_metadef_resource_type(
        &self,
        ns: &str,
        name: &str,
    ) -> meta::Result<()> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        self.write(move |meta| meta.deassociate_metadef_resource_type(&ns, &name))
            .await
    }

    // ---- metadefs: the admin socket's blocking calls

    /// Loads namespace documents, on the writer thread, waiting for the outcome. Blocks: call
    /// it only from a thread that may block (never an I/O core).
    pub fn load_metadefs_blocking(
        &self,
        documents: Vec<NamespaceDocument>,
        mode: LoadMode,
    ) -> meta::Result<LoadReport> {
        let backend = std::sync::Arc::clone(&self.backend);
        let (tx, rx) = std::sync::mpsc::channel();
        self.writer.spawn(move || {
            // The receiver waits below; if it is gone the load is done anyway.
            let _ = tx.send(backend.load_metadefs(&documents, mode));
        });
        rx.recv().map_err(gone)?
    }

    /// Every namespace with everything in it. Blocks: call it only from a thread that may
    /// block.
    pub fn export_metadefs_blocking(&self) -> meta::Result<Vec<NamespaceDocument>> {
        self.backend.export_metadefs()
    }
}
