//! qcow2 (and qcow v1, which shares the magic): detection, virtual size, safety checks.
//!
//! Reads only the fixed header (the first 104 bytes of the head sector). Header extensions
//! (backing format name, external data file name, feature names) are not needed: the fields
//! that make qemu open another file are the backing file offset and the external-data-file
//! incompatible bit. Snapshots, bitmaps, refcounts and L2 tables are not examined.

use crate::bytes::{be_u32, be_u64};
use crate::found::{fail, Found, Problem, Size};
use crate::{Check, Format, Policy};

// qcow2 header, big-endian (72 bytes in v2, at least 104 in v3):
//    0 magic "QFI\xfb"        |   4 version u32            |   8 backing_file_offset u64
//   16 backing_file_size u32  |  20 cluster_bits u32       |  24 size u64 (virtual size)
//   32 crypt_method u32 (0 none, 1 AES, 2 LUKS)            |  36 l1_size u32 (entries)
//   40 l1_table_offset u64    |  48 refcount_table_offset u64 | 56 refcount_table_clusters u32
//   60 nb_snapshots u32       |  64 snapshots_offset u64
//   v3 only: 72 incompatible_features u64 | 80 compatible_features u64
//            88 autoclear_features u64    | 96 refcount_order u32 | 100 header_length u32
const MAGIC: &[u8; 4] = b"QFI\xfb";
const VERSION_OFFSET: usize = 4;
const BACKING_FILE_OFFSET_OFFSET: usize = 8;
const CLUSTER_BITS_OFFSET: usize = 20;
const SIZE_OFFSET: usize = 24;
const CRYPT_METHOD_OFFSET: usize = 32;
const L1_SIZE_OFFSET: usize = 36;
const INCOMPATIBLE_FEATURES_OFFSET: usize = 72;
const HEADER_LENGTH_OFFSET: usize = 100;
/// Bytes of header this parser reads (the v3 fixed header).
const HEADER_LEN: usize = 104;

// Incompatible feature bits (v3): 0 dirty, 1 corrupt, 2 external data file, 3 compression
// type, 4 extended L2 entries (qemu >= 5.2). oslo knows bits 0-3 and refuses every other bit,
// so Glance and Nova refuse extended_l2 images; we do the same unless the policy allows it.
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;
const INCOMPAT_KNOWN_TO_OSLO: u64 = (1 << 4) - 1;

// Limits qemu enforces when opening (block/qcow2.h): cluster sizes 512 B..2 MiB, and an L1
// table of at most 32 MiB (4 Mi entries of 8 bytes).
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;
const MAX_L1_ENTRIES: u64 = 0x200_0000 / 8;
const MAX_CRYPT_METHOD: u32 = 2;

/// Inspects the head sector. `complete` is false when the stream ended before 512 bytes.
pub(crate) fn probe(head: &[u8], complete: bool, policy: &Policy) -> Option<Found> {
    if !head.starts_with(MAGIC) {
        return None;
    }
    if !complete || head.len() < HEADER_LEN {
        return Some(Found::truncated(Format::Qcow2));
    }
    let version = be_u32(head, VERSION_OFFSET);
    if version != 2 && version != 3 {
        let detail = format!("qcow version {version} is not supported (only 2 and 3)");
        return Some(Found::problem(
            Format::Qcow2,
            Size::Unknown,
            Check::Version,
            detail,
        ));
    }
    let size = be_u64(head, SIZE_OFFSET);
    Some(Found::sized(Format::Qcow2, size).or_problem(check(head, version, size, policy)))
}

/// The first failed check, in oslo's order (backing file, data file, unknown features), then
/// the header-consistency checks qemu applies at open.
fn check(head: &[u8], version: u32, size: u64, policy: &Policy) -> Option<Problem> {
    if be_u64(head, BACKING_FILE_OFFSET_OFFSET) != 0 {
        return Some(fail(Check::BackingFile, "backing file"));
    }
    // v2 headers end at 72: there the bytes are the first header extension, not features.
    let incompatible = if version == 3 {
        be_u64(head, INCOMPATIBLE_FEATURES_OFFSET)
    } else {
        0
    };
    if incompatible & INCOMPAT_DATA_FILE != 0 {
        return Some(fail(Check::DataFile, "external data file"));
    }
    let known = if policy.qcow2_allow_extended_l2 {
        INCOMPAT_KNOWN_TO_OSLO | INCOMPAT_EXTENDED_L2
    } else {
        INCOMPAT_KNOWN_TO_OSLO
    };
    if incompatible & !known != 0 {
        if incompatible & !known == INCOMPAT_EXTENDED_L2 {
            return Some(fail(
                Check::UnknownFeatures,
                "extended_l2 incompatible feature is not allowed",
            ));
        }
        let unknown = incompatible & !known;
        return Some(fail(
            Check::UnknownFeatures,
            format!("unknown incompatible features {unknown:#x}"),
        ));
    }
    if version == 3 {
        let header_length = be_u32(head, HEADER_LENGTH_OFFSET);
        if header_length < HEADER_LEN as u32 {
            return Some(fail(
                Check::Malformed,
                format!("header length {header_length} < 104"),
            ));
        }
    }
    let cluster_bits = be_u32(head, CLUSTER_BITS_OFFSET);
    if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
        return Some(fail(
            Check::Malformed,
            format!("cluster_bits {cluster_bits} not in 9..=21"),
        ));
    }
    let crypt_method = be_u32(head, CRYPT_METHOD_OFFSET);
    if crypt_method > MAX_CRYPT_METHOD {
        return Some(fail(
            Check::Malformed,
            format!("unknown encryption method {crypt_method}"),
        ));
    }
    // The L1 table must map the whole virtual size (qemu: "L1 table is too small"), and may
    // not exceed qemu's maximum: this bounds `size` to what qemu can actually address.
    let l2_entry_bits = if incompatible & INCOMPAT_EXTENDED_L2 != 0 {
        4
    } else {
        3
    };
    let bytes_per_l1_entry_bits = cluster_bits + (cluster_bits - l2_entry_bits);
    let needed = size.div_ceil(1u64 << bytes_per_l1_entry_bits);
    let l1_size = u64::from(be_u32(head, L1_SIZE_OFFSET));
    if needed > MAX_L1_ENTRIES || l1_size > MAX_L1_ENTRIES {
        return Some(fail(
            Check::Size,
            format!("virtual size {size} is beyond what qcow2 maps"),
        ));
    }
    if l1_size < needed {
        return Some(fail(
            Check::Size,
            format!("virtual size {size} needs {needed} L1 entries, the header has {l1_size}"),
        ));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A qemu-like v3 header: 64 KiB clusters, `size` bytes, L1 big enough.
    pub(crate) fn header(version: u32, size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(MAGIC);
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&size.to_be_bytes());
        let l1 = size.div_ceil(1 << 29).max(1) as u32;
        h[36..40].copy_from_slice(&l1.to_be_bytes());
        h[40..48].copy_from_slice(&0x30000u64.to_be_bytes());
        if version == 3 {
            h[100..104].copy_from_slice(&112u32.to_be_bytes());
        }
        h
    }

    fn problem_check(found: &Found) -> Option<Check> {
        match &found.problem {
            Some(Problem::Unsafe { check, .. }) => Some(*check),
            _ => None,
        }
    }

    #[test]
    fn reads_virtual_size_of_v2_and_v3() {
        for version in [2, 3] {
            let found = probe(&header(version, 1 << 30), true, &Policy::default()).unwrap();
            assert_eq!(found.size, Size::Bytes(1 << 30));
            assert_eq!(found.problem, None);
        }
    }

    #[test]
    fn ignores_other_magics() {
        assert_eq!(probe(&[0u8; 512], true, &Policy::default()), None);
        assert_eq!(probe(b"QFI", false, &Policy::default()), None);
    }

    #[test]
    fn truncated_header_is_truncated() {
        let h = header(3, 4096);
        assert_eq!(
            probe(&h[..100], false, &Policy::default()),
            Some(Found::truncated(Format::Qcow2))
        );
    }

    #[test]
    fn rejects_backing_file() {
        let mut h = header(3, 1 << 20);
        h[8..16].copy_from_slice(&0x1000u64.to_be_bytes());
        assert_eq!(
            problem_check(&probe(&h, true, &Policy::default()).unwrap()),
            Some(Check::BackingFile)
        );
    }

    #[test]
    fn rejects_data_file_bit_on_v3_only() {
        let mut h = header(3, 1 << 20);
        h[79] = 0x04;
        assert_eq!(
            problem_check(&probe(&h, true, &Policy::default()).unwrap()),
            Some(Check::DataFile)
        );
        // In v2 the same bytes are the first header extension (here a length of 4).
        let mut v2 = header(2, 1 << 20);
        v2[79] = 0x04;
        assert_eq!(
            problem_check(&probe(&v2, true, &Policy::default()).unwrap()),
            None
        );
    }

    #[test]
    fn accepts_the_bits_oslo_knows_and_rejects_unknown_ones() {
        for bits in [0x01u8, 0x02, 0x08, 0x0b] {
            let mut h = header(3, 1 << 20);
            h[79] = bits;
            assert_eq!(
                problem_check(&probe(&h, true, &Policy::default()).unwrap()),
                None,
                "bits {bits:#x}"
            );
        }
        for (byte, bits) in [(79, 0x20u8), (79, 0x30), (72, 0x80)] {
            let mut h = header(3, 1 << 20);
            h[byte] = bits;
            assert_eq!(
                problem_check(&probe(&h, true, &Policy::default()).unwrap()),
                Some(Check::UnknownFeatures),
                "byte {byte} bits {bits:#x}"
            );
        }
    }

    // Issue 15: oslo (Glance, Nova) refuses extended_l2 as an unknown incompatible feature; an
    // image glint accepted would then fail on the compute node.
    #[test]
    fn extended_l2_is_refused_unless_the_policy_allows_it() {
        let mut h = header(3, 1 << 20);
        h[79] = 0x10;
        let found = probe(&h, true, &Policy::default()).unwrap();
        assert_eq!(problem_check(&found), Some(Check::UnknownFeatures));
        let Some(Problem::Unsafe { detail, .. }) = &found.problem else {
            panic!("refused with a detail");
        };
        assert!(detail.contains("extended_l2"), "{detail}");
        let allow = Policy {
            qcow2_allow_extended_l2: true,
            ..Policy::default()
        };
        assert_eq!(probe(&h, true, &allow).unwrap().problem, None);
        h[79] = 0x1b;
        assert_eq!(probe(&h, true, &allow).unwrap().problem, None);
        h[79] = 0x30;
        assert_eq!(
            problem_check(&probe(&h, true, &allow).unwrap()),
            Some(Check::UnknownFeatures),
            "bit 5 stays unknown"
        );
        // v2 has no feature field: the same byte is a header extension, never extended_l2.
        let mut v2 = header(2, 1 << 20);
        v2[79] = 0x10;
        assert_eq!(probe(&v2, true, &Policy::default()).unwrap().problem, None);
    }

    #[test]
    fn rejects_qcow_v1_and_future_versions() {
        for version in [1, 4] {
            let found = probe(&header(version, 1 << 20), true, &Policy::default()).unwrap();
            assert_eq!(problem_check(&found), Some(Check::Version));
        }
    }

    #[test]
    fn rejects_out_of_range_cluster_bits_and_crypt_method() {
        for bits in [0u32, 8, 22, 64, u32::MAX] {
            let mut h = header(3, 1 << 20);
            h[20..24].copy_from_slice(&bits.to_be_bytes());
            assert_eq!(
                problem_check(&probe(&h, true, &Policy::default()).unwrap()),
                Some(Check::Malformed)
            );
        }
        let mut h = header(3, 1 << 20);
        h[32..36].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(
            problem_check(&probe(&h, true, &Policy::default()).unwrap()),
            Some(Check::Malformed)
        );
        h[32..36].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(
            problem_check(&probe(&h, true, &Policy::default()).unwrap()),
            None,
            "LUKS-encrypted is allowed"
        );
    }

    #[test]
    fn rejects_sizes_the_l1_table_cannot_map() {
        // 2^62 with a one-entry L1 table: oslo accepts it, qemu cannot open it.
        let mut h = header(3, 1 << 20);
        h[24..32].copy_from_slice(&(1u64 << 62).to_be_bytes());
        assert_eq!(
            problem_check(&probe(&h, true, &Policy::default()).unwrap()),
            Some(Check::Size)
        );
        // u64::MAX is refused by the generic bound before the L1 check.
        let mut h = header(3, 1 << 20);
        h[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            problem_check(&probe(&h, true, &Policy::default()).unwrap()),
            Some(Check::Size)
        );
        // 16 TiB with 2 MiB clusters: 16 TiB / 512 GiB per L1 entry = 32 entries.
        let mut h = header(3, 16 << 40);
        h[20..24].copy_from_slice(&21u32.to_be_bytes());
        h[36..40].copy_from_slice(&32u32.to_be_bytes());
        assert_eq!(
            problem_check(&probe(&h, true, &Policy::default()).unwrap()),
            None
        );
    }

    #[test]
    fn rejects_short_v3_header_length() {
        let mut h = header(3, 1 << 20);
        h[100..104].copy_from_slice(&72u32.to_be_bytes());
        assert_eq!(
            problem_check(&probe(&h, true, &Policy::default()).unwrap()),
            Some(Check::Malformed)
        );
    }
}
