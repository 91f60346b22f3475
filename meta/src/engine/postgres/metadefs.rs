//! The PostgreSQL engine's metadefs ([`Metadefs`] for [`PgBackend`]), on the tables of schema
//! version 2 (`schema.rs`).
//!
//! The layout mirrors the redb engine's tables row for row — a namespace, object, property or
//! association is one row keyed by `(namespace, name)` holding the same encoded record
//! (`redb::metadefs::record`, which carries its creation `seq`); tags and resource types are
//! plain columns; `seq` comes from the sequence `metadef_seq` — so both engines share the
//! rules (`metadefs::logic`), the paging and the record format, and this file holds only the
//! storage primitives ([`MetadefTxn`] over SQL), the transaction wrappers and the reads.
//!
//! Every write is one transaction that first takes a transaction-scoped advisory lock shared
//! by all metadef writes: the catalog is small and rarely written, and with writes one at a
//! time across every gateway, "check, then write" needs no retry and a load of many documents
//! is all or nothing. Reads of more than one row run in one `REPEATABLE READ` transaction, so
//! they see one committed state.

use std::collections::BTreeMap;

use super::pool::{Pool, Run};
use super::{i64_of, u64_of, PgBackend};
use crate::engine::redb::metadefs::record;
use crate::error::{Error, Result};
use crate::metadefs::logic::{
    self, object_not_found, property_not_found, read_namespace, read_object, read_property,
    require_namespace, tag, tag_not_found, Children, MetadefStore, MetadefTxn, Records,
    ResourceTypeRow, TagRow,
};
use crate::metadefs::page::{page_namespaces, page_tags};
use crate::metadefs::{
    MetadefObject, MetadefTag, Metadefs, Namespace, NamespaceDocument, NamespaceQuery,
    PropertyDefinition, ResourceType, ResourceTypeAssociation, TagQuery,
};
use crate::types::Timestamp;

/// Advisory lock key held by every metadef write ("glintmdw" in ASCII).
const WRITE_LOCK: i64 = 0x676c_696e_746d_6477;

/// The SQL table of a table of encoded records.
const fn table_of(table: Records) -> &'static str {
    match table {
        Records::Objects => "metadef_objects",
        Records::Properties => "metadef_properties",
        Records::Associations => "metadef_associations",
    }
}

/// The SQL table of one kind of what a namespace holds.
const fn children_table(children: Children) -> &'static str {
    match children {
        Children::Records(table) => table_of(table),
        Children::Tags => TAGS,
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
fn md_read<T>(pool: &Pool, op: impl FnOnce(&mut PgTxn<'_>) -> Result<T>) -> Result<T> {
    let mut lease = pool.get()?;
    let mut tx = lease.transaction()?;
    tx.execute(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        &[],
    )?;
    let value = op(&mut PgTxn(&mut tx))?;
    tx.commit()?;
    Ok(value)
}

impl MetadefStore for PgBackend {
    fn metadef_txn<T>(
        &self,
        op: impl FnOnce(&mut dyn MetadefTxn, Timestamp) -> Result<T>,
    ) -> Result<T> {
        md_write(&self.inner.pool, |r, now| op(&mut PgTxn(r), now))
    }
}

// ---- rows

/// A transaction (or session) seen as metadefs storage primitives; reads use it too.
struct PgTxn<'a>(&'a mut dyn Run);

impl MetadefTxn for PgTxn<'_> {
    fn next_seq(&mut self) -> Result<u64> {
        let row = self
            .0
            .row("SELECT nextval('metadef_seq')", &[])?
            .ok_or_else(|| Error::Corrupt("nextval returned no row".into()))?;
        Ok(u64_of(row.get(0)))
    }

    fn namespace_record(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .0
            .row(
                "SELECT record FROM metadef_namespaces WHERE name = $1",
                &[&name],
            )?
            .map(|row| row.get(0)))
    }

    fn put_namespace_record(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.0.execute(
            "INSERT INTO metadef_namespaces (name, record) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
            &[&name, &bytes],
        )?;
        Ok(())
    }

    fn remove_namespace_record(&mut self, name: &str) -> Result<()> {
        self.0
            .execute("DELETE FROM metadef_namespaces WHERE name = $1", &[&name])?;
        Ok(())
    }

    fn record(&mut self, table: Records, ns: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let sql = format!(
            "SELECT record FROM {} WHERE namespace = $1 AND name = $2",
            table_of(table)
        );
        Ok(self.0.row(&sql, &[&ns, &name])?.map(|row| row.get(0)))
    }

    fn put_record(&mut self, table: Records, ns: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (namespace, name, record) VALUES ($1, $2, $3)
             ON CONFLICT (namespace, name) DO UPDATE SET record = EXCLUDED.record",
            table_of(table)
        );
        self.0.execute(&sql, &[&ns, &name, &bytes])?;
        Ok(())
    }

    fn remove_record(&mut self, table: Records, ns: &str, name: &str) -> Result<()> {
        remove(self.0, table_of(table), ns, name)
    }

    fn tag_row(&mut self, ns: &str, name: &str) -> Result<Option<TagRow>> {
        Ok(self
            .0
            .row(
                "SELECT seq, created_at, updated_at FROM metadef_tags
                 WHERE namespace = $1 AND name = $2",
                &[&ns, &name],
            )?
            .map(|row| (u64_of(row.get(0)), row.get(1), row.get(2))))
    }

    fn put_tag_row(&mut self, ns: &str, name: &str, (seq, created, updated): TagRow) -> Result<()> {
        self.0.execute(
            "INSERT INTO metadef_tags (namespace, name, seq, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (namespace, name) DO UPDATE SET seq = EXCLUDED.seq,
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
            &[&ns, &name, &i64_of(seq, "metadef seq")?, &created, &updated],
        )?;
        Ok(())
    }

    fn remove_tag_row(&mut self, ns: &str, name: &str) -> Result<()> {
        remove(self.0, TAGS, ns, name)
    }

    fn clear(&mut self, children: Children, ns: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE namespace = $1",
            children_table(children)
        );
        self.0.execute(&sql, &[&ns])?;
        Ok(())
    }

    fn move_children(&mut self, children: Children, from: &str, to: &str) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET namespace = $2 WHERE namespace = $1",
            children_table(children)
        );
        self.0.execute(&sql, &[&from, &to])?;
        Ok(())
    }

    fn has_resource_type(&mut self, name: &str) -> Result<bool> {
        Ok(self
            .0
            .row(
                "SELECT 1 FROM metadef_resource_types WHERE name = $1",
                &[&name],
            )?
            .is_some())
    }

    fn insert_resource_type(
        &mut self,
        name: &str,
        (seq, protected, created, updated): ResourceTypeRow,
    ) -> Result<()> {
        self.0.execute(
            "INSERT INTO metadef_resource_types (name, seq, protected, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &name,
                &i64_of(seq, "metadef seq")?,
                &protected,
                &created,
                &updated,
            ],
        )?;
        Ok(())
    }
}

fn remove(r: &mut dyn Run, table: &str, ns: &str, name: &str) -> Result<()> {
    let sql = format!("DELETE FROM {table} WHERE namespace = $1 AND name = $2");
    r.execute(&sql, &[&ns, &name])?;
    Ok(())
}

// ---- reads

fn all_namespaces(t: &mut PgTxn<'_>) -> Result<Vec<(Namespace, u64)>> {
    t.0.rows(
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

/// The `(name, record)` rows of namespace `ns`, by name.
fn scan(t: &mut PgTxn<'_>, table: Records, ns: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let sql = format!(
        "SELECT name, record FROM {} WHERE namespace = $1 ORDER BY name",
        table_of(table)
    );
    Ok(t.0
        .rows(&sql, &[&ns])?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

fn scan_tags(t: &mut PgTxn<'_>, ns: &str) -> Result<Vec<(u64, MetadefTag)>> {
    Ok(t.0
        .rows(
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

fn read_objects(t: &mut PgTxn<'_>, ns: &str) -> Result<Vec<MetadefObject>> {
    let mut objects = scan(t, Records::Objects, ns)?
        .iter()
        .map(|(name, bytes)| record::decode_object(name, bytes))
        .collect::<Result<Vec<_>>>()?;
    objects.sort_by_key(|(object, seq)| (object.created_at, *seq));
    Ok(objects.into_iter().map(|(object, _)| object).collect())
}

fn read_properties(t: &mut PgTxn<'_>, ns: &str) -> Result<BTreeMap<String, PropertyDefinition>> {
    scan(t, Records::Properties, ns)?
        .into_iter()
        .map(|(name, bytes)| {
            let definition = record::decode_property(&name, &bytes)?;
            Ok((name, definition))
        })
        .collect()
}

fn read_tags(t: &mut PgTxn<'_>, ns: &str) -> Result<Vec<MetadefTag>> {
    let mut tags = scan_tags(t, ns)?;
    tags.sort_by_key(|(seq, tag)| (tag.created_at, *seq));
    Ok(tags.into_iter().map(|(_, tag)| tag).collect())
}

fn read_associations_seq(
    t: &mut PgTxn<'_>,
    ns: &str,
) -> Result<Vec<(ResourceTypeAssociation, u64)>> {
    let mut associations = scan(t, Records::Associations, ns)?
        .iter()
        .map(|(name, bytes)| record::decode_association(name, bytes))
        .collect::<Result<Vec<_>>>()?;
    associations.sort_by_key(|(association, seq)| (association.created_at, *seq));
    Ok(associations)
}

fn read_associations(t: &mut PgTxn<'_>, ns: &str) -> Result<Vec<ResourceTypeAssociation>> {
    Ok(read_associations_seq(t, ns)?
        .into_iter()
        .map(|(a, _)| a)
        .collect())
}

fn read_resource_types(t: &mut PgTxn<'_>) -> Result<Vec<ResourceType>> {
    let mut out: Vec<(u64, ResourceType)> =
        t.0.rows(
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

fn read_document(t: &mut PgTxn<'_>, name: &str) -> Result<Option<NamespaceDocument>> {
    let Some((namespace, _)) = read_namespace(t, name)? else {
        return Ok(None);
    };
    Ok(Some(NamespaceDocument {
        resource_type_associations: read_associations(t, name)?,
        properties: read_properties(t, name)?,
        objects: read_objects(t, name)?,
        tags: read_tags(t, name)?,
        resource_types: Vec::new(),
        namespace,
    }))
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
        Ok(read_namespace(&mut PgTxn(&mut *session), name)?.map(|(namespace, _)| namespace))
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
                    logic::attach_resource_types(&mut document, &all_types);
                    out.push(document);
                }
            }
            Ok(out)
        })
    }

    fn metadef_resource_types(&self) -> Result<Vec<ResourceType>> {
        let mut session = self.inner.pool.get()?;
        read_resource_types(&mut PgTxn(&mut *session))
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
            r.tag_row(ns, name)?
                .map(|(_, created, updated)| tag(name, created, updated))
                .ok_or_else(|| tag_not_found(ns, name))
        })
    }

    // ---- writes: the rules are `metadefs::logic`'s, over this engine's `MetadefTxn`
    logic::metadef_write_calls!();
}
