//! Fuzz target: a ploop/Parallels magic with fuzzed header fields.
#![no_main]

use formats_fuzz::{check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    let magic: &[u8; 16] = if input.variant & 1 == 0 {
        b"WithouFreSpacExt"
    } else {
        b"WithoutFreeSpace"
    };
    place(&mut stream, 0, magic);
    place(&mut stream, 16, input.body);
    check(&stream, &input);
});
