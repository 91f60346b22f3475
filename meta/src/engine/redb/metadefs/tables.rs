//! The metadef tables (added in schema version 3) and the read helpers both transaction kinds
//! share.
//!
//! | table                        | key                       | value                            |
//! |------------------------------|---------------------------|----------------------------------|
//! | `metadef_namespaces`         | `&str` namespace          | `&[u8]` namespace record         |
//! | `metadef_objects`            | `(&str, &str)` ns, name   | `&[u8]` object record            |
//! | `metadef_properties`         | `(&str, &str)` ns, name   | `&[u8]` property record          |
//! | `metadef_tags`               | `(&str, &str)` ns, name   | `(u64, i64, i64)` seq, created, updated (µs) |
//! | `metadef_associations`       | `(&str, &str)` ns, type   | `&[u8]` association record       |
//! | `metadef_resource_types`     | `&str` name               | `(u64, bool, i64, i64)` seq, protected, created, updated |
//! | `metadef_sequence`           | `&str` (`"next"`)         | `u64` next `seq`                 |
//!
//! Everything in a namespace is keyed by the namespace name first, so that one range reads or
//! removes all of one kind. Namespaces are few (Glance ships ~30): listing reads them all and
//! sorts in memory; a namespace's content is one range each.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::engine::redb::StorageResultExt;
use crate::error::Result;

pub(crate) const NAMESPACES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("metadef_namespaces");
pub(crate) const OBJECTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("metadef_objects");
pub(crate) const PROPERTIES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("metadef_properties");
pub(crate) const TAGS: TableDefinition<(&str, &str), (u64, i64, i64)> =
    TableDefinition::new("metadef_tags");
pub(crate) const ASSOCIATIONS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("metadef_associations");
pub(crate) const RESOURCE_TYPES: TableDefinition<&str, (u64, bool, i64, i64)> =
    TableDefinition::new("metadef_resource_types");
pub(crate) const SEQUENCE: TableDefinition<&str, u64> = TableDefinition::new("metadef_sequence");
const NEXT_KEY: &str = "next";

/// Creates every metadef table (a no-op for tables that exist): for a new database, and as
/// the migration from schema version 2.
pub(crate) fn create(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(NAMESPACES).storage()?;
    txn.open_table(OBJECTS).storage()?;
    txn.open_table(PROPERTIES).storage()?;
    txn.open_table(TAGS).storage()?;
    txn.open_table(ASSOCIATIONS).storage()?;
    txn.open_table(RESOURCE_TYPES).storage()?;
    txn.open_table(SEQUENCE).storage()?;
    Ok(())
}

/// Takes the next value of the store-wide creation counter.
pub(crate) fn next_seq(txn: &WriteTransaction) -> Result<u64> {
    let mut table = txn.open_table(SEQUENCE).storage()?;
    let next = table
        .get(NEXT_KEY)
        .storage()?
        .map_or(0, |guard| guard.value());
    table.insert(NEXT_KEY, next + 1).storage()?;
    Ok(next)
}

/// Bounds of the names in a `(namespace, name)` table: names are non-empty, so `""` sorts
/// before every one, and a string of 100 `char::MAX` after every name of at most
/// [`MAX_NAME_CHARS`](crate::metadefs::MAX_NAME_CHARS) characters.
pub(crate) fn name_bounds() -> (&'static str, String) {
    ("", char::MAX.to_string().repeat(100))
}

/// The `(name, value)` pairs of namespace `ns` in a `(namespace, name)` table, by name.
pub(crate) fn scan<V, T, F, R>(table: &T, ns: &str, mut decode: F) -> Result<Vec<R>>
where
    V: redb::Value + 'static,
    T: ReadableTable<(&'static str, &'static str), V>,
    F: FnMut(&str, V::SelfType<'_>) -> Result<R>,
{
    let (low, high) = name_bounds();
    let mut out = Vec::new();
    for entry in table.range((ns, low)..=(ns, high.as_str())).storage()? {
        let (key, value) = entry.storage()?;
        let (_, name) = key.value();
        out.push(decode(name, value.value())?);
    }
    Ok(out)
}
