//! MBR / protective-MBR GPT disks (oslo's `gpt`): detection and the `mbr` check.
//!
//! A partitioned raw disk is reported as `gpt`; its size is the stream length. GPT headers,
//! partition arrays, CRCs and the backup GPT are not examined (as in oslo).

use crate::bytes::{le_u16, le_u32, u8_at};
use crate::found::{fail, Found, Problem, Size};
use crate::{Check, Format};

// Master boot record (sector 0), little-endian:
//    0 boot code [446] | 446 partition entries, 4 × 16 bytes | 510 signature 0x55 0xAA
// Partition entry: 0 boot_indicator u8 (0x00 or 0x80) | 1 start_chs [3] | 4 os_type u8
//                  5 end_chs [3] | 8 start_lba u32 | 12 sector_count u32
// A FAT volume boot record also ends in 55 AA; it is told apart, as oslo does, by its BIOS
// parameter block: 0x10 number_of_fats = 2 and 0x15 media_descriptor = 0xF8 (fixed disk).
const SIGNATURE_OFFSET: usize = 510;
const SIGNATURE: u16 = 0xAA55;
const PARTITION_TABLE_OFFSET: usize = 446;
const PARTITION_ENTRY_LEN: usize = 16;
const FAT_COUNT_OFFSET: usize = 0x10;
const FAT_MEDIA_OFFSET: usize = 0x15;
const FAT_MEDIA_FIXED_DISK: u8 = 0xF8;
const OS_TYPE_GPT_PROTECTIVE: u8 = 0xEE;
const HEAD_LEN: usize = 512;

/// Inspects the head sector (needs all 512 bytes).
pub(crate) fn probe(head: &[u8]) -> Option<Found> {
    if head.len() < HEAD_LEN || le_u16(head, SIGNATURE_OFFSET) != SIGNATURE {
        return None;
    }
    let is_fat =
        u8_at(head, FAT_COUNT_OFFSET) == 2 && u8_at(head, FAT_MEDIA_OFFSET) == FAT_MEDIA_FIXED_DISK;
    if is_fat {
        return None;
    }
    Some(Found::ok(Format::Gpt, Size::StreamLength).or_problem(check_partitions(head)))
}

/// oslo's `mbr` check: valid boot flags, a well-formed protective entry that stands alone in
/// slot 0, and at least one partition.
fn check_partitions(head: &[u8]) -> Option<Problem> {
    let mut used = Vec::new();
    let mut protective = false;
    for i in 0..4 {
        let entry = PARTITION_TABLE_OFFSET + PARTITION_ENTRY_LEN * i;
        let boot = u8_at(head, entry);
        if boot != 0x00 && boot != 0x80 {
            return Some(fail(
                Check::Mbr,
                format!("partition {i} has an invalid boot flag"),
            ));
        }
        let os_type = u8_at(head, entry + 4);
        if os_type != 0 {
            used.push(i);
        }
        if os_type == OS_TYPE_GPT_PROTECTIVE {
            protective = true;
            let start_chs = [
                u8_at(head, entry + 1),
                u8_at(head, entry + 2),
                u8_at(head, entry + 3),
            ];
            if start_chs != [0x00, 0x02, 0x00] {
                return Some(fail(
                    Check::Mbr,
                    "GPT protective entry has an invalid start CHS",
                ));
            }
            if le_u32(head, entry + 8) != 1 {
                return Some(fail(
                    Check::Mbr,
                    "GPT protective entry has an invalid start LBA",
                ));
            }
        }
    }
    if protective && used != [0] {
        return Some(fail(
            Check::Mbr,
            "GPT protective MBR defines other partitions",
        ));
    }
    if used.is_empty() {
        return Some(fail(Check::Mbr, "MBR has no partitions defined"));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An MBR with one entry of `os_type` in `slot`.
    pub(crate) fn mbr(slot: usize, os_type: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        let e = 446 + 16 * slot;
        h[e + 1..e + 4].copy_from_slice(&[0, 2, 0]);
        h[e + 4] = os_type;
        h[e + 8..e + 12].copy_from_slice(&1u32.to_le_bytes());
        h[e + 12..e + 16].copy_from_slice(&2047u32.to_le_bytes());
        h[510] = 0x55;
        h[511] = 0xAA;
        h
    }

    #[test]
    fn accepts_dos_and_protective_tables() {
        assert_eq!(
            probe(&mbr(0, 0x83)),
            Some(Found::ok(Format::Gpt, Size::StreamLength))
        );
        assert_eq!(probe(&mbr(2, 0x83)).unwrap().problem, None);
        assert_eq!(probe(&mbr(0, 0xEE)).unwrap().problem, None);
    }

    #[test]
    fn fails_mbr_check_like_oslo() {
        let mut empty = mbr(0, 0);
        empty[446 + 4] = 0;
        assert!(probe(&empty).unwrap().problem.is_some(), "no partitions");
        let mut bad_boot = mbr(0, 0x83);
        bad_boot[446] = 0x01;
        assert!(probe(&bad_boot).unwrap().problem.is_some(), "boot flag");
        assert!(
            probe(&mbr(1, 0xEE)).unwrap().problem.is_some(),
            "protective not in slot 0"
        );
        let mut two = mbr(0, 0xEE);
        two[446 + 16 + 4] = 0x83;
        assert!(
            probe(&two).unwrap().problem.is_some(),
            "protective with another entry"
        );
        let mut lba = mbr(0, 0xEE);
        lba[446 + 8] = 2;
        assert!(
            probe(&lba).unwrap().problem.is_some(),
            "protective start LBA"
        );
    }

    #[test]
    fn fat_boot_sector_is_not_a_partition_table() {
        let mut fat = mbr(0, 0);
        fat[0x10] = 2;
        fat[0x15] = 0xF8;
        assert_eq!(probe(&fat), None);
        assert_eq!(probe(&[0u8; 512]), None);
        assert_eq!(probe(&mbr(0, 0x83)[..511]), None);
    }
}
