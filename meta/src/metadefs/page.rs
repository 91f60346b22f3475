//! Paging of the metadefs lists (namespaces and tags), shared by the engines: each reads the
//! whole list its own way (lists are small), then cuts the page here.

use std::collections::BTreeSet;

use super::logic::tag_not_found;
use super::{
    MetadefError, MetadefTag, Namespace, NamespaceQuery, NamespaceSortKey, ResourceTypeAssociation,
    TagQuery, TagSortKey,
};
use crate::error::Result;
use crate::types::Timestamp;

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

/// A sort value: text or a time (each sort key has one kind).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SortValue {
    Text(String),
    Time(Timestamp),
}
