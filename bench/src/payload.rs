//! Upload bodies: pseudo-random bytes, generated once (a 4 MiB block) and streamed as often as
//! needed, so a 4 GiB upload costs the client neither 4 GiB of memory nor a random generator
//! in the hot loop. The block is random so that nothing on the way can compress it.

use std::io::Read;
use std::sync::{Arc, Mutex};

use md5::{Digest as _, Md5};

const BLOCK: usize = 4 << 20;

pub struct Payload {
    block: Arc<Vec<u8>>,
}

impl Payload {
    pub fn new(seed: u64) -> Payload {
        // xorshift64*: plenty for incompressible filler.
        let mut x = seed | 1;
        let mut block = Vec::with_capacity(BLOCK);
        while block.len() < BLOCK {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            block.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        Payload {
            block: Arc::new(block),
        }
    }

    /// A reader of exactly `size` bytes, and (if `hash`) a handle to the md5 of what it gave.
    pub fn reader(&self, size: u64, hash: bool) -> (PayloadReader, Option<Md5Handle>) {
        let md5 = hash.then(|| Md5Handle(Arc::new(Mutex::new(Some(Md5::new())))));
        (
            PayloadReader {
                block: self.block.clone(),
                pos: 0,
                size,
                md5: md5.clone(),
            },
            md5,
        )
    }

    /// md5 of the first `size` bytes, computed without sending them.
    #[cfg(test)]
    pub fn md5_of(&self, size: u64) -> String {
        let (mut r, h) = self.reader(size, true);
        let mut buf = vec![0u8; 1 << 20];
        while r.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
        h.map(|h| h.hex()).unwrap_or_default()
    }
}

/// The md5 of a [`PayloadReader`]'s output, readable once the reader is done.
#[derive(Clone)]
pub struct Md5Handle(Arc<Mutex<Option<Md5>>>);

impl Md5Handle {
    pub fn hex(&self) -> String {
        let h = self.0.lock().ok().and_then(|mut g| g.take());
        h.map(|h| crate::target::hex(&h.finalize()))
            .unwrap_or_default()
    }
}

pub struct PayloadReader {
    block: Arc<Vec<u8>>,
    pos: u64,
    size: u64,
    md5: Option<Md5Handle>,
}

impl Read for PayloadReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.size - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let off = (self.pos % BLOCK as u64) as usize;
        let n = buf
            .len()
            .min(BLOCK - off)
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[off..off + n]);
        if let Some(Md5Handle(m)) = &self.md5 {
            if let Some(h) = m.lock().ok().as_deref_mut().and_then(Option::as_mut) {
                h.update(&buf[..n]);
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_exactly_size_bytes_and_their_md5() {
        let p = Payload::new(7);
        for size in [0u64, 1, 4095, (BLOCK as u64) + 17] {
            let (mut r, h) = p.reader(size, true);
            let mut all = Vec::new();
            r.read_to_end(&mut all).expect("read");
            assert_eq!(all.len() as u64, size);
            let want = crate::target::hex(&Md5::digest(&all));
            assert_eq!(h.expect("asked for md5").hex(), want);
            assert_eq!(p.md5_of(size), want);
        }
    }

    #[test]
    fn is_not_trivially_compressible() {
        let p = Payload::new(1);
        let (mut r, _) = p.reader(1 << 16, false);
        let mut all = Vec::new();
        r.read_to_end(&mut all).expect("read");
        let mut seen = [false; 256];
        all.iter().for_each(|b| seen[*b as usize] = true);
        assert!(seen.iter().all(|s| *s));
    }
}
