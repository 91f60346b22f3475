//! The redb engine's metadefs ([`Metadefs`] for [`RedbBackend`]): each call is one redb
//! transaction, so a failed write (a duplicate, a protected namespace, an invalid record)
//! writes nothing at all. `tables.rs` has the layout, `record.rs` the encodings.
//!
//! Writes set `updated_at` (and `created_at` of what they create) to the time the transaction
//! started, except `create_metadef_namespace` and `load_metadefs`, which store the timestamps
//! they are given (a load of an export keeps the exported times).

pub(crate) mod record;
pub(crate) mod tables;

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableTable, WriteTransaction};

use super::RedbBackend;
use super::StorageResultExt;
use crate::error::{Error, Result};
use crate::metadefs::{MetadefError, Metadefs, ProtectedRecord};
use crate::types::Timestamp;

use self::tables::{
    name_bounds, scan, ASSOCIATIONS, NAMESPACES, OBJECTS, PROPERTIES, RESOURCE_TYPES, TAGS,
};
use crate::metadefs::{
    check_name, ContentKind, LoadMode, LoadReport, MetadefObject, MetadefTag, Namespace,
    NamespaceDocument, NamespaceQuery, NamespaceSortKey, PropertyDefinition, ResourceType,
    ResourceTypeAssociation, TagQuery, TagSortKey,
};

type Txn = WriteTransaction;

impl Metadefs for RedbBackend {
    // ---- reads
    fn list_metadef_namespaces(
        &self,
        query: &NamespaceQuery,
    ) -> Result<Vec<(Namespace, Vec<ResourceTypeAssociation>)>> {
        let txn = self.inner.db.begin_read().storage()?;
        let namespaces = txn.open_table(NAMESPACES).storage()?;
        let associations = txn.open_table(ASSOCIATIONS).storage()?;
        let mut all = Vec::new();
        for entry in namespaces.iter().storage()? {
            let (key, value) = entry.storage()?;
            let (namespace, seq) = record::decode_namespace(key.value(), value.value())?;
            if query.viewer.sees(&namespace) {
                all.push((namespace, seq));
            }
        }
        page_namespaces(all, query, |name| read_associations(&associations, name))
    }

    fn metadef_namespace(&self, name: &str) -> Result<Option<Namespace>> {
        let txn = self.inner.db.begin_read().storage()?;
        let table = txn.open_table(NAMESPACES).storage()?;
        Ok(read_namespace(&table, name)?.map(|(namespace, _)| namespace))
    }

    fn metadef_namespace_document(&self, name: &str) -> Result<Option<NamespaceDocument>> {
        let txn = self.inner.db.begin_read().storage()?;
        let namespaces = txn.open_table(NAMESPACES).storage()?;
        let Some((namespace, _)) = read_namespace(&namespaces, name)? else {
            return Ok(None);
        };
        Ok(Some(NamespaceDocument {
            resource_type_associations: read_associations(
                &txn.open_table(ASSOCIATIONS).storage()?,
                name,
            )?,
            properties: read_properties(&txn.open_table(PROPERTIES).storage()?, name)?,
            objects: read_objects(&txn.open_table(OBJECTS).storage()?, name)?,
            tags: read_tags(&txn.open_table(TAGS).storage()?, name)?,
            resource_types: Vec::new(),
            namespace,
        }))
    }

    fn export_metadefs(&self) -> Result<Vec<NamespaceDocument>> {
        let txn = self.inner.db.begin_read().storage()?;
        let namespaces = txn.open_table(NAMESPACES).storage()?;
        let mut names = Vec::new();
        for entry in namespaces.iter().storage()? {
            let (key, value) = entry.storage()?;
            let (namespace, seq) = record::decode_namespace(key.value(), value.value())?;
            names.push(((namespace.created_at, seq), namespace.namespace));
        }
        names.sort();
        drop((namespaces, txn));
        let all_types = self.metadef_resource_types()?;
        let mut out = Vec::with_capacity(names.len());
        for (_, name) in names {
            // Each read sees a committed state; an export taken while writes go on is a
            // snapshot per namespace, which is what a running server's export means.
            if let Some(mut document) = self.metadef_namespace_document(&name)? {
                let named: BTreeSet<&str> = document
                    .resource_type_associations
                    .iter()
                    .map(|association| association.name.as_str())
                    .collect();
                document.resource_types = all_types
                    .iter()
                    .filter(|rt| named.contains(rt.name.as_str()))
                    .cloned()
                    .collect();
                out.push(document);
            }
        }
        Ok(out)
    }

    fn metadef_resource_types(&self) -> Result<Vec<ResourceType>> {
        let txn = self.inner.db.begin_read().storage()?;
        let table = txn.open_table(RESOURCE_TYPES).storage()?;
        let mut out = Vec::new();
        for entry in table.iter().storage()? {
            let (key, value) = entry.storage()?;
            let (seq, protected, created, updated) = value.value();
            out.push((
                seq,
                ResourceType {
                    name: key.value().to_owned(),
                    protected,
                    created_at: Timestamp::from_unix_micros(created),
                    updated_at: Timestamp::from_unix_micros(updated),
                },
            ));
        }
        out.sort_by_key(|(seq, rt)| (rt.created_at, *seq));
        Ok(out.into_iter().map(|(_, rt)| rt).collect())
    }

    fn metadef_associations(&self, ns: &str) -> Result<Vec<ResourceTypeAssociation>> {
        let txn = self.inner.db.begin_read().storage()?;
        require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
        read_associations(&txn.open_table(ASSOCIATIONS).storage()?, ns)
    }

    fn metadef_objects(&self, ns: &str) -> Result<Vec<MetadefObject>> {
        let txn = self.inner.db.begin_read().storage()?;
        require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
        read_objects(&txn.open_table(OBJECTS).storage()?, ns)
    }

    fn metadef_object(&self, ns: &str, name: &str) -> Result<MetadefObject> {
        let txn = self.inner.db.begin_read().storage()?;
        require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
        read_object(&txn.open_table(OBJECTS).storage()?, ns, name)?
            .map(|(object, _)| object)
            .ok_or_else(|| object_not_found(ns, name))
    }

    fn metadef_properties(&self, ns: &str) -> Result<BTreeMap<String, PropertyDefinition>> {
        let txn = self.inner.db.begin_read().storage()?;
        require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
        read_properties(&txn.open_table(PROPERTIES).storage()?, ns)
    }

    fn metadef_property(&self, ns: &str, name: &str) -> Result<PropertyDefinition> {
        let txn = self.inner.db.begin_read().storage()?;
        require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
        read_property(&txn.open_table(PROPERTIES).storage()?, ns, name)?
            .ok_or_else(|| property_not_found(ns, name))
    }

    fn metadef_tags(&self, ns: &str, query: &TagQuery) -> Result<Vec<MetadefTag>> {
        let txn = self.inner.db.begin_read().storage()?;
        require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
        let table = txn.open_table(TAGS).storage()?;
        let tags = scan(&table, ns, |name, (seq, created, updated)| {
            Ok((seq, tag(name, created, updated)))
        })?;
        page_tags(tags, ns, query)
    }

    fn metadef_tag(&self, ns: &str, name: &str) -> Result<MetadefTag> {
        let txn = self.inner.db.begin_read().storage()?;
        require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
        let table = txn.open_table(TAGS).storage()?;
        let found = table.get((ns, name)).storage()?.map(|guard| guard.value());
        found
            .map(|(_, created, updated)| tag(name, created, updated))
            .ok_or_else(|| tag_not_found(ns, name))
    }

    // ---- writes
    fn create_metadef_namespace(&self, document: &NamespaceDocument) -> Result<()> {
        document.validate()?;
        metadef_write(self, |txn, _| {
            let ns = &document.namespace.namespace;
            if read_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?.is_some() {
                return Err(MetadefError::DuplicateNamespace(ns.clone()).into());
            }
            insert_document(txn, document, false)
        })
    }

    fn update_metadef_namespace(&self, name: &str, new: &Namespace) -> Result<Namespace> {
        new.validate()?;
        metadef_write(self, |txn, now| {
            let (old, seq) = require_namespace(&txn.open_table(NAMESPACES).storage()?, name)?;
            let mut stored = new.clone();
            stored.created_at = old.created_at;
            stored.updated_at = now;
            if stored.namespace != name {
                if read_namespace(&txn.open_table(NAMESPACES).storage()?, &stored.namespace)?
                    .is_some()
                {
                    return Err(MetadefError::DuplicateNamespace(stored.namespace.clone()).into());
                }
                rename_content(txn, name, &stored.namespace)?;
                txn.open_table(NAMESPACES)
                    .storage()?
                    .remove(name)
                    .storage()?;
            }
            put_namespace(txn, &stored, seq)?;
            Ok(stored)
        })
    }

    fn delete_metadef_namespace(&self, name: &str) -> Result<()> {
        metadef_write(self, |txn, _| {
            let (namespace, _) = require_namespace(&txn.open_table(NAMESPACES).storage()?, name)?;
            refuse_if_protected(&namespace, ProtectedRecord::Namespace)?;
            remove_namespace(txn, name)
        })
    }

    fn delete_metadef_content(&self, name: &str, kind: ContentKind) -> Result<()> {
        metadef_write(self, |txn, _| {
            let (namespace, _) = require_namespace(&txn.open_table(NAMESPACES).storage()?, name)?;
            refuse_if_protected(&namespace, ProtectedRecord::Namespace)?;
            match kind {
                ContentKind::Objects => clear(txn, OBJECTS, name),
                ContentKind::Properties => clear(txn, PROPERTIES, name),
                ContentKind::Tags => clear(txn, TAGS, name),
            }
        })
    }

    fn create_metadef_object(&self, ns: &str, object: &MetadefObject) -> Result<MetadefObject> {
        object.validate()?;
        metadef_write(self, |txn, now| {
            require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut stored = object.clone();
            stored.created_at = now;
            stored.updated_at = now;
            insert_object(txn, ns, &stored)?;
            Ok(stored)
        })
    }

    fn update_metadef_object(
        &self,
        ns: &str,
        name: &str,
        object: &MetadefObject,
    ) -> Result<MetadefObject> {
        object.validate()?;
        metadef_write(self, |txn, now| {
            require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut table = txn.open_table(OBJECTS).storage()?;
            let (old, seq) =
                read_object(&table, ns, name)?.ok_or_else(|| object_not_found(ns, name))?;
            let mut stored = object.clone();
            stored.created_at = old.created_at;
            stored.updated_at = now;
            if stored.name != name {
                if table.get((ns, stored.name.as_str())).storage()?.is_some() {
                    return Err(duplicate_object(ns, &stored.name));
                }
                table.remove((ns, name)).storage()?;
            }
            table
                .insert(
                    (ns, stored.name.as_str()),
                    record::encode_object(&stored, seq).as_slice(),
                )
                .storage()?;
            Ok(stored)
        })
    }

    fn delete_metadef_object(&self, ns: &str, name: &str) -> Result<()> {
        metadef_write(self, |txn, _| {
            let (namespace, _) = require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut table = txn.open_table(OBJECTS).storage()?;
            if table.get((ns, name)).storage()?.is_none() {
                return Err(object_not_found(ns, name));
            }
            refuse_if_protected(&namespace, ProtectedRecord::Object(name.to_owned()))?;
            table.remove((ns, name)).storage()?;
            Ok(())
        })
    }

    fn create_metadef_property(
        &self,
        ns: &str,
        name: &str,
        definition: &PropertyDefinition,
    ) -> Result<()> {
        definition.validate(name)?;
        metadef_write(self, |txn, _| {
            require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut table = txn.open_table(PROPERTIES).storage()?;
            if table.get((ns, name)).storage()?.is_some() {
                return Err(duplicate_property(ns, name));
            }
            table
                .insert((ns, name), record::encode_property(definition).as_slice())
                .storage()?;
            Ok(())
        })
    }

    fn update_metadef_property(
        &self,
        ns: &str,
        name: &str,
        new_name: &str,
        definition: &PropertyDefinition,
    ) -> Result<()> {
        definition.validate(new_name)?;
        metadef_write(self, |txn, _| {
            require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut table = txn.open_table(PROPERTIES).storage()?;
            if table.get((ns, name)).storage()?.is_none() {
                return Err(property_not_found(ns, name));
            }
            if new_name != name {
                if table.get((ns, new_name)).storage()?.is_some() {
                    return Err(duplicate_property(ns, new_name));
                }
                table.remove((ns, name)).storage()?;
            }
            table
                .insert(
                    (ns, new_name),
                    record::encode_property(definition).as_slice(),
                )
                .storage()?;
            Ok(())
        })
    }

    fn delete_metadef_property(&self, ns: &str, name: &str) -> Result<()> {
        metadef_write(self, |txn, _| {
            let (namespace, _) = require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut table = txn.open_table(PROPERTIES).storage()?;
            if table.get((ns, name)).storage()?.is_none() {
                return Err(property_not_found(ns, name));
            }
            refuse_if_protected(&namespace, ProtectedRecord::Property(name.to_owned()))?;
            table.remove((ns, name)).storage()?;
            Ok(())
        })
    }

    fn create_metadef_tag(&self, ns: &str, name: &str) -> Result<MetadefTag> {
        check_name("tag", name)?;
        metadef_write(self, |txn, now| {
            require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let stored = tag(name, now.as_unix_micros(), now.as_unix_micros());
            insert_tag(txn, ns, &stored)?;
            Ok(stored)
        })
    }

    fn create_metadef_tags(
        &self,
        ns: &str,
        names: &[String],
        append: bool,
    ) -> Result<Vec<MetadefTag>> {
        for name in names {
            check_name("tag", name)?;
        }
        metadef_write(self, |txn, now| {
            require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            if !append {
                clear(txn, TAGS, ns)?;
            }
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let stored = tag(name, now.as_unix_micros(), now.as_unix_micros());
                insert_tag(txn, ns, &stored)?;
                out.push(stored);
            }
            Ok(out)
        })
    }

    fn rename_metadef_tag(&self, ns: &str, name: &str, new_name: &str) -> Result<MetadefTag> {
        check_name("tag", new_name)?;
        metadef_write(self, |txn, now| {
            require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut table = txn.open_table(TAGS).storage()?;
            let found = table.get((ns, name)).storage()?.map(|guard| guard.value());
            let (seq, created, _) = found.ok_or_else(|| tag_not_found(ns, name))?;
            if new_name != name {
                if table.get((ns, new_name)).storage()?.is_some() {
                    return Err(duplicate_tag(ns, new_name));
                }
                table.remove((ns, name)).storage()?;
            }
            let updated = now.as_unix_micros();
            table
                .insert((ns, new_name), (seq, created, updated))
                .storage()?;
            Ok(tag(new_name, created, updated))
        })
    }

    fn delete_metadef_tag(&self, ns: &str, name: &str) -> Result<()> {
        metadef_write(self, |txn, _| {
            let (namespace, _) = require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut table = txn.open_table(TAGS).storage()?;
            if table.get((ns, name)).storage()?.is_none() {
                return Err(tag_not_found(ns, name));
            }
            refuse_if_protected(&namespace, ProtectedRecord::Tag(name.to_owned()))?;
            table.remove((ns, name)).storage()?;
            Ok(())
        })
    }

    fn associate_metadef_resource_type(
        &self,
        ns: &str,
        association: &ResourceTypeAssociation,
    ) -> Result<ResourceTypeAssociation> {
        association.validate()?;
        metadef_write(self, |txn, now| {
            require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut stored = association.clone();
            stored.created_at = now;
            stored.updated_at = now;
            insert_association(txn, ns, &stored, false, None)?;
            Ok(stored)
        })
    }

    fn deassociate_metadef_resource_type(&self, ns: &str, name: &str) -> Result<()> {
        metadef_write(self, |txn, _| {
            let (namespace, _) = require_namespace(&txn.open_table(NAMESPACES).storage()?, ns)?;
            let mut table = txn.open_table(ASSOCIATIONS).storage()?;
            if table.get((ns, name)).storage()?.is_none() {
                return Err(MetadefError::AssociationNotFound {
                    namespace: ns.to_owned(),
                    resource_type: name.to_owned(),
                }
                .into());
            }
            refuse_if_protected(&namespace, ProtectedRecord::Association(name.to_owned()))?;
            table.remove((ns, name)).storage()?;
            Ok(())
        })
    }

    fn load_metadefs(&self, documents: &[NamespaceDocument], mode: LoadMode) -> Result<LoadReport> {
        let mut seen = BTreeSet::new();
        for document in documents {
            document.validate()?;
            if !seen.insert(document.namespace.namespace.as_str()) {
                return Err(
                    MetadefError::DuplicateNamespace(document.namespace.namespace.clone()).into(),
                );
            }
        }
        metadef_write(self, |txn, now| {
            let mut report = LoadReport::default();
            for document in documents {
                let name = &document.namespace.namespace;
                let existing = read_namespace(&txn.open_table(NAMESPACES).storage()?, name)?;
                let existing = match (existing, mode) {
                    (Some(_), LoadMode::Overwrite) => {
                        remove_namespace(txn, name)?;
                        None
                    }
                    (other, _) => other,
                };
                let Some((namespace, seq)) = existing else {
                    insert_document(txn, document, true)?;
                    report.created.push(name.clone());
                    continue;
                };
                let changed = match mode {
                    LoadMode::SkipExisting | LoadMode::Overwrite => false,
                    LoadMode::Merge => merge(txn, document, now, false)?,
                    LoadMode::MergePreferNew => {
                        let mut wanted = document.namespace.clone();
                        wanted.created_at = namespace.created_at;
                        wanted.updated_at = namespace.updated_at;
                        let fields_changed = wanted != namespace;
                        if fields_changed {
                            wanted.updated_at = now;
                            put_namespace(txn, &wanted, seq)?;
                        }
                        merge(txn, document, now, true)? || fields_changed
                    }
                };
                if changed {
                    report.updated.push(name.clone());
                } else {
                    report.unchanged.push(name.clone());
                }
            }
            Ok(report)
        })
    }
}

/// One page of `all` (every namespace the viewer sees, with its `seq`) as `query` asks:
/// filtered, sorted and cut after the marker; `associations_of` reads a namespace's
/// associations. Shared by the engines, which read the namespaces their own way.
pub(crate) fn page_namespaces(
    all: Vec<(Namespace, u64)>,
    query: &NamespaceQuery,
    mut associations_of: impl FnMut(&str) -> Result<Vec<ResourceTypeAssociation>>,
) -> Result<Vec<(Namespace, Vec<ResourceTypeAssociation>)>> {
    let wanted: Option<BTreeSet<&str>> = query
        .resource_types
        .as_ref()
        .map(|types| types.iter().map(String::as_str).collect());
    let order = |(ns, seq): &(Namespace, u64)| {
        let first = match query.sort_key {
            NamespaceSortKey::Namespace => SortValue::Text(ns.namespace.clone()),
            NamespaceSortKey::CreatedAt => SortValue::Time(ns.created_at),
            NamespaceSortKey::UpdatedAt => SortValue::Time(ns.updated_at),
        };
        (first, ns.created_at, *seq)
    };
    let marker = match &query.marker {
        Some(name) => Some(
            all.iter()
                .find(|(ns, _)| &ns.namespace == name)
                .map(order)
                .ok_or_else(|| MetadefError::NamespaceNotFound(name.clone()))?,
        ),
        None => None,
    };
    let mut page = Vec::new();
    for (namespace, seq) in all {
        if query.visibility.is_some_and(|v| v != namespace.visibility) {
            continue;
        }
        let key = order(&(namespace.clone(), seq));
        if let Some(marker) = &marker {
            let after = if query.descending {
                key < *marker
            } else {
                key > *marker
            };
            if !after {
                continue;
            }
        }
        let associations = associations_of(&namespace.namespace)?;
        if let Some(wanted) = &wanted {
            if !associations
                .iter()
                .any(|association| wanted.contains(association.name.as_str()))
            {
                continue;
            }
        }
        page.push((key, namespace, associations));
    }
    page.sort_by(|a, b| {
        if query.descending {
            b.0.cmp(&a.0)
        } else {
            a.0.cmp(&b.0)
        }
    });
    page.truncate(query.limit);
    Ok(page
        .into_iter()
        .map(|(_, namespace, associations)| (namespace, associations))
        .collect())
}

/// One page of `tags` (namespace `ns`'s, each with its `seq`) as `query` asks. Shared by the
/// engines.
pub(crate) fn page_tags(
    tags: Vec<(u64, MetadefTag)>,
    ns: &str,
    query: &TagQuery,
) -> Result<Vec<MetadefTag>> {
    let order = |(seq, tag): &(u64, MetadefTag)| {
        let first = match query.sort_key {
            TagSortKey::Name => SortValue::Text(tag.name.clone()),
            TagSortKey::CreatedAt => SortValue::Time(tag.created_at),
            TagSortKey::UpdatedAt => SortValue::Time(tag.updated_at),
        };
        (first, tag.created_at, *seq)
    };
    let marker = match &query.marker {
        Some(name) => Some(
            tags.iter()
                .find(|(_, tag)| &tag.name == name)
                .map(order)
                .ok_or_else(|| tag_not_found(ns, name))?,
        ),
        None => None,
    };
    let mut keyed: Vec<_> = tags
        .iter()
        .map(|entry| (order(entry), entry.1.clone()))
        .filter(|(key, _)| match &marker {
            Some(marker) if query.descending => key < marker,
            Some(marker) => key > marker,
            None => true,
        })
        .collect();
    keyed.sort_by(|a, b| {
        if query.descending {
            b.0.cmp(&a.0)
        } else {
            a.0.cmp(&b.0)
        }
    });
    if let Some(limit) = query.limit {
        keyed.truncate(limit);
    }
    Ok(keyed.into_iter().map(|(_, tag)| tag).collect())
}

/// Runs `op` in one write transaction, with the transaction's start time: commits when it
/// returns `Ok`, rolls back otherwise.
fn metadef_write<T>(
    backend: &RedbBackend,
    op: impl FnOnce(&Txn, Timestamp) -> Result<T>,
) -> Result<T> {
    let txn = backend.inner.db.begin_write().storage()?;
    match op(&txn, Timestamp::now()) {
        Ok(value) => {
            txn.commit().storage()?;
            Ok(value)
        }
        Err(err) => {
            // As for images: the operation's error is the one worth reporting.
            let _ = txn.abort();
            Err(err)
        }
    }
}

/// A sort value: text or a time (each sort key has one kind).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SortValue {
    Text(String),
    Time(Timestamp),
}

pub(crate) fn tag(name: &str, created: i64, updated: i64) -> MetadefTag {
    MetadefTag {
        name: name.to_owned(),
        created_at: Timestamp::from_unix_micros(created),
        updated_at: Timestamp::from_unix_micros(updated),
    }
}

pub(crate) fn object_not_found(ns: &str, name: &str) -> Error {
    MetadefError::ObjectNotFound {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
    .into()
}

pub(crate) fn property_not_found(ns: &str, name: &str) -> Error {
    MetadefError::PropertyNotFound {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
    .into()
}

pub(crate) fn tag_not_found(ns: &str, name: &str) -> Error {
    MetadefError::TagNotFound {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
    .into()
}

pub(crate) fn duplicate_object(ns: &str, name: &str) -> Error {
    MetadefError::DuplicateObject {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
    .into()
}

pub(crate) fn duplicate_property(ns: &str, name: &str) -> Error {
    MetadefError::DuplicateProperty {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
    .into()
}

pub(crate) fn duplicate_tag(ns: &str, name: &str) -> Error {
    MetadefError::DuplicateTag {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
    .into()
}

pub(crate) fn refuse_if_protected(namespace: &Namespace, record: ProtectedRecord) -> Result<()> {
    if namespace.protected {
        return Err(MetadefError::Protected {
            namespace: namespace.namespace.clone(),
            record,
        }
        .into());
    }
    Ok(())
}

// ---- reads shared by read and write transactions

fn read_namespace(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<(Namespace, u64)>> {
    match table.get(name).storage()? {
        Some(guard) => record::decode_namespace(name, guard.value()).map(Some),
        None => Ok(None),
    }
}

fn require_namespace(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<(Namespace, u64)> {
    read_namespace(table, name)?
        .ok_or_else(|| MetadefError::NamespaceNotFound(name.to_owned()).into())
}

fn read_object(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    ns: &str,
    name: &str,
) -> Result<Option<(MetadefObject, u64)>> {
    match table.get((ns, name)).storage()? {
        Some(guard) => record::decode_object(name, guard.value()).map(Some),
        None => Ok(None),
    }
}

fn read_property(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    ns: &str,
    name: &str,
) -> Result<Option<PropertyDefinition>> {
    match table.get((ns, name)).storage()? {
        Some(guard) => record::decode_property(name, guard.value()).map(Some),
        None => Ok(None),
    }
}

fn read_objects(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    ns: &str,
) -> Result<Vec<MetadefObject>> {
    let mut objects = scan(table, ns, record::decode_object)?;
    objects.sort_by_key(|(object, seq)| (object.created_at, *seq));
    Ok(objects.into_iter().map(|(object, _)| object).collect())
}

fn read_properties(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    ns: &str,
) -> Result<BTreeMap<String, PropertyDefinition>> {
    Ok(scan(table, ns, |name, bytes| {
        Ok((name.to_owned(), record::decode_property(name, bytes)?))
    })?
    .into_iter()
    .collect())
}

fn read_tags(
    table: &impl ReadableTable<(&'static str, &'static str), (u64, i64, i64)>,
    ns: &str,
) -> Result<Vec<MetadefTag>> {
    let mut tags = scan(table, ns, |name, (seq, created, updated)| {
        Ok((seq, tag(name, created, updated)))
    })?;
    tags.sort_by_key(|(seq, tag)| (tag.created_at, *seq));
    Ok(tags.into_iter().map(|(_, tag)| tag).collect())
}

fn read_associations(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    ns: &str,
) -> Result<Vec<ResourceTypeAssociation>> {
    let mut associations = scan(table, ns, record::decode_association)?;
    associations.sort_by_key(|(association, seq)| (association.created_at, *seq));
    Ok(associations.into_iter().map(|(a, _)| a).collect())
}

// ---- writes

fn put_namespace(txn: &Txn, namespace: &Namespace, seq: u64) -> Result<()> {
    txn.open_table(NAMESPACES)
        .storage()?
        .insert(
            namespace.namespace.as_str(),
            record::encode_namespace(namespace, seq).as_slice(),
        )
        .storage()?;
    Ok(())
}

/// Writes a new namespace and its content (the namespace must not exist).
fn insert_document(txn: &Txn, document: &NamespaceDocument, seeded: bool) -> Result<()> {
    let ns = document.namespace.namespace.as_str();
    put_namespace(txn, &document.namespace, tables::next_seq(txn)?)?;
    for association in &document.resource_type_associations {
        let known = document
            .resource_types
            .iter()
            .find(|rt| rt.name == association.name);
        insert_association(txn, ns, association, seeded, known)?;
    }
    let mut properties = txn.open_table(PROPERTIES).storage()?;
    for (name, definition) in &document.properties {
        properties
            .insert(
                (ns, name.as_str()),
                record::encode_property(definition).as_slice(),
            )
            .storage()?;
    }
    drop(properties);
    for object in &document.objects {
        insert_object(txn, ns, object)?;
    }
    for tag in &document.tags {
        insert_tag(txn, ns, tag)?;
    }
    Ok(())
}

fn insert_object(txn: &Txn, ns: &str, object: &MetadefObject) -> Result<()> {
    let seq = tables::next_seq(txn)?;
    let mut table = txn.open_table(OBJECTS).storage()?;
    if table.get((ns, object.name.as_str())).storage()?.is_some() {
        return Err(duplicate_object(ns, &object.name));
    }
    table
        .insert(
            (ns, object.name.as_str()),
            record::encode_object(object, seq).as_slice(),
        )
        .storage()?;
    Ok(())
}

fn insert_tag(txn: &Txn, ns: &str, tag: &MetadefTag) -> Result<()> {
    let seq = tables::next_seq(txn)?;
    let mut table = txn.open_table(TAGS).storage()?;
    if table.get((ns, tag.name.as_str())).storage()?.is_some() {
        return Err(duplicate_tag(ns, &tag.name));
    }
    table
        .insert(
            (ns, tag.name.as_str()),
            (
                seq,
                tag.created_at.as_unix_micros(),
                tag.updated_at.as_unix_micros(),
            ),
        )
        .storage()?;
    Ok(())
}

/// Adds an association, creating its resource type if new: as `known` says when given, else
/// with the association's times and protected when `seeded`.
fn insert_association(
    txn: &Txn,
    ns: &str,
    association: &ResourceTypeAssociation,
    seeded: bool,
    known: Option<&ResourceType>,
) -> Result<()> {
    let name = association.name.as_str();
    let has_type = txn
        .open_table(RESOURCE_TYPES)
        .storage()?
        .get(name)
        .storage()?
        .is_some();
    if !has_type {
        let seq = tables::next_seq(txn)?;
        let value = match known {
            Some(rt) => (
                seq,
                rt.protected,
                rt.created_at.as_unix_micros(),
                rt.updated_at.as_unix_micros(),
            ),
            None => {
                let at = association.created_at.as_unix_micros();
                (seq, seeded, at, at)
            }
        };
        txn.open_table(RESOURCE_TYPES)
            .storage()?
            .insert(name, value)
            .storage()?;
    }
    let seq = tables::next_seq(txn)?;
    let mut table = txn.open_table(ASSOCIATIONS).storage()?;
    if table.get((ns, name)).storage()?.is_some() {
        return Err(MetadefError::DuplicateAssociation {
            namespace: ns.to_owned(),
            resource_type: name.to_owned(),
        }
        .into());
    }
    table
        .insert(
            (ns, name),
            record::encode_association(association, seq).as_slice(),
        )
        .storage()?;
    Ok(())
}

/// Removes every entry of namespace `ns` from a `(namespace, name)` table.
fn clear<V: redb::Value + 'static>(
    txn: &Txn,
    definition: redb::TableDefinition<(&'static str, &'static str), V>,
    ns: &str,
) -> Result<()> {
    let mut table = txn.open_table(definition).storage()?;
    let (low, high) = name_bounds();
    let mut names = Vec::new();
    for entry in table.range((ns, low)..=(ns, high.as_str())).storage()? {
        let (key, _) = entry.storage()?;
        names.push(key.value().1.to_owned());
    }
    for name in &names {
        table.remove((ns, name.as_str())).storage()?;
    }
    Ok(())
}

/// Moves every tag of namespace `from` to namespace `to`.
fn move_tags(txn: &Txn, from: &str, to: &str) -> Result<()> {
    let mut table = txn.open_table(TAGS).storage()?;
    let (low, high) = name_bounds();
    let mut entries = Vec::new();
    for entry in table.range((from, low)..=(from, high.as_str())).storage()? {
        let (key, value) = entry.storage()?;
        entries.push((key.value().1.to_owned(), value.value()));
    }
    for (name, value) in entries {
        table.remove((from, name.as_str())).storage()?;
        table.insert((to, name.as_str()), value).storage()?;
    }
    Ok(())
}

/// Moves every byte-record entry of namespace `from` to namespace `to`.
fn move_records(
    txn: &Txn,
    definition: redb::TableDefinition<(&'static str, &'static str), &'static [u8]>,
    from: &str,
    to: &str,
) -> Result<()> {
    let mut table = txn.open_table(definition).storage()?;
    let (low, high) = name_bounds();
    let mut entries = Vec::new();
    for entry in table.range((from, low)..=(from, high.as_str())).storage()? {
        let (key, value) = entry.storage()?;
        entries.push((key.value().1.to_owned(), value.value().to_vec()));
    }
    for (name, bytes) in entries {
        table.remove((from, name.as_str())).storage()?;
        table
            .insert((to, name.as_str()), bytes.as_slice())
            .storage()?;
    }
    Ok(())
}

fn rename_content(txn: &Txn, from: &str, to: &str) -> Result<()> {
    move_records(txn, OBJECTS, from, to)?;
    move_records(txn, PROPERTIES, from, to)?;
    move_records(txn, ASSOCIATIONS, from, to)?;
    move_tags(txn, from, to)
}

fn remove_namespace(txn: &Txn, name: &str) -> Result<()> {
    clear(txn, OBJECTS, name)?;
    clear(txn, PROPERTIES, name)?;
    clear(txn, TAGS, name)?;
    clear(txn, ASSOCIATIONS, name)?;
    txn.open_table(NAMESPACES)
        .storage()?
        .remove(name)
        .storage()?;
    Ok(())
}

/// Adds what namespace `document` names and the store lacks; with `prefer_new`, also replaces
/// what differs. Returns whether anything was written.
fn merge(
    txn: &Txn,
    document: &NamespaceDocument,
    now: Timestamp,
    prefer_new: bool,
) -> Result<bool> {
    let ns = document.namespace.namespace.as_str();
    let mut changed = false;

    for association in &document.resource_type_associations {
        let existing = read_associations(&txn.open_table(ASSOCIATIONS).storage()?, ns)?
            .into_iter()
            .find(|a| a.name == association.name);
        match existing {
            None => {
                let known = document
                    .resource_types
                    .iter()
                    .find(|rt| rt.name == association.name);
                insert_association(txn, ns, association, true, known)?;
                changed = true;
            }
            Some(old)
                if prefer_new
                    && (old.prefix != association.prefix
                        || old.properties_target != association.properties_target) =>
            {
                let seq = association_seq(txn, ns, &association.name)?;
                let mut new = association.clone();
                new.created_at = old.created_at;
                new.updated_at = now;
                txn.open_table(ASSOCIATIONS)
                    .storage()?
                    .insert(
                        (ns, association.name.as_str()),
                        record::encode_association(&new, seq).as_slice(),
                    )
                    .storage()?;
                changed = true;
            }
            Some(_) => {}
        }
    }

    {
        let mut table = txn.open_table(PROPERTIES).storage()?;
        for (name, definition) in &document.properties {
            let existing = read_property(&table, ns, name)?;
            let write = match &existing {
                None => true,
                Some(old) => prefer_new && old != definition,
            };
            if write {
                table
                    .insert(
                        (ns, name.as_str()),
                        record::encode_property(definition).as_slice(),
                    )
                    .storage()?;
                changed = true;
            }
        }
    }

    for object in &document.objects {
        let existing = read_object(&txn.open_table(OBJECTS).storage()?, ns, &object.name)?;
        match existing {
            None => {
                insert_object(txn, ns, object)?;
                changed = true;
            }
            Some((old, seq))
                if prefer_new
                    && (old.description != object.description
                        || old.required != object.required
                        || old.properties != object.properties) =>
            {
                let mut new = object.clone();
                new.created_at = old.created_at;
                new.updated_at = now;
                txn.open_table(OBJECTS)
                    .storage()?
                    .insert(
                        (ns, object.name.as_str()),
                        record::encode_object(&new, seq).as_slice(),
                    )
                    .storage()?;
                changed = true;
            }
            Some(_) => {}
        }
    }

    for tag in &document.tags {
        let exists = txn
            .open_table(TAGS)
            .storage()?
            .get((ns, tag.name.as_str()))
            .storage()?
            .is_some();
        // A tag is only its name: an existing one is already what the document says.
        if !exists {
            insert_tag(txn, ns, tag)?;
            changed = true;
        }
    }
    Ok(changed)
}

fn association_seq(txn: &Txn, ns: &str, name: &str) -> Result<u64> {
    let table = txn.open_table(ASSOCIATIONS).storage()?;
    let guard = table.get((ns, name)).storage()?.ok_or_else(|| {
        Error::Corrupt(format!(
            "metadef association {ns}/{name} vanished mid-transaction"
        ))
    })?;
    Ok(record::decode_association(name, guard.value())?.1)
}
