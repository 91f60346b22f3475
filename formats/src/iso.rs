//! ISO 9660 / UDF: detection by the first volume descriptor, and the primary volume size.
//!
//! Only the descriptor at sector 16 is read, as oslo does: later descriptors, El Torito boot
//! records, Joliet and UDF anchors are not examined (an ISO cannot name another file).

use crate::bytes::{le_u16, le_u32, u8_at};
use crate::found::{Found, Size};
use crate::Format;

// Sectors 0-15 (32 KiB) are a free "system area" (hybrid ISOs put an MBR/GPT there); the
// volume descriptor set starts at sector 16, one 2048-byte descriptor per sector:
//    0 type u8 (1 = primary volume descriptor) | 1 identifier [5] | 6 version u8
// Primary volume descriptor, both-endian fields (read as their little-endian half):
//   80 volume_space_size u32 LE + u32 BE (blocks) | 128 logical_block_size u16 LE + u16 BE
/// Stream offset of the first volume descriptor (sector 16 of 2048 bytes).
pub(crate) const DESCRIPTOR_OFFSET: u64 = 16 * 2048;
/// Length captured: one descriptor sector.
pub(crate) const DESCRIPTOR_LEN: usize = 2048;
const TYPE_OFFSET: usize = 0;
const IDENTIFIER: std::ops::Range<usize> = 1..6;
const TYPE_PRIMARY: u8 = 1;
const VOLUME_SPACE_SIZE_OFFSET: usize = 80;
const LOGICAL_BLOCK_SIZE_OFFSET: usize = 128;
/// ISO 9660 ("CD001") and UDF NSR descriptors, as oslo accepts them.
const IDENTIFIERS: [&[u8; 5]; 3] = [b"CD001", b"NSR02", b"NSR03"];

fn has_identifier(descriptor: &[u8]) -> bool {
    descriptor
        .get(IDENTIFIER)
        .is_some_and(|id| IDENTIFIERS.iter().any(|known| id == *known))
}

/// Inspects the complete first volume descriptor.
pub(crate) fn probe(descriptor: &[u8]) -> Option<Found> {
    if !has_identifier(descriptor) {
        return None;
    }
    if u8_at(descriptor, TYPE_OFFSET) != TYPE_PRIMARY {
        return Some(Found::ok(Format::Iso, Size::Unknown));
    }
    let blocks = u64::from(le_u32(descriptor, VOLUME_SPACE_SIZE_OFFSET));
    let block_size = u64::from(le_u16(descriptor, LOGICAL_BLOCK_SIZE_OFFSET));
    let size = blocks * block_size; // < 2^48: cannot overflow
    Some(if size == 0 {
        Found::ok(Format::Iso, Size::Unknown)
    } else {
        Found::sized(Format::Iso, size)
    })
}

/// The stream ended inside the first volume descriptor: an ISO if its identifier made it.
pub(crate) fn probe_truncated(descriptor: &[u8]) -> Option<Found> {
    has_identifier(descriptor).then(|| Found::truncated(Format::Iso))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A primary volume descriptor for `blocks` blocks of 2048 bytes.
    pub(crate) fn primary_descriptor(blocks: u32) -> Vec<u8> {
        let mut d = vec![0u8; DESCRIPTOR_LEN];
        d[0] = TYPE_PRIMARY;
        d[1..6].copy_from_slice(b"CD001");
        d[6] = 1;
        d[80..84].copy_from_slice(&blocks.to_le_bytes());
        d[84..88].copy_from_slice(&blocks.to_be_bytes());
        d[128..130].copy_from_slice(&2048u16.to_le_bytes());
        d[130..132].copy_from_slice(&2048u16.to_be_bytes());
        d
    }

    #[test]
    fn reads_primary_volume_size() {
        assert_eq!(
            probe(&primary_descriptor(175)),
            Some(Found::ok(Format::Iso, Size::Bytes(358_400)))
        );
    }

    #[test]
    fn udf_and_non_primary_descriptors_have_unknown_size() {
        let mut d = vec![0u8; DESCRIPTOR_LEN];
        d[1..6].copy_from_slice(b"NSR02");
        assert_eq!(probe(&d), Some(Found::ok(Format::Iso, Size::Unknown)));
        d[1..6].copy_from_slice(b"BEA01");
        assert_eq!(probe(&d), None);
    }

    #[test]
    fn truncated_descriptor_is_truncated_only_with_identifier() {
        assert_eq!(
            probe_truncated(&primary_descriptor(1)[..6]),
            Some(Found::truncated(Format::Iso))
        );
        assert_eq!(probe_truncated(&primary_descriptor(1)[..5]), None);
    }
}
