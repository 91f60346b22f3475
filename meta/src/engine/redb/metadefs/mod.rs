//! The redb engine's metadefs ([`Metadefs`] for [`RedbBackend`]): each call is one redb
//! transaction, so a failed write (a duplicate, a protected namespace, an invalid record)
//! writes nothing at all. `tables.rs` has the layout, `record.rs` the encodings; the write
//! rules are `metadefs::logic`'s, over this file's [`MetadefTxn`] for a write transaction.
//!
//! Writes set `updated_at` (and `created_at` of what they create) to the time the transaction
//! started, except `create_metadef_namespace` and `load_metadefs`, which store the timestamps
//! they are given (a load of an export keeps the exported times).

pub(crate) mod record;
pub(crate) mod tables;

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::RedbBackend;
use super::StorageResultExt;
use crate::error::Result;
use crate::metadefs::logic::{
    self, object_not_found, property_not_found, tag, tag_not_found, Children, MetadefStore,
    MetadefTxn, Records, ResourceTypeRow, TagRow,
};
use crate::metadefs::page::{page_namespaces, page_tags};
use crate::metadefs::{MetadefError, Metadefs};
use crate::types::Timestamp;

use self::tables::{
    name_bounds, scan, ASSOCIATIONS, NAMESPACES, OBJECTS, PROPERTIES, RESOURCE_TYPES, TAGS,
};
use crate::metadefs::{
    MetadefObject, MetadefTag, Namespace, NamespaceDocument, NamespaceQuery, PropertyDefinition,
    ResourceType, ResourceTypeAssociation, TagQuery,
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
                logic::attach_resource_types(&mut document, &all_types);
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

    // ---- writes: the rules are `metadefs::logic`'s, over this engine's `MetadefTxn`
    logic::metadef_write_calls!();
}

/// Runs `op` in one write transaction, with the transaction's start time: commits when it
/// returns `Ok`, rolls back otherwise.
fn metadef_write<T>(
    backend: &RedbBackend,
    op: impl FnOnce(&mut Txn, Timestamp) -> Result<T>,
) -> Result<T> {
    let mut txn = backend.inner.db.begin_write().storage()?;
    match op(&mut txn, Timestamp::now()) {
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

impl MetadefStore for RedbBackend {
    fn metadef_txn<T>(
        &self,
        op: impl FnOnce(&mut dyn MetadefTxn, Timestamp) -> Result<T>,
    ) -> Result<T> {
        metadef_write(self, |txn, now| op(txn, now))
    }
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

// ---- the storage primitives of a write (`metadefs::logic` has the rules)

/// The table of encoded records `table` names.
fn records(
    table: Records,
) -> TableDefinition<'static, (&'static str, &'static str), &'static [u8]> {
    match table {
        Records::Objects => OBJECTS,
        Records::Properties => PROPERTIES,
        Records::Associations => ASSOCIATIONS,
    }
}

impl MetadefTxn for Txn {
    fn next_seq(&mut self) -> Result<u64> {
        tables::next_seq(self)
    }

    fn namespace_record(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let table = self.open_table(NAMESPACES).storage()?;
        let found = table
            .get(name)
            .storage()?
            .map(|guard| guard.value().to_vec());
        Ok(found)
    }

    fn put_namespace_record(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.open_table(NAMESPACES)
            .storage()?
            .insert(name, bytes)
            .storage()?;
        Ok(())
    }

    fn remove_namespace_record(&mut self, name: &str) -> Result<()> {
        self.open_table(NAMESPACES)
            .storage()?
            .remove(name)
            .storage()?;
        Ok(())
    }

    fn record(&mut self, table: Records, ns: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let table = self.open_table(records(table)).storage()?;
        let found = table
            .get((ns, name))
            .storage()?
            .map(|guard| guard.value().to_vec());
        Ok(found)
    }

    fn put_record(&mut self, table: Records, ns: &str, name: &str, bytes: &[u8]) -> Result<()> {
        self.open_table(records(table))
            .storage()?
            .insert((ns, name), bytes)
            .storage()?;
        Ok(())
    }

    fn remove_record(&mut self, table: Records, ns: &str, name: &str) -> Result<()> {
        self.open_table(records(table))
            .storage()?
            .remove((ns, name))
            .storage()?;
        Ok(())
    }

    fn tag_row(&mut self, ns: &str, name: &str) -> Result<Option<TagRow>> {
        let table = self.open_table(TAGS).storage()?;
        let found = table.get((ns, name)).storage()?.map(|guard| guard.value());
        Ok(found)
    }

    fn put_tag_row(&mut self, ns: &str, name: &str, row: TagRow) -> Result<()> {
        self.open_table(TAGS)
            .storage()?
            .insert((ns, name), row)
            .storage()?;
        Ok(())
    }

    fn remove_tag_row(&mut self, ns: &str, name: &str) -> Result<()> {
        self.open_table(TAGS)
            .storage()?
            .remove((ns, name))
            .storage()?;
        Ok(())
    }

    fn clear(&mut self, children: Children, ns: &str) -> Result<()> {
        match children {
            Children::Records(table) => clear(self, records(table), ns),
            Children::Tags => clear(self, TAGS, ns),
        }
    }

    fn move_children(&mut self, children: Children, from: &str, to: &str) -> Result<()> {
        match children {
            Children::Records(table) => move_records(self, records(table), from, to),
            Children::Tags => move_tags(self, from, to),
        }
    }

    fn has_resource_type(&mut self, name: &str) -> Result<bool> {
        let table = self.open_table(RESOURCE_TYPES).storage()?;
        let found = table.get(name).storage()?.is_some();
        Ok(found)
    }

    fn insert_resource_type(&mut self, name: &str, row: ResourceTypeRow) -> Result<()> {
        self.open_table(RESOURCE_TYPES)
            .storage()?
            .insert(name, row)
            .storage()?;
        Ok(())
    }
}

/// Removes every entry of namespace `ns` from a `(namespace, name)` table.
fn clear<V: redb::Value + 'static>(
    txn: &Txn,
    definition: TableDefinition<(&'static str, &'static str), V>,
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
    definition: TableDefinition<(&'static str, &'static str), &'static [u8]>,
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
