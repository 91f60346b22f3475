//! The quotas of an import while its data arrives, as an upload's: `image_size_total` caps the
//! data an image gains (then `end_import` checks it again in its transaction, as
//! `complete_upload` does), and `image_stage_total` caps what web-download stages. A stream
//! that reaches a cap stops there; the task fails with Glance's `LimitExceeded` text.

use meta::{Image, QuotaResource, MIB};

use super::run::Failure;
use super::Shared;
use crate::catalog::Catalog;
use crate::error::ApiError;

/// The bytes `owner` has staged: the sizes of its `uploading` and `importing` images (a
/// finished stage records its size; a web-download records it once staged).
pub(crate) async fn staged_bytes(catalog: &Catalog, owner: &str) -> meta::Result<u64> {
    let filter = meta::ListFilter::all()
        .with(meta::Condition::Text {
            field: meta::TextField::Status,
            values: vec!["uploading".into(), "importing".into()],
        })
        .with(meta::Condition::Text {
            field: meta::TextField::Owner,
            values: vec![owner.to_owned()],
        });
    let images = catalog.list_images(filter).await?;
    Ok(images.iter().filter_map(|i| i.size).sum())
}

/// One quota's room: what the owner uses already and what is left.
#[derive(Debug, Clone)]
struct Room {
    resource: QuotaResource,
    owner: String,
    limit_mib: u64,
    used_bytes: u64,
    left_bytes: u64,
}

impl Room {
    fn new(resource: QuotaResource, owner: &str, limit_mib: u64, used_bytes: u64) -> Room {
        Room {
            resource,
            owner: owner.to_owned(),
            limit_mib,
            used_bytes,
            left_bytes: limit_mib.saturating_mul(MIB).saturating_sub(used_bytes),
        }
    }

    /// Glance's `LimitExceeded` text for `incoming` bytes more.
    fn exceeded(&self, incoming: u64) -> Failure {
        let error = meta::Error::QuotaExceeded {
            project: self.owner.clone(),
            resource: self.resource,
            limit: self.limit_mib,
            usage: self.used_bytes / MIB,
            delta: incoming.div_ceil(MIB),
        };
        Failure(ApiError::from(error).explanation().to_owned())
    }
}

/// The caps on one stream of an import: `image_size_cap` and the quotas' room.
#[derive(Debug, Clone)]
pub(super) struct Caps {
    size_cap: u64,
    rooms: Vec<Room>,
}

impl Caps {
    /// For data that becomes `image`'s (into a store, or staged by web-download: both are
    /// charged to `image_size_total`): the owner's room, `image`'s own size (a staged image's,
    /// charged already) given back.
    pub(super) async fn for_data(shared: &Shared, image: &Image) -> Result<Caps, Failure> {
        let mut caps = Caps {
            size_cap: shared.config.image_size_cap,
            rooms: Vec::new(),
        };
        let Some(owner) = image.owner.as_deref() else {
            return Ok(caps);
        };
        let limits = shared.config.quotas.limits_for(Some(owner));
        if let Some(limit) = limits.image_size_total_mib {
            let usage = shared
                .catalog
                .usage(owner)
                .await
                .map_err(|e| Failure(format!("Cannot read the owner's quota usage: {e}")))?;
            let used = usage
                .charged_bytes()
                .saturating_sub(image.size.unwrap_or(0));
            caps.rooms
                .push(Room::new(QuotaResource::ImageSizeTotal, owner, limit, used));
        }
        Ok(caps)
    }

    /// For web-download's staging: [`Caps::for_data`] and the owner's `image_stage_total`.
    pub(super) async fn for_staging(shared: &Shared, image: &Image) -> Result<Caps, Failure> {
        let mut caps = Caps::for_data(shared, image).await?;
        let Some(owner) = image.owner.as_deref() else {
            return Ok(caps);
        };
        let limits = shared.config.quotas.limits_for(Some(owner));
        if let Some(limit) = limits.image_stage_total_mib {
            let staged = staged_bytes(&shared.catalog, owner)
                .await
                .map_err(|e| Failure(format!("Cannot read the owner's staging usage: {e}")))?;
            let used = staged.saturating_sub(image.size.unwrap_or(0));
            caps.rooms.push(Room::new(
                QuotaResource::ImageStageTotal,
                owner,
                limit,
                used,
            ));
        }
        Ok(caps)
    }

    /// The most bytes the stream may carry.
    pub(super) fn bytes(&self) -> u64 {
        self.rooms
            .iter()
            .map(|r| r.left_bytes)
            .fold(self.size_cap, u64::min)
    }

    /// `size` bytes known in advance (a staged file, an announced length): refused at once
    /// when a quota has no room for them. `image_size_cap` is the ingest's to refuse.
    pub(super) fn check(&self, size: u64) -> Result<(), Failure> {
        match self.rooms.iter().find(|r| size > r.left_bytes) {
            Some(room) => Err(room.exceeded(size)),
            None => Ok(()),
        }
    }

    /// Glance's text for `incoming` bytes over `owner`'s `image_size_total` of `limit_mib`
    /// when it uses `used_bytes` (an upload's stream that reached its room).
    pub(super) fn size_total_exceeded(
        owner: &str,
        limit_mib: u64,
        used_bytes: u64,
        incoming: u64,
    ) -> Failure {
        Room::new(QuotaResource::ImageSizeTotal, owner, limit_mib, used_bytes).exceeded(incoming)
    }

    /// Why a stream stopped at `cap` bytes: the quota whose room it was, if any (`None`: the
    /// size cap).
    pub(super) fn explain(&self, cap: u64) -> Option<Failure> {
        self.rooms
            .iter()
            .find(|r| r.left_bytes == cap && cap < self.size_cap)
            .map(|r| r.exceeded(cap.saturating_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(size_cap: u64, rooms: Vec<Room>) -> Caps {
        Caps { size_cap, rooms }
    }

    #[test]
    fn the_smallest_room_caps_and_explains() {
        let size = Room::new(QuotaResource::ImageSizeTotal, "p", 2, MIB);
        let stage = Room::new(QuotaResource::ImageStageTotal, "p", 1, MIB / 2);
        let c = caps(10 * MIB, vec![size, stage]);
        assert_eq!(c.bytes(), MIB / 2);
        let why = c.explain(MIB / 2).unwrap().0;
        assert!(why.starts_with("The request returned a 413 Request Entity Too Large."));
        assert!(why.contains("Project p is over a limit for [Resource image_stage_total is over limit of 1 due to current usage 0 and delta 1]"), "{why}");
        assert!(c.check(MIB / 2).is_ok());
        let refused = c.check(MIB).unwrap_err().0;
        assert!(refused.contains("image_stage_total"), "{refused}");
        // The size cap is the ingest's.
        let only_cap = caps(100, vec![]);
        assert_eq!(only_cap.bytes(), 100);
        assert!(only_cap.explain(100).is_none());
        assert!(only_cap.check(u64::MAX).is_ok());
    }
}
