//! The digests of staged data, recorded with the stage so that its import need not hash the
//! same bytes again.
//!
//! `PUT /stage` hashes the bytes as they land in the staging area (ingest always does) and
//! records `<size>:<md5>:<os_hash_algo>:<os_hash_value>` as the hidden, reserved image property
//! [`STAGE_DIGESTS_PROPERTY`] in the same update that marks the stage finished
//! (`os_glance_stage_host`). The record is the catalog's, not a file's: only that update writes
//! it (every finished stage overwrites it), callers cannot set it (`os_glance_*` is reserved),
//! the staged file cannot change while the image is `uploading` or locked by its import, and
//! every end of an import removes it with the staged file. The import uses it only when the
//! data is imported unchanged (no conversion), its size is the staged file's and its algorithm
//! is this gateway's `hashing_algorithm`; otherwise it hashes as before. web-download and
//! glance-download stage and import in one job: their digests go from one step to the next
//! in memory, not through the record.

use meta::Image;

use crate::datapath::checksum::Digests;

/// The image property holding a finished stage's digests; hidden from API responses.
pub const STAGE_DIGESTS_PROPERTY: &str = "os_glance_stage_digests";

/// The value of [`STAGE_DIGESTS_PROPERTY`] for `size` staged bytes with `digests`.
pub fn record(size: u64, digests: &Digests) -> String {
    format!(
        "{size}:{}:{}:{}",
        digests.checksum, digests.os_hash_algo, digests.os_hash_value
    )
}

/// The staged size and digests recorded on `image`; `None` when there is no record (a stage
/// finished by an older glint) or it is malformed. The caller checks the size against the
/// staged file's and the algorithm against its own.
pub(super) fn recorded(image: &Image) -> Option<(u64, Digests)> {
    let value = image.properties.get(STAGE_DIGESTS_PROPERTY)?;
    let mut parts = value.splitn(4, ':');
    let (size, checksum, algo, hash) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let size = size.parse::<u64>().ok()?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let usable = checksum.len() == 32 && hex(checksum) && hex(hash) && !algo.is_empty();
    usable.then(|| {
        let digests = Digests {
            checksum: checksum.to_owned(),
            os_hash_algo: algo.to_owned(),
            os_hash_value: hash.to_owned(),
        };
        (size, digests)
    })
}

/// Removes the record (every end of an import: the staged file goes too).
pub(super) fn forget(image: &mut Image) {
    image.properties.remove(STAGE_DIGESTS_PROPERTY);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests() -> Digests {
        Digests {
            checksum: "900150983cd24fb0d6963f7d28e17f72".into(),
            os_hash_algo: "sha256".into(),
            os_hash_value: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                .into(),
        }
    }

    fn image_with(value: Option<String>) -> Image {
        let mut image = Image::new(meta::ImageId::new_v4(), meta::Timestamp::now());
        if let Some(value) = value {
            image
                .properties
                .insert(STAGE_DIGESTS_PROPERTY.to_owned(), value);
        }
        image
    }

    #[test]
    fn a_record_reads_back_until_forgotten() {
        let mut image = image_with(Some(record(3, &digests())));
        assert_eq!(recorded(&image), Some((3, digests())));
        forget(&mut image);
        assert_eq!(recorded(&image), None);
        assert_eq!(recorded(&image_with(None)), None);
    }

    #[test]
    fn a_malformed_record_is_ignored() {
        for bad in [
            "",
            "3",
            "x:900150983cd24fb0d6963f7d28e17f72:sha256:ab",
            "3:9001:sha256:ab",
            "3:900150983cd24fb0d6963f7d28e17f72:sha256:",
            "3:900150983cd24fb0d6963f7d28e17f72:sha256:zz",
            "3:900150983cd24fb0d6963f7d28e17f72:sha256:ab:cd",
            "3:900150983cd24fb0d6963f7d28e17f72::ab",
        ] {
            assert_eq!(recorded(&image_with(Some(bad.into()))), None, "{bad}");
        }
    }
}
