//! What start-up recovery knows from the metadata: the [`Inventory`] every store's
//! [`Store::recover`](super::Store::recover) settles its data against, and the [`Recovered`]
//! report it returns.
//!
//! The metadata is the truth: a store's data belongs to an image only when a live image's
//! location names it (the metadata commit is what makes an upload complete). Recovery runs
//! after this node's interrupted uploads went back to `queued` (`Backend::recover_interrupted`)
//! and before any request is served, so what is still receiving data then is another gateway's
//! upload (shared metadata), and its data stays.

use std::collections::HashMap;

use meta::{Backend, Image, ImageId, ImageStatus, ListFilter, Location};

/// A location a live image names, with what its data must look like.
#[derive(Debug, Clone)]
pub struct Owned {
    /// The image.
    pub image: ImageId,
    /// Its status.
    pub status: ImageStatus,
    /// Its recorded size.
    pub size: Option<u64>,
    /// Where its data is.
    pub location: Location,
}

impl Owned {
    /// Whether the image must have its data here (`active` or `deactivated`): missing data is
    /// reported, not repaired.
    pub fn must_have_data(&self) -> bool {
        matches!(self.status, ImageStatus::Active | ImageStatus::Deactivated)
    }
}

/// The metadata as start-up recovery reads it, once for every store (see the module docs).
pub struct Inventory<'a> {
    live: HashMap<ImageId, ImageStatus>,
    locations: Vec<Owned>,
    was_deleted: Box<dyn Fn(ImageId) -> bool + 'a>,
}

impl<'a> Inventory<'a> {
    /// Reads every live image (`Scope::Unrestricted`) from `meta`, a page at a time. Blocking.
    pub fn read(meta: &'a dyn Backend) -> meta::Result<Inventory<'a>> {
        Inventory::read_in_pages(meta, 1000)
    }

    /// [`Inventory::read`], `page` images at a time.
    pub fn read_in_pages(meta: &'a dyn Backend, page: usize) -> meta::Result<Inventory<'a>> {
        let mut images = Vec::new();
        let mut marker = None;
        loop {
            let batch = meta.list_images(&ListFilter::all().after(marker).limit(page))?;
            let full = batch.len() == page;
            marker = batch.last().map(|image| image.id);
            images.extend(batch);
            if !full {
                break;
            }
        }
        Ok(Inventory::of(
            images,
            Box::new(move |id| match meta.was_deleted(id) {
                Ok(deleted) => deleted,
                Err(e) => {
                    // Unknown is the safe answer: its file stays.
                    tracing::warn!(image_id = %id, error = %e, "cannot read the image's tombstone");
                    false
                }
            }),
        ))
    }

    /// An inventory of `images`; `was_deleted` tells whether an id not among them was
    /// issued by glint and deleted since.
    pub fn of(images: Vec<Image>, was_deleted: Box<dyn Fn(ImageId) -> bool + 'a>) -> Inventory<'a> {
        let mut live = HashMap::with_capacity(images.len());
        let mut locations = Vec::new();
        for image in images {
            live.insert(image.id, image.status);
            for location in image.locations {
                locations.push(Owned {
                    image: image.id,
                    status: image.status,
                    size: image.size,
                    location,
                });
            }
        }
        Inventory {
            live,
            locations,
            was_deleted,
        }
    }

    /// Whether `id` is still receiving data (`saving`, `uploading`, `importing`): another
    /// gateway's upload, whose data stays.
    pub fn is_receiving(&self, id: ImageId) -> bool {
        matches!(
            self.live.get(&id),
            Some(ImageStatus::Saving | ImageStatus::Uploading | ImageStatus::Importing)
        )
    }

    /// Whether whole data of `id` that no location names is garbage: its image is live and
    /// has no data (`queued`, `killed` — the crash came between writing the data and the
    /// metadata commit), or was deleted (the crash came between the delete's commit and the
    /// removal). Never for an id glint did not issue, nor for an image that has data (its
    /// data may be named in a way this store does not recognise).
    pub fn is_orphan(&self, id: ImageId) -> bool {
        match self.live.get(&id) {
            Some(status) => matches!(status, ImageStatus::Queued | ImageStatus::Killed),
            None => (self.was_deleted)(id),
        }
    }

    /// Every location of a live image, in every store.
    pub fn locations(&self) -> &[Owned] {
        &self.locations
    }

    /// How many live images there are.
    pub fn images(&self) -> usize {
        self.live.len()
    }
}

/// What a store cleaned up and found at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Partial objects removed: `.part` files, incomplete multipart uploads.
    pub partial: usize,
    /// Whole data no image owns, removed (see [`Inventory::is_orphan`]).
    pub orphans: usize,
    /// Entries left in place because they are not glint's (an id glint never issued, other
    /// names).
    pub unknown: usize,
    /// Data of `active`/`deactivated` images looked at.
    pub checked: usize,
    /// `active`/`deactivated` images whose data is missing or has the wrong size here.
    pub missing_data: Vec<ImageId>,
}
