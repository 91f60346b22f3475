//! The order of a listing: [`SortKey`], [`SortDir`], and the full, normalised order every
//! engine must produce.
//!
//! The full order of a listing is the caller's sort keys followed by `created_at` and `id`, each
//! appended with direction `desc` unless already present (keys after `id` can never break a tie
//! and are dropped, as are repeated keys). `id` is unique, so the order is total and "strictly
//! after the marker" is well defined. Unset values sort as `""` or 0; `status` sorts as its
//! Glance name (text order, as Glance's database does); `id` as its hyphenated lowercase text.
//! A SQL engine writes [`full_order`] as its `ORDER BY` (with `COALESCE` for the unset values),
//! and pages with a keyset condition on the marker's values in that order.
//!
//! How an engine walks this order is its own business (the redb engine's index walks live in
//! `engine/redb/list.rs`).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::types::{Image, ParseError};

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

    pub(crate) fn apply(self, ordering: Ordering) -> Ordering {
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

/// The full, normalised order of a listing sorted by `sort` (see the module docs): always
/// ends with `id`, never repeats a key.
pub fn full_order(sort: &[(SortKey, SortDir)]) -> Vec<(SortKey, SortDir)> {
    Order::new(sort).keys
}

/// The full, normalised order of a listing; always ends with `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Order {
    pub(crate) keys: Vec<(SortKey, SortDir)>,
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

    pub(crate) fn first(&self) -> (SortKey, SortDir) {
        // `new` always pushes at least `id`.
        self.keys[0]
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
pub(crate) fn compare_values(a: &Image, b: &Image, key: SortKey) -> Ordering {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(full_order(&[(SortKey::Id, SortDir::Asc)]), order.keys[1..]);
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
