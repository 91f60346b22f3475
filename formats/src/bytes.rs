//! Fixed-width integer reads from captured header bytes.
//!
//! Every read is bounds-checked and yields 0 past the end of the slice, so a parser can read
//! its fields by named offset after one length check instead of threading `?` through every
//! field. A 0 never decides anything on its own: parsers only read offsets that their length
//! check covers.

fn array<const N: usize>(bytes: &[u8], offset: usize) -> [u8; N] {
    offset
        .checked_add(N)
        .and_then(|end| bytes.get(offset..end))
        .and_then(|field| <[u8; N]>::try_from(field).ok())
        .unwrap_or([0; N])
}

pub(crate) fn u8_at(bytes: &[u8], offset: usize) -> u8 {
    bytes.get(offset).copied().unwrap_or(0)
}

pub(crate) fn be_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_be_bytes(array(bytes, offset))
}

pub(crate) fn be_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes(array(bytes, offset))
}

pub(crate) fn be_u64(bytes: &[u8], offset: usize) -> u64 {
    u64::from_be_bytes(array(bytes, offset))
}

pub(crate) fn le_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(array(bytes, offset))
}

pub(crate) fn le_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(array(bytes, offset))
}

pub(crate) fn le_u64(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(array(bytes, offset))
}

/// The 16 bytes at `offset` (a GUID as stored on disk), zeros past the end.
pub(crate) fn guid_at(bytes: &[u8], offset: usize) -> [u8; 16] {
    array(bytes, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_endiannesses() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(be_u16(&b, 0), 0x0102);
        assert_eq!(le_u16(&b, 0), 0x0201);
        assert_eq!(be_u32(&b, 4), 0x0506_0708);
        assert_eq!(le_u32(&b, 4), 0x0807_0605);
        assert_eq!(be_u64(&b, 0), 0x0102_0304_0506_0708);
        assert_eq!(le_u64(&b, 0), 0x0807_0605_0403_0201);
        assert_eq!(u8_at(&b, 7), 8);
    }

    #[test]
    fn reads_past_the_end_as_zero_without_panicking() {
        let b = [0xff; 4];
        assert_eq!(be_u64(&b, 0), 0);
        assert_eq!(le_u32(&b, 1), 0);
        assert_eq!(u8_at(&b, 4), 0);
        assert_eq!(be_u32(&b, usize::MAX), 0);
        assert_eq!(guid_at(&b, usize::MAX - 3), [0; 16]);
    }
}
