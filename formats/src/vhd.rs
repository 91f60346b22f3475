//! VHD (qemu `vpc`): the dynamic disk's header copy at offset 0, and the fixed disk's footer in
//! the last 512 bytes of the stream.
//!
//! Glance finds only the first (it never sees the end of the stream), so it takes fixed VHDs
//! for raw. We keep a rolling tail and recognise a fixed VHD by a footer that is exactly the
//! last 512 bytes, checksums, says "fixed", and sizes the data before it exactly. Parent
//! locators and the dynamic header/BAT are not read (differencing disks are refused outright).

use crate::bytes::{be_u32, be_u64};
use crate::found::{fail, Found};
use crate::{Check, Format};

// VHD footer ("hard disk footer"), big-endian, 512 bytes:
//    0 cookie "conectix" | 8 features u32 | 12 file_format_version u32 | 16 data_offset u64
//   24 time_stamp u32 | 28 creator_application [4] | 32 creator_version u32
//   36 creator_host_os u32 | 40 original_size u64 | 48 current_size u64
//   56 disk_geometry u32 (cylinders u16, heads u8, sectors u8) | 60 disk_type u32
//   64 checksum u32 (ones' complement of the byte sum, with these 4 bytes taken as zero)
//   68 unique_id [16] | 84 saved_state u8 | 85 reserved [427]
const COOKIE: &[u8; 8] = b"conectix";
const ORIGINAL_SIZE_OFFSET: usize = 40;
const CURRENT_SIZE_OFFSET: usize = 48;
const DISK_TYPE_OFFSET: usize = 60;
const CHECKSUM_OFFSET: usize = 64;
pub(crate) const FOOTER_LEN: usize = 512;
const TYPE_FIXED: u32 = 2;
const TYPE_DYNAMIC: u32 = 3;
const TYPE_DIFFERENCING: u32 = 4;
/// Fixed disks have no dynamic header: their data offset is all ones (qemu writes 64 ones; the
/// VHD spec says "0xFFFFFFFF"), so detection does not depend on it.
#[cfg(test)]
const NO_DATA_OFFSET: u64 = u64::MAX;

/// Inspects the head sector. `complete` is false when the stream ended before 512 bytes.
///
/// Like oslo, the cookie alone identifies a VHD here (no checksum test), so that anything qemu
/// would probe as `vpc` is judged as one.
pub(crate) fn probe_head(head: &[u8], complete: bool) -> Option<Found> {
    if !head.starts_with(COOKIE) {
        return None;
    }
    if !complete {
        return Some(Found::truncated(Format::Vhd));
    }
    let found = Found::sized(Format::Vhd, be_u64(head, ORIGINAL_SIZE_OFFSET));
    let problem = match be_u32(head, DISK_TYPE_OFFSET) {
        TYPE_FIXED | TYPE_DYNAMIC => None,
        TYPE_DIFFERENCING => Some(fail(
            Check::Differencing,
            "differencing disk (needs a parent)",
        )),
        other => Some(fail(Check::Malformed, format!("unknown disk type {other}"))),
    };
    Some(found.or_problem(problem))
}

/// Inspects the end of a stream of `stream_len` bytes whose last bytes are `tail`: a fixed VHD
/// if its footer is there and describes exactly the bytes before it.
pub(crate) fn probe_tail(tail: &[u8], stream_len: u64) -> Option<Found> {
    let footer = tail.get(tail.len().checked_sub(FOOTER_LEN)?..)?;
    let is_fixed_footer = footer.starts_with(COOKIE)
        && checksum_ok(footer)
        && be_u32(footer, DISK_TYPE_OFFSET) == TYPE_FIXED
        && be_u64(footer, CURRENT_SIZE_OFFSET).checked_add(FOOTER_LEN as u64) == Some(stream_len);
    if !is_fixed_footer {
        return None;
    }
    let mut found = Found::sized(Format::Vhd, be_u64(footer, ORIGINAL_SIZE_OFFSET));
    found.from_tail = true;
    Some(found)
}

fn checksum_ok(footer: &[u8]) -> bool {
    let checksum_field = CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4;
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !checksum_field.contains(i))
        .fold(0u32, |sum, (_, &b)| sum.wrapping_add(u32::from(b)));
    !sum == be_u32(footer, CHECKSUM_OFFSET)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::found::Size;

    /// A footer of `disk_type` for a disk of `size` bytes, with a valid checksum.
    pub(crate) fn footer(disk_type: u32, size: u64) -> Vec<u8> {
        let mut f = vec![0u8; FOOTER_LEN];
        f[..8].copy_from_slice(COOKIE);
        f[8..12].copy_from_slice(&2u32.to_be_bytes());
        f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        let data_offset = if disk_type == TYPE_FIXED {
            NO_DATA_OFFSET
        } else {
            512
        };
        f[16..24].copy_from_slice(&data_offset.to_be_bytes());
        f[28..32].copy_from_slice(b"qemu");
        f[40..48].copy_from_slice(&size.to_be_bytes());
        f[48..56].copy_from_slice(&size.to_be_bytes());
        f[60..64].copy_from_slice(&disk_type.to_be_bytes());
        let sum = f.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
        f[64..68].copy_from_slice(&(!sum).to_be_bytes());
        f
    }

    #[test]
    fn head_copy_gives_original_size() {
        assert_eq!(
            probe_head(&footer(3, 1 << 30), true),
            Some(Found::ok(Format::Vhd, Size::Bytes(1 << 30)))
        );
        assert!(probe_head(&footer(4, 1 << 30), true)
            .unwrap()
            .problem
            .is_some());
        assert!(probe_head(&footer(7, 1 << 30), true)
            .unwrap()
            .problem
            .is_some());
        assert_eq!(
            probe_head(&footer(3, 1)[..100], false),
            Some(Found::truncated(Format::Vhd))
        );
    }

    #[test]
    fn fixed_footer_must_size_the_stream_exactly() {
        let f = footer(2, 4096);
        let found = probe_tail(&f, 4096 + 512).unwrap();
        assert_eq!(found.size, Size::Bytes(4096));
        assert!(found.from_tail);
        assert_eq!(probe_tail(&f, 4096 + 513), None);
        assert_eq!(probe_tail(&f[1..], 4096 + 511), None);
    }

    #[test]
    fn fixed_footer_needs_valid_checksum_and_fixed_type() {
        let mut f = footer(2, 4096);
        f[100] ^= 1;
        assert_eq!(probe_tail(&f, 4608), None);
        assert_eq!(probe_tail(&footer(3, 4096), 4608), None);
    }
}
