//! VirtualBox VDI: detection, virtual size, and the image types qemu opens.

use crate::bytes::{le_u32, le_u64};
use crate::found::{Found, Size};
use crate::{Check, Format};

// VDI header, little-endian. The first 64 bytes are a free-text banner
// ("<<< Oracle VM VirtualBox Disk Image >>>\n" or qemu's own).
//   64 signature u32 0xBEDA107F | 68 version u32 (0x00010001 = 1.1) | 72 header_size u32
//   76 image_type u32 (1 dynamic, 2 static, 3 undo, 4 differencing) | 80 image_flags u32
//   84 description [256]  | 340 offset_bmap u32 | 344 offset_data u32 | 348 cylinders u32
//  352 heads u32 | 356 sectors u32 | 360 sector_size u32 | 364 unused u32
//  368 disk_size u64 (virtual size) | 376 block_size u32 | 380 block_extra u32
//  384 blocks_in_image u32 | 388 blocks_allocated u32 | 392 uuid_image [16]
//  408 uuid_last_snap [16] | 424 uuid_link [16] | 440 uuid_parent [16]
const SIGNATURE_OFFSET: usize = 64;
const SIGNATURE: u32 = 0xBEDA_107F;
const VERSION_OFFSET: usize = 68;
const VERSION_1_1: u32 = 0x0001_0001;
const IMAGE_TYPE_OFFSET: usize = 76;
const DISK_SIZE_OFFSET: usize = 368;
const TYPE_DYNAMIC: u32 = 1;
const TYPE_STATIC: u32 = 2;
const TYPE_DIFFERENCING: u32 = 4;

/// Inspects the head sector. `complete` is false when the stream ended before 512 bytes.
pub(crate) fn probe(head: &[u8], complete: bool) -> Option<Found> {
    if head.len() < SIGNATURE_OFFSET + 4 || le_u32(head, SIGNATURE_OFFSET) != SIGNATURE {
        return None;
    }
    if !complete {
        return Some(Found::truncated(Format::Vdi));
    }
    let version = le_u32(head, VERSION_OFFSET);
    if version != VERSION_1_1 {
        let detail = format!(
            "version {}.{} is not supported (only 1.1)",
            version >> 16,
            version & 0xffff
        );
        return Some(Found::problem(
            Format::Vdi,
            Size::Unknown,
            Check::Version,
            detail,
        ));
    }
    let found = Found::sized(Format::Vdi, le_u64(head, DISK_SIZE_OFFSET));
    let problem = match le_u32(head, IMAGE_TYPE_OFFSET) {
        TYPE_DYNAMIC | TYPE_STATIC => None,
        TYPE_DIFFERENCING => Some(crate::found::fail(
            Check::Differencing,
            "differencing image",
        )),
        other => Some(crate::found::fail(
            Check::Malformed,
            format!("image type {other}"),
        )),
    };
    Some(found.or_problem(problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(image_type: u32, size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[64..68].copy_from_slice(&SIGNATURE.to_le_bytes());
        h[68..72].copy_from_slice(&VERSION_1_1.to_le_bytes());
        h[76..80].copy_from_slice(&image_type.to_le_bytes());
        h[368..376].copy_from_slice(&size.to_le_bytes());
        h
    }

    #[test]
    fn reads_virtual_size() {
        let found = probe(&header(1, 1_000_448), true).unwrap();
        assert_eq!(found, Found::ok(Format::Vdi, Size::Bytes(1_000_448)));
    }

    #[test]
    fn refuses_differencing_and_unknown_types() {
        assert!(probe(&header(4, 1 << 20), true).unwrap().problem.is_some());
        assert!(probe(&header(3, 1 << 20), true).unwrap().problem.is_some());
        assert!(probe(&header(2, 1 << 20), true).unwrap().problem.is_none());
    }

    #[test]
    fn truncated_or_other_version_is_refused() {
        let h = header(1, 1 << 20);
        assert_eq!(probe(&h[..200], false), Some(Found::truncated(Format::Vdi)));
        let mut v = header(1, 1 << 20);
        v[68..72].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        assert!(probe(&v, true).unwrap().problem.is_some());
        assert_eq!(probe(&h[..67], false), None);
    }
}
