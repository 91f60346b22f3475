//! Virtuozzo ploop / Parallels images: detection and virtual size.
//!
//! Glance has no inspector for `ploop` and accepts it when the content looks raw; we recognise
//! the image header so that a declared `ploop` gets its size and an undeclared one is not
//! mistaken for raw. The format cannot name a backing file (a ploop chain lives in a separate
//! `DiskDescriptor.xml`, which is not an image).

use crate::bytes::{le_u32, le_u64};
use crate::found::{Found, Size};
use crate::{Check, Format};

// Parallels image header, little-endian, 64 bytes:
//    0 magic [16] "WithoutFreeSpace" (v1) or "WithouFreSpacExt" (v2) | 16 version u32 (2)
//   20 heads u32 | 24 cylinders u32 | 28 tracks u32 (cluster size in sectors)
//   32 bat_entries u32 | 36 nb_sectors u64 (virtual size in 512-byte sectors)
//   44 inuse u32 | 48 data_off u32 | 52 flags u32 | 56 ext_off u64
const MAGIC_V1: &[u8; 16] = b"WithoutFreeSpace";
const MAGIC_V2: &[u8; 16] = b"WithouFreSpacExt";
const VERSION_OFFSET: usize = 16;
const HEADER_VERSION: u32 = 2;
const NB_SECTORS_OFFSET: usize = 36;

/// Inspects the head sector. `complete` is false when the stream ended before 512 bytes.
pub(crate) fn probe(head: &[u8], complete: bool) -> Option<Found> {
    let v1 = head.starts_with(MAGIC_V1);
    if !v1 && !head.starts_with(MAGIC_V2) {
        return None;
    }
    if !complete {
        return Some(Found::truncated(Format::Ploop));
    }
    let version = le_u32(head, VERSION_OFFSET);
    if version != HEADER_VERSION {
        let detail = format!("header version {version} is not supported (only 2)");
        return Some(Found::problem(
            Format::Ploop,
            Size::Unknown,
            Check::Version,
            detail,
        ));
    }
    let mut sectors = le_u64(head, NB_SECTORS_OFFSET);
    if v1 {
        // Old-magic images only define the low 32 bits (qemu masks them the same way).
        sectors &= 0xffff_ffff;
    }
    Some(match sectors.checked_mul(512) {
        Some(size) => Found::sized(Format::Ploop, size),
        None => Found::problem(
            Format::Ploop,
            Size::Unknown,
            Check::Size,
            "sector count overflows".into(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(magic: &[u8; 16], sectors: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..16].copy_from_slice(magic);
        h[16..20].copy_from_slice(&2u32.to_le_bytes());
        h[36..44].copy_from_slice(&sectors.to_le_bytes());
        h
    }

    #[test]
    fn reads_size_of_both_magics() {
        assert_eq!(
            probe(&header(MAGIC_V2, 1954), true).unwrap().size,
            Size::Bytes(1_000_448)
        );
        let v1 = header(MAGIC_V1, (7 << 32) | 1954);
        assert_eq!(probe(&v1, true).unwrap().size, Size::Bytes(1_000_448));
    }

    #[test]
    fn refuses_overflowing_size_and_other_versions() {
        assert!(probe(&header(MAGIC_V2, u64::MAX), true)
            .unwrap()
            .problem
            .is_some());
        let mut h = header(MAGIC_V2, 8);
        h[16] = 1;
        assert!(probe(&h, true).unwrap().problem.is_some());
        assert_eq!(
            probe(&h[..20], false),
            Some(Found::truncated(Format::Ploop))
        );
    }
}
