//! Fuzz target: an MBR signature with fuzzed boot code and partition entries.
#![no_main]

use formats_fuzz::{check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, &input.body[..input.body.len().min(510)]);
    place(&mut stream, 510, &[0x55, 0xAA]);
    stream.extend_from_slice(input.body.get(510..).unwrap_or_default());
    check(&stream, &input);
});
