//! The engine-neutral half of every metadefs write: validation, the write rules of namespaces,
//! objects, properties, tags and resource-type associations, the load modes (skip, merge,
//! merge preferring the document, overwrite) and the load report.
//!
//! An engine supplies two things: [`MetadefTxn`], the storage primitives of one write
//! transaction (read, put and remove a namespace record and the records of its children), and
//! [`MetadefStore`], which runs a closure in one such transaction (commit on `Ok`, roll back
//! otherwise). Every record crosses [`MetadefTxn`] already encoded (`record.rs` of the redb
//! engine, the one format both engines store), so a new engine adds files and no rules.

use std::collections::BTreeSet;

use super::{
    check_name, ContentKind, LoadMode, LoadReport, MetadefError, MetadefObject, MetadefTag,
    Namespace, NamespaceDocument, PropertyDefinition, ProtectedRecord, ResourceType,
    ResourceTypeAssociation,
};
use crate::engine::redb::metadefs::record;
use crate::error::{Error, Result};
use crate::types::Timestamp;

/// A table of encoded records keyed by `(namespace, name)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Records {
    Objects,
    Properties,
    Associations,
}

/// One kind of what a namespace holds: a table of encoded records, or the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Children {
    Records(Records),
    Tags,
}

/// A stored tag: `(seq, created_at, updated_at)`, times in Unix microseconds.
pub(crate) type TagRow = (u64, i64, i64);

/// A stored resource type: `(seq, protected, created_at, updated_at)`, times in Unix
/// microseconds.
pub(crate) type ResourceTypeRow = (u64, bool, i64, i64);

/// The storage primitives of one metadefs write transaction. Names are exact; a `put`
/// replaces what the key holds.
pub(crate) trait MetadefTxn {
    /// The next value of the metadefs creation sequence.
    fn next_seq(&mut self) -> Result<u64>;
    /// The encoded record of namespace `name`.
    fn namespace_record(&mut self, name: &str) -> Result<Option<Vec<u8>>>;
    fn put_namespace_record(&mut self, name: &str, bytes: &[u8]) -> Result<()>;
    /// Removes namespace `name`'s own record (not what it holds).
    fn remove_namespace_record(&mut self, name: &str) -> Result<()>;
    fn record(&mut self, table: Records, ns: &str, name: &str) -> Result<Option<Vec<u8>>>;
    fn put_record(&mut self, table: Records, ns: &str, name: &str, bytes: &[u8]) -> Result<()>;
    fn remove_record(&mut self, table: Records, ns: &str, name: &str) -> Result<()>;
    fn tag_row(&mut self, ns: &str, name: &str) -> Result<Option<TagRow>>;
    fn put_tag_row(&mut self, ns: &str, name: &str, row: TagRow) -> Result<()>;
    fn remove_tag_row(&mut self, ns: &str, name: &str) -> Result<()>;
    /// Removes every entry of namespace `ns` of one kind.
    fn clear(&mut self, children: Children, ns: &str) -> Result<()>;
    /// Moves every entry of namespace `from` of one kind to namespace `to`.
    fn move_children(&mut self, children: Children, from: &str, to: &str) -> Result<()>;
    fn has_resource_type(&mut self, name: &str) -> Result<bool>;
    /// Adds resource type `name` (which does not exist).
    fn insert_resource_type(&mut self, name: &str, row: ResourceTypeRow) -> Result<()>;
}

/// An engine's metadefs write transaction.
pub(crate) trait MetadefStore {
    /// Runs `op` in one write transaction, with the time it started: commits when `op`
    /// returns `Ok`, rolls back otherwise.
    fn metadef_txn<T>(
        &self,
        op: impl FnOnce(&mut dyn MetadefTxn, Timestamp) -> Result<T>,
    ) -> Result<T>;
}

const EVERY_CHILD: [Children; 4] = [
    Children::Records(Records::Objects),
    Children::Records(Records::Properties),
    Children::Tags,
    Children::Records(Records::Associations),
];

// ---- reads inside a write

pub(crate) fn read_namespace(
    t: &mut dyn MetadefTxn,
    name: &str,
) -> Result<Option<(Namespace, u64)>> {
    t.namespace_record(name)?
        .map(|bytes| record::decode_namespace(name, &bytes))
        .transpose()
}

pub(crate) fn require_namespace(t: &mut dyn MetadefTxn, name: &str) -> Result<(Namespace, u64)> {
    read_namespace(t, name)?.ok_or_else(|| MetadefError::NamespaceNotFound(name.to_owned()).into())
}

pub(crate) fn read_object(
    t: &mut dyn MetadefTxn,
    ns: &str,
    name: &str,
) -> Result<Option<(MetadefObject, u64)>> {
    t.record(Records::Objects, ns, name)?
        .map(|bytes| record::decode_object(name, &bytes))
        .transpose()
}

pub(crate) fn read_property(
    t: &mut dyn MetadefTxn,
    ns: &str,
    name: &str,
) -> Result<Option<PropertyDefinition>> {
    t.record(Records::Properties, ns, name)?
        .map(|bytes| record::decode_property(name, &bytes))
        .transpose()
}

fn read_association(
    t: &mut dyn MetadefTxn,
    ns: &str,
    name: &str,
) -> Result<Option<(ResourceTypeAssociation, u64)>> {
    t.record(Records::Associations, ns, name)?
        .map(|bytes| record::decode_association(name, &bytes))
        .transpose()
}

// ---- write rules

fn put_namespace(t: &mut dyn MetadefTxn, namespace: &Namespace, seq: u64) -> Result<()> {
    t.put_namespace_record(
        &namespace.namespace,
        &record::encode_namespace(namespace, seq),
    )
}

fn put_property(
    t: &mut dyn MetadefTxn,
    ns: &str,
    name: &str,
    definition: &PropertyDefinition,
) -> Result<()> {
    t.put_record(
        Records::Properties,
        ns,
        name,
        &record::encode_property(definition),
    )
}

/// Writes a new namespace and its content (the namespace must not exist).
fn insert_document(
    t: &mut dyn MetadefTxn,
    document: &NamespaceDocument,
    seeded: bool,
) -> Result<()> {
    let ns = document.namespace.namespace.as_str();
    let seq = t.next_seq()?;
    put_namespace(t, &document.namespace, seq)?;
    for association in &document.resource_type_associations {
        let known = document
            .resource_types
            .iter()
            .find(|rt| rt.name == association.name);
        insert_association(t, ns, association, seeded, known)?;
    }
    for (name, definition) in &document.properties {
        put_property(t, ns, name, definition)?;
    }
    for object in &document.objects {
        insert_object(t, ns, object)?;
    }
    for tag in &document.tags {
        insert_tag(t, ns, tag)?;
    }
    Ok(())
}

fn insert_object(t: &mut dyn MetadefTxn, ns: &str, object: &MetadefObject) -> Result<()> {
    let seq = t.next_seq()?;
    if t.record(Records::Objects, ns, &object.name)?.is_some() {
        return Err(duplicate_object(ns, &object.name));
    }
    t.put_record(
        Records::Objects,
        ns,
        &object.name,
        &record::encode_object(object, seq),
    )
}

fn insert_tag(t: &mut dyn MetadefTxn, ns: &str, tag: &MetadefTag) -> Result<()> {
    let seq = t.next_seq()?;
    if t.tag_row(ns, &tag.name)?.is_some() {
        return Err(duplicate_tag(ns, &tag.name));
    }
    t.put_tag_row(
        ns,
        &tag.name,
        (
            seq,
            tag.created_at.as_unix_micros(),
            tag.updated_at.as_unix_micros(),
        ),
    )
}

/// Adds an association, creating its resource type if new: as `known` says when given, else
/// with the association's times and protected when `seeded`.
fn insert_association(
    t: &mut dyn MetadefTxn,
    ns: &str,
    association: &ResourceTypeAssociation,
    seeded: bool,
    known: Option<&ResourceType>,
) -> Result<()> {
    let name = association.name.as_str();
    if !t.has_resource_type(name)? {
        let seq = t.next_seq()?;
        let row = match known {
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
        t.insert_resource_type(name, row)?;
    }
    let seq = t.next_seq()?;
    if t.record(Records::Associations, ns, name)?.is_some() {
        return Err(MetadefError::DuplicateAssociation {
            namespace: ns.to_owned(),
            resource_type: name.to_owned(),
        }
        .into());
    }
    t.put_record(
        Records::Associations,
        ns,
        name,
        &record::encode_association(association, seq),
    )
}

/// Deletes namespace `name` with everything it holds (resource types stay).
fn remove_namespace(t: &mut dyn MetadefTxn, name: &str) -> Result<()> {
    for children in EVERY_CHILD {
        t.clear(children, name)?;
    }
    t.remove_namespace_record(name)
}

/// Adds what namespace `document` names and the store lacks; with `prefer_new`, also replaces
/// what differs. Returns whether anything was written.
fn merge(
    t: &mut dyn MetadefTxn,
    document: &NamespaceDocument,
    now: Timestamp,
    prefer_new: bool,
) -> Result<bool> {
    let ns = document.namespace.namespace.as_str();
    let mut changed = false;

    for association in &document.resource_type_associations {
        match read_association(t, ns, &association.name)? {
            None => {
                let known = document
                    .resource_types
                    .iter()
                    .find(|rt| rt.name == association.name);
                insert_association(t, ns, association, true, known)?;
                changed = true;
            }
            Some((old, seq))
                if prefer_new
                    && (old.prefix != association.prefix
                        || old.properties_target != association.properties_target) =>
            {
                let mut new = association.clone();
                new.created_at = old.created_at;
                new.updated_at = now;
                t.put_record(
                    Records::Associations,
                    ns,
                    &association.name,
                    &record::encode_association(&new, seq),
                )?;
                changed = true;
            }
            Some(_) => {}
        }
    }

    for (name, definition) in &document.properties {
        let write = match read_property(t, ns, name)? {
            None => true,
            Some(old) => prefer_new && old != *definition,
        };
        if write {
            put_property(t, ns, name, definition)?;
            changed = true;
        }
    }

    for object in &document.objects {
        match read_object(t, ns, &object.name)? {
            None => {
                insert_object(t, ns, object)?;
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
                t.put_record(
                    Records::Objects,
                    ns,
                    &object.name,
                    &record::encode_object(&new, seq),
                )?;
                changed = true;
            }
            Some(_) => {}
        }
    }

    for tag in &document.tags {
        // A tag is only its name: an existing one is already what the document says.
        if t.tag_row(ns, &tag.name)?.is_none() {
            insert_tag(t, ns, tag)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// The write calls of [`Metadefs`](super::Metadefs), for the `impl` of an engine that
/// implements [`MetadefStore`]: each one is the rule of the same name in this module, so the
/// engines share even the delegation.
macro_rules! metadef_write_calls {
    () => {
        fn create_metadef_namespace(
            &self,
            document: &$crate::metadefs::NamespaceDocument,
        ) -> $crate::error::Result<()> {
            $crate::metadefs::logic::create_namespace(self, document)
        }

        fn update_metadef_namespace(
            &self,
            name: &str,
            new: &$crate::metadefs::Namespace,
        ) -> $crate::error::Result<$crate::metadefs::Namespace> {
            $crate::metadefs::logic::update_namespace(self, name, new)
        }

        fn delete_metadef_namespace(&self, name: &str) -> $crate::error::Result<()> {
            $crate::metadefs::logic::delete_namespace(self, name)
        }

        fn delete_metadef_content(
            &self,
            name: &str,
            kind: $crate::metadefs::ContentKind,
        ) -> $crate::error::Result<()> {
            $crate::metadefs::logic::delete_content(self, name, kind)
        }

        fn create_metadef_object(
            &self,
            ns: &str,
            object: &$crate::metadefs::MetadefObject,
        ) -> $crate::error::Result<$crate::metadefs::MetadefObject> {
            $crate::metadefs::logic::create_object(self, ns, object)
        }

        fn update_metadef_object(
            &self,
            ns: &str,
            name: &str,
            object: &$crate::metadefs::MetadefObject,
        ) -> $crate::error::Result<$crate::metadefs::MetadefObject> {
            $crate::metadefs::logic::update_object(self, ns, name, object)
        }

        fn delete_metadef_object(&self, ns: &str, name: &str) -> $crate::error::Result<()> {
            $crate::metadefs::logic::delete_object(self, ns, name)
        }

        fn create_metadef_property(
            &self,
            ns: &str,
            name: &str,
            definition: &$crate::metadefs::PropertyDefinition,
        ) -> $crate::error::Result<()> {
            $crate::metadefs::logic::create_property(self, ns, name, definition)
        }

        fn update_metadef_property(
            &self,
            ns: &str,
            name: &str,
            new_name: &str,
            definition: &$crate::metadefs::PropertyDefinition,
        ) -> $crate::error::Result<()> {
            $crate::metadefs::logic::update_property(self, ns, name, new_name, definition)
        }

        fn delete_metadef_property(&self, ns: &str, name: &str) -> $crate::error::Result<()> {
            $crate::metadefs::logic::delete_property(self, ns, name)
        }

        fn create_metadef_tag(
            &self,
            ns: &str,
            name: &str,
        ) -> $crate::error::Result<$crate::metadefs::MetadefTag> {
            $crate::metadefs::logic::create_tag(self, ns, name)
        }

        fn create_metadef_tags(
            &self,
            ns: &str,
            names: &[String],
            append: bool,
        ) -> $crate::error::Result<Vec<$crate::metadefs::MetadefTag>> {
            $crate::metadefs::logic::create_tags(self, ns, names, append)
        }

        fn rename_metadef_tag(
            &self,
            ns: &str,
            name: &str,
            new_name: &str,
        ) -> $crate::error::Result<$crate::metadefs::MetadefTag> {
            $crate::metadefs::logic::rename_tag(self, ns, name, new_name)
        }

        fn delete_metadef_tag(&self, ns: &str, name: &str) -> $crate::error::Result<()> {
            $crate::metadefs::logic::delete_tag(self, ns, name)
        }

        fn associate_metadef_resource_type(
            &self,
            ns: &str,
            association: &$crate::metadefs::ResourceTypeAssociation,
        ) -> $crate::error::Result<$crate::metadefs::ResourceTypeAssociation> {
            $crate::metadefs::logic::associate_resource_type(self, ns, association)
        }

        fn deassociate_metadef_resource_type(
            &self,
            ns: &str,
            name: &str,
        ) -> $crate::error::Result<()> {
            $crate::metadefs::logic::deassociate_resource_type(self, ns, name)
        }

        fn load_metadefs(
            &self,
            documents: &[$crate::metadefs::NamespaceDocument],
            mode: $crate::metadefs::LoadMode,
        ) -> $crate::error::Result<$crate::metadefs::LoadReport> {
            $crate::metadefs::logic::load(self, documents, mode)
        }
    };
}
pub(crate) use metadef_write_calls;

// ---- the write calls of [`Metadefs`](super::Metadefs), each one transaction

pub(crate) fn create_namespace(
    store: &impl MetadefStore,
    document: &NamespaceDocument,
) -> Result<()> {
    document.validate()?;
    store.metadef_txn(|t, _| {
        let ns = &document.namespace.namespace;
        if read_namespace(t, ns)?.is_some() {
            return Err(MetadefError::DuplicateNamespace(ns.clone()).into());
        }
        insert_document(t, document, false)
    })
}

pub(crate) fn update_namespace(
    store: &impl MetadefStore,
    name: &str,
    new: &Namespace,
) -> Result<Namespace> {
    new.validate()?;
    store.metadef_txn(|t, now| {
        let (old, seq) = require_namespace(t, name)?;
        let mut stored = new.clone();
        stored.created_at = old.created_at;
        stored.updated_at = now;
        if stored.namespace != name {
            if read_namespace(t, &stored.namespace)?.is_some() {
                return Err(MetadefError::DuplicateNamespace(stored.namespace.clone()).into());
            }
            for children in [
                Children::Records(Records::Objects),
                Children::Records(Records::Properties),
                Children::Records(Records::Associations),
                Children::Tags,
            ] {
                t.move_children(children, name, &stored.namespace)?;
            }
            t.remove_namespace_record(name)?;
        }
        put_namespace(t, &stored, seq)?;
        Ok(stored)
    })
}

pub(crate) fn delete_namespace(store: &impl MetadefStore, name: &str) -> Result<()> {
    store.metadef_txn(|t, _| {
        let (namespace, _) = require_namespace(t, name)?;
        refuse_if_protected(&namespace, ProtectedRecord::Namespace)?;
        remove_namespace(t, name)
    })
}

pub(crate) fn delete_content(
    store: &impl MetadefStore,
    name: &str,
    kind: ContentKind,
) -> Result<()> {
    store.metadef_txn(|t, _| {
        let (namespace, _) = require_namespace(t, name)?;
        refuse_if_protected(&namespace, ProtectedRecord::Namespace)?;
        let children = match kind {
            ContentKind::Objects => Children::Records(Records::Objects),
            ContentKind::Properties => Children::Records(Records::Properties),
            ContentKind::Tags => Children::Tags,
        };
        t.clear(children, name)
    })
}

pub(crate) fn create_object(
    store: &impl MetadefStore,
    ns: &str,
    object: &MetadefObject,
) -> Result<MetadefObject> {
    object.validate()?;
    store.metadef_txn(|t, now| {
        require_namespace(t, ns)?;
        let mut stored = object.clone();
        stored.created_at = now;
        stored.updated_at = now;
        insert_object(t, ns, &stored)?;
        Ok(stored)
    })
}

pub(crate) fn update_object(
    store: &impl MetadefStore,
    ns: &str,
    name: &str,
    object: &MetadefObject,
) -> Result<MetadefObject> {
    object.validate()?;
    store.metadef_txn(|t, now| {
        require_namespace(t, ns)?;
        let (old, seq) = read_object(t, ns, name)?.ok_or_else(|| object_not_found(ns, name))?;
        let mut stored = object.clone();
        stored.created_at = old.created_at;
        stored.updated_at = now;
        if stored.name != name {
            if t.record(Records::Objects, ns, &stored.name)?.is_some() {
                return Err(duplicate_object(ns, &stored.name));
            }
            t.remove_record(Records::Objects, ns, name)?;
        }
        t.put_record(
            Records::Objects,
            ns,
            &stored.name,
            &record::encode_object(&stored, seq),
        )?;
        Ok(stored)
    })
}

pub(crate) fn delete_object(store: &impl MetadefStore, ns: &str, name: &str) -> Result<()> {
    store.metadef_txn(|t, _| {
        let (namespace, _) = require_namespace(t, ns)?;
        if t.record(Records::Objects, ns, name)?.is_none() {
            return Err(object_not_found(ns, name));
        }
        refuse_if_protected(&namespace, ProtectedRecord::Object(name.to_owned()))?;
        t.remove_record(Records::Objects, ns, name)
    })
}

pub(crate) fn create_property(
    store: &impl MetadefStore,
    ns: &str,
    name: &str,
    definition: &PropertyDefinition,
) -> Result<()> {
    definition.validate(name)?;
    store.metadef_txn(|t, _| {
        require_namespace(t, ns)?;
        if t.record(Records::Properties, ns, name)?.is_some() {
            return Err(duplicate_property(ns, name));
        }
        put_property(t, ns, name, definition)
    })
}

pub(crate) fn update_property(
    store: &impl MetadefStore,
    ns: &str,
    name: &str,
    new_name: &str,
    definition: &PropertyDefinition,
) -> Result<()> {
    definition.validate(new_name)?;
    store.metadef_txn(|t, _| {
        require_namespace(t, ns)?;
        if t.record(Records::Properties, ns, name)?.is_none() {
            return Err(property_not_found(ns, name));
        }
        if new_name != name {
            if t.record(Records::Properties, ns, new_name)?.is_some() {
                return Err(duplicate_property(ns, new_name));
            }
            t.remove_record(Records::Properties, ns, name)?;
        }
        put_property(t, ns, new_name, definition)
    })
}

pub(crate) fn delete_property(store: &impl MetadefStore, ns: &str, name: &str) -> Result<()> {
    store.metadef_txn(|t, _| {
        let (namespace, _) = require_namespace(t, ns)?;
        if t.record(Records::Properties, ns, name)?.is_none() {
            return Err(property_not_found(ns, name));
        }
        refuse_if_protected(&namespace, ProtectedRecord::Property(name.to_owned()))?;
        t.remove_record(Records::Properties, ns, name)
    })
}

pub(crate) fn create_tag(store: &impl MetadefStore, ns: &str, name: &str) -> Result<MetadefTag> {
    check_name("tag", name)?;
    store.metadef_txn(|t, now| {
        require_namespace(t, ns)?;
        let stored = tag(name, now.as_unix_micros(), now.as_unix_micros());
        insert_tag(t, ns, &stored)?;
        Ok(stored)
    })
}

pub(crate) fn create_tags(
    store: &impl MetadefStore,
    ns: &str,
    names: &[String],
    append: bool,
) -> Result<Vec<MetadefTag>> {
    for name in names {
        check_name("tag", name)?;
    }
    store.metadef_txn(|t, now| {
        require_namespace(t, ns)?;
        if !append {
            t.clear(Children::Tags, ns)?;
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let stored = tag(name, now.as_unix_micros(), now.as_unix_micros());
            insert_tag(t, ns, &stored)?;
            out.push(stored);
        }
        Ok(out)
    })
}

pub(crate) fn rename_tag(
    store: &impl MetadefStore,
    ns: &str,
    name: &str,
    new_name: &str,
) -> Result<MetadefTag> {
    check_name("tag", new_name)?;
    store.metadef_txn(|t, now| {
        require_namespace(t, ns)?;
        let (seq, created, _) = t
            .tag_row(ns, name)?
            .ok_or_else(|| tag_not_found(ns, name))?;
        if new_name != name {
            if t.tag_row(ns, new_name)?.is_some() {
                return Err(duplicate_tag(ns, new_name));
            }
            t.remove_tag_row(ns, name)?;
        }
        let updated = now.as_unix_micros();
        t.put_tag_row(ns, new_name, (seq, created, updated))?;
        Ok(tag(new_name, created, updated))
    })
}

pub(crate) fn delete_tag(store: &impl MetadefStore, ns: &str, name: &str) -> Result<()> {
    store.metadef_txn(|t, _| {
        let (namespace, _) = require_namespace(t, ns)?;
        if t.tag_row(ns, name)?.is_none() {
            return Err(tag_not_found(ns, name));
        }
        refuse_if_protected(&namespace, ProtectedRecord::Tag(name.to_owned()))?;
        t.remove_tag_row(ns, name)
    })
}

pub(crate) fn associate_resource_type(
    store: &impl MetadefStore,
    ns: &str,
    association: &ResourceTypeAssociation,
) -> Result<ResourceTypeAssociation> {
    association.validate()?;
    store.metadef_txn(|t, now| {
        require_namespace(t, ns)?;
        let mut stored = association.clone();
        stored.created_at = now;
        stored.updated_at = now;
        insert_association(t, ns, &stored, false, None)?;
        Ok(stored)
    })
}

pub(crate) fn deassociate_resource_type(
    store: &impl MetadefStore,
    ns: &str,
    name: &str,
) -> Result<()> {
    store.metadef_txn(|t, _| {
        let (namespace, _) = require_namespace(t, ns)?;
        if t.record(Records::Associations, ns, name)?.is_none() {
            return Err(MetadefError::AssociationNotFound {
                namespace: ns.to_owned(),
                resource_type: name.to_owned(),
            }
            .into());
        }
        refuse_if_protected(&namespace, ProtectedRecord::Association(name.to_owned()))?;
        t.remove_record(Records::Associations, ns, name)
    })
}

pub(crate) fn load(
    store: &impl MetadefStore,
    documents: &[NamespaceDocument],
    mode: LoadMode,
) -> Result<LoadReport> {
    let mut seen = BTreeSet::new();
    for document in documents {
        document.validate()?;
        if !seen.insert(document.namespace.namespace.as_str()) {
            return Err(
                MetadefError::DuplicateNamespace(document.namespace.namespace.clone()).into(),
            );
        }
    }
    store.metadef_txn(|t, now| {
        let mut report = LoadReport::default();
        for document in documents {
            let name = &document.namespace.namespace;
            let existing = match (read_namespace(t, name)?, mode) {
                (Some(_), LoadMode::Overwrite) => {
                    remove_namespace(t, name)?;
                    None
                }
                (other, _) => other,
            };
            let Some((namespace, seq)) = existing else {
                insert_document(t, document, true)?;
                report.created.push(name.clone());
                continue;
            };
            let changed = match mode {
                LoadMode::SkipExisting | LoadMode::Overwrite => false,
                LoadMode::Merge => merge(t, document, now, false)?,
                LoadMode::MergePreferNew => {
                    let mut wanted = document.namespace.clone();
                    wanted.created_at = namespace.created_at;
                    wanted.updated_at = namespace.updated_at;
                    let fields_changed = wanted != namespace;
                    if fields_changed {
                        wanted.updated_at = now;
                        put_namespace(t, &wanted, seq)?;
                    }
                    merge(t, document, now, true)? || fields_changed
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

// ---- export

/// Sets `document.resource_types` to the resource types (of `all`, in its order) that the
/// document's associations name: what an exported namespace carries.
pub(crate) fn attach_resource_types(document: &mut NamespaceDocument, all: &[ResourceType]) {
    let named: BTreeSet<&str> = document
        .resource_type_associations
        .iter()
        .map(|association| association.name.as_str())
        .collect();
    document.resource_types = all
        .iter()
        .filter(|rt| named.contains(rt.name.as_str()))
        .cloned()
        .collect();
}

// ---- records and errors the engines share

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
