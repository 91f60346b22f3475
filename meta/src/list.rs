//! Listing: the sort order, keyset pagination after a marker, and the index walks behind them.
//!
//! The full order of a listing is the caller's sort keys followed by `created_at` and `id`, each
//! appended with direction `desc` unless already present (keys after `id` can never break a tie
//! and are dropped, as are repeated keys). `id` is unique, so the order is total and "strictly
//! after the marker" is well defined.
//!
//! A page walks the index of the first sort key (`images` itself for `id`) from the marker's
//! position and stops as soon as `limit` images passed the caller's predicate. Within a run of
//! equal first-key values ("group") the rest of the order decides:
//!
//! * first key then `created_at`/`id` in one direction (the default sort, and any single sort
//!   key): the index key `(value, created_at, id)` already has that order, so each group is walked
//!   in that direction and the page reads O(limit) records. When both directions agree this is
//!   one continuous range walk.
//! * any other second key (e.g. `status` then `name`): each group is read whole and sorted in
//!   memory. A first key with huge groups of equal values (`status`, `disk_format`, unset
//!   `name`s) then costs a read of the whole group per page.
//!
//! Filtering is the caller's predicate; it is not indexed, so a predicate that rejects most
//! images makes the walk read on until it has found `limit` matches (or reached the end).

use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;
use std::str::FromStr;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use crate::error::{Error, Result, StorageResultExt};
use crate::record;
use crate::schema::{self, IndexKey, IMAGES};
use crate::types::{Image, ImageId, ParseError};

/// A key images can be sorted by (spec §5.2). Names are Glance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// `name`; an unset name sorts as `""`.
    Name,
    /// `status`, compared as its Glance name (text order, as Glance's database does).
    Status,
    /// `container_format`; unset sorts as `""`.
    ContainerFormat,
    /// `disk_format`; unset sorts as `""`.
    DiskFormat,
    /// `size`; unset sorts as 0.
    Size,
    /// `id`, in the order of its hyphenated lowercase text.
    Id,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
}

impl SortKey {
    /// Every sort key, in declaration order.
    pub const ALL: [SortKey; 8] = [
        SortKey::Name,
        SortKey::Status,
        SortKey::ContainerFormat,
        SortKey::DiskFormat,
        SortKey::Size,
        SortKey::Id,
        SortKey::CreatedAt,
        SortKey::UpdatedAt,
    ];

    /// The Glance name, e.g. `"created_at"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Status => "status",
            SortKey::ContainerFormat => "container_format",
            SortKey::DiskFormat => "disk_format",
            SortKey::Size => "size",
            SortKey::Id => "id",
            SortKey::CreatedAt => "created_at",
            SortKey::UpdatedAt => "updated_at",
        }
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SortKey {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<SortKey, ParseError> {
        SortKey::ALL
            .into_iter()
            .find(|key| key.as_str() == text)
            .ok_or_else(|| ParseError::new("sort key", text))
    }
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortDir {
    /// Ascending, `"asc"`.
    Asc,
    /// Descending, `"desc"`.
    Desc,
}

impl SortDir {
    /// The Glance name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SortDir::Asc => "asc",
            SortDir::Desc => "desc",
        }
    }

    fn apply(self, ordering: Ordering) -> Ordering {
        match self {
            SortDir::Asc => ordering,
            SortDir::Desc => ordering.reverse(),
        }
    }
}

impl fmt::Display for SortDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SortDir {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<SortDir, ParseError> {
        match text {
            "asc" => Ok(SortDir::Asc),
            "desc" => Ok(SortDir::Desc),
            _ => Err(ParseError::new("sort direction", text)),
        }
    }
}

/// The full, normalised order of a listing; always ends with `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Order {
    keys: Vec<(SortKey, SortDir)>,
}

/// How a group of equal first-key values is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Within {
    /// The index's `(created_at, id)` tail, walked in this direction, is the order.
    Walk(SortDir),
    /// Read the group and sort it in memory.
    Sort,
}

impl Order {
    pub(crate) fn new(sort: &[(SortKey, SortDir)]) -> Order {
        const DEFAULT: [(SortKey, SortDir); 1] = [(SortKey::CreatedAt, SortDir::Desc)];
        const TIE_BREAKERS: [(SortKey, SortDir); 2] = [
            (SortKey::CreatedAt, SortDir::Desc),
            (SortKey::Id, SortDir::Desc),
        ];
        let given = if sort.is_empty() { &DEFAULT[..] } else { sort };
        let mut keys: Vec<(SortKey, SortDir)> = Vec::with_capacity(given.len() + 2);
        for &(key, dir) in given.iter().chain(TIE_BREAKERS.iter()) {
            if keys.iter().any(|(seen, _)| *seen == key) {
                continue;
            }
            keys.push((key, dir));
            if key == SortKey::Id {
                break;
            }
        }
        Order { keys }
    }

    fn first(&self) -> (SortKey, SortDir) {
        // `new` always pushes at least `id`.
        self.keys[0]
    }

    fn within_group(&self) -> Within {
        match (self.keys[0].0, &self.keys[1..]) {
            (SortKey::CreatedAt, [(SortKey::Id, dir)]) => Within::Walk(*dir),
            (_, [(SortKey::CreatedAt, dir), (SortKey::Id, id_dir)]) if dir == id_dir => {
                Within::Walk(*dir)
            }
            _ => Within::Sort,
        }
    }

    /// Where `a` comes relative to `b` in this order (`Less`: listed first).
    pub(crate) fn compare(&self, a: &Image, b: &Image) -> Ordering {
        self.keys
            .iter()
            .map(|&(key, dir)| dir.apply(compare_values(a, b, key)))
            .find(|ordering| ordering.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

/// Compares one sort key's values, NULL as `""` or 0.
fn compare_values(a: &Image, b: &Image, key: SortKey) -> Ordering {
    fn text(value: &Option<String>) -> &str {
        value.as_deref().unwrap_or("")
    }
    match key {
        SortKey::Name => text(&a.name).cmp(text(&b.name)),
        SortKey::Status => a.status.as_str().cmp(b.status.as_str()),
        SortKey::ContainerFormat => text(&a.container_format).cmp(text(&b.container_format)),
        SortKey::DiskFormat => text(&a.disk_format).cmp(text(&b.disk_format)),
        SortKey::Size => a.size.unwrap_or(0).cmp(&b.size.unwrap_or(0)),
        SortKey::Id => a.id.to_key().cmp(&b.id.to_key()),
        SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
        SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
    }
}

/// The page being filled.
struct Page<F> {
    images: Vec<Image>,
    limit: usize,
    keep: F,
}

impl<F: FnMut(&Image) -> bool> Page<F> {
    /// Offers the next image in order; true once the page is full.
    fn offer(&mut self, image: Image) -> bool {
        if (self.keep)(&image) {
            self.images.push(image);
        }
        self.images.len() >= self.limit
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

/// Reads and decodes the live image `id`, if any.
pub(crate) fn load(
    images: &impl ReadableTable<u128, &'static [u8]>,
    id: ImageId,
) -> Result<Option<Image>> {
    match images.get(id.to_key()).storage()? {
        Some(guard) => record::decode(id, guard.value()).map(Some),
        None => Ok(None),
    }
}

/// Reads the image an index entry points at; a dangling entry is corruption.
fn fetch(images: &ImagesTable, key: u128) -> Result<Image> {
    #[cfg(test)]
    tests::count_index_entry();
    let id = ImageId::from_key(key);
    load(images, id)?.ok_or_else(|| Error::Corrupt(format!("index entry for missing image {id}")))
}

/// One page of the listing: see [`crate::Meta::list_images`].
pub(crate) fn list<F: FnMut(&Image) -> bool>(
    txn: &ReadTransaction,
    sort: &[(SortKey, SortDir)],
    marker: Option<ImageId>,
    limit: usize,
    keep: F,
) -> Result<Vec<Image>> {
    let order = Order::new(sort);
    let images = txn.open_table(IMAGES).storage()?;
    let marker = match marker {
        Some(id) => Some(load(&images, id)?.ok_or(Error::MarkerNotFound(id))?),
        None => None,
    };
    let mut page = Page {
        images: Vec::with_capacity(limit.min(1000)),
        limit,
        keep,
    };
    if limit == 0 {
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
fn walk_ids<F: FnMut(&Image) -> bool>(
    images: &ImagesTable,
    order: &Order,
    marker: Option<&Image>,
    page: &mut Page<F>,
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

fn walk_index<F: FnMut(&Image) -> bool>(
    images: &ImagesTable,
    index: &IndexTable,
    order: &Order,
    marker: Option<&Image>,
    page: &mut Page<F>,
) -> Result<()> {
    let (first_key, dir) = order.first();
    let marker_value = marker.map(|image| schema::sort_value(image, first_key));
    let marker_key: Option<IndexKey<'_>> = marker
        .zip(marker_value.as_deref())
        .map(|(image, value)| (value, image.created_at.as_unix_micros(), image.id.to_key()));
    let within = order.within_group();

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

/// Live images: the length of `images`.
pub(crate) fn count(txn: &ReadTransaction) -> Result<u64> {
    txn.open_table(IMAGES).storage()?.len().storage()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;
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
    fn default_order_is_created_at_then_id_desc() {
        assert_eq!(
            Order::new(&[]).keys,
            vec![
                (SortKey::CreatedAt, SortDir::Desc),
                (SortKey::Id, SortDir::Desc)
            ]
        );
    }

    #[test]
    fn tie_breakers_are_appended_desc_unless_present() {
        let order = Order::new(&[(SortKey::Name, SortDir::Asc)]);
        assert_eq!(
            order.keys,
            vec![
                (SortKey::Name, SortDir::Asc),
                (SortKey::CreatedAt, SortDir::Desc),
                (SortKey::Id, SortDir::Desc)
            ]
        );
        let order = Order::new(&[
            (SortKey::CreatedAt, SortDir::Asc),
            (SortKey::Size, SortDir::Asc),
        ]);
        assert_eq!(
            order.keys,
            vec![
                (SortKey::CreatedAt, SortDir::Asc),
                (SortKey::Size, SortDir::Asc),
                (SortKey::Id, SortDir::Desc)
            ]
        );
    }

    #[test]
    fn keys_after_id_and_repeats_are_dropped() {
        let order = Order::new(&[
            (SortKey::Name, SortDir::Asc),
            (SortKey::Name, SortDir::Desc),
            (SortKey::Id, SortDir::Asc),
            (SortKey::Size, SortDir::Asc),
        ]);
        assert_eq!(
            order.keys,
            vec![(SortKey::Name, SortDir::Asc), (SortKey::Id, SortDir::Asc)]
        );
    }

    #[test]
    fn groups_are_walked_when_the_tail_is_created_at_and_id() {
        use SortDir::*;
        use SortKey::*;
        assert_eq!(Order::new(&[]).within_group(), Within::Walk(Desc));
        assert_eq!(
            Order::new(&[(Name, Asc)]).within_group(),
            Within::Walk(Desc)
        );
        assert_eq!(
            Order::new(&[(Status, Asc), (CreatedAt, Asc), (Id, Asc)]).within_group(),
            Within::Walk(Asc)
        );
        assert_eq!(
            Order::new(&[(Status, Asc), (CreatedAt, Asc)]).within_group(),
            Within::Sort
        );
        assert_eq!(
            Order::new(&[(Status, Asc), (Name, Asc)]).within_group(),
            Within::Sort
        );
        assert_eq!(
            Order::new(&[(Name, Asc), (Id, Asc)]).within_group(),
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

    #[test]
    fn sort_names_round_trip() {
        for key in SortKey::ALL {
            assert_eq!(key.to_string().parse::<SortKey>().unwrap(), key);
        }
        assert!("checksum".parse::<SortKey>().is_err());
        assert_eq!("asc".parse::<SortDir>().unwrap(), SortDir::Asc);
        assert_eq!("desc".parse::<SortDir>().unwrap(), SortDir::Desc);
        assert!("DESC".parse::<SortDir>().is_err());
    }
}
