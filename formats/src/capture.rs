//! Capture buffers: a region of the stream at a fixed offset, and the rolling tail.
//!
//! Both are offered the stream's bytes in order, each piece with its absolute offset. A region
//! keeps only bytes that extend what it already holds, so offering it a piece that misses it
//! costs a comparison; it allocates its whole (bounded) length on the first byte it takes, so
//! a region never reallocates. Neither ever seeks or looks back.

/// Bytes `[start, start + len)` of the stream, collected across pieces.
#[derive(Debug, Default)]
pub(crate) struct Region {
    start: u64,
    len: usize,
    buf: Vec<u8>,
}

impl Region {
    pub(crate) fn new(start: u64, len: usize) -> Region {
        Region {
            start,
            len,
            buf: Vec::new(),
        }
    }

    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// One past the region's last byte (saturating: a region that ends past `u64::MAX` simply
    /// never completes).
    pub(crate) fn end(&self) -> u64 {
        self.start.saturating_add(self.len as u64)
    }

    /// The stream offset of the next byte this region wants.
    pub(crate) fn next_offset(&self) -> u64 {
        self.start.saturating_add(self.buf.len() as u64)
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.buf.len() == self.len
    }

    /// The bytes captured so far (all of them once complete).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn held_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Offers `piece`, which sits at stream offset `at`: takes the part that continues what the
    /// region holds, ignores the rest.
    pub(crate) fn offer(&mut self, at: u64, piece: &[u8]) {
        let held = self.buf.len();
        if held == self.len {
            return;
        }
        // The piece must cover the next wanted byte; a piece that starts after it would leave a
        // gap (regions are created before their bytes stream past, so that does not happen).
        let Some(skip) = self.next_offset().checked_sub(at) else {
            return;
        };
        let Ok(skip) = usize::try_from(skip) else {
            return;
        };
        let Some(usable) = piece.get(skip..) else {
            return;
        };
        let take = usable.len().min(self.len - held);
        if take == 0 {
            return;
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.len);
        }
        self.buf.extend_from_slice(&usable[..take]);
    }
}

/// How many trailing bytes are kept: a VMDK stream footer (marker + footer + end-of-stream
/// marker, 3 × 512) covers the fixed VHD footer (512) too.
pub(crate) const TAIL_LEN: usize = 1536;

/// The last [`TAIL_LEN`] bytes of the stream (fewer while the stream is shorter).
#[derive(Debug)]
pub(crate) struct Tail {
    buf: Vec<u8>,
}

impl Tail {
    pub(crate) fn new() -> Tail {
        Tail {
            buf: Vec::with_capacity(TAIL_LEN),
        }
    }

    /// Appends `piece`, dropping what falls out of the window. Copies at most `TAIL_LEN` bytes
    /// plus what it keeps, whatever the piece's size: this is the per-chunk cost of the
    /// inspector once every header is decided.
    pub(crate) fn push(&mut self, piece: &[u8]) {
        if piece.len() >= TAIL_LEN {
            self.buf.clear();
            self.buf.extend_from_slice(&piece[piece.len() - TAIL_LEN..]);
        } else {
            let keep = TAIL_LEN - piece.len();
            if self.buf.len() > keep {
                let drop = self.buf.len() - keep;
                self.buf.drain(..drop);
            }
            self.buf.extend_from_slice(piece);
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the bytes held: the stream skipped ahead, so they no longer end it.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
    }

    pub(crate) fn held_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_collects_across_unaligned_pieces() {
        let stream: Vec<u8> = (0..=255).collect();
        let mut region = Region::new(10, 20);
        let mut at = 0;
        for piece in stream.chunks(7) {
            region.offer(at, piece);
            at += piece.len() as u64;
        }
        assert!(region.is_complete());
        assert_eq!(region.bytes(), &stream[10..30]);
        assert_eq!(region.held_bytes(), 20);
    }

    #[test]
    fn region_ignores_pieces_before_and_after_it() {
        let mut region = Region::new(100, 4);
        region.offer(0, &[1; 100]);
        assert!(region.bytes().is_empty());
        region.offer(104, &[2; 10]);
        assert!(
            region.bytes().is_empty(),
            "a piece past the next wanted byte leaves a gap"
        );
        region.offer(100, &[3; 2]);
        region.offer(100, &[3; 2]);
        assert_eq!(
            region.bytes(),
            &[3, 3],
            "re-offered bytes are not taken twice"
        );
        region.offer(102, &[4; 9]);
        assert_eq!(region.bytes(), &[3, 3, 4, 4]);
        assert!(region.is_complete());
    }

    #[test]
    fn region_near_u64_max_saturates_without_panicking() {
        let mut region = Region::new(u64::MAX - 1, 8);
        assert_eq!(region.end(), u64::MAX);
        region.offer(u64::MAX - 4, &[1; 2]);
        assert!(region.bytes().is_empty());
        region.offer(u64::MAX - 1, &[1; 8]);
        assert_eq!(region.next_offset(), u64::MAX);
    }

    #[test]
    fn tail_keeps_the_last_bytes_for_any_piece_sizes() {
        let stream: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        for size in [1, 3, 511, 512, 1535, 1536, 1537, 4096] {
            let mut tail = Tail::new();
            for piece in stream.chunks(size) {
                tail.push(piece);
            }
            assert_eq!(
                tail.bytes(),
                &stream[stream.len() - TAIL_LEN..],
                "pieces of {size}"
            );
            assert_eq!(tail.held_bytes(), TAIL_LEN);
        }
        let mut short = Tail::new();
        short.push(&stream[..100]);
        assert_eq!(short.bytes(), &stream[..100]);
    }
}
