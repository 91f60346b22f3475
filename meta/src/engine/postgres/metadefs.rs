//! The PostgreSQL engine's metadefs ([`Metadefs`] for [`PgBackend`]), on the tables of schema
//! version 2 (`schema.rs`).
//!
//! The layout mirrors the redb engine's tables row for row — a namespace, object, property or
//! association is one row keyed by `(namespace, name)` holding the same encoded record
//! (`redb::metadefs::record`, which carries its creation `seq`); tags and resource types are
//! plain columns; `seq` comes from the sequence `metadef_seq` — so both engines share the
//! rules, the paging and the record format, and this file is the same algorithm over SQL.
//!
//! Every write is one transaction that first takes a transaction-scoped advisory lock shared
//! by all metadef writes: the catalog is small and rarely written, and with writes one at a
//! time across every gateway, "check, then write" needs no retry and a load of many documents
//! is all or nothing. Reads of more than one row run in one `REPEATABLE READ` transaction, so
//! they see one committed state.

use std::collections::{BTreeMap, BTreeSet};

use super::pool::{Pool, Run};
use super::{i64_of, u64_of, PgBackend};
use crate::engine::redb::metadefs::record;
use crate::engine::redb::metadefs::{
    duplicate_object, duplicate_property, duplicate_tag, object_not_found, page_namespaces,
    page_tags, property_not_found, refuse_if_protected, tag, tag_not_found,
};
use crate::error::{Error, Result};
use crate::metadefs::{
    check_name, ContentKind, LoadMode, LoadReport, MetadefError, MetadefObject, MetadefTag,
    Metadefs, Namespace, NamespaceDocument, NamespaceQuery, PropertyDefinition, ProtectedRecord,
    ResourceType, ResourceTypeAssociation, TagQuery,
};
use crate::types::Timestamp;

/// Advisory lock key held by every metadef write ("glintmdw" in ASCII).
const WRITE_LOCK: i64 = 0x676c_696e_746d_6477;

/// The tables of encoded records keyed by `(namespace, name)`.
#[derive(Debug, Clone, Copy)]
enum Records {
    Objects,
    Properties,
    Associations,
}

impl Records {
    const fn table(self) -> &'static str {
        match self {
            Records::Objects => "metadef_objects",
            Records::Properties => "metadef_properties",
            Records::Associations => "metadef_associations",
        }
    }
}

const TAGS: &str = "metadef_tags";

/// Runs `op` in one write transaction holding the metadef write lock, with the time the lock
/// was obtained: commits when it returns `Ok`, rolls back otherwise.
fn md_write<T>(pool: &Pool, op: impl FnOnce(&mut dyn Run, Timestamp) -> Result<T>) -> Result<T> {
    let mut lease = pool.get()?;
    let mut tx = lease.transaction()?;
    tx.rows("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    // Dropping `tx` on error rolls it back.
    let value = op(&mut tx, Timestamp::now())?;
    tx.commit()?;
    Ok(value)
}

/// Runs `op` in one read-only snapshot.
fn md_read<T>(pool: &Pool, op: impl FnOnce(&mut dyn Run) -> Result<T>) -> Result<T> {
    let mut lease = pool.get()?;
    let mut tx = lease.transaction()?;
    tx.execute(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        &[],
    )?;
    let value = op(&mut tx)?;
    tx.commit()?;
    Ok(value)
}

// ---- rows

fn next_seq(r: &mut dyn Run) -> Result<u64> {
    let row = r
        .row("SELECT nextval('metadef_seq')", &[])?
        .ok_or_else(|| Error::Corrupt("nextval returned no row".into()))?;
    Ok(u64_of(row.get(0)))
}

fn read_namespace(r: &mut dyn Run, name: &str) -> Result<Option<(Namespace, u64)>> {
    match r.row(
        "SELECT record FROM metadef_namespaces WHERE name = $1",
        &[&name],
    )? {
        Some(row) => {
            let bytes: Vec<u8> = row.get(0);
            record::decode_namespace(name, &bytes).map(Some)
        }
        None => Ok(None),
    }
}

fn require_namespace(r: &mut dyn Run, name: &str) -> Result<(Namespace, u64)> {
    read_namespace(r, name)?.ok_or_else(|| MetadefError::NamespaceNotFound(name.to_owned()).into())
}

fn all_namespaces(r: &mut dyn Run) -> Result<Vec<(Namespace, u64)>> {
    r.rows(
        "SELECT name, record FROM metadef_namespaces ORDER BY name",
        &[],
    )?
    .iter()
    .map(|row| {
        let name: String = row.get(0);
        let bytes: Vec<u8> = row.get(1);
        record::decode_namespace(&name, &bytes)
    })
    .collect()
}

fn put_namespace(r: &mut dyn Run, namespace: &Namespace, seq: u64) -> Result<()> {
    r.execute(
        "INSERT INTO metadef_namespaces (name, record) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
        &[
            &namespace.namespace,
            &record::encode_namespace(namespace, seq),
        ],
    )?;
    Ok(())
}

fn get_record(r: &mut dyn Run, table: Records, ns: &str, name: &str) -> Result<Option<Vec<u8>>> {
    let sql = format!(
        "SELECT record FROM {} WHERE namespace = $1 AND name = $2",
        table.table()
    );
    Ok(r.row(&sql, &[&ns, &name])?.map(|row| row.get(0)))
}

fn put_record(r: &mut dyn Run, table: Records, ns: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let sql = format!(
        "INSERT INTO {} (namespace, name, record) VALUES ($1, $2, $3)
         ON CONFLICT (namespace, name) DO UPDATE SET record = EXCLUDED.record",
        table.table()
    );
    r.execute(&sql, &[&ns, &name, &bytes])?;
    Ok(())
}

fn remove(r: &mut dyn Run, table: &str, ns: &str, name: &str) -> Result<()> {
    let sql = format!("DELETE FROM {table} WHERE namespace = $1 AND name = $2");
    r.execute(&sql, &[&ns, &name])?;
    Ok(())
}

/// The `(name, record)` rows of namespace `ns`, by name.
fn scan(r: &mut dyn Run, table: Records, ns: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let sql = format!(
        "SELECT name, record FROM {} WHERE namespace = $1 ORDER BY name",
        table.table()
    );
    Ok(r.rows(&sql, &[&ns])?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Removes every row of namespace `ns` from `table`.
fn clear(r: &mut dyn Run, table: &str, ns: &str) -> Result<()> {
    let sql = format!("DELETE FROM {table} WHERE namespace = $1");
    r.execute(&sql, &[&ns])?;
    Ok(())
}

/// Moves every row of namespace `from` in `table` to namespace `to`.
fn move_rows(r: &mut dyn Run, table: &str, from: &str, to: &str) -> Result<()> {
    let sql = format!("UPDATE {table} SET namespace = $2 WHERE namespace = $1");
    r.execute(&sql, &[&from, &to])?;
    Ok(())
}

type TagRow = (u64, i64, i64);

fn get_tag(r: &mut dyn Run, ns: &str, name: &str) -> Result<Option<TagRow>> {
    Ok(r.row(
        "SELECT seq, created_at, updated_at FROM metadef_tags
             WHERE namespace = $1 AND name = $2",
        &[&ns, &name],
    )?
    .map(|row| (u64_of(row.get(0)), row.get(1), row.get(2))))
}

fn put_tag(r: &mut dyn Run, ns: &str, name: &str, (seq, created, updated): TagRow) -> Result<()> {
    r.execute(
        "INSERT INTO metadef_tags (namespace, name, seq, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (namespace, name) DO UPDATE SET seq = EXCLUDED.seq,
             created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
        &[&ns, &name, &i64_of(seq, "metadef seq")?, &created, &updated],
    )?;
    Ok(())
}

fn scan_tags(r: &mut dyn Run, ns: &str) -> Result<Vec<(u64, MetadefTag)>> {
    Ok(r.rows(
        "SELECT name, seq, created_at, updated_at FROM metadef_tags
             WHERE namespace = $1 ORDER BY name",
        &[&ns],
    )?
    .iter()
    .map(|row| {
        let name: String = row.get(0);
        (u64_of(row.get(1)), tag(&name, row.get(2), row.get(3)))
    })
    .collect())
}

fn has_resource_type(r: &mut dyn Run, name: &str) -> Result<bool> {
    Ok(r.row(
        "SELECT 1 FROM metadef_resource_types WHERE name = $1",
        &[&name],
    )?
    .is_some())
}

// ---- reads shared by reads and writes

fn read_object(r: &mut dyn Run, ns: &str, name: &str) -> Result<Option<(MetadefObject, u64)>> {
    get_record(r, Records::Objects, ns, name)?
        .map(|bytes| record::decode_object(name, &bytes))
        .transpose()
}

fn read_property(r: &mut dyn Run, ns: &str, name: &str) -> Result<Option<PropertyDefinition>> {
    get_record(r, Records::Properties, ns, name)?
        .map(|bytes| record::decode_property(name, &bytes))
        .transpose()
}

fn read_objects(r: &mut dyn Run, ns: &str) -> Result<Vec<MetadefObject>> {
    let mut objects = scan(r, Records::Objects, ns)?
        .iter()
        .map(|(name, bytes)| record::decode_object(name, bytes))
        .collect::<Result<Vec<_>>>()?;
    objects.sort_by_key(|(object, seq)| (object.created_at, *seq));
    Ok(objects.into_iter().map(|(object, _)| object).collect())
}

fn read_properties(r: &mut dyn Run, ns: &str) -> Result<BTreeMap<String, PropertyDefinition>> {
    scan(r, Records::Properties, ns)?
        .into_iter()
        .map(|(name, bytes)| {
            let definition = record::decode_property(&name, &bytes)?;
            Ok((name, definition))
        })
        .collect()
}

fn read_tags(r: &mut dyn Run, ns: &str) -> Result<Vec<MetadefTag>> {
    let mut tags = scan_tags(r, ns)?;
    tags.sort_by_key(|(seq, tag)| (tag.created_at, *seq));
    Ok(tags.into_iter().map(|(_, tag)| tag).collect())
}

fn read_associations_seq(r: &mut dyn Run, ns: &str) -> Result<Vec<(ResourceTypeAssociation, u64)>> {
    let mut associations = scan(r, Records::Associations, ns)?
        .iter()
        .map(|(name, bytes)| record::decode_association(name, bytes))
        .collect::<Result<Vec<_>>>()?;
    associations.sort_by_key(|(association, seq)| (association.created_at, *seq));
    Ok(associations)
}

fn read_associations(r: &mut dyn Run, ns: &str) -> Result<Vec<ResourceTypeAssociation>> {
    Ok(read_associations_seq(r, ns)?
        .into_iter()
        .map(|(a, _)| a)
        .collect())
}

fn read_resource_types(r: &mut dyn Run) -> Result<Vec<ResourceType>> {
    let mut out: Vec<(u64, ResourceType)> = r
        .rows(
            "SELECT name, seq, protected, created_at, updated_at FROM metadef_resource_types",
            &[],
        )?
        .iter()
        .map(|row| {
            (
                u64_of(row.get(1)),
                ResourceType {
                    name: row.get(0),
                    protected: row.get(2),
                    created_at: Timestamp::from_unix_micros(row.get(3)),
                    updated_at: Timestamp::from_unix_micros(row.get(4)),
                },
            )
        })
        .collect();
    out.sort_by_key(|(seq, rt)| (rt.created_at, *seq));
    Ok(out.into_iter().map(|(_, rt)| rt).collect())
}

fn read_document(r: &mut dyn Run, name: &str) -> Result<Option<NamespaceDocument>> {
    let Some((namespace, _)) = read_namespace(r, name)? else {
        return Ok(None);
    };
    Ok(Some(NamespaceDocument {
        resource_type_associations: read_associations(r, name)?,
        properties: read_properties(r, name)?,
        objects: read_objects(r, name)?,
        tags: read_tags(r, name)?,
        resource_types: Vec::new(),
        namespace,
    }))
}

// ---- writes

/// Writes a new namespace and its content (the namespace must not exist).
fn insert_document(r: &mut dyn Run, document: &NamespaceDocument, seeded: bool) -> Result<()> {
    let ns = document.namespace.namespace.as_str();
    let seq = next_seq(r)?;
    put_namespace(r, &document.namespace, seq)?;
    for association in &document.resource_type_associations {
        let known = document
            .resource_types
            .iter()
            .find(|rt| rt.name == association.name);
        insert_association(r, ns, association, seeded, known)?;
    }
    for (name, definition) in &document.properties {
        put_record(
            r,
            Records::Properties,
            ns,
            name,
            &record::encode_property(definition),
        )?;
    }
    for object in &document.objects {
        insert_object(r, ns, object)?;
    }
    for tag in &document.tags {
        insert_tag(r, ns, tag)?;
    }
    Ok(())
}

fn insert_object(r: &mut dyn Run, ns: &str, object: &MetadefObject) -> Result<()> {
    let seq = next_seq(r)?;
    if get_record(r, Records::Objects, ns, &object.name)?.is_some() {
        return Err(duplicate_object(ns, &object.name));
    }
    put_record(
        r,
        Records::Objects,
        ns,
        &object.name,
        &record::encode_object(object, seq),
    )
}

fn insert_tag(r: &mut dyn Run, ns: &str, tag: &MetadefTag) -> Result<()> {
    let seq = next_seq(r)?;
    if get_tag(r, ns, &tag.name)?.is_some() {
        return Err(duplicate_tag(ns, &tag.name));
    }
    put_tag(
        r,
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
    r: &mut dyn Run,
    ns: &str,
    association: &ResourceTypeAssociation,
    seeded: bool,
    known: Option<&ResourceType>,
) -> Result<()> {
    let name = association.name.as_str();
    if !has_resource_type(r, name)? {
        let seq = i64_of(next_seq(r)?, "metadef seq")?;
        let (protected, created, updated) = match known {
            Some(rt) => (
                rt.protected,
                rt.created_at.as_unix_micros(),
                rt.updated_at.as_unix_micros(),
            ),
            None => {
                let at = association.created_at.as_unix_micros();
                (seeded, at, at)
            }
        };
        r.execute(
            "INSERT INTO metadef_resource_types (name, seq, protected, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[&name, &seq, &protected, &created, &updated],
        )?;
    }
    let seq = next_seq(r)?;
    if get_record(r, Records::Associations, ns, name)?.is_some() {
        return Err(MetadefError::DuplicateAssociation {
            namespace: ns.to_owned(),
            resource_type: name.to_owned(),
        }
        .into());
    }
    put_record(
        r,
        Records::Associations,
        ns,
        name,
        &record::encode_association(association, seq),
    )
}

fn rename_content(r: &mut dyn Run, from: &str, to: &str) -> Result<()> {
    for table in [
        Records::Objects.table(),
        Records::Properties.table(),
        Records::Associations.table(),
        TAGS,
    ] {
        move_rows(r, table, from, to)?;
    }
    Ok(())
}

fn remove_namespace(r: &mut dyn Run, name: &str) -> Result<()> {
    for table in [
        Records::Objects.table(),
        Records::Properties.table(),
        TAGS,
        Records::Associations.table(),
    ] {
        clear(r, table, name)?;
    }
    r.execute("DELETE FROM metadef_namespaces WHERE name = $1", &[&name])?;
    Ok(())
}

/// Adds what namespace `document` names and the store lacks; with `prefer_new`, also replaces
/// what differs. Returns whether anything was written.
fn merge(
    r: &mut dyn Run,
    document: &NamespaceDocument,
    now: Timestamp,
    prefer_new: bool,
) -> Result<bool> {
    let ns = document.namespace.namespace.as_str();
    let mut changed = false;

    for association in &document.resource_type_associations {
        let existing = read_associations_seq(r, ns)?
            .into_iter()
            .find(|(a, _)| a.name == association.name);
        match existing {
            None => {
                let known = document
                    .resource_types
                    .iter()
                    .find(|rt| rt.name == association.name);
                insert_association(r, ns, association, true, known)?;
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
                put_record(
                    r,
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
        let write = match read_property(r, ns, name)? {
            None => true,
            Some(old) => prefer_new && old != *definition,
        };
        if write {
            put_record(
                r,
                Records::Properties,
                ns,
                name,
                &record::encode_property(definition),
            )?;
            changed = true;
        }
    }

    for object in &document.objects {
        match read_object(r, ns, &object.name)? {
            None => {
                insert_object(r, ns, object)?;
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
                put_record(
                    r,
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
        if get_tag(r, ns, &tag.name)?.is_none() {
            insert_tag(r, ns, tag)?;
            changed = true;
        }
    }
    Ok(changed)
}

impl Metadefs for PgBackend {
    // ---- reads
    fn list_metadef_namespaces(
        &self,
        query: &NamespaceQuery,
    ) -> Result<Vec<(Namespace, Vec<ResourceTypeAssociation>)>> {
        md_read(&self.inner.pool, |r| {
            let all = all_namespaces(r)?
                .into_iter()
                .filter(|(namespace, _)| query.viewer.sees(namespace))
                .collect();
            page_namespaces(all, query, |name| read_associations(r, name))
        })
    }

    fn metadef_namespace(&self, name: &str) -> Result<Option<Namespace>> {
        let mut session = self.inner.pool.get()?;
        Ok(read_namespace(&mut *session, name)?.map(|(namespace, _)| namespace))
    }

    fn metadef_namespace_document(&self, name: &str) -> Result<Option<NamespaceDocument>> {
        md_read(&self.inner.pool, |r| read_document(r, name))
    }

    fn export_metadefs(&self) -> Result<Vec<NamespaceDocument>> {
        md_read(&self.inner.pool, |r| {
            let mut names: Vec<_> = all_namespaces(r)?
                .into_iter()
                .map(|(namespace, seq)| ((namespace.created_at, seq), namespace.namespace))
                .collect();
            names.sort();
            let all_types = read_resource_types(r)?;
            let mut out = Vec::with_capacity(names.len());
            for (_, name) in names {
                if let Some(mut document) = read_document(r, &name)? {
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
        })
    }

    fn metadef_resource_types(&self) -> Result<Vec<ResourceType>> {
        let mut session = self.inner.pool.get()?;
        read_resource_types(&mut *session)
    }

    fn metadef_associations(&self, ns: &str) -> Result<Vec<ResourceTypeAssociation>> {
        md_read(&self.inner.pool, |r| {
            require_namespace(r, ns)?;
            read_associations(r, ns)
        })
    }

    fn metadef_objects(&self, ns: &str) -> Result<Vec<MetadefObject>> {
        md_read(&self.inner.pool, |r| {
            require_namespace(r, ns)?;
            read_objects(r, ns)
        })
    }

    fn metadef_object(&self, ns: &str, name: &str) -> Result<MetadefObject> {
        md_read(&self.inner.pool, |r| {
            require_namespace(r, ns)?;
            read_object(r, ns, name)?
                .map(|(object, _)| object)
                .ok_or_else(|| object_not_found(ns, name))
        })
    }

    fn metadef_properties(&self, ns: &str) -> Result<BTreeMap<String, PropertyDefinition>> {
        md_read(&self.inner.pool, |r| {
            require_namespace(r, ns)?;
            read_properties(r, ns)
        })
    }

    fn metadef_property(&self, ns: &str, name: &str) -> Result<PropertyDefinition> {
        md_read(&self.inner.pool, |r| {
            require_namespace(r, ns)?;
            read_property(r, ns, name)?.ok_or_else(|| property_not_found(ns, name))
        })
    }

    fn metadef_tags(&self, ns: &str, query: &TagQuery) -> Result<Vec<MetadefTag>> {
        md_read(&self.inner.pool, |r| {
            require_namespace(r, ns)?;
            page_tags(scan_tags(r, ns)?, ns, query)
        })
    }

    fn metadef_tag(&self, ns: &str, name: &str) -> Result<MetadefTag> {
        md_read(&self.inner.pool, |r| {
            require_namespace(r, ns)?;
            get_tag(r, ns, name)?
                .map(|(_, created, updated)| tag(name, created, updated))
                .ok_or_else(|| tag_not_found(ns, name))
        })
    }

    // ---- writes
    fn create_metadef_namespace(&self, document: &NamespaceDocument) -> Result<()> {
        document.validate()?;
        md_write(&self.inner.pool, |r, _| {
            let ns = &document.namespace.namespace;
            if read_namespace(r, ns)?.is_some() {
                return Err(MetadefError::DuplicateNamespace(ns.clone()).into());
            }
            insert_document(r, document, false)
        })
    }

    fn update_metadef_namespace(&self, name: &str, new: &Namespace) -> Result<Namespace> {
        new.validate()?;
        md_write(&self.inner.pool, |r, now| {
            let (old, seq) = require_namespace(r, name)?;
            let mut stored = new.clone();
            stored.created_at = old.created_at;
            stored.updated_at = now;
            if stored.namespace != name {
                if read_namespace(r, &stored.namespace)?.is_some() {
                    return Err(MetadefError::DuplicateNamespace(stored.namespace.clone()).into());
                }
                rename_content(r, name, &stored.namespace)?;
                r.execute("DELETE FROM metadef_namespaces WHERE name = $1", &[&name])?;
            }
            put_namespace(r, &stored, seq)?;
            Ok(stored)
        })
    }

    fn delete_metadef_namespace(&self, name: &str) -> Result<()> {
        md_write(&self.inner.pool, |r, _| {
            let (namespace, _) = require_namespace(r, name)?;
            refuse_if_protected(&namespace, ProtectedRecord::Namespace)?;
            remove_namespace(r, name)
        })
    }

    fn delete_metadef_content(&self, name: &str, kind: ContentKind) -> Result<()> {
        md_write(&self.inner.pool, |r, _| {
            let (namespace, _) = require_namespace(r, name)?;
            refuse_if_protected(&namespace, ProtectedRecord::Namespace)?;
            let table = match kind {
                ContentKind::Objects => Records::Objects.table(),
                ContentKind::Properties => Records::Properties.table(),
                ContentKind::Tags => TAGS,
            };
            clear(r, table, name)
        })
    }

    fn create_metadef_object(&self, ns: &str, object: &MetadefObject) -> Result<MetadefObject> {
        object.validate()?;
        md_write(&self.inner.pool, |r, now| {
            require_namespace(r, ns)?;
            let mut stored = object.clone();
            stored.created_at = now;
            stored.updated_at = now;
            insert_object(r, ns, &stored)?;
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
        md_write(&self.inner.pool, |r, now| {
            require_namespace(r, ns)?;
            let (old, seq) = read_object(r, ns, name)?.ok_or_else(|| object_not_found(ns, name))?;
            let mut stored = object.clone();
            stored.created_at = old.created_at;
            stored.updated_at = now;
            if stored.name != name {
                if get_record(r, Records::Objects, ns, &stored.name)?.is_some() {
                    return Err(duplicate_object(ns, &stored.name));
                }
                remove(r, Records::Objects.table(), ns, name)?;
            }
            put_record(
                r,
                Records::Objects,
                ns,
                &stored.name,
                &record::encode_object(&stored, seq),
            )?;
            Ok(stored)
        })
    }

    fn delete_metadef_object(&self, ns: &str, name: &str) -> Result<()> {
        md_write(&self.inner.pool, |r, _| {
            let (namespace, _) = require_namespace(r, ns)?;
            if get_record(r, Records::Objects, ns, name)?.is_none() {
                return Err(object_not_found(ns, name));
            }
            refuse_if_protected(&namespace, ProtectedRecord::Object(name.to_owned()))?;
            remove(r, Records::Objects.table(), ns, name)
        })
    }

    fn create_metadef_property(
        &self,
        ns: &str,
        name: &str,
        definition: &PropertyDefinition,
    ) -> Result<()> {
        definition.validate(name)?;
        md_write(&self.inner.pool, |r, _| {
            require_namespace(r, ns)?;
            if get_record(r, Records::Properties, ns, name)?.is_some() {
                return Err(duplicate_property(ns, name));
            }
            put_record(
                r,
                Records::Properties,
                ns,
                name,
                &record::encode_property(definition),
            )
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
        md_write(&self.inner.pool, |r, _| {
            require_namespace(r, ns)?;
            if get_record(r, Records::Properties, ns, name)?.is_none() {
                return Err(property_not_found(ns, name));
            }
            if new_name != name {
                if get_record(r, Records::Properties, ns, new_name)?.is_some() {
                    return Err(duplicate_property(ns, new_name));
                }
                remove(r, Records::Properties.table(), ns, name)?;
            }
            put_record(
                r,
                Records::Properties,
                ns,
                new_name,
                &record::encode_property(definition),
            )
        })
    }

    fn delete_metadef_property(&self, ns: &str, name: &str) -> Result<()> {
        md_write(&self.inner.pool, |r, _| {
            let (namespace, _) = require_namespace(r, ns)?;
            if get_record(r, Records::Properties, ns, name)?.is_none() {
                return Err(property_not_found(ns, name));
            }
            refuse_if_protected(&namespace, ProtectedRecord::Property(name.to_owned()))?;
            remove(r, Records::Properties.table(), ns, name)
        })
    }

    fn create_metadef_tag(&self, ns: &str, name: &str) -> Result<MetadefTag> {
        check_name("tag", name)?;
        md_write(&self.inner.pool, |r, now| {
            require_namespace(r, ns)?;
            let stored = tag(name, now.as_unix_micros(), now.as_unix_micros());
            insert_tag(r, ns, &stored)?;
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
        md_write(&self.inner.pool, |r, now| {
            require_namespace(r, ns)?;
            if !append {
                clear(r, TAGS, ns)?;
            }
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let stored = tag(name, now.as_unix_micros(), now.as_unix_micros());
                insert_tag(r, ns, &stored)?;
                out.push(stored);
            }
            Ok(out)
        })
    }

    fn rename_metadef_tag(&self, ns: &str, name: &str, new_name: &str) -> Result<MetadefTag> {
        check_name("tag", new_name)?;
        md_write(&self.inner.pool, |r, now| {
            require_namespace(r, ns)?;
            let (seq, created, _) = get_tag(r, ns, name)?.ok_or_else(|| tag_not_found(ns, name))?;
            if new_name != name {
                if get_tag(r, ns, new_name)?.is_some() {
                    return Err(duplicate_tag(ns, new_name));
                }
                remove(r, TAGS, ns, name)?;
            }
            let updated = now.as_unix_micros();
            put_tag(r, ns, new_name, (seq, created, updated))?;
            Ok(tag(new_name, created, updated))
        })
    }

    fn delete_metadef_tag(&self, ns: &str, name: &str) -> Result<()> {
        md_write(&self.inner.pool, |r, _| {
            let (namespace, _) = require_namespace(r, ns)?;
            if get_tag(r, ns, name)?.is_none() {
                return Err(tag_not_found(ns, name));
            }
            refuse_if_protected(&namespace, ProtectedRecord::Tag(name.to_owned()))?;
            remove(r, TAGS, ns, name)
        })
    }

    fn associate_metadef_resource_type(
        &self,
        ns: &str,
        association: &ResourceTypeAssociation,
    ) -> Result<ResourceTypeAssociation> {
        association.validate()?;
        md_write(&self.inner.pool, |r, now| {
            require_namespace(r, ns)?;
            let mut stored = association.clone();
            stored.created_at = now;
            stored.updated_at = now;
            insert_association(r, ns, &stored, false, None)?;
            Ok(stored)
        })
    }

    fn deassociate_metadef_resource_type(&self, ns: &str, name: &str) -> Result<()> {
        md_write(&self.inner.pool, |r, _| {
            let (namespace, _) = require_namespace(r, ns)?;
            if get_record(r, Records::Associations, ns, name)?.is_none() {
                return Err(MetadefError::AssociationNotFound {
                    namespace: ns.to_owned(),
                    resource_type: name.to_owned(),
                }
                .into());
            }
            refuse_if_protected(&namespace, ProtectedRecord::Association(name.to_owned()))?;
            remove(r, Records::Associations.table(), ns, name)
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
        md_write(&self.inner.pool, |r, now| {
            let mut report = LoadReport::default();
            for document in documents {
                let name = &document.namespace.namespace;
                let existing = match (read_namespace(r, name)?, mode) {
                    (Some(_), LoadMode::Overwrite) => {
                        remove_namespace(r, name)?;
                        None
                    }
                    (other, _) => other,
                };
                let Some((namespace, seq)) = existing else {
                    insert_document(r, document, true)?;
                    report.created.push(name.clone());
                    continue;
                };
                let changed = match mode {
                    LoadMode::SkipExisting | LoadMode::Overwrite => false,
                    LoadMode::Merge => merge(r, document, now, false)?,
                    LoadMode::MergePreferNew => {
                        let mut wanted = document.namespace.clone();
                        wanted.created_at = namespace.created_at;
                        wanted.updated_at = namespace.updated_at;
                        let fields_changed = wanted != namespace;
                        if fields_changed {
                            wanted.updated_at = now;
                            put_namespace(r, &wanted, seq)?;
                        }
                        merge(r, document, now, true)? || fields_changed
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
