//! Per-project usage and its limits: Glance's unified-limits quotas (`image_count_total`,
//! `image_size_total`, `image_stage_total`, `image_count_uploading`).
//!
//! Every engine checks a limit inside the write that would exceed it, against usage read in
//! that same transaction, so a check can never disagree with the images. A project's usage is
//! the sum of [`Usage::of`] over the live images it owns (the redb engine keeps the sums in a
//! table that every write adjusts; a SQL engine may sum or keep a table the same way). Images
//! without an owner are charged to nobody. The limits come from the caller (the gateway reads
//! them from its configuration); this module only compares.

use crate::error::{Error, Result};
use crate::types::{Image, ImageStatus};

/// Bytes in a MiB, the unit of Glance's size quotas.
pub const MIB: u64 = 1 << 20;

/// One project's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Live images owned by the project (`image_count_total`).
    pub image_count: u64,
    /// Bytes of data of those images (`image_size_total`).
    pub size_bytes: u64,
    /// Those images receiving data: `saving`, `uploading` or `importing`
    /// (`image_count_uploading`).
    pub uploading_count: u64,
    /// Bytes reserved by uploads under way that announced their size: counted against
    /// `image_size_total` until the upload ends (its data is then charged instead, or nothing).
    pub reserved_bytes: u64,
}

impl Usage {
    /// What `image` adds to its owner's usage.
    pub(crate) fn of(image: &Image) -> Usage {
        Usage {
            image_count: 1,
            size_bytes: image.size.unwrap_or(0),
            uploading_count: u64::from(matches!(
                image.status,
                ImageStatus::Saving | ImageStatus::Uploading | ImageStatus::Importing
            )),
            reserved_bytes: 0,
        }
    }

    /// Bytes that count against `image_size_total`: the data held and the reservations.
    pub fn charged_bytes(&self) -> u64 {
        self.size_bytes.saturating_add(self.reserved_bytes)
    }

    /// `image_size_total` usage as Glance reports it: whole MiB, rounded down.
    pub fn size_mib(&self) -> u64 {
        self.size_bytes / MIB
    }
}

/// One project's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most images the project may own.
    pub image_count_total: Option<u64>,
    /// Most MiB of image data the project may hold.
    pub image_size_total_mib: Option<u64>,
    /// Most MiB the project may have staged (the gateway checks it: staging is not metadata).
    pub image_stage_total_mib: Option<u64>,
    /// Most images of the project receiving data at once.
    pub image_count_uploading: Option<u64>,
}

impl Limits {
    /// No limit at all.
    pub const UNLIMITED: Limits = Limits {
        image_count_total: None,
        image_size_total_mib: None,
        image_stage_total_mib: None,
        image_count_uploading: None,
    };
}

/// The quota a refused operation would have exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaResource {
    /// `image_count_total`.
    ImageCountTotal,
    /// `image_size_total` (MiB).
    ImageSizeTotal,
    /// `image_count_uploading`.
    ImageCountUploading,
    /// `image_stage_total` (MiB; checked by the gateway, which knows its staging area).
    ImageStageTotal,
}

impl QuotaResource {
    /// The Glance (Keystone registered limit) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            QuotaResource::ImageCountTotal => "image_count_total",
            QuotaResource::ImageSizeTotal => "image_size_total",
            QuotaResource::ImageCountUploading => "image_count_uploading",
            QuotaResource::ImageStageTotal => "image_stage_total",
        }
    }
}

impl std::fmt::Display for QuotaResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn exceeded(project: &str, resource: QuotaResource, limit: u64, usage: u64, delta: u64) -> Error {
    Error::QuotaExceeded {
        project: project.to_owned(),
        resource,
        limit,
        usage,
        delta,
    }
}

/// A new image for `project`.
pub(crate) fn check_create(project: &str, usage: &Usage, limits: &Limits) -> Result<()> {
    match limits.image_count_total {
        Some(limit) if usage.image_count + 1 > limit => Err(exceeded(
            project,
            QuotaResource::ImageCountTotal,
            limit,
            usage.image_count,
            1,
        )),
        _ => Ok(()),
    }
}

/// One more upload for `project`, of `incoming_bytes` when the size is announced.
pub(crate) fn check_begin_upload(
    project: &str,
    usage: &Usage,
    limits: &Limits,
    incoming_bytes: Option<u64>,
) -> Result<()> {
    // As Glance (delta 0): refused only when the uploads already under way exceed the limit,
    // so a limit of N lets N + 1 run at once, and 0 still lets one through.
    if let Some(limit) = limits.image_count_uploading {
        if usage.uploading_count > limit {
            return Err(exceeded(
                project,
                QuotaResource::ImageCountUploading,
                limit,
                usage.uploading_count,
                0,
            ));
        }
    }
    check_size(project, usage, limits, incoming_bytes.unwrap_or(0))
}

/// The bytes `limits.image_size_total_mib` still leaves a project using `usage` (its data and
/// the reservations of its uploads under way); `None` when it is unlimited.
pub(crate) fn size_left(usage: &Usage, limits: &Limits) -> Option<u64> {
    limits.image_size_total_mib.map(|mib| {
        mib.saturating_mul(MIB)
            .saturating_sub(usage.charged_bytes())
    })
}

/// `incoming_bytes` more data for `project`, on top of its data and its reservations. Compared
/// in bytes (so that a partial MiB counts); reported in MiB as Glance reports it.
pub(crate) fn check_size(
    project: &str,
    usage: &Usage,
    limits: &Limits,
    incoming_bytes: u64,
) -> Result<()> {
    match limits.image_size_total_mib {
        Some(limit)
            if usage.charged_bytes().saturating_add(incoming_bytes) > limit.saturating_mul(MIB) =>
        {
            Err(exceeded(
                project,
                QuotaResource::ImageSizeTotal,
                limit,
                usage.charged_bytes() / MIB,
                incoming_bytes.div_ceil(MIB),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_limit_allows_up_to_the_limit() {
        let limits = Limits {
            image_count_total: Some(2),
            ..Limits::UNLIMITED
        };
        let mut usage = Usage::default();
        assert!(check_create("p", &usage, &limits).is_ok());
        usage.image_count = 1;
        assert!(check_create("p", &usage, &limits).is_ok());
        usage.image_count = 2;
        assert!(matches!(
            check_create("p", &usage, &limits),
            Err(Error::QuotaExceeded {
                resource: QuotaResource::ImageCountTotal,
                limit: 2,
                usage: 2,
                delta: 1,
                ..
            })
        ));
    }

    #[test]
    fn size_limit_counts_partial_mib() {
        let limits = Limits {
            image_size_total_mib: Some(1),
            ..Limits::UNLIMITED
        };
        let usage = Usage {
            size_bytes: MIB - 10,
            ..Usage::default()
        };
        assert!(check_size("p", &usage, &limits, 10).is_ok());
        assert!(matches!(
            check_size("p", &usage, &limits, 11),
            Err(Error::QuotaExceeded {
                resource: QuotaResource::ImageSizeTotal,
                limit: 1,
                usage: 0,
                delta: 1,
                ..
            })
        ));
    }

    #[test]
    fn reservations_count_like_data() {
        let limits = Limits {
            image_size_total_mib: Some(4),
            ..Limits::UNLIMITED
        };
        let usage = Usage {
            size_bytes: MIB,
            reserved_bytes: 2 * MIB,
            ..Usage::default()
        };
        assert_eq!(size_left(&usage, &limits), Some(MIB));
        assert!(check_size("p", &usage, &limits, MIB).is_ok());
        assert!(matches!(
            check_size("p", &usage, &limits, MIB + 1),
            Err(Error::QuotaExceeded {
                usage: 3,
                delta: 2,
                ..
            })
        ));
    }

    #[test]
    fn size_left_is_the_limit_minus_usage_never_below_zero() {
        let limits = Limits {
            image_size_total_mib: Some(2),
            ..Limits::UNLIMITED
        };
        let used = |size_bytes| Usage {
            size_bytes,
            ..Usage::default()
        };
        assert_eq!(size_left(&used(MIB / 2), &limits), Some(MIB + MIB / 2));
        assert_eq!(size_left(&used(3 * MIB), &limits), Some(0));
        assert_eq!(size_left(&used(0), &Limits::UNLIMITED), None);
    }

    #[test]
    fn zero_limits_and_none() {
        let zero = Limits {
            image_count_total: Some(0),
            image_size_total_mib: Some(0),
            image_stage_total_mib: Some(0),
            image_count_uploading: Some(0),
        };
        let usage = Usage::default();
        assert!(check_create("p", &usage, &zero).is_err());
        // One announced byte does not fit in 0 MiB.
        assert!(check_begin_upload("p", &usage, &zero, Some(1)).is_err());
        let zero_uploading = Limits {
            image_count_uploading: Some(0),
            ..Limits::UNLIMITED
        };
        // Glance's delta 0: with none under way, one upload may start even at limit 0 ...
        assert!(check_begin_upload("p", &usage, &zero_uploading, None).is_ok());
        // ... and a second may not.
        let one_running = Usage {
            uploading_count: 1,
            ..Usage::default()
        };
        assert!(matches!(
            check_begin_upload("p", &one_running, &zero_uploading, None),
            Err(Error::QuotaExceeded {
                resource: QuotaResource::ImageCountUploading,
                limit: 0,
                usage: 1,
                delta: 0,
                ..
            })
        ));
        let huge = Usage {
            image_count: u64::MAX - 1,
            size_bytes: u64::MAX,
            uploading_count: u64::MAX - 1,
            reserved_bytes: u64::MAX,
        };
        assert!(check_create("p", &huge, &Limits::UNLIMITED).is_ok());
        assert!(check_begin_upload("p", &huge, &Limits::UNLIMITED, Some(u64::MAX)).is_ok());
    }
}
