//! LUKS v1: detection and the guest-visible size (stream length minus the payload offset).
//!
//! The passphrase check oslo can run (decrypting the first payload sector to inspect the inner
//! format) needs a key Glance never has on upload, so it is not implemented.

use crate::bytes::{be_u16, be_u32};
use crate::found::{Found, Size};
use crate::{Check, Format};

// LUKS1 partition header ("phdr"), big-endian, 592 bytes:
//    0 magic "LUKS\xba\xbe" | 6 version u16 | 8 cipher_name [32] | 40 cipher_mode [32]
//   72 hash_spec [32] | 104 payload_offset u32 (512-byte sectors) | 108 key_bytes u32
//  112 mk_digest [20] | 132 mk_digest_salt [32] | 164 mk_digest_iterations u32 | 168 uuid [40]
//  208 key slots: 8 × 48 bytes
const MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
const VERSION_OFFSET: usize = 6;
const PAYLOAD_OFFSET_OFFSET: usize = 104;
const SECTOR: u64 = 512;

/// Inspects the head sector. `complete` is false when the stream ended before 512 bytes.
pub(crate) fn probe(head: &[u8], complete: bool) -> Option<Found> {
    if !head.starts_with(MAGIC) {
        return None;
    }
    if !complete {
        return Some(Found::truncated(Format::Luks));
    }
    let version = be_u16(head, VERSION_OFFSET);
    if version != 1 {
        let detail = format!("LUKS version {version} is not supported (only 1)");
        return Some(Found::problem(
            Format::Luks,
            Size::Unknown,
            Check::Version,
            detail,
        ));
    }
    let payload_bytes = u64::from(be_u32(head, PAYLOAD_OFFSET_OFFSET)) * SECTOR;
    Some(Found::ok(
        Format::Luks,
        Size::StreamLengthMinus(payload_bytes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_is_stream_minus_payload() {
        let mut h = vec![0u8; 512];
        h[..6].copy_from_slice(MAGIC);
        h[6..8].copy_from_slice(&1u16.to_be_bytes());
        h[104..108].copy_from_slice(&4040u32.to_be_bytes());
        assert_eq!(
            probe(&h, true),
            Some(Found::ok(Format::Luks, Size::StreamLengthMinus(4040 * 512)))
        );
        h[6..8].copy_from_slice(&2u16.to_be_bytes());
        assert!(
            probe(&h, true).unwrap().problem.is_some(),
            "LUKS2 is refused"
        );
        assert_eq!(probe(&h[..10], false), Some(Found::truncated(Format::Luks)));
    }
}
