//! QED: detected only so that it can be refused, as Glance does ("This file format is not
//! allowed"). Nothing downstream of Glance uses it, and it supports backing files.

use crate::bytes::le_u64;
use crate::found::{Found, Size};
use crate::{Check, Format};

// QED header, little-endian:
//    0 magic "QED\0" | 4 cluster_size u32 | 8 table_size u32 | 12 header_size u32
//   16 features u64  | 24 compat_features u64 | 32 autoclear_features u64
//   40 l1_table_offset u64 | 48 image_size u64 (virtual size)
//   56 backing_filename_offset u32 | 60 backing_filename_size u32
const MAGIC: &[u8; 4] = b"QED\0";
const IMAGE_SIZE_OFFSET: usize = 48;
const HEADER_LEN: usize = 64;

/// Inspects the head sector: any stream that starts with the QED magic is refused.
pub(crate) fn probe(head: &[u8]) -> Option<Found> {
    if !head.starts_with(MAGIC) {
        return None;
    }
    let size = if head.len() >= HEADER_LEN {
        Size::Bytes(le_u64(head, IMAGE_SIZE_OFFSET))
    } else {
        Size::Unknown
    };
    Some(Found::problem(
        Format::Qed,
        size,
        Check::Banned,
        "format is not allowed".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_qed_even_when_truncated() {
        let found = probe(b"QED\0").unwrap();
        assert_eq!(found.format, Format::Qed);
        assert!(found.problem.is_some());
        assert_eq!(probe(b"QED"), None);
    }
}
