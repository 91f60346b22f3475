//! Listing in the redb engine: keyset pagination after a marker, as walks of the sort indexes.
//!
//! The order is [`crate::sort`]'s full order. A page walks the index of the first sort key
//! (`images` itself for `id`) from the marker's position and stops as soon as `limit` images
//! passed the filter. Within a run of equal first-key values ("group") the rest of the order
//! decides:
//!
//! * first key then `created_at`/`id` in one direction (the default sort, and any single sort
//!   key): the index key `(value, created_at, id)` already has that order, so each group is walked
//!   in that direction and the page reads O(limit) records. When both directions agree this is
//!   one continuous range walk.
//! * any other second key (e.g. `status` then `name`): each group is read whole and sorted in
//!   memory. A first key with huge groups of equal values (`status`, `disk_format`, unset
//!   `name`s) then costs a read of the whole group per page.
//!
//! Each record the walk reads is tested with [`ListFilter::admits`]; the viewer's memberships
//! come from the by-project member index, one range read per page in the same transaction. The
//! conditions are not indexed, so a filter that rejects most images makes the walk read on
//! until it has found `limit` matches (or reached the end).

use std::cmp::Ordering;
use std::ops::Bound;

use redb::{ReadTransaction, ReadableTable};

use super::members::images_shared_with;
use super::read::load;
use super::schema::{self, IndexKey, IMAGES};
use super::{record, StorageResultExt};
use crate::error::{Error, Result};
use crate::filter::ListFilter;
use crate::members::MemberStatus;
use crate::sort::{Order, SortDir, SortKey};
use crate::types::{Image, ImageId, Visibility};

/// How a group of equal first-key values is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Within {
    /// The index's `(created_at, id)` tail, walked in this direction, is the order.
    Walk(SortDir),
    /// Read the group and sort it in memory.
    Sort,
}

fn within_group(order: &Order) -> Within {
    match (order.keys[0].0, &order.keys[1..]) {
        (SortKey::CreatedAt, [(SortKey::Id, dir)]) => Within::Walk(*dir),
        (_, [(SortKey::CreatedAt, dir), (SortKey::Id, id_dir)]) if dir == id_dir => {
            Within::Walk(*dir)
        }
        _ => Within::Sort,
    }
}

/// The page being filled.
struct Page<'a> {
    images: Vec<Image>,
    filter: &'a ListFilter,
    /// The viewer's memberships, when the filter's scope needs them, by image id (the order
    /// of the by-project index).
    memberships: Vec<(ImageId, MemberStatus)>,
}

impl Page<'_> {
    /// Offers the next image in order; true once the page is full.
    fn offer(&mut self, image: Image) -> bool {
        // Only a shared image's memberships count: look up no other.
        let membership = match image.visibility {
            Visibility::Shared => self
                .memberships
                .binary_search_by_key(&image.id, |(id, _)| *id)
                .ok()
                .map(|at| self.memberships[at].1),
            _ => None,
        };
        if self.filter.admits(&image, membership) {
            self.images.push(image);
        }
        self.images.len() >= self.filter.limit
    }
}

/// A double-ended iterator walked in `dir`.
fn directed<'a, I>(iter: I, dir: SortDir) -> Box<dyn Iterator<Item = I::Item> + 'a>
where
    I: DoubleEndedIterator + 'a,
{
    match dir {
        SortDir::Asc => Box::new(iter),
        SortDir::Desc => Box::new(iter.rev()),
    }
}

type ImagesTable = redb::ReadOnlyTable<u128, &'static [u8]>;
type IndexTable = redb::ReadOnlyTable<IndexKey<'static>, ()>;

/// Reads the image an index entry points at; a dangling entry is corruption.
fn fetch(images: &ImagesTable, key: u128) -> Result<Image> {
    #[cfg(test)]
    tests::count_index_entry();
    let id = ImageId::from_key(key);
    load(images, id)?.ok_or_else(|| Error::Corrupt(format!("index entry for missing image {id}")))
}

/// One page of the listing: see [`crate::Backend::list_images`].
pub(super) fn list(txn: &ReadTransaction, filter: &ListFilter) -> Result<Vec<Image>> {
    let order = Order::new(&filter.sort);
    let images = txn.open_table(IMAGES).storage()?;
    let marker = match filter.marker {
        Some(id) => Some(load(&images, id)?.ok_or(Error::MarkerNotFound(id))?),
        None => None,
    };
    let memberships = match filter.membership_project() {
        Some(project) => images_shared_with(txn, project)?,
        None => Vec::new(),
    };
    let mut page = Page {
        images: Vec::with_capacity(filter.limit.min(1000)),
        filter,
        memberships,
    };
    if filter.limit == 0 {
        return Ok(page.images);
    }
    let (first_key, _) = order.first();
    match schema::index_table(first_key) {
        None => walk_ids(&images, &order, marker.as_ref(), &mut page)?,
        Some(definition) => {
            let index = txn.open_table(definition).storage()?;
            walk_index(&images, &index, &order, marker.as_ref(), &mut page)?;
        }
    }
    Ok(page.images)
}

/// Sort by `id` first: walk `images` itself; ids are unique, so there are no groups.
fn walk_ids(
    images: &ImagesTable,
    order: &Order,
    marker: Option<&Image>,
    page: &mut Page<'_>,
) -> Result<()> {
    let (_, dir) = order.first();
    let after = marker.map(|image| image.id.to_key());
    let bounds: (Bound<u128>, Bound<u128>) = match (dir, after) {
        (_, None) => (Bound::Unbounded, Bound::Unbounded),
        (SortDir::Asc, Some(key)) => (Bound::Excluded(key), Bound::Unbounded),
        (SortDir::Desc, Some(key)) => (Bound::Unbounded, Bound::Excluded(key)),
    };
    for entry in directed(images.range(bounds).storage()?, dir) {
        let (key, value) = entry.storage()?;
        #[cfg(test)]
        tests::count_index_entry();
        let image = record::decode(ImageId::from_key(key.value()), value.value())?;
        if page.offer(image) {
            break;
        }
    }
    Ok(())
}

/// The smallest and largest index keys of group `value`.
fn group_bounds(value: &[u8]) -> (IndexKey<'_>, IndexKey<'_>) {
    ((value, i64::MIN, u128::MIN), (value, i64::MAX, u128::MAX))
}

fn walk_index(
    images: &ImagesTable,
    index: &IndexTable,
    order: &Order,
    marker: Option<&Image>,
    page: &mut Page<'_>,
) -> Result<()> {
    let (first_key, dir) = order.first();
    let marker_value = marker.map(|image| schema::sort_value(image, first_key));
    let marker_key: Option<IndexKey<'_>> = marker
        .zip(marker_value.as_deref())
        .map(|(image, value)| (value, image.created_at.as_unix_micros(), image.id.to_key()));
    let within = within_group(order);

    if within == Within::Walk(dir) {
        // The index order is the listing order: one range from the marker on.
        let bounds: (Bound<IndexKey<'_>>, Bound<IndexKey<'_>>) = match (dir, marker_key) {
            (_, None) => (Bound::Unbounded, Bound::Unbounded),
            (SortDir::Asc, Some(key)) => (Bound::Excluded(key), Bound::Unbounded),
            (SortDir::Desc, Some(key)) => (Bound::Unbounded, Bound::Excluded(key)),
        };
        for entry in directed(index.range(bounds).storage()?, dir) {
            let (key, _) = entry.storage()?;
            if page.offer(fetch(images, key.value().2)?) {
                break;
            }
        }
        return Ok(());
    }

    // Group by group, groups in `dir`; the first group is the marker's.
    let mut group: Option<Vec<u8>> = match &marker_value {
        Some(value) => Some(value.clone()),
        None => {
            let edge = match dir {
                SortDir::Asc => index.first().storage()?,
                SortDir::Desc => index.last().storage()?,
            };
            edge.map(|(key, _)| key.value().0.to_vec())
        }
    };
    let mut in_marker_group = marker.is_some();
    while let Some(value) = group {
        let (low, high) = group_bounds(&value);
        let full = match within {
            Within::Walk(within_dir) => {
                let bounds = match (within_dir, marker_key.filter(|_| in_marker_group)) {
                    (_, None) => (Bound::Included(low), Bound::Included(high)),
                    (SortDir::Asc, Some(key)) => (Bound::Excluded(key), Bound::Included(high)),
                    (SortDir::Desc, Some(key)) => (Bound::Included(low), Bound::Excluded(key)),
                };
                let mut full = false;
                for entry in directed(index.range(bounds).storage()?, within_dir) {
                    let (key, _) = entry.storage()?;
                    if page.offer(fetch(images, key.value().2)?) {
                        full = true;
                        break;
                    }
                }
                full
            }
            Within::Sort => {
                let mut members = Vec::new();
                for entry in index.range(low..=high).storage()? {
                    let (key, _) = entry.storage()?;
                    let image = fetch(images, key.value().2)?;
                    let after_marker = match marker.filter(|_| in_marker_group) {
                        Some(marker) => order.compare(&image, marker) == Ordering::Greater,
                        None => true,
                    };
                    if after_marker {
                        members.push(image);
                    }
                }
                members.sort_by(|a, b| order.compare(a, b));
                let mut full = false;
                for image in members {
                    if page.offer(image) {
                        full = true;
                        break;
                    }
                }
                full
            }
        };
        if full {
            break;
        }
        in_marker_group = false;
        group = next_group(index, &value, dir)?;
    }
    Ok(())
}

/// The value of the group after `value` in direction `dir`, if any.
fn next_group(index: &IndexTable, value: &[u8], dir: SortDir) -> Result<Option<Vec<u8>>> {
    let (low, high) = group_bounds(value);
    let entry = match dir {
        SortDir::Asc => index
            .range::<IndexKey<'_>>((Bound::Excluded(high), Bound::Unbounded))
            .storage()?
            .next(),
        SortDir::Desc => index
            .range::<IndexKey<'_>>((Bound::Unbounded, Bound::Excluded(low)))
            .storage()?
            .next_back(),
    };
    match entry {
        Some(entry) => {
            let (key, _) = entry.storage()?;
            Ok(Some(key.value().0.to_vec()))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::sort::compare_values;
    use crate::types::{ImageStatus, Timestamp};

    thread_local! {
        static INDEX_ENTRIES: Cell<u64> = const { Cell::new(0) };
    }

    pub(crate) fn count_index_entry() {
        INDEX_ENTRIES.with(|count| count.set(count.get() + 1));
    }

    /// How many index entries (or `images` entries, for `id`) this thread's walks have read.
    pub(crate) fn index_entries_read() -> u64 {
        INDEX_ENTRIES.with(Cell::get)
    }

    #[test]
    fn groups_are_walked_when_the_tail_is_created_at_and_id() {
        use SortDir::*;
        use SortKey::*;
        assert_eq!(within_group(&Order::new(&[])), Within::Walk(Desc));
        assert_eq!(
            within_group(&Order::new(&[(Name, Asc)])),
            Within::Walk(Desc)
        );
        assert_eq!(
            within_group(&Order::new(&[(Status, Asc), (CreatedAt, Asc), (Id, Asc)])),
            Within::Walk(Asc)
        );
        assert_eq!(
            within_group(&Order::new(&[(Status, Asc), (CreatedAt, Asc)])),
            Within::Sort
        );
        assert_eq!(
            within_group(&Order::new(&[(Status, Asc), (Name, Asc)])),
            Within::Sort
        );
        assert_eq!(
            within_group(&Order::new(&[(Name, Asc), (Id, Asc)])),
            Within::Sort
        );
    }

    #[test]
    fn encoded_sort_values_order_like_the_values() {
        let id = ImageId::new_v4();
        let mut images = Vec::new();
        for (n, name) in [
            None,
            Some(""),
            Some("a"),
            Some("ab"),
            Some("b"),
            Some("\u{e9}"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut image = Image::new(id, Timestamp::from_unix_micros(n as i64 * 7 - 20));
            image.name = name.map(str::to_owned);
            image.disk_format = name.map(str::to_owned);
            image.container_format = name.map(str::to_owned);
            image.size = [None, Some(0), Some(1), Some(255), Some(256), Some(u64::MAX)][n];
            image.updated_at = Timestamp::from_unix_micros([i64::MIN, -1, 0, 1, 2, i64::MAX][n]);
            image.status = ImageStatus::ALL[n];
            image.id = ImageId::new_v4();
            images.push(image);
        }
        for key in SortKey::ALL {
            for a in &images {
                for b in &images {
                    assert_eq!(
                        schema::sort_value(a, key).cmp(&schema::sort_value(b, key)),
                        compare_values(a, b, key),
                        "{key:?}"
                    );
                }
            }
        }
    }
}
