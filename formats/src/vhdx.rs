//! VHDX: identity, region table, metadata table and the virtual-disk-size item.
//!
//! Three steps, each a capture region whose position comes from the previous one: the region
//! table at 192 KiB names the metadata region; its table names the virtual-disk-size item. Only
//! the first region table is read; headers, log, checksums (CRC-32C) and the BAT are not.

use crate::bytes::{guid_at, le_u16, le_u32, le_u64};
use crate::found::{fail, Found, Problem};
use crate::{Check, Format};

// VHDX file layout, little-endian:
//          0  file type identifier: "vhdxfile" [8] + creator (UTF-16) — a 64 KiB block
//    0x10000  header 1 | 0x20000 header 2 | 0x30000 region table 1 | 0x40000 region table 2
// Region table (64 KiB): 0 signature "regi" | 4 checksum u32 | 8 entry_count u32 | 12 reserved
//   entry i at 16 + 32·i: 0 guid [16] | 16 file_offset u64 | 24 length u32 | 28 required u32
// Metadata region (spec: 1 MiB aligned, at or after 1 MiB), starting with a 64 KiB table:
//   0 signature "metadata" [8] | 8 reserved u16 | 10 entry_count u16 | 12 reserved [20]
//   entry i at 32 + 32·i: 0 item_id [16] | 16 offset u32 (from the region start)
//                         | 20 length u32 | 24 flags u32 (bit 2: required) | 28 reserved
// Virtual Disk Size item: u64, the virtual size in bytes.
const IDENTITY: &[u8; 8] = b"vhdxfile";
/// Where the first region table starts, and how much of it is captured.
pub(crate) const REGION_TABLE_OFFSET: u64 = 0x30000;
pub(crate) const REGION_TABLE_LEN: usize = 64 * 1024;
/// How much of the metadata region is captured: its table (header + at most 2047 entries).
pub(crate) const METADATA_TABLE_LEN: usize = 64 * 1024;
/// The virtual-disk-size item.
pub(crate) const SIZE_ITEM_LEN: usize = 8;
const REGION_SIGNATURE: &[u8; 4] = b"regi";
const REGION_COUNT_OFFSET: usize = 8;
const REGION_ENTRIES_OFFSET: usize = 16;
const REGION_ENTRY_LEN: usize = 32;
const REGION_FILE_OFFSET: usize = 16;
const REGION_REQUIRED_OFFSET: usize = 28;
const METADATA_SIGNATURE: &[u8; 8] = b"metadata";
const METADATA_COUNT_OFFSET: usize = 10;
const METADATA_ENTRIES_OFFSET: usize = 32;
const METADATA_ENTRY_LEN: usize = 32;
const ITEM_OFFSET_OFFSET: usize = 16;
const ITEM_LENGTH_OFFSET: usize = 20;
const ITEM_FLAGS_OFFSET: usize = 24;
const ITEM_FLAG_REQUIRED: u32 = 1 << 2;
/// Both tables hold at most 2047 entries (qemu and oslo refuse more).
const MAX_ENTRIES: usize = 2047;
const METADATA_ALIGNMENT: u64 = 1 << 20;

/// A GUID in its on-disk form: the first three groups little-endian, the rest as written.
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

// Region GUIDs.
const BAT_REGION: [u8; 16] = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
const METADATA_REGION: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
// Metadata item GUIDs.
const FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const PAGE_83_DATA: [u8; 16] = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const LOGICAL_SECTOR_SIZE: [u8; 16] = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
const PHYSICAL_SECTOR_SIZE: [u8; 16] = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);
const PARENT_LOCATOR: [u8; 16] = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);
const KNOWN_ITEMS: [[u8; 16]; 6] = [
    FILE_PARAMETERS,
    VIRTUAL_DISK_SIZE,
    PAGE_83_DATA,
    LOGICAL_SECTOR_SIZE,
    PHYSICAL_SECTOR_SIZE,
    PARENT_LOCATOR,
];

/// Whether the head starts with the VHDX identity (then the region table must be read).
pub(crate) fn has_identity(head: &[u8]) -> bool {
    head.starts_with(IDENTITY)
}

/// Parses the complete first region table: the metadata region's file offset.
pub(crate) fn parse_region_table(table: &[u8]) -> Result<u64, Problem> {
    if !table.starts_with(REGION_SIGNATURE) {
        return Err(fail(Check::Malformed, "region table signature missing"));
    }
    let count = le_u32(table, REGION_COUNT_OFFSET) as usize;
    if count > MAX_ENTRIES {
        return Err(fail(
            Check::Malformed,
            format!("region table has {count} entries (limit 2047)"),
        ));
    }
    let mut metadata = None;
    for i in 0..count {
        let entry = REGION_ENTRIES_OFFSET + REGION_ENTRY_LEN * i;
        let id = guid_at(table, entry);
        if id == METADATA_REGION {
            metadata.get_or_insert(le_u64(table, entry + REGION_FILE_OFFSET));
        } else if id != BAT_REGION && le_u32(table, entry + REGION_REQUIRED_OFFSET) & 1 != 0 {
            return Err(fail(
                Check::UnknownFeatures,
                "required region of unknown type",
            ));
        }
    }
    let offset = metadata.ok_or_else(|| fail(Check::Malformed, "no metadata region"))?;
    // The spec's placement rule also guarantees that the metadata region starts after the
    // region table, so it is still ahead in the stream when we learn where it is.
    if offset < METADATA_ALIGNMENT
        || offset % METADATA_ALIGNMENT != 0
        || offset.checked_add(METADATA_TABLE_LEN as u64).is_none()
    {
        return Err(fail(
            Check::Malformed,
            format!("metadata region at offset {offset}"),
        ));
    }
    Ok(offset)
}

/// Parses the complete metadata table: the virtual-disk-size item's offset from the region
/// start.
pub(crate) fn parse_metadata_table(table: &[u8]) -> Result<u64, Problem> {
    if !table.starts_with(METADATA_SIGNATURE) {
        return Err(fail(Check::Malformed, "metadata table signature missing"));
    }
    let count = usize::from(le_u16(table, METADATA_COUNT_OFFSET));
    if count > MAX_ENTRIES {
        return Err(fail(
            Check::Malformed,
            format!("metadata table has {count} entries (limit 2047)"),
        ));
    }
    let mut size_item = None;
    for i in 0..count {
        let entry = METADATA_ENTRIES_OFFSET + METADATA_ENTRY_LEN * i;
        let id = guid_at(table, entry);
        if id == PARENT_LOCATOR {
            return Err(fail(
                Check::Differencing,
                "differencing disk (parent locator)",
            ));
        }
        if id == VIRTUAL_DISK_SIZE {
            let offset = le_u32(table, entry + ITEM_OFFSET_OFFSET);
            let length = le_u32(table, entry + ITEM_LENGTH_OFFSET);
            size_item.get_or_insert((offset, length));
        } else if !KNOWN_ITEMS.contains(&id)
            && le_u32(table, entry + ITEM_FLAGS_OFFSET) & ITEM_FLAG_REQUIRED != 0
        {
            return Err(fail(
                Check::UnknownFeatures,
                "required metadata item of unknown type",
            ));
        }
    }
    match size_item {
        None => Err(fail(Check::Malformed, "no virtual disk size item")),
        Some((_, length)) if length as usize != SIZE_ITEM_LEN => Err(fail(
            Check::Malformed,
            format!("virtual disk size item of {length} bytes"),
        )),
        Some((offset, _)) => Ok(u64::from(offset)),
    }
}

/// The complete virtual-disk-size item.
pub(crate) fn judge_size(item: &[u8]) -> Found {
    Found::sized(Format::Vhdx, le_u64(item, 0))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal VHDX image of `size` bytes: identity, region table, metadata table and item,
    /// with the metadata region at 1 MiB and the size item right after the table.
    pub(crate) fn image(size: u64) -> Vec<u8> {
        let meta = 1 << 20;
        let mut img = vec![0u8; meta + METADATA_TABLE_LEN + 4096];
        img[..8].copy_from_slice(IDENTITY);
        let rt = REGION_TABLE_OFFSET as usize;
        img[rt..rt + 4].copy_from_slice(REGION_SIGNATURE);
        img[rt + 8..rt + 12].copy_from_slice(&2u32.to_le_bytes());
        img[rt + 16..rt + 32].copy_from_slice(&BAT_REGION);
        img[rt + 32..rt + 40].copy_from_slice(&(2u64 << 20).to_le_bytes());
        img[rt + 48..rt + 64].copy_from_slice(&METADATA_REGION);
        img[rt + 64..rt + 72].copy_from_slice(&(meta as u64).to_le_bytes());
        img[rt + 72..rt + 76].copy_from_slice(&(1u32 << 20).to_le_bytes());
        img[meta..meta + 8].copy_from_slice(METADATA_SIGNATURE);
        img[meta + 10..meta + 12].copy_from_slice(&1u16.to_le_bytes());
        img[meta + 32..meta + 48].copy_from_slice(&VIRTUAL_DISK_SIZE);
        img[meta + 48..meta + 52].copy_from_slice(&(METADATA_TABLE_LEN as u32).to_le_bytes());
        img[meta + 52..meta + 56].copy_from_slice(&8u32.to_le_bytes());
        img[meta + 56..meta + 60].copy_from_slice(&6u32.to_le_bytes());
        let item = meta + METADATA_TABLE_LEN;
        img[item..item + 8].copy_from_slice(&size.to_le_bytes());
        img
    }

    fn region_table(img: &[u8]) -> &[u8] {
        let rt = REGION_TABLE_OFFSET as usize;
        &img[rt..rt + REGION_TABLE_LEN]
    }

    fn metadata_table(img: &[u8]) -> &[u8] {
        &img[1 << 20..(1 << 20) + METADATA_TABLE_LEN]
    }

    #[test]
    fn guids_are_stored_mixed_endian() {
        assert_eq!(
            METADATA_REGION,
            [
                0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f,
                0x88, 0x6e
            ]
        );
    }

    #[test]
    fn finds_metadata_and_size_item() {
        let img = image(1_000_448);
        assert_eq!(parse_region_table(region_table(&img)), Ok(1 << 20));
        assert_eq!(
            parse_metadata_table(metadata_table(&img)),
            Ok(METADATA_TABLE_LEN as u64)
        );
        let item = (1 << 20) + METADATA_TABLE_LEN;
        assert_eq!(
            judge_size(&img[item..item + 8]),
            Found::sized(Format::Vhdx, 1_000_448)
        );
    }

    #[test]
    fn refuses_bad_region_tables() {
        let mut img = image(1);
        let rt = REGION_TABLE_OFFSET as usize;
        img[rt] = b'x';
        assert!(parse_region_table(region_table(&img)).is_err(), "signature");
        let mut img = image(1);
        img[rt + 8..rt + 12].copy_from_slice(&2048u32.to_le_bytes());
        assert!(parse_region_table(region_table(&img)).is_err(), "count");
        let mut img = image(1);
        img[rt + 64..rt + 72].copy_from_slice(&0x1000u64.to_le_bytes());
        assert!(
            parse_region_table(region_table(&img)).is_err(),
            "metadata before the table"
        );
        let mut img = image(1);
        img[rt + 16] ^= 0xff;
        img[rt + 44] = 1;
        assert!(
            parse_region_table(region_table(&img)).is_err(),
            "unknown required region"
        );
    }

    #[test]
    fn refuses_differencing_and_unknown_required_items() {
        let mut img = image(1);
        let e = (1 << 20) + 32;
        img[e..e + 16].copy_from_slice(&PARENT_LOCATOR);
        assert!(matches!(
            parse_metadata_table(metadata_table(&img)),
            Err(Problem::Unsafe {
                check: Check::Differencing,
                ..
            })
        ));
        let mut img = image(1);
        img[e] ^= 0xff;
        assert!(matches!(
            parse_metadata_table(metadata_table(&img)),
            Err(Problem::Unsafe {
                check: Check::UnknownFeatures,
                ..
            })
        ));
        let mut img = image(1);
        img[e + 20..e + 24].copy_from_slice(&4u32.to_le_bytes());
        assert!(
            parse_metadata_table(metadata_table(&img)).is_err(),
            "item length"
        );
    }
}
